/* log.c — see log.h. */
#include "core/log.h"

#include "core/timer.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

static sq_log_level g_level = SQ_LOG_INFO;
static int g_rank = -1;
static int g_all_ranks = 0;
static FILE *g_stream = NULL;

static FILE *log_stream(void) {
    return g_stream ? g_stream : stderr;
}

void sq_log_set_level(sq_log_level level) {
    g_level = level;
}
sq_log_level sq_log_get_level(void) {
    return g_level;
}
void sq_log_set_rank(int rank, int all_ranks) {
    g_rank = rank;
    g_all_ranks = all_ranks;
}
void sq_log_set_stream(FILE *stream) {
    g_stream = stream;
}

int sq_log_enabled(sq_log_level level) {
    if (level > g_level) return 0;
    if (level >= SQ_LOG_INFO && g_rank > 0 && !g_all_ranks && g_level < SQ_LOG_DEBUG) return 0;
    return 1;
}

static const char *level_name(sq_log_level level) {
    switch (level) {
    case SQ_LOG_ERROR: return "error";
    case SQ_LOG_WARN: return "warning";
    case SQ_LOG_INFO: return "info";
    default: return "debug";
    }
}

void sq_log(sq_log_level level, const char *fmt, ...) {
    if (!sq_log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    FILE *f = log_stream();
    if (g_rank >= 0)
        fprintf(f, "segqa[r%d] %s: %s\n", g_rank, level_name(level), msg);
    else
        fprintf(f, "segqa %s: %s\n", level_name(level), msg);
    fflush(f);
}

void sq_format_duration(char *buf, size_t n, double seconds) {
    if (!(seconds >= 0) || seconds > 359999.0) {
        snprintf(buf, n, "--:--");
        return;
    }
    long s = (long)(seconds + 0.5);
    long h = s / 3600, m = (s / 60) % 60, sec = s % 60;
    if (h > 0)
        snprintf(buf, n, "%ld:%02ld:%02ld", h, m, sec);
    else
        snprintf(buf, n, "%ld:%02ld", m, sec);
}

int sq_progress_format(char *buf, size_t n, const char *label, double done, double total,
                       double elapsed, const char *extra) {
    double rate = elapsed > 0 ? done / elapsed : 0.0;
    char eta[32], el[32];
    sq_format_duration(el, sizeof el, elapsed);
    int w;
    if (total > 0) {
        double pct = 100.0 * done / total;
        if (pct > 100.0) pct = 100.0;
        if (rate > 0)
            sq_format_duration(eta, sizeof eta, (total - done) / rate);
        else
            snprintf(eta, sizeof eta, "--:--");
        w = snprintf(buf, n, "%s %5.1f%% %.0f/%.0f %.3g/s elapsed %s ETA %s%s%s", label, pct, done,
                     total, rate, el, eta, extra ? " " : "", extra ? extra : "");
    } else {
        w = snprintf(buf, n, "%s %.0f %.3g/s elapsed %s%s%s", label, done, rate, el,
                     extra ? " " : "", extra ? extra : "");
    }
    return w;
}

void sq_progress_begin(sq_progress *p, const char *label, double total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->t_start = sq_now();
    p->t_last = p->t_start;
    p->period = 10.0;
    p->out = log_stream();
    p->tty = isatty(fileno(p->out));
    p->active = sq_log_enabled(SQ_LOG_INFO);
}

static void progress_print(sq_progress *p, const char *extra, int final) {
    char line[512];
    double now = sq_now();
    int w =
        sq_progress_format(line, sizeof line, p->label, p->done, p->total, now - p->t_start, extra);
    if (p->tty) {
        int pad = p->printed_width > w ? p->printed_width - w : 0;
        fprintf(p->out, "\r%s%*s%s", line, pad, "", final ? "\n" : "");
        p->printed_width = final ? 0 : w;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->t_last = now;
}

void sq_progress_update(sq_progress *p, double done, const char *extra) {
    p->done = done;
    if (!p->active) return;
    double now = sq_now();
    double interval = p->tty ? 0.1 : p->period;
    if (now - p->t_last >= interval) progress_print(p, extra, 0);
}

void sq_progress_end(sq_progress *p, const char *extra) {
    if (!p->active) return;
    progress_print(p, extra, 1);
    p->active = 0;
}
