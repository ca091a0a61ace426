/* nccl_none.c — hpc/nccl.h in a build without CUDA: nothing is available, creation says why. */
#include "hpc/nccl.h"

#include <stdio.h>

static sq_code no_nccl(sq_status *st) {
    return sq_fail(st, SQ_ERR_UNSUPPORTED, "--comm nccl: this segqa was built without CUDA/NCCL");
}

int sq_nccl_available(void) {
    return 0;
}
void sq_nccl_version(char *buf, size_t n) {
    snprintf(buf, n, "NCCL not built");
}
sq_code sq_nccl_unique_id(unsigned char id[SQ_NCCL_ID_BYTES], sq_status *st) {
    (void)id;
    return no_nccl(st);
}
sq_code sq_nccl_create_raw(const unsigned char id[SQ_NCCL_ID_BYTES], int nranks, int rank,
                           int device, int group, sq_nccl **out, sq_status *st) {
    *out = NULL;
    return no_nccl(st);
}
sq_code sq_nccl_create(const sq_group *g, int device, sq_nccl **out, sq_status *st) {
    *out = NULL;
    return no_nccl(st);
}
void sq_nccl_destroy(sq_nccl *c) {
    (void)c;
}
int sq_nccl_size(const sq_nccl *c) {
    return 0;
}
int sq_nccl_rank(const sq_nccl *c) {
    return -1;
}
sq_code sq_nccl_grad_init(sq_nccl *c, float *dev_buf, size_t n, size_t bucket_elems,
                          sq_status *st) {
    return no_nccl(st);
}
int sq_nccl_grad_buckets(const sq_nccl *c) {
    return 0;
}
int sq_nccl_grad_started(const sq_nccl *c) {
    return 0;
}
sq_code sq_nccl_grad_ready(sq_nccl *c, size_t from, void *ready_ev, sq_status *st) {
    return no_nccl(st);
}
sq_code sq_nccl_grad_finish(sq_nccl *c, void *ready_ev, void **done_ev, int *early, sq_status *st) {
    return no_nccl(st);
}
sq_code sq_nccl_sum_doubles(sq_nccl *c, void *dev, size_t n, void *stream, const char *what,
                            sq_status *st) {
    return no_nccl(st);
}
sq_code sq_nccl_allreduce_floats(sq_nccl *c, float *dev, size_t n, int avg, void *stream,
                                 const char *what, sq_status *st) {
    return no_nccl(st);
}
sq_code sq_nccl_quiesce(sq_nccl *c, sq_status *st) {
    return no_nccl(st);
}
