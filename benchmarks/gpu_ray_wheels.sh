#!/usr/bin/env bash
# `make gpu-ray-wheels`: Ray for the GPU machine, in two halves that ride on two back-to-back calls.
#
# The cp312 Ray wheel is 79 MB and one call carries at most 64 MiB with the tree. .whl_ray/a holds the first
# half (carried with the kit's call, which leaves it in /tmp/gpu_kit_carry); .whl_ray/b the second half, its
# checksum and Ray's needs the machine lacks (carried with benchmarks/gpu_ray_check.sh's call).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.whl_ray
PY=${PY:-python3}
pin() {
  local norm; norm=$(echo "$1" | tr 'A-Z_.' 'a-z--')
  awk -F'==' -v n="$norm" '{k=tolower($1); gsub(/[_.]/,"-",k); if (k==n) print $0}' constraints.txt
}
rm -rf "$DIR"
mkdir -p "$DIR/a" "$DIR/b" "$DIR/full"
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  "${plat[@]}" -d "$DIR/full" "$(pin ray)"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  "${plat[@]}" -d "$DIR/b" "$(pin jsonschema)" "$(pin jsonschema-specifications)" "$(pin referencing)" "$(pin rpds-py)" \
  "$(pin tensorboardX)"
whl=$(ls "$DIR/full"/ray-*.whl)
basename "$whl" > "$DIR/b/ray.name"
(cd "$DIR/full" && sha256sum "$(basename "$whl")") > "$DIR/b/ray.sha256"
size=$(stat -c %s "$whl")
split -b $(((size + 1) / 2)) "$whl" "$DIR/ray.part-"
mv "$DIR/ray.part-aa" "$DIR/a/"
mv "$DIR/ray.part-ab" "$DIR/b/"
rm -rf "$DIR/full"
du -sh "$DIR/a" "$DIR/b"
