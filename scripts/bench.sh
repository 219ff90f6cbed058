#!/usr/bin/env bash
# Composite benchmark: prints CPU per media second for the worker and for ffmpeg, and the ratio.
# BENCH_RUNS (default 3) and BENCH_SECONDS (default 60) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
media=$(bash scripts/make-media.sh)
python3 bench/composite.py "$EGRESS_BIN" "$media"
