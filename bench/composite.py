#!/usr/bin/env python3
"""CPU per media second of a 4-participant 720p30 grid: the worker against ffmpeg doing the same
composite from the same encoded clips in one process. Two scenarios:

- recording: decode four VP8/Opus clips, scale them into a 2x2 grid, encode H.264 (libx264, same
  speed preset, bitrate and keyframe interval) and AAC, write an MP4;
- broadcast: the same composite as a 720p recording, an HLS ladder 720p/480p/360p and an RTMP push
  at 720p (to nginx-rtmp on loopback). ffmpeg encodes each size once too (a tee muxer shares the
  720p encode between MP4, HLS and FLV).

The worker runs in real time, as it does in a call; ffmpeg runs as fast as it can. CPU seconds
(user + system, from wait4) are divided by the media seconds produced. Median of BENCH_RUNS runs
(default 3). BENCH_SCENARIOS picks the scenarios (default "recording broadcast hidden").

- hidden: a 720p single-participant recording of nine 720p30 VP8 participants (video only) against
  the same call with one, worker against worker side by side; the eight that are not shown are not
  decoded. A third run of the nine with --decode-every-frame shows what they cost decoded.
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SCENARIOS = os.environ.get("BENCH_SCENARIOS", "recording broadcast hidden").split()
RTMP_PORT = int(os.environ.get("BENCH_RTMP_PORT", "0"))
LADDER = {"720p": (1280, 720), "480p": (854, 480), "360p": (640, 360)}


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


def worker_run(binary, clips, workdir, scenario, extra=()):
    people = [{"user_id": f"p{i}", "video": {"clip": c}, "audio": {"file": c}} for i, c in enumerate(clips)]
    layout = {"name": "grid"}
    if scenario == "quality":
        # Four tiles in the quadrants, nothing drawn over them: ffmpeg's xstack geometry.
        layout["options"] = {"grid.cell_padding": 0, "grid.margin": 0, "grid.size_percentage": 100,
                             "participant.label_display": False, "participant.video_border_width": False,
                             "participant.video_border_rounded": False}
        # Silent, so that no speaker gets a highlight border.
        people = [{**p, "audio": None} for p in people]
    if scenario == "hidden":
        people = [{"user_id": f"p{i}", "video": {"clip": c}, "audio": None} for i, c in enumerate(clips)]
        layout = {"name": "single-participant"}
    job = {
        "egress_id": "eg_bench",
        "call_cid": "bench:grid4",
        "source": {"type": "synthetic", "duration_s": SECONDS, "participants": people},
        "recording": {"quality": "720p", "layout": layout},
    }
    if scenario == "broadcast":
        job["hls"] = {"quality_tracks": list(LADDER), "segment_duration_s": 2}
        job["rtmp"] = [{"name": "bench", "stream_url": f"rtmp://127.0.0.1:{RTMP_PORT}/live",
                        "stream_key": "worker", "quality": "720p"}]
    path = os.path.join(workdir, "job.json")
    with open(path, "w") as f:
        json.dump(job, f)
    out = os.path.join(workdir, "worker-out")
    subprocess.run(["rm", "-rf", out])
    cpu, rss, err = run_measured([binary, "run", path, "--out", out, *extra])
    first = re.search(r"first encoded frame.*ms_since_launch=(\d+)", err)
    files = [os.path.join(root, f) for root, _, names in os.walk(out) for f in names if f.endswith(".mp4")]
    if scenario == "broadcast":
        assert os.path.exists(os.path.join(out, "hls", "eg_bench", "master.m3u8")), "no HLS master playlist"
    if scenario == "quality":
        return files[0]
    return cpu, rss, media_seconds(files[0]), int(first.group(1)) if first else None


def ffmpeg_run(clips, workdir, presets, scenario):
    video, audio = presets["video"], presets["audio"]
    fps = video["framerate"]
    gop = fps * video["keyframe_interval_s"]
    out = os.path.join(workdir, "ffmpeg.mp4")
    inputs = [a for c in clips for a in ("-i", os.path.join(workdir, c))]
    scale = ";".join(f"[{i}:v]scale=640:360[v{i}]" for i in range(4))
    sizes = list(LADDER) if scenario == "broadcast" else ["720p"]
    n = len(sizes)
    # The composite once, split into one branch per size; the mix once, split per output.
    video_tail = (f",split={n}[v720p]" + "".join(f"[s{q}]" for q in sizes[1:])
                  + "".join(f";[s{q}]scale={LADDER[q][0]}:{LADDER[q][1]}[v{q}]" for q in sizes[1:])
                  if n > 1 else "[v720p]")
    audio_tail = (f",asplit={n}" if n > 1 else "") + "".join(f"[a{q}]" for q in sizes)
    graph = (f"{scale};[v0][v1][v2][v3]xstack=inputs=4:layout=0_0|w0_0|0_h0|w0_h0,fps={fps},format=yuv420p"
             f"{video_tail};[0:a][1:a][2:a][3:a]amix=inputs=4{audio_tail}")
    cmd = ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph]
    for q in sizes:
        cmd += ["-map", f"[v{q}]", "-map", f"[a{q}]",
                "-c:v", "libx264", "-preset", video["x264_speed_preset"], "-profile:v", "high",
                "-b:v", f"{video['bitrate_kbps'][q]}k", "-g", str(gop), "-sc_threshold", "0",
                "-c:a", "aac", "-b:a", f"{audio['aac_bitrate_kbps']}k", "-ar", str(audio["sample_rate"]),
                "-t", str(SECONDS)]
        hls_dir = os.path.join(workdir, "ffmpeg-hls", q)
        os.makedirs(hls_dir, exist_ok=True)
        if scenario != "broadcast":
            cmd += [out]
        elif q == "720p":
            # One 720p encode for the MP4, the HLS rendition and the RTMP push.
            rtmp = f"rtmp://127.0.0.1:{RTMP_PORT}/live/ffmpeg"
            hls = (f"[f=hls:hls_time=2:hls_list_size=0:hls_segment_filename={hls_dir}/seg%05d.ts]"
                   f"{hls_dir}/index.m3u8")
            cmd += ["-flags:v", "+global_header", "-flags:a", "+global_header", "-f", "tee",
                    f"[f=mp4]{out}|[f=flv:onfail=ignore]{rtmp}|{hls}"]
        else:
            cmd += ["-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
                    "-hls_segment_filename", f"{hls_dir}/seg%05d.ts", f"{hls_dir}/index.m3u8"]
    cpu, rss, _ = run_measured(cmd)
    return cpu, rss, media_seconds(out)


def main():
    binary, media = sys.argv[1], sys.argv[2]
    clips = [os.path.join(media, f"clip{i}.webm") for i in range(1, 5)]
    with open(os.path.join(ROOT, "pipelines", "presets.toml"), "rb") as f:
        presets = tomllib.load(f)
    for scenario in SCENARIOS:
        print(f"== {scenario} ==", flush=True)
        if scenario == "hidden":
            measure_hidden(binary, clips)
        else:
            measure(binary, clips, presets, scenario)
        print(flush=True)


def measure_hidden(binary, clips):
    nine = [clips[i % len(clips)] for i in range(9)]
    runs = {"one": [], "nine": [], "nine decoded": []}
    predicted = {}
    with tempfile.TemporaryDirectory() as workdir:
        nine = beside_the_job(nine, workdir)
        clips = nine[:1]
        for run in range(RUNS):
            for name, people, extra in [("one", clips, ()), ("nine", nine, ()),
                                        ("nine decoded", nine, ("--decode-every-frame",))]:
                cpu, rss, secs, _ = worker_run(binary, people, workdir, "hidden", extra)
                runs[name].append(cpu / secs)
                predicted[name] = predicted_cores(binary, workdir)
                print(f"run {run + 1}: {name:12} {cpu:.1f} CPU s for {secs:.1f} s media, peak RSS {rss:.0f} MiB",
                      flush=True)
    one, nine_s, decoded = (statistics.median(runs[k]) for k in ("one", "nine", "nine decoded"))
    print(f"single-participant, 1 participant : {one:.3f} CPU s per media s (median of {RUNS})")
    print(f"single-participant, 9 participants: {nine_s:.3f}   ratio to one {nine_s / one:.2f} (goal <= 1.2)")
    print(f"the same, every frame decoded     : {decoded:.3f}   ratio to one {decoded / one:.2f}")
    print(f"hidden participant                : {(nine_s - one) / 8:.4f} core (goal < 0.005); "
          f"decoded {(decoded - one) / 8:.4f} core")
    print_prediction("one of one", predicted["one"], one)
    print_prediction("one of nine", predicted["nine"], nine_s)


def predicted_cores(binary, workdir):
    """What a worker's admission (the default [cost] model) estimates the last job run costs."""
    out = subprocess.run([binary, "validate", os.path.join(workdir, "job.json")],
                         capture_output=True, text=True, check=True)
    return float(re.search(r"estimated cost ([0-9.]+) cores", out.stdout).group(1))


