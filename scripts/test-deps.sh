#!/usr/bin/env bash
# Installs what the integration tests need beyond the worker itself: Janus (real WebRTC calls,
# run in a network namespace by scripts/janus.sh), nginx with the RTMP module
# (RTMP pushes), Chromium with hls.js and playwright-core (HLS playback in a real browser),
# RabbitMQ (started when it is not running) and the storage emulators: moto (S3) and
# gcp-storage-emulator (GCS) from PyPI, with the Azure SDK for Python that sets up Azurite's
# containers in the tests, Azurite (Azure Blob) from npm and s3s-fs (a signature-checking S3) from
# crates.io.
# Idempotent; npm packages live in the cache folder, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

debs=(nginx-light libnginx-mod-rtmp libnginx-mod-stream chromium nodejs npm espeak-ng janus iproute2)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A machine may bring its own node and npm; use them when present.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

npm_dir="$EGRESS_CACHE/npm"
if [ ! -f "$npm_dir/node_modules/hls.js/dist/hls.min.js" ] || [ ! -d "$npm_dir/node_modules/playwright-core" ] \
  || [ ! -x "$npm_dir/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$npm_dir"
  cp tests/browser/package.json "$npm_dir/package.json"
  (cd "$npm_dir" && npm install --no-audit --no-fund --silent >&2)
fi

# RabbitMQ for the fleet tests: the machine usually runs it on 127.0.0.1:5672; start it if not.
if ! (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  if ! command -v rabbitmq-server >/dev/null; then
    echo "test-deps: installing rabbitmq-server" >&2
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends rabbitmq-server >&2
  fi
  echo "test-deps: starting RabbitMQ" >&2
  rabbitmq-server -detached >&2 || true
  # scripts/test.sh stops what it started.
  touch "$EGRESS_CACHE/rabbitmq-started-by-tests"
  for _ in $(seq 1 60); do
    (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null && break
    sleep 1
  done
  (echo > /dev/tcp/127.0.0.1/5672) 2>/dev/null || { echo "test-deps: RabbitMQ did not start" >&2; exit 1; }
fi

# Storage emulators from PyPI, in a virtual environment in the cache folder.
# moto is pinned: 5.2.6 authorizes multipart uploads and HeadObject under other IAM actions
# than S3 does (the minimal-permission tests fail on it; 5.1.22 and 5.2.5 behave as S3).
venv="$EGRESS_CACHE/venv"
moto_version="5.2.5"
if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/gcp-storage-emulator" ] \
  || [ ! -d "$venv/lib/python3.11/site-packages/azure/storage/blob" ] \
  || [ "$("$venv/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$moto_version" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" \
    'gcp-storage-emulator==2026.*' 'azure-storage-blob==12.*' >&2
fi

# s3s-fs from crates.io: an S3 server that checks SigV4 signatures, presigned URLs included, and
# refuses anonymous requests (the private-bucket HLS test; moto's IAM mode fails on presigned URLs).
s3s_root="$EGRESS_CACHE/s3s-fs"
if [ ! -x "$s3s_root/bin/s3s-fs" ]; then
  echo "test-deps: building s3s-fs" >&2
  CARGO_TARGET_DIR="$EGRESS_CACHE/s3s-fs-build" cargo install --quiet --locked s3s-fs --version 0.14.1 \
    --features binary --root "$s3s_root" >&2
fi
