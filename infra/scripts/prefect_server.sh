#!/usr/bin/env bash
# Start/stop a local Prefect server (SQLite, loopback only) for clip-pipeline.
#   infra/scripts/prefect_server.sh start|stop|status|env     (PREFECT_PORT, PREFECT_HOME override the defaults)
# The API asks for HTTP basic auth: on first start a random credential is written to $PREFECT_HOME/api_auth (mode
# 0600) and the server runs with PREFECT_SERVER_API_AUTH_STRING; `clip-pipeline` reads that file by itself, and
# `eval "$(infra/scripts/prefect_server.sh env)"` gives a shell (the `prefect` CLI) PREFECT_API_URL and
# PREFECT_API_AUTH_STRING. /api/health stays open for probes. PREFECT_AUTH=off starts it without a login: then
# every local user can create, cancel and read flow runs (README "Security defaults").
# Binds to 127.0.0.1 unless PREFECT_BIND is set: exposing it also needs TLS in front (basic auth sends the password
# with every request) -- see README "Security defaults".
set -euo pipefail
cd "$(dirname "$0")/../.."
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
PORT="${PREFECT_PORT:-4200}"
BIND="${PREFECT_BIND:-127.0.0.1}"
PIDFILE="$PREFECT_HOME/server.pid"
CREDENTIAL="$PREFECT_HOME/api_auth"
BIN="${VENV_BIN:-$PWD/.venv/bin}"
AUTH="${PREFECT_AUTH:-on}"
mkdir -p "$PREFECT_HOME"
chmod 700 "$PREFECT_HOME"  # the SQLite database, the credential and the server log are this user's alone

credential() {  # the server's user:password, created on first use (owner-only)
  if [ ! -s "$CREDENTIAL" ]; then
    (umask 077; printf 'clip:%s' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" > "$CREDENTIAL.tmp" && mv "$CREDENTIAL.tmp" "$CREDENTIAL")
  fi
  chmod 600 "$CREDENTIAL"
  cat "$CREDENTIAL"
}

case "${1:-status}" in
  start)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    if [ "$AUTH" = off ]; then
      echo "WARNING: PREFECT_AUTH=off: every local user can create, cancel and read flow runs on this server" >&2
      unset PREFECT_SERVER_API_AUTH_STRING
    else
      PREFECT_SERVER_API_AUTH_STRING="$(credential)"; export PREFECT_SERVER_API_AUTH_STRING  # env, not argv: not in `ps`
    fi
    PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED="${PREFECT_UI_ENABLED:-true}" \
      nohup "$BIN/prefect" server start --host "$BIND" --port "$PORT" > "$PREFECT_HOME/server.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 120); do
      if curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null 2>&1; then
        echo "Prefect server on http://$BIND:$PORT (UI and API); for a shell: eval \"\$($0 env)\""; exit 0
      fi
      sleep 1
    done
    echo "Prefect server did not become healthy; see $PREFECT_HOME/server.log" >&2; exit 1 ;;
  stop)
    if [ -f "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; rm -f "$PIDFILE"; echo stopped; else echo "not running"; fi ;;
  status)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then echo "running (pid $(cat "$PIDFILE"), port $PORT)"; else echo "not running"; fi ;;
  env)  # for eval: the API URL, and the credential unless the server runs without one
    echo "export PREFECT_API_URL=http://127.0.0.1:$PORT/api"
    if [ "$AUTH" != off ] && [ -s "$CREDENTIAL" ]; then echo "export PREFECT_API_AUTH_STRING='$(cat "$CREDENTIAL")'"; fi ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
