#!/usr/bin/env python3
"""CPU per media second of a 4-participant 720p30 grid recording: the worker against ffmpeg
doing the same composite from the same encoded clips in one process.

Both decode four VP8/Opus clips, scale them into a 2x2 grid, encode H.264 (libx264, same speed
preset, bitrate and keyframe interval) and AAC, and write an MP4. The worker runs in real time,
as it does in a call; ffmpeg runs as fast as it can. CPU seconds (user + system, from wait4) are
divided by the media seconds produced. Median of BENCH_RUNS runs (default 3).
"""
import json, os, re, statistics, subprocess, sys, tempfile, time, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def run_measured(cmd, **kw):
    """Runs cmd; returns (cpu_seconds, peak_rss_mib, stderr_text)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{text[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def media_seconds(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def worker_run(binary, clips, workdir):
    job = {
        "egress_id": "eg_bench",
        "call_cid": "bench:grid4",
        "source": {"type": "synthetic", "duration_s": SECONDS, "participants": [
            {"user_id": f"p{i}", "video": {"clip": c}, "audio": {"file": c}} for i, c in enumerate(clips)]},
        "recording": {"quality": "720p", "layout": {"name": "grid"}},
    }
    path = os.path.join(workdir, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    out = os.path.join(workdir, "worker-out")
    subprocess.run(["rm", "-rf", out])
    cpu, rss, err = run_measured([binary, "run", path, "--out", out])
    first = re.search(r"first encoded frame.*ms_since_launch=(\d+)", err)
    files = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".mp4")]
    return cpu, rss, media_seconds(files[0]), int(first.group(1)) if first else None


def ffmpeg_run(clips, workdir, presets):
    video, audio = presets["video"], presets["audio"]
    fps = video["framerate"]
    out = os.path.join(workdir, "ffmpeg.mp4")
    inputs = [a for c in clips for a in ("-i", c)]
    scale = ";".join(f"[{i}:v]scale=640:360[v{i}]" for i in range(4))
    graph = (f"{scale};[v0][v1][v2][v3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0,fps={fps},format=yuv420p[v];"
             f"[0:a][1:a][2:a][3:a]amix=inputs=4[a]")
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
           "-c:v", "libx264", "-preset", video["x264_speed_preset"], "-profile:v", "high",
           "-b:v", f"{video['bitrate_kbps']['720p']}k", "-g", str(fps * video["keyframe_interval_s"]),
           "-c:a", "aac", "-b:a", f"{audio['aac_bitrate_kbps']}k", "-ar", str(audio["sample_rate"]),
           "-t", str(SECONDS), out]
    cpu, rss, _ = run_measured(cmd)
    return cpu, rss, media_seconds(out)


def main():
    binary, media = sys.argv[1], sys.argv[2]
    clips = [os.path.join(media, f"clip{i}.webm") for i in range(1, 5)]
    with open(os.path.join(ROOT, "pipelines", "presets.toml"), "rb") as f:
        presets = tomllib.load(f)
    worker, ffmpeg = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for run in range(RUNS):
            cpu, rss, secs, first = worker_run(binary, clips, workdir)
            worker.append((cpu / secs, rss, first))
            print(f"run {run + 1}: worker {cpu:.1f} CPU s for {secs:.1f} s media, peak RSS {rss:.0f} MiB, "
                  f"first encoded frame {first} ms after launch", flush=True)
            cpu, rss, secs = ffmpeg_run(clips, workdir, presets)
            ffmpeg.append((cpu / secs, rss))
            print(f"run {run + 1}: ffmpeg {cpu:.1f} CPU s for {secs:.1f} s media, peak RSS {rss:.0f} MiB", flush=True)
    w = statistics.median(x[0] for x in worker)
    f = statistics.median(x[0] for x in ffmpeg)
    print()
    print(f"worker CPU s per media s : {w:.3f}   (median of {RUNS})")
    print(f"ffmpeg CPU s per media s : {f:.3f}")
    print(f"ratio worker / ffmpeg    : {w / f:.2f}")
    print(f"peak RSS worker / ffmpeg : {statistics.median(x[1] for x in worker):.0f} / "
          f"{statistics.median(x[1] for x in ffmpeg):.0f} MiB")
    print(f"first encoded frame      : {statistics.median(x[2] for x in worker if x[2] is not None):.0f} ms after launch")


if __name__ == "__main__":
    main()
