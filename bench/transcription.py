#!/usr/bin/env python3
"""Transcription figures on this machine, with the converted tiny.en model:

- real-time factor: seconds of speech transcribed per CPU second, `egress transcribe` on a
  minute of espeak-ng speech (model loading included);
- caption latency: from the end of an utterance to its `call.closed_caption` event, median and
  p95, over a call of four speakers taking turns (the worker logs each caption's latency);
- word error rate of those captions against the sentences spoken.

Arguments: the egress binary. Needs espeak-ng.
"""
import json, os, re, resource, subprocess, sys, tempfile, time

SENTENCES = [
    "The quarterly report is ready for review.",
    "Please send the recording to the compliance team before Friday.",
    "We will meet again next week to discuss the budget.",
    "The new office opens in March and everyone is invited.",
    "Can you share your screen so we can look at the numbers together?",
    "I think the customer asked for a second demo next Tuesday.",
    "Our support team answered most tickets within one hour.",
    "Let us move the planning session to the afternoon.",
]


def speak(path, text):
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", path, text], check=True)


def words(text):
    return [w for w in re.sub(r"[^a-z0-9' ]", " ", text.lower()).split() if w]


def edits(reference, heard):
    row = list(range(len(heard) + 1))
    for i, r in enumerate(reference):
        previous, row[0] = row[0], i + 1
        for j, h in enumerate(heard):
            previous, row[j + 1] = row[j + 1], min(previous + (r != h), row[j] + 1, row[j + 1] + 1)
    return row[len(heard)]


def duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
                         check=True, capture_output=True, text=True)
    return float(out.stdout)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as work:
        # Real-time factor over one file of all sentences, said twice over.
        long_text = " ".join(SENTENCES * 2)
        long_wav = os.path.join(work, "long.wav")
        speak(long_wav, long_text)
        seconds = duration(long_wav)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        subprocess.run([binary, "transcribe", long_wav], check=True, capture_output=True)
        wall = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"real-time factor: {seconds:.1f} s of speech in {cpu:.1f} CPU s ({wall:.1f} s wall): "
              f"{seconds / cpu:.1f} s of audio per CPU second, {seconds / wall:.1f}x real time")

        # A call of four speakers taking turns, two sentences each.
        participants, spoken = [], {}
        for n, user in enumerate(["alice", "bob", "carol", "dave"]):
            text = " ".join(SENTENCES[2 * n:2 * n + 2])
            speak(os.path.join(work, f"{user}.wav"), text)
            participants.append({"user_id": user, "video": None, "audio": {"file": f"{user}.wav"},
                                 "join_at_s": 7 * n})
            spoken[user] = text
        job = {"call_cid": "default:bench", "source": {"type": "synthetic", "duration_s": 36,
                                                       "participants": participants},
               "transcription": {"language": "en", "closed_captions": True}}
        job_path = os.path.join(work, "job.json")
        with open(job_path, "w") as f:
            json.dump(job, f)
        run = subprocess.run([binary, "run", job_path, "--out", os.path.join(work, "out")],
                             check=True, capture_output=True, text=True)
        latencies = sorted(int(m) for m in re.findall(r"caption speaker=\S+ latency_ms=(\d+)", run.stderr))
        heard = {}
        for line in run.stdout.splitlines():
            event = json.loads(line)
            if event["type"] == "call.closed_caption":
                caption = event["closed_caption"]
                heard.setdefault(caption["speaker_id"], []).append(caption["text"])
        errors = sum(edits(words(spoken[u]), words(" ".join(heard.get(u, [])))) for u in spoken)
        total = sum(len(words(t)) for t in spoken.values())
        if latencies:
            p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
            print(f"caption latency: {len(latencies)} captions, median {latencies[len(latencies) // 2]} ms, "
                  f"p95 {p95} ms")
        print(f"word error rate of the captions: {errors / total:.3f} ({errors} of {total} words)")


if __name__ == "__main__":
    main()
