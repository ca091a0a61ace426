/* options.c — see options.h. */
#include "core/options.h"

#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const sq_option *sq_options_find(const sq_option *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

static int choice_ok(const char *choices, const char *v) {
    size_t len = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t seg = bar ? (size_t)(bar - p) : strlen(p);
        if (seg == len && strncmp(p, v, len) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static sq_code check_bounds(const sq_option *o, double v, const char *origin, sq_status *st) {
    if (o->min < o->max && (v < o->min || v > o->max))
        return sq_fail(st, SQ_ERR_USAGE, "%s: value %g out of range, expected %g..%g", origin, v,
                       o->min, o->max);
    return SQ_OK;
}

static sq_code set_string(const sq_option *o, const char *v, const char *origin, sq_status *st) {
    if (o->type == SQ_OPT_CHOICE && !choice_ok(o->choices, v))
        return sq_fail(st, SQ_ERR_USAGE, "%s: '%s' is not one of %s", origin, v, o->choices);
    size_t len = strlen(v);
    if (len + 1 > o->cap)
        return sq_fail(st, SQ_ERR_USAGE, "%s: value longer than %zu characters", origin,
                       o->cap - 1);
    memcpy(o->target, v, len + 1);
    return SQ_OK;
}

sq_code sq_option_set_text(const sq_option *o, const char *text, const char *origin,
                           sq_status *st) {
    switch (o->type) {
    case SQ_OPT_FLAG: {
        int v;
        if (!text || !strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "yes"))
            v = 1;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "no"))
            v = 0;
        else
            return sq_fail(st, SQ_ERR_USAGE, "%s: expected true or false, got '%s'", origin, text);
        *(int *)o->target = v;
        return SQ_OK;
    }
    case SQ_OPT_INT: {
        if (!text || !*text) return sq_fail(st, SQ_ERR_USAGE, "%s: expected an integer", origin);
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (*end || errno)
            return sq_fail(st, SQ_ERR_USAGE, "%s: expected an integer, got '%s'", origin, text);
        SQ_TRY(check_bounds(o, (double)v, origin, st));
        *(long long *)o->target = v;
        return SQ_OK;
    }
    case SQ_OPT_DOUBLE: {
        if (!text || !*text) return sq_fail(st, SQ_ERR_USAGE, "%s: expected a number", origin);
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (*end || errno || !isfinite(v))
            return sq_fail(st, SQ_ERR_USAGE, "%s: expected a number, got '%s'", origin, text);
        SQ_TRY(check_bounds(o, v, origin, st));
        *(double *)o->target = v;
        return SQ_OK;
    }
    case SQ_OPT_STRING:
    case SQ_OPT_CHOICE:
        if (!text) return sq_fail(st, SQ_ERR_USAGE, "%s: expected a value", origin);
        return set_string(o, text, origin, st);
    }
    return sq_fail(st, SQ_ERR_INTERNAL, "%s: unknown option type", origin);
}

/* Levenshtein distance, for "did you mean". */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
            d[i][j] = c < x ? (c < y ? c : y) : (x < y ? x : y);
        }
    return d[la][lb];
}

