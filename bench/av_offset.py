#!/usr/bin/env python3
"""A/V offset of every output over a long run (10 minutes by default).

A participant replays a clip whose picture flashes white and whose sound beeps at the same
instants, every 2 s. The worker records it (MP4 720p), broadcasts it (HLS 720p + 360p) and pushes
it over RTMP to a local nginx-rtmp that records what it receives. In each output the flashes are
found in the decoded picture (mean luma per frame) and the beeps in the decoded sound (first
loud sample), both decoded onto one timeline as a player lays them out, and every beep is paired
with its flash: offset = beep time - flash time (positive: sound late). The clip itself is in sync
by construction; what the same measurement gives on it is printed for reference. Prints per
output: median offset, largest offset, and the median over the first and the last minute (the
drift).

Usage: av_offset.py EGRESS_BIN MEDIA_DIR RTMP_PORT RTMP_RECORD_DIR   (AV_SECONDS, default 600)
"""
import glob, json, os, statistics, subprocess, sys, tempfile

SECONDS = float(os.environ.get("AV_SECONDS", "600"))
PERIOD = 2.0
FPS = 30
RATE = 8000


def make_clip(media):
    """A clip of flashes and beeps every PERIOD seconds (made once, cached)."""
    clip = os.path.join(media, f"avsync-{int(SECONDS)}.webm")
    if os.path.exists(clip):
        return clip
    length = SECONDS + 10
    flash = f"lt(mod(t-1\\,{PERIOD})\\,0.2)*gte(t\\,1)"
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=black:s=640x360:r={FPS}:d={length},"
                             f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{flash}'",
        "-f", "lavfi", "-i", f"aevalsrc='if(lt(mod(t-1,{PERIOD}),0.2)*gte(t,1),0.5*sin(2*PI*1000*t),0)'"
                             f":s=48000:d={length}",
        "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-g", "60",
        "-c:a", "libopus", "-b:a", "48k", clip + ".tmp.webm"], check=True)
    os.rename(clip + ".tmp.webm", clip)
    return clip


# Both streams are decoded onto one timeline starting at 0, as a player lays them out: video at a
# constant frame rate (frame k at k/FPS), audio padded from 0 (sample i at i/RATE).
def flashes(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-vf", "scale=32:18,format=gray",
                          "-fps_mode", "cfr", "-r", str(FPS), "-f", "rawvideo", "-"],
                         capture_output=True, check=True).stdout
    size = 32 * 18
    luma = [sum(raw[i:i + size]) / size for i in range(0, len(raw) - size + 1, size)]
    return [k / FPS for k in range(1, len(luma)) if luma[k - 1] < 128 <= luma[k]]


def beeps(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-ac", "1",
                          "-af", f"aresample={RATE}:async=1:first_pts=0", "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    samples = [abs(int.from_bytes(raw[i:i + 2], "little", signed=True)) for i in range(0, len(raw) - 1, 2)]
    onsets, quiet = [], RATE
    for i, s in enumerate(samples):
        if s > 3000:
            if quiet >= RATE // 2:
                onsets.append(i / RATE)
            quiet = 0
        else:
            quiet += 1
    return onsets


def offsets(path):
    """(flash time, beep - flash) for every flash with a beep within half a period."""
    bs = beeps(path)
    pairs = []
    for f in flashes(path):
        nearest = min(bs, key=lambda b: abs(b - f), default=None)
        if nearest is not None and abs(nearest - f) < PERIOD / 2:
            pairs.append((f, nearest - f))
    return pairs


def report(name, pairs, baseline):
    if not pairs:
        print(f"{name:<14} no flash/beep pairs found")
        return
    values = [o - baseline for _, o in pairs]
    end = pairs[-1][0]
    first = [o - baseline for t, o in pairs if t < pairs[0][0] + 60]
    last = [o - baseline for t, o in pairs if t > end - 60]
    print(f"{name:<14} pairs {len(values):4d}  median {statistics.median(values) * 1000:+6.1f} ms  "
          f"largest {max(values, key=abs) * 1000:+6.1f} ms  first minute {statistics.median(first) * 1000:+6.1f} ms  "
          f"last minute {statistics.median(last) * 1000:+6.1f} ms  (over {end - pairs[0][0]:.0f} s)", flush=True)


def main():
    binary, media, port, received = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    clip = make_clip(media)
    source = statistics.median(o for _, o in offsets(clip))
    print(f"source clip, as ffmpeg decodes it: beep - flash = {source * 1000:+.1f} ms", flush=True)
    baseline = 0.0
    with tempfile.TemporaryDirectory() as work:
        job = {
            "egress_id": "eg_av", "call_cid": "bench:av",
            "source": {"type": "synthetic", "duration_s": SECONDS, "participants": [
                {"user_id": "flash", "video": {"clip": clip}, "audio": {"file": clip}}]},
            "recording": {"quality": "720p", "layout": {"name": "grid"}},
            "hls": {"quality_tracks": ["720p", "360p"]},
            "rtmp": [{"name": "av", "stream_url": f"rtmp://127.0.0.1:{port}/live", "stream_key": "av",
                      "quality": "720p"}],
        }
        path = os.path.join(work, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        out = os.path.join(work, "out")
        print(f"running a {SECONDS:.0f} s job (recording + HLS 720p/360p + RTMP)...", flush=True)
        subprocess.run([binary, "run", path, "--out", out], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        outputs = [("mp4", f) for f in sorted(glob.glob(os.path.join(out, "*.mp4")))]
        outputs += [(f"hls {q}", os.path.join(out, "hls", "eg_av", q, "index.m3u8")) for q in ("720p", "360p")]
        outputs += [("rtmp", f) for f in sorted(glob.glob(os.path.join(received, "av*.flv")))]
        for name, f in outputs:
            report(name, offsets(f), baseline)


if __name__ == "__main__":
    main()
