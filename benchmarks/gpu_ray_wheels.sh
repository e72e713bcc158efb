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
source benchmarks/gpu_pins.sh
rm -rf "$DIR"
mkdir -p "$DIR/a" "$DIR/b" "$DIR/full"
"$PY" -m pip download -q --no-deps "${CP312[@]}" -d "$DIR/full" "$(pin ray)"
"$PY" -m pip download -q --no-deps "${CP312[@]}" -d "$DIR/b" "$(pin jsonschema)" "$(pin jsonschema-specifications)" "$(pin referencing)" "$(pin rpds-py)" \
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
