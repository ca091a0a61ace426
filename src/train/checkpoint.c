/* checkpoint.c — write and read segqa checkpoints in HDF5 (layout in checkpoint.h). */
#include "train/checkpoint.h"
#include "data/h5attr.h"

#include "core/json.h"

#include <glob.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CKPT_FORMAT  "segqa-checkpoint"
#define CKPT_VERSION 2 /* 2: model_config gained image_scale and bn_momentum */

/* Silence HDF5's own error printing while we are inside; errors come back as values. */
typedef struct quiet {
    H5E_auto2_t fn;
    void *data;
} quiet;
static void quiet_on(quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}
static void quiet_off(const quiet *q) {
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* ---- attributes
 * ---------------------------------------------------------------------------------- */

static int attr_write(hid_t obj, const char *name, hid_t type, int n, const void *v) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return ok;
}

static int attr_write_str(hid_t obj, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) ? strlen(s) : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, t, strlen(s) ? s : " ") >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return ok;
}

static int attr_read(hid_t obj, const char *name, hid_t memtype, void *v) {
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, memtype, v) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

/* ---- datasets
 * ------------------------------------------------------------------------------------ */

static int write_tensor(hid_t grp, const sq_param_info *pi, const float *data) {
    hsize_t dims[5];
    for (int i = 0; i < pi->ndim; i++)
        dims[i] = (hsize_t)pi->shape[i];
    hid_t sp = H5Screate_simple(pi->ndim, dims, NULL);
    hid_t d = H5Dcreate2(grp, pi->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

static sq_code write_group(hid_t parent, const char *gname, int n,
                           const sq_param_info *(*get)(const sq_model *, int), const sq_model *m,
                           const float *flat, const char *path, sq_status *st) {
    hid_t g = H5Gcreate2(parent, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return sq_fail(st, SQ_ERR_IO, "%s: cannot create group '%s'", path, gname);
    for (int i = 0; i < n; i++) {
        const sq_param_info *pi = get(m, i);
        if (!write_tensor(g, pi, flat + pi->off)) {
            H5Gclose(g);
            return sq_fail(st, SQ_ERR_IO, "%s: cannot write '%s/%s'", path, gname, pi->name);
        }
    }
    H5Gclose(g);
    return SQ_OK;
}

/* Read /<gname>/<name> for every registry tensor into flat, checking presence and shape, and that
 * the file holds nothing else. */
/* A NaN or Inf weight would make every prediction NaN: refuse the file, naming the tensor. */
static sq_code check_finite(const sq_param_info *pi, const float *v, const char *path,
                            const char *gname, sq_status *st) {
    size_t n = 1;
    for (int a = 0; a < pi->ndim; a++)
        n *= (size_t)pi->shape[a];
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s: tensor '%s/%s' element %zu is %g, expected finite values", path,
                           gname, pi->name, i, (double)v[i]);
    return SQ_OK;
}

static sq_code read_group(hid_t parent, const char *gname, int n,
                          const sq_param_info *(*get)(const sq_model *, int), const sq_model *m,
                          float *flat, const char *path, sq_status *st) {
    if (H5Lexists(parent, gname, H5P_DEFAULT) <= 0)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: group '%s' is missing", path, gname);
    hid_t g = H5Gopen2(parent, gname, H5P_DEFAULT);
    if (g < 0) return sq_fail(st, SQ_ERR_FORMAT, "%s: cannot open group '%s'", path, gname);
    sq_code rc = SQ_OK;
    for (int i = 0; i < n && rc == SQ_OK; i++) {
        const sq_param_info *pi = get(m, i);
        if (H5Lexists(g, pi->name, H5P_DEFAULT) <= 0) {
            char want[96] = "";
            for (int a = 0; a < pi->ndim; a++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", a ? "x" : "",
                         pi->shape[a]);
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: tensor '%s/%s' (shape %s) is missing", path, gname,
                         pi->name, want);
            break;
        }
        hid_t d = H5Dopen2(g, pi->name, H5P_DEFAULT);
        hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
        hsize_t dims[8] = {0};
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (nd >= 0 && nd <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
        int same = nd == pi->ndim;
        for (int a = 0; same && a < nd; a++)
            same = dims[a] == (hsize_t)pi->shape[a];
        if (!same) {
            char want[96] = "", got[96] = "";
            for (int a = 0; a < pi->ndim; a++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", a ? "x" : "",
                         pi->shape[a]);
            for (int a = 0; a < nd && a < 8; a++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", a ? "x" : "",
                         (unsigned long long)dims[a]);
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: tensor '%s/%s' has shape %s, the model expects %s",
                         path, gname, pi->name, got, want);
        } else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat + pi->off) <
                   0) {
            rc = sq_fail(st, SQ_ERR_IO, "%s: cannot read '%s/%s'", path, gname, pi->name);
        } else {
            rc = check_finite(pi, flat + pi->off, path, gname, st);
        }
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
    }
    if (rc == SQ_OK) {
        H5G_info_t gi;
        if (H5Gget_info(g, &gi) >= 0 && gi.nlinks != (hsize_t)n) {
            /* name the first tensor the model does not know */
            for (hsize_t i = 0; i < gi.nlinks; i++) {
                char name[256];
                if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                       H5P_DEFAULT) < 0)
                    continue;
                if (sq_model_find(m, get == sq_model_state ? 1 : 0, name) < 0) {
                    rc =
                        sq_fail(st, SQ_ERR_FORMAT,
                                "%s: tensor '%s/%s' is not part of this model (%llu tensors in the "
                                "file, %d in the model)",
                                path, gname, name, (unsigned long long)gi.nlinks, n);
                    break;
                }
            }
        }
    }
    H5Gclose(g);
    return rc;
}

