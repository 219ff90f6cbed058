#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (unit and integration, real media).
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_BUILD=1 bash scripts/setup.sh
source scripts/env.sh
# Namespaces of the tests' packet-dropping hosts (tests/common/netns.rs) a killed run left.
remove_black_holes() {
  for name in $(ip netns list 2>/dev/null | awk '/^egress-drop-/{print $1}'); do ip netns del "$name" || true; done
}
stop_started_services() {
  bash scripts/janus.sh clean || true
  remove_black_holes
  if [ -f "$EGRESS_CACHE/rabbitmq-started-by-tests" ]; then
    rabbitmqctl stop >/dev/null 2>&1 || true
    rm -f "$EGRESS_CACHE/rabbitmq-started-by-tests"
  fi
}
trap stop_started_services EXIT
bash scripts/test-deps.sh
# Janus namespaces left by a run that was killed.
bash scripts/janus.sh clean
remove_black_holes
cargo fmt --all -- --check
cargo clippy --release --locked --all-targets -- -D warnings
# Integration tests run real-time pipelines; two at a time fits two cores.
cargo test --release --locked -- --test-threads=2
