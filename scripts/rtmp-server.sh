# Sourced by the benchmark scripts: starts nginx-rtmp on a free loopback port, recording what it
# receives into $RTMP_DIR/received, and stops it when the calling script exits.
# Sets RTMP_PORT and RTMP_DIR.
RTMP_DIR=$(mktemp -d)
RTMP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$RTMP_DIR/received"
cat > "$RTMP_DIR/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid $RTMP_DIR/nginx.pid;
error_log $RTMP_DIR/error.log;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$RTMP_PORT;
  application live { live on; record ${RTMP_RECORD:-off}; record_path $RTMP_DIR/received; } } }
CONF
nginx -c "$RTMP_DIR/nginx.conf" -p "$RTMP_DIR" -e "$RTMP_DIR/error.log" &
RTMP_PID=$!
trap 'kill $RTMP_PID 2>/dev/null; rm -rf "$RTMP_DIR"' EXIT