/* ---- save
 * ---------------------------------------------------------------------------------------- */

static sq_code save_to(hid_t f, const char *path, const sq_model *m, const sq_adam_opt *opt,
                       const sq_ckpt_info *info, sq_status *st) {
    sq_backend *be = sq_model_backend(m);
    (void)be;
    int ok = attr_write_str(f, "format", CKPT_FORMAT);
    int ver = CKPT_VERSION;
    ok = ok && attr_write(f, "version", H5T_NATIVE_INT, 1, &ver);
    long long step = info ? info->step : 0;
    int epoch = info ? info->epoch : 0;
    ok = ok && attr_write(f, "step", H5T_NATIVE_LLONG, 1, &step);
    ok = ok && attr_write(f, "epoch", H5T_NATIVE_INT, 1, &epoch);
    cJSON *cj = sq_model_config_to_json(sq_model_get_config(m));
    char *cs = cj ? cJSON_PrintUnformatted(cj) : NULL;
    cJSON_Delete(cj);
    if (!cs) return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    ok = ok && attr_write_str(f, "model_config", cs);
    free(cs);
    const char *pp = info && info->preproc_config[0] ? info->preproc_config : "{}";
    ok = ok && attr_write_str(f, "preproc_config", pp);
    if (info && info->calibration[0])
        ok = ok && attr_write_str(f, "calibration", info->calibration);
    if (info && info->recalibration[0])
        ok = ok && attr_write_str(f, "recalibration", info->recalibration);
    if (info && info->has_rng) {
        const sq_rng *r = &info->rng;
        ok = ok && attr_write(f, "rng_key", H5T_NATIVE_UINT32, 2, r->key);
        ok = ok && attr_write(f, "rng_ctr", H5T_NATIVE_UINT32, 4, r->ctr);
        ok = ok && attr_write(f, "rng_buf", H5T_NATIVE_UINT32, 4, r->buf);
        ok = ok && attr_write(f, "rng_idx", H5T_NATIVE_INT, 1, &r->idx);
        ok = ok && attr_write(f, "rng_has_spare", H5T_NATIVE_INT, 1, &r->has_spare);
        ok = ok && attr_write(f, "rng_spare", H5T_NATIVE_FLOAT, 1, &r->spare);
    }
    if (!ok) return sq_fail(st, SQ_ERR_IO, "%s: cannot write attributes", path);

    size_t np = sq_model_params_floats(m), ns = sq_model_state_floats(m);
    size_t nmax = np > ns ? np : ns;
    float *buf = malloc((nmax ? nmax : 1) * sizeof(float));
    float *buf2 = NULL;
    if (!buf) return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    sq_code rc = sq_model_get_params(m, buf, st);
    if (rc == SQ_OK)
        rc = write_group(f, "params", sq_model_nparams(m), sq_model_param, m, buf, path, st);
    if (rc == SQ_OK) rc = sq_model_get_state(m, buf, st);
    if (rc == SQ_OK)
        rc = write_group(f, "buffers", sq_model_nstate(m), sq_model_state, m, buf, path, st);
    if (rc == SQ_OK && opt) {
        if (sq_adam_size(opt) != np) {
            rc = sq_fail(st, SQ_ERR_INTERNAL, "%s: optimiser size %zu != model's %zu", path,
                         sq_adam_size(opt), np);
        } else if (!(buf2 = malloc((np ? np : 1) * sizeof(float)))) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
        } else {
            long ostep = 0;
            rc = sq_adam_get_state(opt, buf, buf2, &ostep, st);
            hid_t g =
                rc == SQ_OK ? H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
            if (rc == SQ_OK && g < 0)
                rc = sq_fail(st, SQ_ERR_IO, "%s: cannot create 'optim'", path);
            if (rc == SQ_OK) {
                long long s = ostep;
                const sq_adam_config *c = sq_adam_get_config(opt);
                int aok = attr_write(g, "step", H5T_NATIVE_LLONG, 1, &s) &&
                          attr_write(g, "beta1", H5T_NATIVE_FLOAT, 1, &c->beta1) &&
                          attr_write(g, "beta2", H5T_NATIVE_FLOAT, 1, &c->beta2) &&
                          attr_write(g, "eps", H5T_NATIVE_FLOAT, 1, &c->eps) &&
                          attr_write(g, "weight_decay", H5T_NATIVE_FLOAT, 1, &c->weight_decay) &&
                          attr_write_str(g, "type", "adam");
                if (!aok)
                    rc = sq_fail(st, SQ_ERR_IO, "%s: cannot write optimiser attributes", path);
            }
            if (rc == SQ_OK)
                rc = write_group(g, "m", sq_model_nparams(m), sq_model_param, m, buf, path, st);
            if (rc == SQ_OK)
                rc = write_group(g, "v", sq_model_nparams(m), sq_model_param, m, buf2, path, st);
            if (g >= 0) H5Gclose(g);
        }
    }
    free(buf);
    free(buf2);
    return rc;
}

