/* splits.c — see splits.h. */
#include "train/splits.h"

#include "core/json.h"
#include "core/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sq_splits_free(sq_splits *s) {
    free(s->case_id);
    free(s->patient);
    free(s->fold);
    memset(s, 0, sizeof *s);
}

static sq_code splits_alloc(sq_splits *s, int n, sq_status *st) {
    memset(s, 0, sizeof *s);
    size_t m = (size_t)(n > 0 ? n : 1);
    s->case_id = calloc(m, sizeof *s->case_id);
    s->patient = calloc(m, sizeof *s->patient);
    s->fold = calloc(m, sizeof *s->fold);
    if (!s->case_id || !s->patient || !s->fold) {
        sq_splits_free(s);
        return sq_fail(st, SQ_ERR_NOMEM, "splits: out of memory");
    }
    s->ncases = n;
    return SQ_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static sq_code copy_id(char dst[SQ_ID_MAX], const char *src, const char *what, sq_status *st) {
    size_t len = strlen(src);
    if (len == 0) return sq_fail(st, SQ_ERR_FORMAT, "splits: empty %s id", what);
    if (len >= SQ_ID_MAX)
        return sq_fail(st, SQ_ERR_FORMAT, "splits: %s id '%.40s...' longer than %d characters",
                       what, src, SQ_ID_MAX - 1);
    memcpy(dst, src, len + 1);
    return SQ_OK;
}

sq_code sq_splits_make(const char *const *case_ids, const char *const *patient_ids, int n,
                       int nfolds, uint64_t seed, sq_splits *out, sq_status *st) {
    if (nfolds < 2) return sq_fail(st, SQ_ERR_USAGE, "folds = %d: expected at least 2", nfolds);
    SQ_TRY(splits_alloc(out, n, st));
    out->nfolds = nfolds;
    out->seed = seed;
    sq_code rc = SQ_OK;
    for (int i = 0; i < n && rc == SQ_OK; i++) {
        rc = copy_id(out->case_id[i], case_ids[i], "case", st);
        if (rc == SQ_OK) rc = copy_id(out->patient[i], patient_ids[i], "patient", st);
    }
    /* Unique patients in sorted order (independent of the input order). */
    const char **uniq = calloc((size_t)(n > 0 ? n : 1), sizeof *uniq);
    int *pfold = NULL, *load = NULL;
    uint32_t *perm = NULL;
    if (rc == SQ_OK && !uniq) rc = sq_fail(st, SQ_ERR_NOMEM, "splits: out of memory");
    int np = 0;
    if (rc == SQ_OK) {
        for (int i = 0; i < n; i++)
            uniq[i] = out->patient[i];
        qsort(uniq, (size_t)n, sizeof *uniq, cmp_str);
        for (int i = 0; i < n; i++)
            if (np == 0 || strcmp(uniq[np - 1], uniq[i]) != 0) uniq[np++] = uniq[i];
        /* duplicate case ids are an error */
        const char **cs = malloc((size_t)(n > 0 ? n : 1) * sizeof *cs);
        if (!cs) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "splits: out of memory");
        } else {
            for (int i = 0; i < n; i++)
                cs[i] = out->case_id[i];
            qsort(cs, (size_t)n, sizeof *cs, cmp_str);
            for (int i = 1; i < n && rc == SQ_OK; i++)
                if (!strcmp(cs[i], cs[i - 1]))
                    rc = sq_fail(st, SQ_ERR_FORMAT, "splits: case id '%s' appears twice", cs[i]);
            free(cs);
        }
    }
    if (rc == SQ_OK && np < nfolds)
        rc = sq_fail(st, SQ_ERR_USAGE, "%d folds need at least %d patients, found %d", nfolds,
                     nfolds, np);
    if (rc == SQ_OK) {
        pfold = calloc((size_t)np, sizeof *pfold);
        load = calloc((size_t)nfolds, sizeof *load);
        perm = calloc((size_t)np, sizeof *perm);
        if (!pfold || !load || !perm) rc = sq_fail(st, SQ_ERR_NOMEM, "splits: out of memory");
    }
    if (rc == SQ_OK) {
        /* cases per patient */
        int *ncase = calloc((size_t)np, sizeof *ncase);
        if (!ncase) {
            rc = sq_fail(st, SQ_ERR_NOMEM, "splits: out of memory");
        } else {
            for (int i = 0; i < n; i++) {
                const char *key = out->patient[i];
                const char **hit = bsearch(&key, uniq, (size_t)np, sizeof *uniq, cmp_str);
                ncase[hit - uniq]++;
            }
            sq_rng_permutation(seed, 0x5f11u, perm, (uint32_t)np);
            for (int k = 0; k < np; k++) {
                int p = (int)perm[k], best = 0;
                for (int f = 1; f < nfolds; f++)
                    if (load[f] < load[best]) best = f;
                pfold[p] = best;
                load[best] += ncase[p];
            }
            for (int i = 0; i < n; i++) {
                const char *key = out->patient[i];
                const char **hit = bsearch(&key, uniq, (size_t)np, sizeof *uniq, cmp_str);
                out->fold[i] = pfold[hit - uniq];
            }
            free(ncase);
        }
    }
    free(uniq);
    free(pfold);
    free(load);
    free(perm);
    if (rc != SQ_OK) sq_splits_free(out);
    return rc;
}

