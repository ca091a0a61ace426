/* status.h — errors as values.
 *
 * Every fallible function in segqa takes an `sq_status *` as its last argument and returns an
 * `sq_code` (SQ_OK == 0). On failure it fills the status with one readable message that names the
 * file, the field and what was expected; callers on the way up prepend context with sq_context().
 * Only src/cli turns a status into an exit code and a stderr line. Library code never calls exit().
 *
 * Not for: logging (log.h) or assertions on programming errors (those abort in debug builds).
 */
#ifndef SEGQA_CORE_STATUS_H
#define SEGQA_CORE_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_code {
    SQ_OK = 0,
    SQ_ERR_USAGE,       /* bad command line, option or config key/value */
    SQ_ERR_IO,          /* a file could not be opened, read, written or renamed */
    SQ_ERR_FORMAT,      /* input data is malformed or violates its schema */
    SQ_ERR_NOMEM,       /* allocation failed */
    SQ_ERR_RANGE,       /* a value is outside what is supported (shapes, sizes) */
    SQ_ERR_MPI,         /* an MPI / NCCL collective failed or a rank vanished */
    SQ_ERR_DEVICE,      /* CUDA / cuDNN / cuBLAS failure or no device */
    SQ_ERR_UNSUPPORTED, /* feature not compiled in or not available here */
    SQ_ERR_INTERRUPTED, /* stopped by a signal after a clean checkpoint */
    SQ_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    SQ_CODE_COUNT
} sq_code;

#define SQ_STATUS_MSG_MAX 1024

typedef struct sq_status {
    sq_code code;
    char msg[SQ_STATUS_MSG_MAX];
} sq_status;

/* Reset to OK with an empty message. */
void sq_status_clear(sq_status *st);

/* Set code and message (printf-style); returns `code` so callers can `return sq_fail(...)`.
 * `st` may be NULL, in which case only the code is returned. */
sq_code sq_fail(sq_status *st, sq_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend "<context>: " to the message of a failed status; returns its code unchanged.
 * A no-op on an OK status. */
sq_code sq_context(sq_status *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short stable name of a code, e.g. "io error". */
const char *sq_code_name(sq_code code);

/* Process exit code for a status code (used by src/cli only): 0 ok, 2 usage, 1 for most errors,
 * 4 I/O, 5 format, 75 (EX_TEMPFAIL) for an interrupted-and-checkpointed run. */
int sq_exit_code(sq_code code);

/* Exit code of a job ended by the communication watchdog (hpc/watchdog.h): a collective failed or
 * did not complete within --comm-timeout; MPI_Abort passes it to mpirun/srun. */
#define SQ_EXIT_COMM_FAULT 76

/* Propagate a failure: evaluates `expr` (an sq_code) once and returns it if not SQ_OK. */
#define SQ_TRY(expr)                                                                               \
    do {                                                                                           \
        sq_code sq_try_rc_ = (expr);                                                               \
        if (sq_try_rc_ != SQ_OK) return sq_try_rc_;                                                \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
