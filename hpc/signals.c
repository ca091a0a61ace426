/* signals.c — see signals.h. */
#include "hpc/signals.h"

#include "hpc/watchdog.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

void sq_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int sq_stop_requested(void) {
    return g_stop != 0;
}
void sq_stop_set(int value) {
    g_stop = value ? 1 : 0;
}

sq_code sq_stop_agreed(MPI_Comm comm, int *stop, sq_status *st) {
    int any = g_stop ? 1 : 0;
    SQ_TRY(sq_comm_max_int(comm, &any, "MPI_Iallreduce of the stop flag", st));
    *stop = any;
    return SQ_OK;
}
