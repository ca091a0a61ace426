/* timer.h — monotonic wall-clock time and simple stopwatches. */
#ifndef SEGQA_CORE_TIMER_H
#define SEGQA_CORE_TIMER_H

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double sq_now(void);

typedef struct sq_timer {
    double start;
    double total; /* accumulated seconds over start/stop pairs */
    long count;
} sq_timer;

void sq_timer_reset(sq_timer *t);
void sq_timer_start(sq_timer *t);
/* Stop and accumulate; returns the seconds of this interval. */
double sq_timer_stop(sq_timer *t);

/* Median of n doubles (copies and sorts; n <= 4096). */
double sq_median(const double *v, int n);

#ifdef __cplusplus
}
#endif
#endif
