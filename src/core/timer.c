/* timer.c — see timer.h. */
#include "core/timer.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double sq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sq_timer_reset(sq_timer *t) {
    t->start = 0;
    t->total = 0;
    t->count = 0;
}

void sq_timer_start(sq_timer *t) {
    t->start = sq_now();
}

double sq_timer_stop(sq_timer *t) {
    double dt = sq_now() - t->start;
    t->total += dt;
    t->count++;
    return dt;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sq_median(const double *v, int n) {
    if (n <= 0) return 0.0;
    double tmp[4096];
    if (n > 4096) n = 4096;
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return (n % 2) ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}
