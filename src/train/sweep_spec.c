/* sweep_spec.c — the sweep file from a JSON spec, grid or seeded random search (see sweep.h). */
#include "train/sweep.h"

#include "core/fileio.h"
#include "core/json.h"
#include "core/rng.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_SWEEP = 0x53574550u /* "SWEP" */ };

static int valid_name(const char *k) {
    if (!islower((unsigned char)k[0])) return 0;
    for (const char *c = k; *c; c++)
        if (!islower((unsigned char)*c) && !isdigit((unsigned char)*c) && *c != '-') return 0;
    return strlen(k) < 64;
}

/* One list value as option text appended to `line` ("" for false; a flag for true). */
static sq_code append_value(const char *spec, const char *key, const cJSON *v, char *line,
                            size_t cap, sq_status *st) {
    size_t w = strlen(line);
    if (cJSON_IsFalse(v)) return SQ_OK;
    if (cJSON_IsTrue(v)) {
        snprintf(line + w, cap - w, "%s--%s", w ? " " : "", key);
        return SQ_OK;
    }
    if (cJSON_IsNumber(v)) {
        snprintf(line + w, cap - w, "%s--%s %.10g", w ? " " : "", key, v->valuedouble);
        return SQ_OK;
    }
    if (cJSON_IsString(v) && v->valuestring[0] && !strpbrk(v->valuestring, " \t\n\"'\\")) {
        snprintf(line + w, cap - w, "%s--%s %s", w ? " " : "", key, v->valuestring);
        return SQ_OK;
    }
    return sq_fail(st, SQ_ERR_FORMAT,
                   "%s: key '%s': values must be numbers, true/false or strings without spaces "
                   "or quotes, found %s",
                   spec, key,
                   cJSON_IsString(v) ? "a string with spaces or quotes" : sq_json_type_name(v));
}

static sq_code check_spec(const char *spec, const cJSON *root, int random, sq_status *st) {
    if (!cJSON_IsObject(root) || !root->child)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: expected an object of option -> values, found %s",
                       spec, cJSON_IsObject(root) ? "an empty object" : sq_json_type_name(root));
    for (const cJSON *p = root->child; p; p = p->next) {
        if (!valid_name(p->string))
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s: key '%s' is not an option name (lower case, digits, '-'; e.g. "
                           "\"lr\", \"fpn-channels\")",
                           spec, p->string);
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) > 0) continue;
        if (cJSON_IsObject(p)) {
            const cJSON *lo = cJSON_GetObjectItemCaseSensitive(p, "min");
            const cJSON *hi = cJSON_GetObjectItemCaseSensitive(p, "max");
            if (!random)
                return sq_fail(st, SQ_ERR_USAGE,
                               "%s: key '%s' is a range: ranges need --random N (give a list for "
                               "--grid)",
                               spec, p->string);
            if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || hi->valuedouble < lo->valuedouble)
                return sq_fail(st, SQ_ERR_FORMAT,
                               "%s: key '%s': a range needs numbers \"min\" <= \"max\"", spec,
                               p->string);
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "log")) && lo->valuedouble <= 0)
                return sq_fail(st, SQ_ERR_FORMAT, "%s: key '%s': a log range needs min > 0", spec,
                               p->string);
            continue;
        }
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: key '%s': expected a non-empty list of values or a range object, "
                       "found %s",
                       spec, p->string, sq_json_type_name(p));
    }
    return SQ_OK;
}

/* A value drawn from a range object. */
static double draw_range(const cJSON *p, sq_rng *r) {
    double lo = cJSON_GetObjectItemCaseSensitive(p, "min")->valuedouble;
    double hi = cJSON_GetObjectItemCaseSensitive(p, "max")->valuedouble;
    double u = sq_rng_uniform(r);
    double v = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "log"))
                   ? exp(log(lo) + u * (log(hi) - log(lo)))
                   : lo + u * (hi - lo);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "int"))) v = floor(v + 0.5);
    return v;
}

