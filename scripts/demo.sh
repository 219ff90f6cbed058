#!/usr/bin/env bash
# Sets up what is missing, builds, and records the demo call (3 synthetic participants, 20 s,
# grid, 720p) to local storage in ./out. Events go to stdout as JSON lines, logs to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
out="${1:-out}"
"$EGRESS_BIN" run fixtures/jobs/demo.json --out "$out"
echo "demo recording: $(ls -1 "$out"/recordings/*.mp4 | tail -n 1)" >&2
