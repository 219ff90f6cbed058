#!/usr/bin/env bash
# The Janus test bed: Janus (Debian package) in a network namespace of its own, reached over a veth
# pair, since WebRTC does not gather candidates on loopback and tests may only reach loopback or
# their own namespaces. Janus gets 10.77.N.1, the host side 10.77.N.2.
#
#   janus.sh up N DIR      create namespace N (1..250) if needed, start Janus with its config in
#                          DIR; prints the WebSocket URL once Janus answers
#   janus.sh kill DIR      stop the Janus started with DIR (the namespace stays, for a restart)
#   janus.sh down N DIR    stop Janus and delete namespace N
#   janus.sh clean         delete every namespace this script made (after a crashed run)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

ns() { echo "egress-janus-$1"; }

kill_janus() {
  local dir="$1"
  if [ -f "$dir/janus.pid" ]; then
    local pid; pid="$(cat "$dir/janus.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/janus.pid"
  fi
}

delete_ns() {
  local name; name="$(ns "$1")"
  ip netns pids "$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip netns del "$name" 2>/dev/null || true
  ip link del "egh$1" 2>/dev/null || true
}

case "${1:-}" in
  up)
    n="$2"; dir="$3"
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || { echo "janus.sh: N must be 1..250" >&2; exit 2; }
    name="$(ns "$n")"; addr="10.77.$n.1"; peer="10.77.$n.2"
    if ! ip netns list | grep -qw "$name"; then
      ip netns add "$name"
      ip link add "egh$n" type veth peer name "egj$n"
      ip link set "egj$n" netns "$name"
      ip addr add "$peer/24" dev "egh$n"
      ip link set "egh$n" up
      ip -n "$name" addr add "$addr/24" dev "egj$n"
      ip -n "$name" link set "egj$n" up
      ip -n "$name" link set lo up
    fi
    mkdir -p "$dir"
    for f in janus.jcfg janus.transport.websockets.jcfg janus.plugin.videoroom.jcfg; do
      sed -e "s|@DIR@|$dir|g" -e "s|@ADDR@|$addr|g" "$here/tests/janus/$f.in" > "$dir/$f"
    done
    kill_janus "$dir"
    ip netns exec "$name" janus -C "$dir/janus.jcfg" -F "$dir" -L "$dir/janus.log" -N ${JANUS_DEBUG:+-d "$JANUS_DEBUG"} >/dev/null 2>&1 &
    echo $! > "$dir/janus.pid"
    for _ in $(seq 1 100); do
      if (echo > "/dev/tcp/$addr/8188") 2>/dev/null; then
        echo "ws://$addr:8188"
        exit 0
      fi
      kill -0 "$(cat "$dir/janus.pid")" 2>/dev/null || break
      sleep 0.1
    done
    echo "janus.sh: Janus did not start; its log:" >&2
    tail -20 "$dir/janus.log" >&2 || true
    exit 1
    ;;
  kill) kill_janus "$2" ;;
  down) kill_janus "$3"; delete_ns "$2" ;;
  clean)
    for name in $(ip netns list | awk '/^egress-janus-/{print $1}'); do delete_ns "${name#egress-janus-}"; done
    ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
