/* progress_hub.h — one combined progress line on world rank 0 over all fold groups.
 *
 * The leader (group rank 0) of each fold group posts small fixed-size status records to world
 * rank 0 with non-blocking sends; a post is skipped, never waited for, while the previous one is
 * still in flight, so no group ever waits for another or for the collector. World rank 0 polls with
 * MPI_Iprobe between its own steps and redraws one line: "f0 e12/200 loss 0.0123 val 0.0210 | ...".
 * At the end every leader posts a final record and rank 0 drains until all folds reported done.
 * Knows nothing of the model: a record is a few numbers.
 */
#ifndef SEGQA_HPC_PROGRESS_HUB_H
#define SEGQA_HPC_PROGRESS_HUB_H

#include "core/log.h"
#include "core/status.h"

#include <mpi.h>

#define SQ_HUB_TAG 7101

typedef struct sq_fold_status {
    int fold;       /* -1: train on all data */
    int epoch;      /* epochs completed */
    int epochs;     /* planned */
    int done;       /* 1 in the final record */
    double loss;    /* last training loss */
    double val_mae; /* last validation MAE, or negative when none yet */
} sq_fold_status;

typedef struct sq_hub {
    MPI_Comm comm; /* world */
    int rank;
    int nfolds;            /* records expected (folds, or 1 when training on all data) */
    sq_fold_status *table; /* rank 0: latest record per fold slot */
    int *seen;
    MPI_Request req;    /* leaders: the send in flight */
    sq_fold_status out; /* leaders: buffer of that send */
    sq_progress line;
    int skipped; /* leaders: posts skipped because the previous one was in flight */
} sq_hub;

/* nfolds: K, or 0 for one model on all data. Collective over world (no communication). */
sq_code sq_hub_init(sq_hub *h, MPI_Comm world, int nfolds, double epochs_total, sq_status *st);
/* A leader reports (rank 0 records directly). Never blocks. */
sq_code sq_hub_post(sq_hub *h, const sq_fold_status *s, sq_status *st);
/* A leader's final record for a fold (blocking send; rank 0 records directly). */
sq_code sq_hub_post_final(sq_hub *h, const sq_fold_status *s, sq_status *st);
/* Rank 0: receive every pending record and redraw the line. No-op elsewhere. */
sq_code sq_hub_poll(sq_hub *h, sq_status *st);
/* Rank 0: poll until every fold has posted its final record. */
sq_code sq_hub_drain(sq_hub *h, sq_status *st);
/* Format the combined line (exposed for tests). */
int sq_hub_format(const sq_hub *h, char *buf, size_t n);
void sq_hub_free(sq_hub *h);

#endif