/* A full disk is refused before HDF5 sees it: libhdf5 1.10 leaves a file whose close failed with
 * ENOSPC half-registered, and crashes at exit closing it. Needs the tensors plus 10 % + 1 MB. */
static sq_code check_space(const char *path, const sq_model *m, const sq_adam_opt *opt,
                           sq_status *st) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return SQ_OK; /* unknown: let the write report it */
    double floats = (double)sq_model_params_floats(m) * (opt ? 3 : 1) + sq_model_state_floats(m);
    double need = floats * 4 * 1.1 + (1 << 20), avail = (double)vfs.f_bavail * vfs.f_frsize;
    if (need > avail)
        return sq_fail(st, SQ_ERR_IO,
                       "%s: No space left on device: the checkpoint needs about %.1f MB, %.1f MB "
                       "free there",
                       path, need / 1e6, avail / 1e6);
    return SQ_OK;
}

int sq_checkpoint_remove_stale(const char *path) {
    char pattern[4200];
    if (snprintf(pattern, sizeof pattern, "%s.tmp.*", path) >= (int)sizeof pattern) return 0;
    glob_t g;
    int n = 0;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            n += unlink(g.gl_pathv[i]) == 0;
    globfree(&g);
    return n;
}

sq_code sq_checkpoint_save(const char *path, const sq_model *m, const sq_adam_opt *opt,
                           const sq_ckpt_info *info, sq_status *st) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sq_fail(st, SQ_ERR_USAGE, "checkpoint path too long");
    SQ_TRY(check_space(path, m, opt, st));
    quiet q;
    quiet_on(&q);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        quiet_off(&q);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot create checkpoint file", tmp);
    }
    sq_code rc = save_to(f, path, m, opt, info, st);
    if (H5Fclose(f) < 0 && rc == SQ_OK) rc = sq_fail(st, SQ_ERR_IO, "%s: cannot close", tmp);
    quiet_off(&q);
    if (rc == SQ_OK && rename(tmp, path) != 0)
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot rename from %s", path, tmp);
    if (rc != SQ_OK) unlink(tmp);
    return rc;
}

static sq_code copy_file(const char *from, const char *to, sq_status *st) {
    FILE *in = fopen(from, "rb");
    if (!in) return sq_fail(st, SQ_ERR_IO, "%s: cannot open", from);
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot create", to);
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out) != 0) ok = 0;
    if (!ok) {
        unlink(to);
        return sq_fail(st, SQ_ERR_IO, "%s: copy to %s failed", from, to);
    }
    return SQ_OK;
}

