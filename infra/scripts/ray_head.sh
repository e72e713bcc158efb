#!/usr/bin/env bash
# Start a local Ray head with the dashboard on 127.0.0.1 (override: RAY_DASHBOARD_HOST, RAY_DASHBOARD_PORT).
# Then point training at it: RAY_ADDRESS=auto clip-pipeline train   (stop with: .venv/bin/ray stop)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${VENV_BIN:-$PWD/.venv/bin}"  # the project's venv, as prefect_server.sh: `ray` need not be on PATH
HOST="${RAY_DASHBOARD_HOST:-127.0.0.1}"
PORT="${RAY_DASHBOARD_PORT:-8265}"
CPUS="${RAY_NUM_CPUS:-$(nproc)}"
# Token authentication (Ray >= 2.60) unless the caller exported RAY_AUTH_MODE=disabled (README "Security defaults":
# then every local user can run code as you on this cluster). The token file is created owner-only (0600)
# before Ray would write one readable by all; clients on this host find it by themselves.
if [ "${RAY_AUTH_MODE:-token}" = disabled ]; then
  echo "WARNING: RAY_AUTH_MODE=disabled: anyone who can reach this Ray's ports can run code as $(id -un)" >&2
else
  export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
  TOKEN_FILE="$("$BIN/python" -m infra.ray_auth)"
fi
export RAY_TRAIN_ENABLE_STATE_TRACKING="${RAY_TRAIN_ENABLE_STATE_TRACKING:-1}"  # Train runs in the dashboard
"$BIN/ray" start --head --num-cpus "$CPUS" --include-dashboard true \
  --dashboard-host "$HOST" --dashboard-port "$PORT" --temp-dir "${RAY_TMPDIR:-/tmp/ray}" "$@"
echo "Ray dashboard: http://$HOST:$PORT   (RAY_ADDRESS=auto to use this cluster)"
if [ -n "${TOKEN_FILE:-}" ]; then
  echo "Token authentication on: the token is in $TOKEN_FILE (the dashboard asks for it once: \`$BIN/ray get-auth-token\`)"
fi
