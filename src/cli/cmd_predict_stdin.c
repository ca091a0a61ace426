/* cmd_predict_stdin.c — `segqa predict --stdin`: a persistent predictor. The model stays loaded;
 * each stdin line is one JSON request
 *   {"id": "...", "image": "IMG.nii.gz", "contour": "MASK.nii.gz",
 *    "label": "1,2", "mask_threshold": 0.5, "resample": "nearest", "threshold": 0.8}
 * (id, image, contour required; the rest default to the command line's options) and gets one
 * JSON result line on stdout, flushed. A bad request (not JSON, a missing or unknown key, an
 * unreadable file) gets an error line {"id", "line", "error", "error_kind"} and the server goes
 * on. Exit 0 at end of input.
 */
#include "predict.h"

#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct request {
    char id[256];
    const char *site;
    const char *image, *contour;
    double threshold;
    sq_mask_policy mask;
} request;

static const char *const known_keys[] = {"id",        "image",    "contour",       "label",
                                         "threshold", "resample", "mask_threshold"};

static sq_code check_keys(const cJSON *j, const char *origin, sq_status *st) {
    for (const cJSON *k = j->child; k; k = k->next) {
        int found = 0;
        for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
            found |= !strcmp(k->string, known_keys[i]);
        if (!found)
            return sq_fail(st, SQ_ERR_FORMAT,
                           "%s: unknown key '%s' (expected id, image, contour, label, threshold, "
                           "resample, mask_threshold, site)",
                           origin, k->string);
    }
    return SQ_OK;
}

static sq_code read_id(const cJSON *j, request *r, const char *origin, sq_status *st) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(id))
        snprintf(r->id, sizeof r->id, "%.255s", id->valuestring);
    else if (cJSON_IsNumber(id))
        snprintf(r->id, sizeof r->id, "%.17g", id->valuedouble);
    else
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key 'id' must be a string or a number", origin);
    return SQ_OK;
}

static sq_code read_label(const cJSON *j, request *r, const char *origin, sq_status *st) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "label");
    if (!l) return SQ_OK;
    char text[64];
    if (cJSON_IsNumber(l))
        snprintf(text, sizeof text, "%d", l->valueint);
    else if (cJSON_IsString(l))
        snprintf(text, sizeof text, "%.63s", l->valuestring);
    else
        return sq_fail(st, SQ_ERR_FORMAT, "%s: key 'label' must be \"all\", \"1,2\" or a number",
                       origin);
    r->mask.has_labels = 1;
    if (sq_label_set_parse(text, &r->mask.labels, st) != SQ_OK) return sq_context(st, "%s", origin);
    return SQ_OK;
}

static sq_code parse_request(const cJSON *j, const predict_opts *o, request *r, const char *origin,
                             sq_status *st) {
    if (!cJSON_IsObject(j)) return sq_fail(st, SQ_ERR_FORMAT, "%s: expected a JSON object", origin);
    r->threshold = o->threshold;
    r->mask = o->mask;
    SQ_TRY(read_id(j, r, origin, st));
    SQ_TRY(check_keys(j, origin, st));
    SQ_TRY(sq_json_get_string(j, "image", &r->image, 0, origin, st));
    SQ_TRY(sq_json_get_string(j, "contour", &r->contour, 0, origin, st));
    SQ_TRY(sq_json_get_string(j, "site", &r->site, 1, origin, st));
    SQ_TRY(sq_json_get_number(j, "threshold", &r->threshold, 1, origin, st));
    SQ_TRY(sq_json_get_number(j, "mask_threshold", &r->mask.threshold, 1, origin, st));
    const char *rs = NULL;
    SQ_TRY(sq_json_get_string(j, "resample", &rs, 1, origin, st));
    if (rs && sq_resample_parse(rs, &r->mask.resample, st) != SQ_OK)
        return sq_context(st, "%s", origin);
    return read_label(j, r, origin, st);
}

static void print_error_line(const char *id, long line_no, const sq_status *st) {
    cJSON *j = cJSON_CreateObject();
    if (id && *id)
        cJSON_AddStringToObject(j, "id", id);
    else
        cJSON_AddNullToObject(j, "id");
    cJSON_AddNumberToObject(j, "line", (double)line_no);
    cJSON_AddStringToObject(j, "error", st->msg);
    cJSON_AddStringToObject(j, "error_kind", sq_code_name(st->code));
    char *t = cJSON_PrintUnformatted(j);
    if (t) printf("%s\n", t);
    cJSON_free(t);
    cJSON_Delete(j);
    fflush(stdout);
}

/* One request line -> one result line. */
static void serve_line(sq_predictor *p, const predict_opts *o, const char *text, long line_no) {
    char origin[64];
    snprintf(origin, sizeof origin, "stdin:%ld", line_no);
    sq_status st;
    sq_status_clear(&st);
    cJSON *j = NULL;
    request r;
    memset(&r, 0, sizeof r);
    float y = 0;
    sq_code rc = sq_json_parse(text, origin, &j, &st);
    if (rc == SQ_OK) rc = parse_request(j, o, &r, origin, &st);
    if (rc == SQ_OK) rc = sq_predictor_estimate(p, r.image, r.contour, &r.mask, &y, &st);
    if (rc != SQ_OK) {
        print_error_line(r.id, line_no, &st);
    } else {
        predict_row row = {.id = r.id,
                           .image = r.image,
                           .contour = r.contour,
                           .site = r.site,
                           .ok = 1,
                           .estimate = y};
        predict_decide(o, r.threshold, &row);
        predict_opts jo = *o;
        jo.json = 1;
        predict_print_row(&jo, &row);
    }
    cJSON_Delete(j);
}

int predict_serve_stdin(sq_predictor *p, const predict_opts *o) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long line_no = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0) continue;
        serve_line(p, o, line, line_no);
    }
    free(line);
    return 0;
}
