#!/usr/bin/env bash
# The GPU proof kit: one prepared run that proves the CUDA path on a bare GPU machine (BENCHMARKS.md, GPU section).
#
#   on the GPU machine (device tool, carry [".whl"]):  bash benchmarks/gpu_check.sh
#   rehearsal on CPU (same steps, small):              bash benchmarks/gpu_check.sh --cpu-dry-run   (make gpu-dry-run)
#
# Steps, each with its own time limit so one hang cannot take the rest:
#   1. install: the carried wheels (make gpu-wheels) into a private site dir, DeepSpeed from its sdist with
#      DS_BUILD_OPS=0 against the machine's torch, then the project itself (pip install --no-index --no-deps -e .)
#   2. env: machine facts, the bf16 matmul rate, and whether pyproject's ranges accept the machine's packages
#   3. tests: pytest -m gpu (DDP bf16/fp16, DeepSpeed ZeRO 2/3 over NCCL, resume, eval encode, linear probe on CUDA)
#   4. train: ViT-B-32 train-step benchmark, ours (DDP engine, DeepSpeed) vs open_clip, compute-only and from shards
#   5. eval: encode benchmark, ours vs CLIP_benchmark's loop
#   6. ds: where DeepSpeed's step time goes on one GPU (ZeRO 0-3 vs the DDP engine, torch.profiler tables)
# KIT_STEPS="env tests train eval ds" (the default) picks steps; install always runs.
# Everything lands in $OUT (at most 8 files): kit.log, summary.md, env.json, train.json, eval.json, ds.json,
# gpu_tests.xml.
# Ray is not installed there (its wheel alone is 79 MB): the tests call the per-worker training function
# directly under torch.distributed, which is what Ray Train's workers call.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
[[ "${1:-}" == "--cpu-dry-run" ]] && DRY=1
OUT=${OUT:-$ROOT/out/gpu_check}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_kit.XXXXXX")
LOG=$OUT/kit.log
: > "$LOG"
export PYTHONUNBUFFERED=1 CLIP_TRAIN_NO_PROGRESS=1 PYTHONDONTWRITEBYTECODE=1
if (( DRY )); then
  PY=${PY:-$ROOT/.venv/bin/python}
  SMALL=(--small)
  export CLIP_GPU_DRY_RUN=1 CUDA_VISIBLE_DEVICES=""
  export PYTHONPATH=$ROOT/benchmarks/gpu_kit_site${PYTHONPATH:+:$PYTHONPATH}  # what the GPU machine lacks fails here too
else
  PY=${PY:-python3}
  SMALL=()
fi
SITE=/tmp/gpu_kit_site  # outside WORK: benchmarks/gpu_ray_check.sh reuses it on the warm machine
KIT_START=$SECONDS
ROWS=()

step() {  # step NAME LIMIT_S CMD...: run CMD under a time limit, output to the log, one line to the console
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  echo "== $name (limit ${limit}s)" >> "$LOG"
  timeout -k 15 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  local verdict="ok"
  (( rc == 0 )) || verdict="FAILED (rc $rc$( (( rc == 124 )) && echo ', time limit'))"
  ROWS+=("| $name | $verdict | $((SECONDS - t0)) s |")
  printf '%-8s %-28s %4d s\n' "$name" "$verdict" $((SECONDS - t0))
  return $rc
}

kit_install() {  # a function name that is no command: `timeout` runs it through bash -c
  if (( DRY )); then
    echo "dry run: the project venv stands in for the carried wheels"
    [[ -f .whl/MANIFEST.txt ]] && { echo "carried wheels (make gpu-wheels):"; cat .whl/MANIFEST.txt; }
    return 0
  fi
  ls .whl/*.whl .whl/*.tar.gz >/dev/null || { echo "no .whl/: run 'make gpu-wheels' and carry .whl"; return 1; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || return 1
  DS_BUILD_OPS=0 "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" .whl/deepspeed-*.tar.gz \
    || return 1
  PYTHONPATH=$SITE:$ROOT "$PY" -c "import deepspeed, webdataset, open_clip, clip_benchmark, clip_core, components, infra; \
print('imports ok: deepspeed', deepspeed.__version__, '| accelerator', deepspeed.get_accelerator().device_name())" || return 1
  # last: the steps below also find the project on PYTHONPATH should this fail
  PYTHONPATH=$SITE "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . && echo "project installed (-e .)"
}

echo "GPU kit: $( ((DRY)) && echo 'CPU dry run' || echo 'GPU run'), python $("$PY" -c 'import sys; print(sys.version.split()[0])'), OUT=$OUT"
export DRY PY SITE
export -f kit_install
step install 240 bash -c kit_install
export PYTHONPATH=$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}
KIT_STEPS=" ${KIT_STEPS:-env tests train eval ds} "
want() { [[ $KIT_STEPS == *" $1 "* ]]; }
want env && step env 90 "$PY" benchmarks/gpu_bench.py env --out "$OUT" "${SMALL[@]}"
want tests && step tests 300 "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml" \
  tests/components/train/test_train_gpu.py tests/components/evaluate/test_eval_gpu.py
want train && step train 300 "$PY" benchmarks/gpu_bench.py train --out "$OUT" --work "$WORK" "${SMALL[@]}"
want eval && step eval 180 "$PY" benchmarks/gpu_bench.py eval --out "$OUT" --work "$WORK" "${SMALL[@]}"
want ds && step ds 240 "$PY" benchmarks/gpu_bench.py ds --out "$OUT" "${SMALL[@]}"

{
  echo "# GPU kit $(date -u +%Y-%m-%dT%H:%MZ): $( ((DRY)) && echo 'CPU dry run' || echo 'GPU run'), $((SECONDS - KIT_START)) s"
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  grep -E "^(python |bf16 matmul|pyproject ranges)" "$LOG"
  echo
  grep -E "^(FAILED|ERROR) |[0-9]+ (passed|failed|error)" "$LOG" | head -20
  echo
  grep -E "^\||^ViT|^tiny|^predictions|^  (DDP engine|ZeRO)|kernel launches per step" "$LOG"
} > "$OUT/summary.md"
rm -rf "$WORK"
if (( ! DRY )) && [[ -f .whl_ray/a/ray.part-aa ]]; then  # for benchmarks/gpu_ray_check.sh, the next call
  mkdir -p /tmp/gpu_kit_carry && cp .whl_ray/a/ray.part-aa /tmp/gpu_kit_carry/ && echo "ray part a left in /tmp/gpu_kit_carry"
fi
echo
cat "$OUT/summary.md"
grep -q "FAILED" "$OUT/summary.md" && exit 1
exit 0
