# Sourced by gpu_wheels.sh and gpu_ray_wheels.sh: versions from constraints.txt, and the GPU machine's platform.
pin() {  # NAME -> NAME==VERSION from constraints.txt (names compared as pip normalises them)
  local norm; norm=$(echo "$1" | tr 'A-Z_.' 'a-z--')
  local line; line=$(awk -F'==' -v n="$norm" '{k=tolower($1); gsub(/[_.]/,"-",k); if (k==n) print $0}' constraints.txt)
  [[ -n "$line" ]] || { echo "gpu wheels: $1 is not pinned in constraints.txt" >&2; exit 1; }
  echo "$line"
}
# cp312 manylinux wheels for the GPU machine (Python 3.12, x86-64)
CP312=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --platform manylinux_2_28_x86_64
       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
