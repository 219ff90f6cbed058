#!/usr/bin/env python3
"""The two converted Whisper models side by side on this machine: tiny.en (the default) and base
(multilingual, for other languages and translation). For each: the real-time factor (seconds of
speech per CPU second, `egress transcribe` on the same espeak-ng English speech, model loading
included) and the word error rate against the sentences spoken; for base also the WER on German
speech, heard with language detection.

Arguments: the egress binary and the models folder. Needs espeak-ng.
"""
import json, os, resource, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from transcription import SENTENCES, speak, words, edits, duration  # noqa: E402

GERMAN = [
    "Guten Morgen, das Treffen beginnt um zehn Uhr.",
    "Bitte schicken Sie den Bericht bis Freitag.",
    "Wir sprechen morgen wieder über das Budget.",
]


def speak_in(voice, path, text):
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", path, text], check=True)


def run(binary, model, wav, reference, language=None):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    command = [binary, "transcribe", wav, "--model", model]
    if language:
        command += ["--language", language]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    heard = " ".join(json.loads(line)["text"] for line in out.stdout.splitlines() if line.strip())
    ref = words(reference)
    return cpu, wall, edits(ref, words(heard)) / len(ref)


def main():
    binary, models = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as work:
        english = " ".join(SENTENCES * 2)
        wav = os.path.join(work, "english.wav")
        speak(wav, english)
        seconds = duration(wav)
        for name in ["ggml-tiny.en.bin", "ggml-base.bin"]:
            cpu, wall, wer = run(binary, os.path.join(models, name), wav, english)
            print(f"{name}: {seconds:.1f} s of English speech in {cpu:.1f} CPU s ({wall:.1f} s wall): "
                  f"{seconds / cpu:.2f} s of audio per CPU second, WER {wer:.2f}")
        german = " ".join(GERMAN)
        wav = os.path.join(work, "german.wav")
        speak_in("de", wav, german)
        cpu, wall, wer = run(binary, os.path.join(models, "ggml-base.bin"), wav, german, "auto")
        print(f"ggml-base.bin: {duration(wav):.1f} s of German speech (language auto) in {cpu:.1f} CPU s, WER {wer:.2f}")


if __name__ == "__main__":
    main()