sq_code sq_checkpoint_set_attr(const char *path, const char *name, const char *json,
                               sq_status *st) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sq_fail(st, SQ_ERR_USAGE, "checkpoint path too long");
    SQ_TRY(copy_file(path, tmp, st));
    quiet q;
    quiet_on(&q);
    sq_code rc = SQ_OK;
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) rc = sq_fail(st, SQ_ERR_FORMAT, "%s: not an HDF5 checkpoint", path);
    if (rc == SQ_OK && H5Aexists(f, name) > 0 && H5Adelete(f, name) < 0)
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot replace the %s", path, name);
    if (rc == SQ_OK && !attr_write_str(f, name, json))
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot write the %s", path, name);
    if (f >= 0 && H5Fclose(f) < 0 && rc == SQ_OK)
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot close", tmp);
    quiet_off(&q);
    if (rc == SQ_OK && rename(tmp, path) != 0)
        rc = sq_fail(st, SQ_ERR_IO, "%s: cannot rename from %s", path, tmp);
    if (rc != SQ_OK) unlink(tmp);
    return rc;
}

sq_code sq_checkpoint_set_calibration(const char *path, const char *json, sq_status *st) {
    return sq_checkpoint_set_attr(path, "calibration", json, st);
}

/* ---- load
 * ---------------------------------------------------------------------------------------- */

static sq_code read_config_f(hid_t f, const char *path, sq_model_config *c, sq_status *st) {
    char *fmt = sq_h5_attr_read_str(f, "format");
    int ok = fmt && !strcmp(fmt, CKPT_FORMAT);
    free(fmt);
    if (!ok)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: attribute 'format' is not '%s' (not a segqa checkpoint)", path,
                       CKPT_FORMAT);
    int ver = 0;
    if (!attr_read(f, "version", H5T_NATIVE_INT, &ver) || ver != CKPT_VERSION)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: attribute 'version' is %d, expected %d", path, ver,
                       CKPT_VERSION);
    char *cs = sq_h5_attr_read_str(f, "model_config");
    if (!cs) return sq_fail(st, SQ_ERR_FORMAT, "%s: attribute 'model_config' is missing", path);
    cJSON *j = NULL;
    sq_code rc = sq_json_parse(cs, "model_config", &j, st);
    free(cs);
    if (rc != SQ_OK) return sq_context(st, "%s", path);
    *c = sq_model_config_default();
    rc = sq_model_config_from_json(j, c, path, st);
    cJSON_Delete(j);
    return rc;
}

sq_code sq_checkpoint_read_config(const char *path, sq_model_config *c, sq_status *st) {
    quiet q;
    quiet_on(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        quiet_off(&q);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot open as HDF5", path);
    }
    sq_code rc = read_config_f(f, path, c, st);
    H5Fclose(f);
    quiet_off(&q);
    return rc;
}

static sq_code config_diff(const char *path, const sq_model_config *a, const sq_model_config *b,
                           sq_status *st) {
#define CMPI(f)                                                                                    \
    if (a->f != b->f)                                                                              \
        return sq_fail(st, SQ_ERR_FORMAT,                                                          \
                       "%s: model config '" #f "' is %d in the checkpoint, %d in the model", path, \
                       (int)a->f, (int)b->f);
    CMPI(in_channels)
    CMPI(depth)
    CMPI(height)
    CMPI(width)
    CMPI(stem_channels)
    CMPI(expansion)
    CMPI(fpn_channels)
    CMPI(fpn_repeats)
#undef CMPI
    if (a->depth_rule != b->depth_rule)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: model config 'depth_rule' is %s in the checkpoint, %s in the model",
                       path, sq_depth_rule_name(a->depth_rule), sq_depth_rule_name(b->depth_rule));
    if (a->se_ratio != b->se_ratio)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: model config 'se_ratio' is %g in the checkpoint, %g in the model", path,
                       a->se_ratio, b->se_ratio);
    for (int i = 0; i < 3; i++)
        if (a->spacing[i] != b->spacing[i])
            return sq_fail(
                st, SQ_ERR_FORMAT,
                "%s: model config 'spacing'[%d] is %g in the checkpoint, %g in the model", path, i,
                a->spacing[i], b->spacing[i]);
    return SQ_OK;
}

