#!/usr/bin/env bash
# Start/stop a local Prefect server (SQLite, loopback only) for clip-pipeline.
#   infra/scripts/prefect_server.sh start|stop|status     (PREFECT_PORT, PREFECT_HOME override the defaults)
# Binds to 127.0.0.1 unless PREFECT_BIND is set: exposing it means putting it behind an authenticating proxy
# (Prefect OSS has basic auth via PREFECT_SERVER_API_AUTH_STRING) -- see README "Security".
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
PORT="${PREFECT_PORT:-4200}"
BIND="${PREFECT_BIND:-127.0.0.1}"
PIDFILE="$PREFECT_HOME/server.pid"
BIN="${VENV_BIN:-$PWD/.venv/bin}"
mkdir -p "$PREFECT_HOME"
case "${1:-status}" in
  start)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED="${PREFECT_UI_ENABLED:-true}" \
      nohup "$BIN/prefect" server start --host "$BIND" --port "$PORT" > "$PREFECT_HOME/server.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 120); do
      if curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; then
        echo "Prefect server on http://$BIND:$PORT (UI and API); export PREFECT_API_URL=http://127.0.0.1:$PORT/api"; exit 0
      fi
      sleep 1
    done
    echo "Prefect server did not become healthy; see $PREFECT_HOME/server.log" >&2; exit 1 ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; echo stopped; else echo "not running"; fi ;;
  status)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "running (pid $(cat "$PIDFILE"), port $PORT)"; else echo "not running"; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
