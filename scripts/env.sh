# Shared environment for the scripts: caches live outside the clone so fresh clones reuse them.
export EGRESS_CACHE="${EGRESS_CACHE:-$HOME/.cache/egress}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$EGRESS_CACHE/target}"
export EGRESS_BIN="$CARGO_TARGET_DIR/release/egress"
mkdir -p "$EGRESS_CACHE"
