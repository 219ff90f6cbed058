#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (unit and integration, real media).
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_BUILD=1 bash scripts/setup.sh
source scripts/env.sh
stop_started_services() {
  bash scripts/janus.sh clean || true
  if [ -f "$EGRESS_CACHE/rabbitmq-started-by-tests" ]; then
    rabbitmqctl stop >/dev/null 2>&1 || true
    rm -f "$EGRESS_CACHE/rabbitmq-started-by-tests"
  fi
}
trap stop_started_services EXIT
bash scripts/test-deps.sh
# Janus namespaces left by a run that was killed.
bash scripts/janus.sh clean
cargo fmt --all -- --check
cargo clippy --release --locked --all-targets -- -D warnings
# Integration tests run real-time pipelines; two at a time fits two cores.
cargo test --release --locked -- --test-threads=2