static sq_code load_from(hid_t f, const char *path, sq_model *m, sq_adam_opt *opt,
                         sq_ckpt_info *info, sq_status *st) {
    sq_model_config c;
    SQ_TRY(read_config_f(f, path, &c, st));
    SQ_TRY(config_diff(path, &c, sq_model_get_config(m), st));
    size_t np = sq_model_params_floats(m), ns = sq_model_state_floats(m);
    float *p = calloc(np ? np : 1, sizeof(float));
    float *s = calloc(ns ? ns : 1, sizeof(float));
    float *om = NULL, *ov = NULL;
    sq_code rc = (p && s) ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    if (rc == SQ_OK)
        rc = read_group(f, "params", sq_model_nparams(m), sq_model_param, m, p, path, st);
    if (rc == SQ_OK)
        rc = read_group(f, "buffers", sq_model_nstate(m), sq_model_state, m, s, path, st);
    long long ostep = 0;
    if (rc == SQ_OK && opt) {
        om = calloc(np ? np : 1, sizeof(float));
        ov = calloc(np ? np : 1, sizeof(float));
        if (!om || !ov)
            rc = sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
        else if (H5Lexists(f, "optim", H5P_DEFAULT) <= 0)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: no optimiser state ('optim' group missing)", path);
        else {
            hid_t g = H5Gopen2(f, "optim", H5P_DEFAULT);
            if (!attr_read(g, "step", H5T_NATIVE_LLONG, &ostep))
                rc = sq_fail(st, SQ_ERR_FORMAT, "%s: attribute 'optim/step' missing", path);
            if (rc == SQ_OK)
                rc = read_group(g, "m", sq_model_nparams(m), sq_model_param, m, om, path, st);
            if (rc == SQ_OK)
                rc = read_group(g, "v", sq_model_nparams(m), sq_model_param, m, ov, path, st);
            H5Gclose(g);
        }
    }
    if (rc == SQ_OK && info) {
        memset(info, 0, sizeof *info);
        long long step = 0;
        attr_read(f, "step", H5T_NATIVE_LLONG, &step);
        info->step = (long)step;
        attr_read(f, "epoch", H5T_NATIVE_INT, &info->epoch);
        char *pp = sq_h5_attr_read_str(f, "preproc_config");
        if (pp) {
            snprintf(info->preproc_config, sizeof info->preproc_config, "%s", pp);
            free(pp);
        }
        char *cal = sq_h5_attr_read_str(f, "calibration");
        if (cal) {
            snprintf(info->calibration, sizeof info->calibration, "%s", cal);
            free(cal);
        }
        char *rec = sq_h5_attr_read_str(f, "recalibration");
        if (rec) {
            snprintf(info->recalibration, sizeof info->recalibration, "%s", rec);
            free(rec);
        }
        sq_rng *r = &info->rng;
        info->has_rng = attr_read(f, "rng_key", H5T_NATIVE_UINT32, r->key) &&
                        attr_read(f, "rng_ctr", H5T_NATIVE_UINT32, r->ctr) &&
                        attr_read(f, "rng_buf", H5T_NATIVE_UINT32, r->buf) &&
                        attr_read(f, "rng_idx", H5T_NATIVE_INT, &r->idx) &&
                        attr_read(f, "rng_has_spare", H5T_NATIVE_INT, &r->has_spare) &&
                        attr_read(f, "rng_spare", H5T_NATIVE_FLOAT, &r->spare);
    }
    /* only now touch the model: a failed load leaves it as it was */
    if (rc == SQ_OK) rc = sq_model_set_params(m, p, st);
    if (rc == SQ_OK) rc = sq_model_set_state(m, s, st);
    if (rc == SQ_OK && opt) rc = sq_adam_set_state(opt, om, ov, (long)ostep, st);
    free(p);
    free(s);
    free(om);
    free(ov);
    return rc;
}

sq_code sq_checkpoint_load(const char *path, sq_model *m, sq_adam_opt *opt, sq_ckpt_info *info,
                           sq_status *st) {
    quiet q;
    quiet_on(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        quiet_off(&q);
        return sq_fail(st, SQ_ERR_IO, "%s: cannot open as HDF5", path);
    }
    sq_code rc = load_from(f, path, m, opt, info, st);
    H5Fclose(f);
    quiet_off(&q);
    return rc;
}
