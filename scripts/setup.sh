#!/usr/bin/env bash
# Installs what the worker needs to build and run (with whisper.cpp's build tools and the
# converted Whisper model), then builds it (release). Idempotent: when
# everything is there it only runs an up-to-date cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

debs=(pkg-config ffmpeg fonts-dejavu-core
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice
  cmake clang libclang-dev python3-venv)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install the Rust toolchain (1.95 or newer) first" >&2
  exit 1
fi
# The Whisper model for transcription, converted once into the cache folder.
bash scripts/whisper-model.sh

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --bin egress >&2
fi
