#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (unit and integration, real media).
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_BUILD=1 bash scripts/setup.sh
bash scripts/test-deps.sh
source scripts/env.sh
cargo fmt --all -- --check
cargo clippy --release --locked --all-targets -- -D warnings
# Integration tests run real-time pipelines; two at a time fits two cores.
cargo test --release --locked -- --test-threads=2
