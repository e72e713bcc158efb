#!/usr/bin/env bash
# `make gpu-wheels`: the cp312 wheels (and DeepSpeed's sdist) the GPU kit carries to the bare GPU machine.
#
# The GPU machine has Python 3.12 with torch 2.11, numpy, pandas, pyarrow, scipy, scikit-learn, safetensors,
# tokenizers, timm, tqdm, rich, pytest, psutil, msgpack, ninja, py-cpuinfo; it reaches no registry. This folder
# brings the rest the kit imports: webdataset (training shards), DeepSpeed and its pure-python needs, open_clip
# and CLIP_benchmark (the peers). Versions come from constraints.txt. Ray (79 MB) does not fit: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_WHEELS_DIR:-.whl}
PY=${PY:-python3}
LIMIT_MIB=60
PKGS=(webdataset braceexpand hjson pydantic pydantic_core annotated-types typing-inspection typing_extensions
      open_clip_torch ftfy wcwidth clip-benchmark)

source benchmarks/gpu_pins.sh

rm -rf "$DIR"
mkdir -p "$DIR"
specs=()
for p in "${PKGS[@]}"; do specs+=("$(pin "$p")"); done
"$PY" -m pip download -q --no-deps "${CP312[@]}" -d "$DIR" "${specs[@]}"
# DeepSpeed ships only an sdist; the kit builds it there with DS_BUILD_OPS=0 against the machine's torch
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$DIR" "$(pin deepspeed)"
ls -1 "$DIR" > "$DIR/MANIFEST.txt"
bytes=$(du -cb "$DIR" | tail -1 | cut -f1)
mib=$((bytes / 1048576))
echo "gpu-wheels: $(($(wc -l < "$DIR/MANIFEST.txt"))) files, ${mib} MiB in $DIR (limit ${LIMIT_MIB} MiB)"
if (( bytes > LIMIT_MIB * 1048576 )); then
  echo "gpu-wheels: $DIR is ${mib} MiB, over the ${LIMIT_MIB} MiB the GPU machine accepts beside the tree" >&2
  exit 1
fi
