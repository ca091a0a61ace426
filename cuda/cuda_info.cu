// cuda_info.cu — library versions and device probe for `segqa --version` (see cuda_info.h).
#include "cuda/cuda_info.h"

#include <cublas_api.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include <stdio.h>
#include <string.h>

// A trivial kernel so that the device-code path (nvcc → sm_90 cubin) is exercised by every build.
__global__ void sq_cuda_fill_kernel(float *x, float v, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = v;
}

extern "C" void sq_cuda_query(sq_cuda_info *info) {
    memset(info, 0, sizeof *info);
    cudaRuntimeGetVersion(&info->runtime_version);
    info->cudnn_version = (int)cudnnGetVersion();
    int nv = 0;
    if (ncclGetVersion(&nv) == ncclSuccess) info->nccl_version = nv;
    info->cublas_version = CUBLAS_VERSION;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        info->device_count = 0;
        snprintf(info->device_error, sizeof info->device_error, "%s", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return;
    }
    info->device_count = count;
    if (count > 0) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
            snprintf(info->device_name, sizeof info->device_name, "%.255s (sm_%d%d)", prop.name,
                     prop.major, prop.minor);
    }
}
