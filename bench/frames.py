#!/usr/bin/env python3
"""CPU of a frames-only job: N participants (default 20) replaying 720p30 VP8 clips streamed as a
WebRTC sender streams them (one keyframe, then delta frames; key-unit requests answered from an
all-intra copy), a still of each every 3 s, for BENCH_SECONDS (default 60). The same job runs
twice: on the keyframe path (only the keyframes due for a capture are decoded) and with
--decode-every-frame. Prints CPU seconds per media second per participant for both, their ratio,
and the delay from capture to event.

The replayed senders run inside the worker process, so their cost (demuxing both copies, pacing)
is in every figure. A third run measures it: the same call with one still per participant
(interval 60 s). "net" figures subtract it, leaving what the worker itself spends on frames.
"""
import datetime, json, math, os, statistics, subprocess, sys, tempfile

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
PARTICIPANTS = int(os.environ.get("BENCH_PARTICIPANTS", "20"))
INTERVAL = 3


def run(binary, media, extra, interval=INTERVAL):
    participants = []
    for i in range(PARTICIPANTS):
        n = i % 4 + 1
        participants.append({"user_id": f"p{i}", "audio": None, "video": {"keyed_clip": {
            "clip": os.path.join(media, f"sender{n}.webm"),
            "keyframes": os.path.join(media, f"sender{n}-intra.webm")}}})
    with tempfile.TemporaryDirectory() as work:
        job = {
            "egress_id": "eg_frames_bench", "call_cid": "bench:frames",
            "source": {"type": "synthetic", "duration_s": SECONDS, "participants": participants},
            "frame_recording": {"capture_interval_in_seconds": interval, "quality": "720p"},
        }
        path = os.path.join(work, "job.json")
        with open(path, "w") as f:
            json.dump(job, f)
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen([binary, "run", path, "--out", os.path.join(work, "out")] + extra,
                                    stdout=out, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit("the frames job failed")
            out.seek(0)
            events = [json.loads(l) for l in out.read().decode().splitlines() if l.strip()]
    ready = [e for e in events if e["type"] == "call.frame_recording_ready"]
    when = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    delays = [(when(e["created_at"]) - when(e["captured_at"])).total_seconds() * 1000 for e in ready]
    return usage.ru_utime + usage.ru_stime, ready, delays


def report(label, cpu, ready, delays, replay=0.0):
    per = cpu / SECONDS / PARTICIPANTS
    net = f", net {per - replay:.4f}" if replay else ""
    print(f"{label:<20}: {len(ready)} stills, {cpu / SECONDS:.3f} CPU s per media s, "
          f"{per:.4f} core per participant{net}; capture to event median "
          f"{statistics.median(delays):.0f} ms, max {max(delays):.0f} ms")
    return per


def main():
    binary, media = sys.argv[1], sys.argv[2]
    print(f"frames-only, {PARTICIPANTS} participants x 720p30 VP8, a still every {INTERVAL} s, "
          f"{SECONDS:.0f} s (expected {PARTICIPANTS * math.ceil(SECONDS / INTERVAL)} stills)")
    replay = report("senders' replay", *run(binary, media, [], interval=60))
    keyframes = report("keyframe path", *run(binary, media, []), replay=replay)
    every = report("every frame decoded", *run(binary, media, ["--decode-every-frame"]), replay=replay)
    print(f"keyframe path is {every / keyframes:.1f}x cheaper in all, "
          f"{(every - replay) / (keyframes - replay):.1f}x net of the replay "
          f"(target >= 10x, < 0.01 core per participant)")


if __name__ == "__main__":
    main()