def print_prediction(name, predicted, measured):
    error = (predicted - measured) / measured * 100
    print(f"cost model, {name:15}: predicted {predicted:.3f} cores, measured {measured:.3f} "
          f"({error:+.0f} %, goal within 10 %)")


def beside_the_job(clips, workdir):
    """The worker reads local media only below the job's folder: the clips are linked there."""
    local = []
    for clip in clips:
        path = os.path.join(workdir, os.path.basename(clip))
        if not os.path.exists(path):
            try:
                os.link(clip, path)
            except OSError:
                shutil.copy(clip, path)
        local.append(os.path.basename(clip))
    return local


def psnr(a, b):
    """Mean PSNR (all planes, dB) of file a against file b, frame by frame, a's first frames skipped
    as far as aligns them best (the worker's file may start a frame earlier than ffmpeg's)."""
    best = float("nan")
    for skip in range(4):
        graph = f"[0:v]trim=start_frame={skip},setpts=PTS-STARTPTS[a];[a][1:v]psnr"
        out = subprocess.run(["ffmpeg", "-v", "info", "-i", a, "-i", b, "-lavfi", graph, "-f", "null", "-"],
                             capture_output=True, text=True)
        found = re.search(r"PSNR .* average:([0-9.]+|inf)", out.stderr)
        if found and not float(found.group(1)) <= best:
            best = float(found.group(1))
    return best