static sq_code random_line(const char *spec, const cJSON *root, uint64_t seed, int line_no,
                           char *line, size_t cap, sq_status *st) {
    sq_rng r;
    sq_rng_init(&r, seed, STREAM_SWEEP, (uint32_t)line_no);
    line[0] = 0;
    for (const cJSON *p = root->child; p; p = p->next) {
        if (cJSON_IsArray(p)) {
            int k = (int)sq_rng_below(&r, (uint32_t)cJSON_GetArraySize(p));
            SQ_TRY(append_value(spec, p->string, cJSON_GetArrayItem(p, k), line, cap, st));
        } else {
            cJSON *num = cJSON_CreateNumber(draw_range(p, &r));
            sq_code rc = append_value(spec, p->string, num, line, cap, st);
            cJSON_Delete(num);
            SQ_TRY(rc);
        }
    }
    return SQ_OK;
}

/* Grid line `index` (mixed radix, the last key fastest). */
static sq_code grid_line(const char *spec, const cJSON *root, long index, char *line, size_t cap,
                         sq_status *st) {
    int nkeys = cJSON_GetArraySize(root);
    line[0] = 0;
    long div = 1;
    const cJSON **keys = malloc((size_t)nkeys * sizeof *keys);
    if (!keys) return sq_fail(st, SQ_ERR_NOMEM, "sweep: out of memory");
    int k = 0;
    for (const cJSON *p = root->child; p; p = p->next)
        keys[k++] = p;
    long *pick = calloc((size_t)nkeys, sizeof *pick);
    if (!pick) {
        free(keys);
        return sq_fail(st, SQ_ERR_NOMEM, "sweep: out of memory");
    }
    for (k = nkeys - 1; k >= 0; k--) {
        long n = cJSON_GetArraySize(keys[k]);
        pick[k] = (index / div) % n;
        div *= n;
    }
    sq_code rc = SQ_OK;
    for (k = 0; k < nkeys && rc == SQ_OK; k++)
        rc = append_value(spec, keys[k]->string, cJSON_GetArrayItem(keys[k], (int)pick[k]), line,
                          cap, st);
    free(pick);
    free(keys);
    return rc;
}

static long grid_size(const cJSON *root) {
    long n = 1;
    for (const cJSON *p = root->child; p && n <= 100000; p = p->next)
        n *= cJSON_GetArraySize(p);
    return n;
}

sq_code sq_sweep_make(const char *spec_path, int random_n, uint64_t seed, const char *out,
                      int *nlines, sq_status *st) {
    cJSON *root = NULL;
    SQ_TRY(sq_json_read_file(spec_path, &root, st));
    sq_code rc = check_spec(spec_path, root, random_n > 0, st);
    long n = random_n > 0 ? random_n : (rc == SQ_OK ? grid_size(root) : 0);
    if (rc == SQ_OK && n > 100000)
        rc = sq_fail(st, SQ_ERR_USAGE, "%s: the grid has over 100000 sets; use --random N",
                     spec_path);
    size_t cap = 4096, len = 0, linecap = 4096;
    char *text = malloc(cap), *line = malloc(linecap);
    if (rc == SQ_OK && (!text || !line)) rc = sq_fail(st, SQ_ERR_NOMEM, "sweep: out of memory");
    for (long i = 0; i < n && rc == SQ_OK; i++) {
        rc = random_n > 0 ? random_line(spec_path, root, seed, (int)i, line, linecap, st)
                          : grid_line(spec_path, root, i, line, linecap, st);
        size_t add = strlen(line) + 1;
        if (rc == SQ_OK && len + add + 1 > cap) {
            while (len + add + 1 > cap)
                cap *= 2;
            char *nt = realloc(text, cap);
            if (!nt)
                rc = sq_fail(st, SQ_ERR_NOMEM, "sweep: out of memory");
            else
                text = nt;
        }
        if (rc == SQ_OK) len += (size_t)snprintf(text + len, cap - len, "%s\n", line);
    }
    if (rc == SQ_OK) rc = sq_write_file_atomic(out, text, len, st);
    if (rc == SQ_OK && nlines) *nlines = (int)n;
    free(text);
    free(line);
    cJSON_Delete(root);
    return rc;
}
