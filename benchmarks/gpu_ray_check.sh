#!/usr/bin/env bash
# The GPU kit's second call: Ray, brought in two halves over two back-to-back calls, then the training loop
# launched through Ray Train (infra.ray_launcher) on the GPU.
#   call 1: bash benchmarks/gpu_check.sh       carry [".whl", ".whl_ray/a"]  leaves part a in /tmp/gpu_kit_carry
#   call 2: bash benchmarks/gpu_ray_check.sh   carry [".whl", ".whl_ray/b"]  at once (the machine stays warm ~30 s)
# Exit 2 (and a line saying so) when part a is not there: the call landed on a fresh machine.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/out/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
CARRY=/tmp/gpu_kit_carry
SITE=/tmp/gpu_kit_site
RSITE=/tmp/gpu_kit_ray
export PYTHONUNBUFFERED=1 CLIP_TRAIN_NO_PROGRESS=1 RAY_USAGE_STATS_ENABLED=0
t0=$SECONDS
if [[ ! -f $CARRY/ray.part-aa ]]; then
  echo "ray: part a is not on this machine: this call got a fresh machine, not the kit's warm one" | tee "$OUT/ray.txt"
  exit 2
fi
name=$(cat .whl_ray/b/ray.name)
cat "$CARRY/ray.part-aa" .whl_ray/b/ray.part-ab > "/tmp/$name"
(cd /tmp && sha256sum -c "$ROOT/.whl_ray/b/ray.sha256") || exit 1
"$PY" -m pip install -q --no-index --no-deps --no-compile --target "$RSITE" "/tmp/$name" .whl_ray/b/*.whl || exit 1
if [[ ! -d $SITE/deepspeed ]]; then  # the kit's install is gone only if the machine changed; redo it
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || exit 1
  DS_BUILD_OPS=0 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" .whl/deepspeed-*.tar.gz || exit 1
fi
echo "ray installed in $((SECONDS - t0)) s"
export PYTHONPATH=$RSITE:$SITE:$ROOT
timeout -k 15 240 "$PY" benchmarks/gpu_ray_check.py --out "$OUT" 2>&1 | tee "$OUT/ray.txt" | grep -v "State API may be"
rc=${PIPESTATUS[0]}
echo "ray step: rc $rc, $((SECONDS - t0)) s in all"
exit "$rc"