static sq_code check_patients(const sq_splits *s, const char *origin, sq_status *st);

sq_code sq_splits_by_group(const char *const *case_ids, const char *const *patient_ids,
                           const int *group_of, int n, int ngroups, sq_splits *out, sq_status *st) {
    if (ngroups < 2)
        return sq_fail(st, SQ_ERR_USAGE, "leave-one-out folds need at least 2 groups, found %d",
                       ngroups);
    SQ_TRY(splits_alloc(out, n, st));
    out->nfolds = ngroups;
    sq_code rc = SQ_OK;
    for (int i = 0; i < n && rc == SQ_OK; i++) {
        rc = copy_id(out->case_id[i], case_ids[i], "case", st);
        if (rc == SQ_OK) rc = copy_id(out->patient[i], patient_ids[i], "patient", st);
        if (rc == SQ_OK && (group_of[i] < 0 || group_of[i] >= ngroups))
            rc = sq_fail(st, SQ_ERR_INTERNAL, "splits: case '%s' in group %d of %d", case_ids[i],
                         group_of[i], ngroups);
        out->fold[i] = group_of[i];
    }
    if (rc == SQ_OK) rc = check_patients(out, "leave-one-site-out folds", st);
    for (int f = 0; rc == SQ_OK && f < ngroups; f++)
        if (sq_splits_count(out, f) == 0)
            rc = sq_fail(st, SQ_ERR_USAGE, "leave-one-site-out: site %d has no cases", f);
    if (rc != SQ_OK) sq_splits_free(out);
    return rc;
}

int sq_splits_fold_of(const sq_splits *s, const char *case_id) {
    for (int i = 0; i < s->ncases; i++)
        if (!strcmp(s->case_id[i], case_id)) return s->fold[i];
    return -1;
}

int sq_splits_count(const sq_splits *s, int f) {
    int c = 0;
    for (int i = 0; i < s->ncases; i++)
        c += s->fold[i] == f;
    return c;
}

sq_code sq_splits_save(const sq_splits *s, const char *path, sq_status *st) {
    cJSON *root = cJSON_CreateObject(), *cases = cJSON_CreateArray();
    if (!root || !cases) {
        cJSON_Delete(root);
        cJSON_Delete(cases);
        return sq_fail(st, SQ_ERR_NOMEM, "%s: out of memory", path);
    }
    cJSON_AddStringToObject(root, "format", "segqa-splits");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddNumberToObject(root, "folds", s->nfolds);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->seed);
    cJSON_AddStringToObject(root, "seed", seed);
    cJSON_AddItemToObject(root, "cases", cases);
    for (int i = 0; i < s->ncases; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "case", s->case_id[i]);
        cJSON_AddStringToObject(c, "patient", s->patient[i]);
        cJSON_AddNumberToObject(c, "fold", s->fold[i]);
        cJSON_AddItemToArray(cases, c);
    }
    sq_code rc = sq_json_write_file(path, root, st);
    cJSON_Delete(root);
    return rc;
}

