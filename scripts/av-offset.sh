#!/usr/bin/env bash
# A/V offset of every output (MP4, HLS renditions, RTMP as received by nginx) over a long run.
# AV_SECONDS (default 600) sets the length of the call.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/test-deps.sh
source scripts/env.sh
media="$EGRESS_CACHE/media"
mkdir -p "$media"
RTMP_RECORD=all
source scripts/rtmp-server.sh
python3 bench/av_offset.py "$EGRESS_BIN" "$media" "$RTMP_PORT" "$RTMP_DIR/received"
