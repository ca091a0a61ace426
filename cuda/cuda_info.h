/* cuda_info.h — what the CUDA build of segqa was compiled and linked against, and what it finds.
 *
 * Works without a GPU: library versions come from
 * cudnnGetVersion/ncclGetVersion/cudaRuntimeGetVersion, and the device probe reports "no device"
 * instead of failing (cudaGetDeviceCount returns an error code and leaves the count untouched when
 * there is no driver).
 */
#ifndef SEGQA_CUDA_INFO_H
#define SEGQA_CUDA_INFO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_cuda_info {
    int runtime_version; /* e.g. 13000 */
    int cudnn_version;   /* e.g. 91900 */
    int nccl_version;    /* e.g. 22809 */
    int cublas_version;  /* from the headers */
    int device_count;    /* 0 when no driver / no GPU */
    char device_error[128];
    char device_name[320]; /* device 0 when present */
} sq_cuda_info;

void sq_cuda_query(sq_cuda_info *info);

#ifdef __cplusplus
}
#endif
#endif