static sq_code check_patients(const sq_splits *s, const char *origin, sq_status *st) {
    for (int i = 0; i < s->ncases; i++)
        for (int j = i + 1; j < s->ncases; j++) {
            if (!strcmp(s->case_id[i], s->case_id[j]))
                return sq_fail(st, SQ_ERR_FORMAT, "%s: case '%s' listed twice", origin,
                               s->case_id[i]);
            if (!strcmp(s->patient[i], s->patient[j]) && s->fold[i] != s->fold[j])
                return sq_fail(
                    st, SQ_ERR_FORMAT,
                    "%s: patient '%s' is in fold %d (case '%s') and fold %d (case '%s'); "
                    "folds must be per patient",
                    origin, s->patient[i], s->fold[i], s->case_id[i], s->fold[j], s->case_id[j]);
        }
    return SQ_OK;
}

sq_code sq_splits_load(const char *path, sq_splits *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    SQ_TRY(sq_json_read_file(path, &root, st));
    const char *fmt = NULL, *seed = NULL;
    long long version = 0, folds = 0;
    sq_code rc = sq_json_get_string(root, "format", &fmt, 0, path, st);
    if (rc == SQ_OK && strcmp(fmt, "segqa-splits") != 0)
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: format '%s', expected 'segqa-splits'", path, fmt);
    if (rc == SQ_OK) rc = sq_json_get_int(root, "version", &version, 0, path, st);
    if (rc == SQ_OK && version != 1)
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: version %lld, expected 1", path, version);
    if (rc == SQ_OK) rc = sq_json_get_int(root, "folds", &folds, 0, path, st);
    if (rc == SQ_OK && (folds < 2 || folds > 1000))
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: folds = %lld, expected 2..1000", path, folds);
    if (rc == SQ_OK) rc = sq_json_get_string(root, "seed", &seed, 1, path, st);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (rc == SQ_OK && !cJSON_IsArray(cases))
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: key 'cases' must be an array, found %s", path,
                     sq_json_type_name(cases));
    if (rc == SQ_OK) rc = splits_alloc(out, cJSON_GetArraySize(cases), st);
    if (rc == SQ_OK) {
        out->nfolds = (int)folds;
        out->seed = seed ? strtoull(seed, NULL, 10) : 0;
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            char where[SQ_ID_MAX + 64];
            snprintf(where, sizeof where, "%s: cases[%d]", path, i);
            const char *cid = NULL, *pid = NULL;
            long long f = -1;
            rc = sq_json_get_string(c, "case", &cid, 0, where, st);
            if (rc == SQ_OK) rc = sq_json_get_string(c, "patient", &pid, 0, where, st);
            if (rc == SQ_OK) rc = sq_json_get_int(c, "fold", &f, 0, where, st);
            if (rc == SQ_OK && (f < 0 || f >= folds))
                rc = sq_fail(st, SQ_ERR_FORMAT, "%s: fold %lld, expected 0..%lld", where, f,
                             folds - 1);
            if (rc == SQ_OK) rc = copy_id(out->case_id[i], cid, "case", st);
            if (rc == SQ_OK) rc = copy_id(out->patient[i], pid, "patient", st);
            if (rc != SQ_OK) break;
            out->fold[i++] = (int)f;
        }
    }
    if (rc == SQ_OK) rc = check_patients(out, path, st);
    for (int f = 0; rc == SQ_OK && f < out->nfolds; f++)
        if (sq_splits_count(out, f) == 0)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: fold %d has no cases", path, f);
    cJSON_Delete(root);
    if (rc != SQ_OK) sq_splits_free(out);
    return rc;
}

sq_code sq_splits_check_cases(const sq_splits *s, const char *const *case_ids,
                              const char *const *patient_ids, int n, const char *origin,
                              sq_status *st) {
    for (int i = 0; i < n; i++) {
        int found = -1;
        for (int j = 0; j < s->ncases && found < 0; j++)
            if (!strcmp(s->case_id[j], case_ids[i])) found = j;
        if (found < 0)
            return sq_fail(st, SQ_ERR_FORMAT, "%s: case '%s' of the data set has no fold", origin,
                           case_ids[i]);
        if (strcmp(s->patient[found], patient_ids[i]) != 0)
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s: case '%s' belongs to patient '%s' in the splits but '%s' in the "
                           "data set",
                           origin, case_ids[i], s->patient[found], patient_ids[i]);
    }
    if (s->ncases != n)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: lists %d cases, the data set has %d (cases not in the data set)",
                       origin, s->ncases, n);
    return SQ_OK;
}
