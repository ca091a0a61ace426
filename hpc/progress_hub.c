/* progress_hub.c — see progress_hub.h. */
#include "hpc/progress_hub.h"

#include "hpc/watchdog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int slot_of(const sq_hub *h, int fold) {
    return fold < 0 ? 0 : fold;
}

sq_code sq_hub_init(sq_hub *h, MPI_Comm world, int nfolds, double epochs_total, sq_status *st) {
    memset(h, 0, sizeof *h);
    h->comm = world;
    int rc = MPI_Comm_rank(world, &h->rank);
    if (rc != MPI_SUCCESS) return sq_mpi_fail(st, rc, "progress hub: MPI_Comm_rank");
    h->nfolds = nfolds > 0 ? nfolds : 1;
    h->req = MPI_REQUEST_NULL;
    if (h->rank == 0) {
        h->table = calloc((size_t)h->nfolds, sizeof *h->table);
        h->seen = calloc((size_t)h->nfolds, sizeof *h->seen);
        if (!h->table || !h->seen) {
            sq_hub_free(h);
            return sq_fail(st, SQ_ERR_NOMEM, "progress hub: out of memory");
        }
        for (int i = 0; i < h->nfolds; i++) {
            h->table[i].fold = nfolds > 0 ? i : -1;
            h->table[i].val_mae = -1;
        }
        sq_progress_begin(&h->line, "train", epochs_total);
    }
    return SQ_OK;
}

static void record(sq_hub *h, const sq_fold_status *s) {
    int slot = slot_of(h, s->fold);
    if (slot < 0 || slot >= h->nfolds) return;
    h->table[slot] = *s;
    h->seen[slot] = s->done ? 2 : 1;
}

int sq_hub_format(const sq_hub *h, char *buf, size_t n) {
    size_t w = 0;
    buf[0] = '\0';
    for (int i = 0; i < h->nfolds && w < n; i++) {
        const sq_fold_status *s = &h->table[i];
        char val[32] = "-";
        if (s->val_mae >= 0) snprintf(val, sizeof val, "%.4f", s->val_mae);
        int k;
        if (!h->seen[i])
            k = snprintf(buf + w, n - w, "%sf%d waiting", i ? " | " : "", i);
        else
            k = snprintf(buf + w, n - w, "%sf%d e%d/%d loss %.4f val %s%s", i ? " | " : "",
                         s->fold < 0 ? 0 : s->fold, s->epoch, s->epochs, s->loss, val,
                         s->done ? " done" : "");
        if (k < 0) break;
        w += (size_t)k;
    }
    return (int)w;
}

static void redraw(sq_hub *h) {
    double done = 0;
    for (int i = 0; i < h->nfolds; i++)
        done += h->table[i].epoch;
    char line[400];
    sq_hub_format(h, line, sizeof line);
    sq_progress_update(&h->line, done, line);
}

sq_code sq_hub_post(sq_hub *h, const sq_fold_status *s, sq_status *st) {
    if (h->rank == 0) {
        record(h, s);
        return sq_hub_poll(h, st);
    }
    if (h->req != MPI_REQUEST_NULL) {
        int flag = 0;
        if (MPI_Test(&h->req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return sq_fail(st, SQ_ERR_MPI, "progress hub: MPI_Test failed");
        if (!flag) {
            h->skipped++;
            return SQ_OK;
        }
    }
    h->out = *s;
    if (MPI_Isend(&h->out, (int)sizeof h->out, MPI_BYTE, 0, SQ_HUB_TAG, h->comm, &h->req) !=
        MPI_SUCCESS)
        return sq_fail(st, SQ_ERR_MPI, "progress hub: MPI_Isend failed");
    return SQ_OK;
}

sq_code sq_hub_post_final(sq_hub *h, const sq_fold_status *s, sq_status *st) {
    sq_fold_status fin = *s;
    fin.done = 1;
    if (h->rank == 0) {
        record(h, &fin);
        return sq_hub_poll(h, st);
    }
    if (h->req != MPI_REQUEST_NULL)
        SQ_TRY(sq_comm_wait(&h->req, 1, "progress hub: MPI_Isend of progress", st));
    h->out = fin;
    if (MPI_Isend(&h->out, (int)sizeof h->out, MPI_BYTE, 0, SQ_HUB_TAG, h->comm, &h->req) !=
        MPI_SUCCESS)
        return sq_fail(st, SQ_ERR_MPI, "progress hub: MPI_Isend of the final record failed");
    return sq_comm_wait(&h->req, 1, "progress hub: MPI_Isend of the final record", st);
}

sq_code sq_hub_poll(sq_hub *h, sq_status *st) {
    if (h->rank != 0) return SQ_OK;
    for (;;) {
        int flag = 0;
        MPI_Status ms;
        if (MPI_Iprobe(MPI_ANY_SOURCE, SQ_HUB_TAG, h->comm, &flag, &ms) != MPI_SUCCESS)
            return sq_fail(st, SQ_ERR_MPI, "progress hub: MPI_Iprobe failed");
        if (!flag) break;
        sq_fold_status s;
        if (MPI_Recv(&s, (int)sizeof s, MPI_BYTE, ms.MPI_SOURCE, SQ_HUB_TAG, h->comm,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return sq_fail(st, SQ_ERR_MPI, "progress hub: MPI_Recv failed");
        record(h, &s);
    }
    redraw(h);
    return SQ_OK;
}

sq_code sq_hub_drain(sq_hub *h, sq_status *st) {
    if (h->rank != 0) return SQ_OK;
    for (;;) {
        SQ_TRY(sq_hub_poll(h, st));
        int all = 1;
        for (int i = 0; i < h->nfolds; i++)
            all &= h->seen[i] == 2;
        if (all) break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    char line[400];
    sq_hub_format(h, line, sizeof line);
    sq_progress_end(&h->line, line);
    return SQ_OK;
}

void sq_hub_free(sq_hub *h) {
    if (h->req != MPI_REQUEST_NULL)
        (void)sq_comm_wait(&h->req, 1, "progress hub: last MPI_Isend", NULL);
    free(h->table);
    free(h->seen);
    h->table = NULL;
    h->seen = NULL;
}
