#!/usr/bin/env python3
"""Validation cost of large jobs: wall time and peak memory of `egress validate` on a job with
10,000 custom actions, one with 100,000 Janus participants (both above the default 1 MiB job
limit, so the limit is raised for them with EGRESS_MAX_JOB_BYTES), and a job of just under 1 MiB;
beside them `python3 -c 'json.load'` of the same file, as a baseline of plain JSON parsing.

Usage: validation.py EGRESS_BIN
"""
import json, os, subprocess, sys, tempfile

BASE = {"call_cid": "default:bench", "recording": {}}


def actions_job(n):
    actions = [{"action_type": "layout_override", "condition": {"participant_count": {"$gt": i}},
                "layout": "spotlight"} for i in range(n)]
    return dict(BASE, source={"type": "synthetic", "duration_s": 3, "participants": [{"user_id": "a"}]},
                recording={"layout": {"name": "grid", "options": {"custom_actions": actions}}})


def participants_job(n):
    people = {f"p{i}": {"user_id": f"u{i}", "name": f"User {i}"} for i in range(n)}
    return dict(BASE, source={"type": "janus", "url": "ws://127.0.0.1:8188", "room": 1, "participants": people})


def near_limit_job():
    job = participants_job(1)
    filler = 1024 * 1024 - len(json.dumps(job)) - 64
    job["source"]["participants"]["p0"]["name"] = "n" * filler
    job["session_id"] = "s"
    job["egress_id"] = "e"
    return job


WRAPPER = ("import resource, subprocess, sys, time; t = time.monotonic(); "
           "r = subprocess.run(sys.argv[1:], capture_output=True); "
           "print(time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode); "
           "sys.stderr.write(r.stderr.decode()[-2000:])")


def measure(command, env):
    """Wall seconds, peak RSS in MiB and exit code of `command`, run under a wrapper process of
    its own so that the peak is that command's alone."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], env=env, capture_output=True, text=True)
    wall, kib, code = done.stdout.split()
    return float(wall), int(kib) / 1024, int(code), done.stderr


def main():
    egress = sys.argv[1]
    env = dict(os.environ, EGRESS_MAX_JOB_BYTES=str(64 * 1024 * 1024))
    cases = [("10,000 custom actions", actions_job(10_000)),
             ("100,000 Janus participants", participants_job(100_000)),
             ("1 MiB job", near_limit_job())]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'job':28} {'bytes':>9} {'egress s':>9} {'MiB':>6} {'json.load s':>12} {'exit':>5}")
        for name, job in cases:
            path = os.path.join(tmp, "job.json")
            with open(path, "w") as f:
                json.dump(job, f)
            size = os.path.getsize(path)
            wall, mib, code, stderr = measure([egress, "validate", path], env)
            base_wall, _, _, _ = measure([sys.executable, "-c", f"import json; json.load(open({path!r}))"], env)
            print(f"{name:28} {size:>9} {wall:>9.3f} {mib:>6.0f} {base_wall:>12.3f} {code:>5}")
            if code not in (0, 2):
                print(stderr)


if __name__ == "__main__":
    main()
