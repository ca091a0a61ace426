#!/usr/bin/env bash
# gpu-pack.sh — build, HERE, everything hpc/gpu-check.sh runs on the GPU machine, and pack it.
#
# The GPU machine is another image (TOOLCHAIN.md): nvcc, CMake and python3 with torch and NVIDIA's
# cuDNN/cuBLAS/NCCL wheels, but no HDF5, oneDNN, Open MPI, NIfTI or cJSON and no package registry.
# So the programs are built on this machine for sm_90 and travel with the shared libraries `ldd`
# lists for them, except glibc's own and the CUDA libraries, which come from that machine (the
# wheels' cuDNN, cuBLAS and NCCL: the real libcudnn_* engines are hundreds of MB and are never
# sent). Output: gpu-pack/segqa-gpu.tar.xz (ignored by git; carry it with the device run).
#
#   hpc/gpu-pack.sh            build into build-gpu/ and pack
#   SEGQA_GPU_PACK_SKIP_BUILD=1 hpc/gpu-pack.sh   pack what build-gpu/ holds
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${SEGQA_GPU_BUILD_DIR:-$here/build-gpu}
pack=$here/gpu-pack
stage=$pack/segqa-gpu
programs=(src/cli/segqa tests/nn/test_nn_backend tests/model/test_model_backends tests/hpc/nccl_check)

if [ -z "${SEGQA_GPU_PACK_SKIP_BUILD:-}" ]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGQA_WERROR=ON -DSEGQA_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build "$build" -j"$(nproc)" --target segqa test_nn_backend test_model_backends nccl_check
fi

rm -rf "$stage" "$pack/segqa-gpu.tar.xz"
mkdir -p "$stage/bin" "$stage/lib"
for p in "${programs[@]}"; do
  [ -x "$build/$p" ] || { echo "gpu-pack: $build/$p was not built" >&2; exit 1; }
  cp "$build/$p" "$stage/bin/"
done

# Libraries from the GPU machine (never packed): glibc's, the driver's and CUDA's own.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libresolv\.so|libutil\.so|libnsl\.so|libcuda\.so|libcudnn|libcublas|libnccl|libnvidia)'
for p in "${programs[@]}"; do
  ldd "$build/$p" | awk '/=>/ && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $skip ]]; then continue; fi
  cp -L "$path" "$stage/lib/$name"
done
# Open MPI opens its components at MPI_Init only; the programs sent do not initialise MPI.
{
  echo "built $(date -u +%FT%TZ) on $(uname -n) from $(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "nvcc: $(nvcc --version | tail -1)"
  echo "programs: ${programs[*]##*/}"
  echo "libraries packed: $(ls "$stage/lib" | tr '\n' ' ')"
  echo "libraries expected on the GPU machine:"
  for p in "${programs[@]}"; do ldd "$build/$p"; done | awk '/=>/ {print "  " $1}' | sort -u |
    grep -E 'libcudnn|libcublas|libnccl|libcuda\.so|libcudart' || true
} > "$stage/MANIFEST.txt"
du -sh "$stage"
tar -C "$pack" -cJf "$pack/segqa-gpu.tar.xz" segqa-gpu
ls -l "$pack/segqa-gpu.tar.xz"
