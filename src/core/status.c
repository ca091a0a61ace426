/* status.c — implementation of errors as values (see status.h). */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sq_status_clear(sq_status *st) {
    if (!st) return;
    st->code = SQ_OK;
    st->msg[0] = '\0';
}

sq_code sq_fail(sq_status *st, sq_code code, const char *fmt, ...) {
    if (!st) return code;
    st->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    return code;
}

sq_code sq_context(sq_status *st, const char *fmt, ...) {
    if (!st) return SQ_ERR_INTERNAL;
    if (st->code == SQ_OK) return SQ_OK;
    char prefix[SQ_STATUS_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) return st->code;
    char joined[2 * SQ_STATUS_MSG_MAX + 4];
    snprintf(joined, sizeof joined, "%s: %s", prefix, st->msg);
    memcpy(st->msg, joined, SQ_STATUS_MSG_MAX - 1);
    st->msg[SQ_STATUS_MSG_MAX - 1] = '\0';
    return st->code;
}

const char *sq_code_name(sq_code code) {
    switch (code) {
    case SQ_OK: return "ok";
    case SQ_ERR_USAGE: return "usage error";
    case SQ_ERR_IO: return "i/o error";
    case SQ_ERR_FORMAT: return "bad input";
    case SQ_ERR_NOMEM: return "out of memory";
    case SQ_ERR_RANGE: return "out of range";
    case SQ_ERR_MPI: return "mpi error";
    case SQ_ERR_DEVICE: return "device error";
    case SQ_ERR_UNSUPPORTED: return "unsupported";
    case SQ_ERR_INTERRUPTED: return "interrupted";
    case SQ_ERR_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

int sq_exit_code(sq_code code) {
    switch (code) {
    case SQ_OK: return 0;
    case SQ_ERR_USAGE: return 2;
    case SQ_ERR_IO: return 4;
    case SQ_ERR_FORMAT: return 5;
    case SQ_ERR_INTERRUPTED: return 75;
    default: return 1;
    }
}
