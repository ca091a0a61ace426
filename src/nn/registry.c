/* registry.c — backends by name ("cpu", "cuda", "auto"), chosen at the program's edge.
 *
 * Built into its own library (segqa_backends) because it links every backend: the CPU backend
 * always, the CUDA one (cuda/) when this build has it (SEGQA_HAVE_CUDA). Nothing above src/cli and
 * the backend tests calls a backend's own create function.
 */
#include "nn/registry.h"

#include "core/tensor.h"
#include "nn/cpu/cpu_backend.h"
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

#include <stdio.h>
#include <string.h>

sq_backend_opts sq_backend_opts_default(void) {
    sq_backend_opts o = {0, -1, -1, 0, 0};
    return o;
}

int sq_backend_name_valid(const char *name) {
    return name && (!strcmp(name, "cpu") || !strcmp(name, "cuda") || !strcmp(name, "auto"));
}

#ifdef SEGQA_HAVE_CUDA
int sq_backend_cuda_usable(char *why, size_t why_size) {
    return sq_cuda_device_count(why, why_size) > 0;
}

/* The GPU of this rank: the explicit ordinal, else the local rank modulo the visible GPUs. */
static int pick_device(const sq_backend_opts *o, int count) {
    if (o->device >= 0) return o->device;
    return o->local_rank > 0 ? o->local_rank % count : 0;
}

static sq_backend *create_cuda(const sq_backend_opts *o, sq_status *st) {
    char why[256] = "";
    const int count = sq_cuda_device_count(why, sizeof why);
    if (count < 1) {
        sq_fail(st, SQ_ERR_DEVICE, "--device cuda: no usable GPU (%s)", why);
        return NULL;
    }
    sq_cuda_opts co = sq_cuda_opts_default();
    co.device = pick_device(o, count);
    co.deterministic = o->deterministic;
    co.allow_tf32 = o->allow_tf32;
    return sq_backend_cuda_create(&co, st);
}
#else
int sq_backend_cuda_usable(char *why, size_t why_size) {
    snprintf(why, why_size, "this segqa was built without CUDA (SEGQA_CUDA=OFF or no nvcc)");
    return 0;
}

static sq_backend *create_cuda(const sq_backend_opts *o, sq_status *st) {
    (void)o;
    sq_fail(st, SQ_ERR_UNSUPPORTED,
            "--device cuda: this segqa was built without the CUDA backend (rebuild with "
            "SEGQA_CUDA=ON on a machine with the CUDA toolkit)");
    return NULL;
}
#endif

static void say(char *chosen, size_t n, const sq_backend *be, const char *why) {
    if (chosen && n) snprintf(chosen, n, "%s%s%s", be->description, why ? " " : "", why ? why : "");
}

sq_backend *sq_backend_create(const char *name, const sq_backend_opts *opts, char *chosen,
                              size_t chosen_size, sq_status *st) {
    const sq_backend_opts o = opts ? *opts : sq_backend_opts_default();
    if (!sq_backend_name_valid(name)) {
        sq_fail(st, SQ_ERR_USAGE, "--device: expected cpu, cuda or auto, got '%s'",
                name ? name : "(null)");
        return NULL;
    }
    sq_backend *be = NULL;
    if (!strcmp(name, "cpu")) {
        if ((be = sq_backend_cpu_create(o.threads, st))) say(chosen, chosen_size, be, NULL);
        return be;
    }
    if (!strcmp(name, "cuda")) {
        if ((be = create_cuda(&o, st))) say(chosen, chosen_size, be, NULL);
        return be;
    }
    char why[256] = "", msg[320];
    if (sq_backend_cuda_usable(why, sizeof why)) {
        if ((be = create_cuda(&o, st)))
            say(chosen, chosen_size, be, "(auto: a usable GPU was found)");
        return be;
    }
    if ((be = sq_backend_cpu_create(o.threads, st))) {
        snprintf(msg, sizeof msg, "(auto: no GPU: %s)", why);
        say(chosen, chosen_size, be, msg);
    }
    return be;
}

/* ---- host memory and the copy stream of the input pipeline ------------------------------------
 */

sq_code sq_backend_host_alloc(sq_backend *be, size_t bytes, void **out, sq_status *st) {
    *out = NULL;
    if (be && be->host_alloc) return be->host_alloc(be, bytes, out, st);
    *out = sq_alloc(bytes ? bytes : 1);
    if (!*out) return sq_fail(st, SQ_ERR_NOMEM, "out of host memory (%zu bytes)", bytes);
    return SQ_OK;
}

void sq_backend_host_free(sq_backend *be, void *p) {
    if (!p) return;
    if (be && be->host_alloc) {
        if (be->host_free) be->host_free(be, p);
        return;
    }
    sq_free(p);
}

int sq_backend_has_copy_stream(const sq_backend *be) {
    return be && be->upload_async && be->copy_event_record && be->copy_stream_wait &&
           be->event_sync;
}