def picture_quality(binary, clips, presets, workdir):
    """The worker's MP4 against ffmpeg's, both x264 at the same bitrate, same tile geometry."""
    worker = worker_run(binary, clips, workdir, "quality")
    kept = os.path.join(workdir, "worker-quality.mp4")
    shutil.copy(worker, kept)
    ffmpeg_run(clips, workdir, presets, "recording")
    return psnr(kept, os.path.join(workdir, "ffmpeg.mp4"))


def measure(binary, clips, presets, scenario):
    worker, ffmpeg = [], []
    with tempfile.TemporaryDirectory() as workdir:
        clips = beside_the_job(clips, workdir)
        for run in range(RUNS):
            cpu, rss, secs, first = worker_run(binary, clips, workdir, scenario)
            worker.append((cpu / secs, rss, first))
            predicted = predicted_cores(binary, workdir)
            print(f"run {run + 1}: worker {cpu:.1f} CPU s for {secs:.1f} s media, peak RSS {rss:.0f} MiB, "
                  f"first encoded frame {first} ms after launch", flush=True)
            cpu, rss, secs = ffmpeg_run(clips, workdir, presets, scenario)
            ffmpeg.append((cpu / secs, rss))
            print(f"run {run + 1}: ffmpeg {cpu:.1f} CPU s for {secs:.1f} s media, peak RSS {rss:.0f} MiB", flush=True)
        quality = picture_quality(binary, clips, presets, workdir) if scenario == "recording" else None
    w = statistics.median(x[0] for x in worker)
    f = statistics.median(x[0] for x in ffmpeg)
    print(f"worker CPU s per media s : {w:.3f}   (median of {RUNS})")
    print(f"ffmpeg CPU s per media s : {f:.3f}")
    print(f"ratio worker / ffmpeg    : {w / f:.2f}")
    print(f"peak RSS worker / ffmpeg : {statistics.median(x[1] for x in worker):.0f} / "
          f"{statistics.median(x[1] for x in ffmpeg):.0f} MiB")
    print(f"first encoded frame      : {statistics.median(x[2] for x in worker if x[2] is not None):.0f} ms after launch")
    if quality is not None:
        print(f"PSNR worker vs ffmpeg    : {quality:.2f} dB (same tiles, same x264 bitrate)")
    print_prediction(scenario, predicted, w)


if __name__ == "__main__":
    main()
