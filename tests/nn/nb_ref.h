/* nb_ref.h — float64 references of the backend ops, written from the contract in nn/backend.h
 * (PyTorch semantics), used by the conformance suite on the CPU backend. Convolutions are
 * evaluated per element (y at an output index, dx at an input index, dw at a weight index), so a
 * large case can check a sample of points; every other op is cheap enough to compute whole.
 */
#ifndef SEGQA_TESTS_NN_NB_REF_H
#define SEGQA_TESTS_NN_NB_REF_H

#include "nn/backend.h"

#include <stddef.h>

/* ---- convolution (groups 1: dense; groups = in.c = cout: depthwise) ------------------------ */

typedef struct nb_conv_ref {
    const sq_conv3d *p;
    int groups;
    const float *x, *w, *b, *dy; /* b may be NULL */
} nb_conv_ref;

double nb_ref_conv_y(const nb_conv_ref *r, size_t yi);
double nb_ref_conv_dx(const nb_conv_ref *r, size_t xi);
double nb_ref_conv_dw(const nb_conv_ref *r, size_t wi);
double nb_ref_conv_db(const nb_conv_ref *r, int oc);

/* ---- activations ----------------------------------------------------------------------------- */

double nb_ref_act(sq_act a, double z);
double nb_ref_act_grad(sq_act a, double z); /* d act / dz */

/* ---- BatchNorm ---------------------------------------------------------------------------------
 */

typedef struct nb_bn_ref_in {
    sq_shape5 s;
    double eps, momentum;
    int training, replicas; /* replicas: the group is that many identical copies of the batch */
    sq_act act;
    const float *x, *gamma, *beta, *rm, *rv, *res; /* res may be NULL */
} nb_bn_ref_in;

/* y, the updated running stats rm/rv (training) and save_mean/save_invstd. */
void nb_ref_bn_fwd(const nb_bn_ref_in *in, double *y, double *rm, double *rv, double *sm,
                   double *si);
/* From the save_* inputs sm, si (float, as the backend gets them) and dy: dx, dgamma, dbeta
 * (not accumulated). */
void nb_ref_bn_bwd(const nb_bn_ref_in *in, const float *sm, const float *si, const float *dy,
                   double *dx, double *dgamma, double *dbeta);

/* ---- pooling, resize, fusion --------------------------------------------------------------- */

/* y and the first-max routing of dy into dx. */
void nb_ref_pool(const sq_pool3d *p, const float *x, const float *dy, double *y, double *dx);
/* y and the scatter-add of dy into dx. */
void nb_ref_resize(const sq_resize3d *p, const float *x, const float *dy, double *y, double *dx);
/* y, dxs[i] (n each) and dw (k) for k inputs of n elements. */
void nb_ref_fuse(size_t n, int k, const float *const *xs, const float *w, const float *dy,
                 double *y, double **dxs, double *dw);

#endif
