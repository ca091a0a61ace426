#!/usr/bin/env bash
# setup.sh — install every Debian 12 package segqa needs (one apt line), then build it.
#   scripts/setup.sh            install packages and build into build/ (Release)
#   scripts/setup.sh --deps     install packages only
# Runs as root or through sudo. Safe to run again: apt skips what is installed, cmake rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

PACKAGES=(
  build-essential cmake pkg-config git zlib1g-dev
  libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libnifti2-dev libdnnl-dev ocl-icd-opencl-dev
  libopenblas-dev libcjson-dev libcmocka-dev gnuplot-nox libpng-dev slurm-wlm chromium libxgboost-dev
  python3 python3-numpy python3-scipy python3-h5py python3-nibabel python3-torch
  clang libclang-rt-14-dev
)

# Wanted but not needed: segqa builds and passes its tests without them (CMake finds them or not).
#   libdeflate-dev  .nii.gz voxels inflated about twice as fast as through zlib (src/data/nifti.c)
OPTIONAL=(libdeflate-dev)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

absent() { # the packages of "$@" not installed
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
apt_install() {
  "${sudo_cmd[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
mapfile -t missing < <(absent "${PACKAGES[@]}")
mapfile -t missing_opt < <(absent "${OPTIONAL[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]} ${missing_opt[*]}"
  apt_install "${PACKAGES[@]}" "${OPTIONAL[@]}"
elif [ ${#missing_opt[@]} -gt 0 ]; then
  echo "setup: all ${#PACKAGES[@]} Debian packages present; installing optional ${missing_opt[*]}"
  apt_install "${OPTIONAL[@]}" ||
    echo "setup: could not install ${missing_opt[*]}: building without (.nii.gz reads through zlib only)"
else
  echo "setup: all ${#PACKAGES[@]} Debian packages present (and ${#OPTIONAL[@]} optional)"
fi

[ "${1:-}" = "--deps" ] && exit 0

build=${SEGQA_BUILD_DIR:-$here/build}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGQA_WERROR=OFF -DSEGQA_CUDA="${SEGQA_CUDA:-AUTO}" >/dev/null
cmake --build "$build" -j"$(nproc)" --target segqa
echo "setup: built $build/src/cli/segqa"