sq_code sq_options_apply_json(const sq_option *opts, int n, const cJSON *obj, const char *origin,
                              sq_status *st) {
    if (!cJSON_IsObject(obj))
        return sq_fail(st, SQ_ERR_USAGE, "%s: expected a JSON object of options, found %s", origin,
                       sq_json_type_name(obj));
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *key = it->string;
        const sq_option *o = sq_options_find(opts, n, key);
        if (!o) {
            const char *best = NULL;
            int bd = 4;
            for (int i = 0; i < n; i++) {
                int d = edit_distance(key, opts[i].name);
                if (d < bd) {
                    bd = d;
                    best = opts[i].name;
                }
            }
            if (best)
                return sq_fail(st, SQ_ERR_USAGE, "%s: unknown key '%s' (did you mean '%s'?)",
                               origin, key, best);
            return sq_fail(st, SQ_ERR_USAGE, "%s: unknown key '%s' (see --help for the options)",
                           origin, key);
        }
        char where[512];
        snprintf(where, sizeof where, "%s: key '%s'", origin, key);
        switch (o->type) {
        case SQ_OPT_FLAG:
            if (!cJSON_IsBool(it))
                return sq_fail(st, SQ_ERR_USAGE, "%s must be true or false, found %s", where,
                               sq_json_type_name(it));
            *(int *)o->target = cJSON_IsTrue(it) ? 1 : 0;
            break;
        case SQ_OPT_INT: {
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it))
                return sq_fail(st, SQ_ERR_USAGE, "%s must be an integer, found %s", where,
                               sq_json_type_name(it));
            if (v != floor(v) || fabs(v) > 9.0e15)
                return sq_fail(st, SQ_ERR_USAGE, "%s must be an integer, found %g", where, v);
            SQ_TRY(check_bounds(o, v, where, st));
            *(long long *)o->target = (long long)v;
            break;
        }
        case SQ_OPT_DOUBLE:
            if (!cJSON_IsNumber(it))
                return sq_fail(st, SQ_ERR_USAGE, "%s must be a number, found %s", where,
                               sq_json_type_name(it));
            SQ_TRY(check_bounds(o, it->valuedouble, where, st));
            *(double *)o->target = it->valuedouble;
            break;
        case SQ_OPT_STRING:
        case SQ_OPT_CHOICE:
            if (!cJSON_IsString(it))
                return sq_fail(st, SQ_ERR_USAGE, "%s must be a string, found %s", where,
                               sq_json_type_name(it));
            SQ_TRY(set_string(o, it->valuestring, where, st));
            break;
        }
    }
    return SQ_OK;
}

sq_code sq_options_apply_file(const sq_option *opts, int n, const char *path, sq_status *st) {
    cJSON *root = NULL;
    sq_code rc = sq_json_read_file(path, &root, st);
    if (rc != SQ_OK) {
        st->code = SQ_ERR_USAGE;
        return SQ_ERR_USAGE;
    }
    rc = sq_options_apply_json(opts, n, root, path, st);
    cJSON_Delete(root);
    return rc;
}

cJSON *sq_options_to_json(const sq_option *opts, int n) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int i = 0; i < n; i++) {
        const sq_option *p = &opts[i];
        switch (p->type) {
        case SQ_OPT_FLAG: cJSON_AddBoolToObject(o, p->name, *(int *)p->target); break;
        case SQ_OPT_INT:
            cJSON_AddNumberToObject(o, p->name, (double)*(long long *)p->target);
            break;
        case SQ_OPT_DOUBLE: cJSON_AddNumberToObject(o, p->name, *(double *)p->target); break;
        case SQ_OPT_STRING:
        case SQ_OPT_CHOICE: cJSON_AddStringToObject(o, p->name, (const char *)p->target); break;
        }
    }
    return o;
}

void sq_options_print_help(FILE *f, const sq_option *opts, int n) {
    for (int i = 0; i < n; i++) {
        const sq_option *o = &opts[i];
        char lhs[96];
        const char *arg = o->type == SQ_OPT_FLAG ? "" : (o->arg_name ? o->arg_name : "VALUE");
        if (o->short_name)
            snprintf(lhs, sizeof lhs, "  -%c, --%s%s%s", o->short_name, o->name, *arg ? " " : "",
                     arg);
        else
            snprintf(lhs, sizeof lhs, "      --%s%s%s", o->name, *arg ? " " : "", arg);
        char def[128] = "";
        switch (o->type) {
        case SQ_OPT_INT:
            snprintf(def, sizeof def, " (default: %lld)", *(long long *)o->target);
            break;
        case SQ_OPT_DOUBLE:
            snprintf(def, sizeof def, " (default: %g)", *(double *)o->target);
            break;
        case SQ_OPT_STRING:
        case SQ_OPT_CHOICE:
            if (((const char *)o->target)[0])
                snprintf(def, sizeof def, " (default: %s)", (const char *)o->target);
            break;
        default: break;
        }
        fprintf(f, "%-32s %s%s", lhs, o->help ? o->help : "", def);
        if (o->type == SQ_OPT_CHOICE) fprintf(f, " [%s]", o->choices);
        fputc('\n', f);
    }
}
