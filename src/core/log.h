/* log.h — levelled, rank-aware logging and progress lines.
 *
 * Messages go to stderr as "segqa[rN] level: text" (the rank tag only once a rank is set). By
 * default only rank 0 prints info; every rank prints warnings and errors. --quiet lowers the
 * threshold to warnings, --verbose raises it to debug on every rank.
 *
 * A progress line shows percent, rate and ETA. On a terminal it redraws in place; otherwise (a log
 * file, Slurm output) it prints one plain line every `period` seconds and one at the end.
 *
 * Not for: the result tables a command prints (those go to stdout from src/cli).
 */
#ifndef SEGQA_CORE_LOG_H
#define SEGQA_CORE_LOG_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_log_level {
    SQ_LOG_ERROR = 0,
    SQ_LOG_WARN = 1,
    SQ_LOG_INFO = 2,
    SQ_LOG_DEBUG = 3,
} sq_log_level;

/* Process-wide settings, set once by src/cli before work starts. */
void sq_log_set_level(sq_log_level level);
sq_log_level sq_log_get_level(void);
/* rank < 0: no rank tag (single process). all_ranks: non-zero ranks print info too. */
void sq_log_set_rank(int rank, int all_ranks);
/* Redirect (tests); NULL restores stderr. */
void sq_log_set_stream(FILE *stream);

/* Whether a message of this level would be printed by this rank. */
int sq_log_enabled(sq_log_level level);

void sq_log(sq_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sq_error(...) sq_log(SQ_LOG_ERROR, __VA_ARGS__)
#define sq_warn(...)  sq_log(SQ_LOG_WARN, __VA_ARGS__)
#define sq_info(...)  sq_log(SQ_LOG_INFO, __VA_ARGS__)
#define sq_debug(...) sq_log(SQ_LOG_DEBUG, __VA_ARGS__)

typedef struct sq_progress {
    char label[64];
    double total; /* units of work, e.g. samples; <= 0 means unknown */
    double done;
    double t_start; /* sq_now() at begin */
    double t_last;  /* last time a line was printed */
    double period;  /* seconds between plain lines (non-tty); redraw interval on a tty is 0.1 s */
    int tty;        /* 1: redraw with \r; 0: plain lines */
    int active;     /* 0 when this rank does not print */
    int printed_width; /* for clearing on a tty */
    FILE *out;
} sq_progress;

/* Start a progress line on the log stream. `unit` names the work ("samples", "steps"). */
void sq_progress_begin(sq_progress *p, const char *label, double total);
/* Report `done` units so far; `extra` (may be NULL) is appended, e.g. "loss 0.012". */
void sq_progress_update(sq_progress *p, double done, const char *extra);
/* Final line (always printed when active). */
void sq_progress_end(sq_progress *p, const char *extra);

/* Pure formatter used by the above (and tested): "label  42.0% 12/28 3.1/s ETA 0:05 extra". */
int sq_progress_format(char *buf, size_t n, const char *label, double done, double total,
                       double elapsed, const char *extra);
/* Format seconds as H:MM:SS or M:SS. */
void sq_format_duration(char *buf, size_t n, double seconds);

#ifdef __cplusplus
}
#endif
#endif
