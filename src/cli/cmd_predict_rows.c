/* cmd_predict_rows.c — the result rows of `segqa predict`: a table or JSON lines, with an error
 * row (id and reason) for a pair that could not be estimated. */
#include "predict.h"

#include "core/json.h"

#include <stdio.h>
#include <string.h>

void predict_decide(const predict_opts *o, double threshold, predict_row *r) {
    r->threshold = threshold;
    r->has_interval = o->has_interval;
    if (o->has_interval) {
        sq_calib_interval(&o->cal, r->estimate, o->level, &r->lo, &r->hi);
        r->coverage = o->coverage;
    }
    double basis = o->accept_lower && o->has_interval ? r->lo : r->estimate;
    r->accept = r->ok && basis >= threshold;
}

void predict_print_header(const predict_opts *o) {
    if (o->json) return;
    if (o->has_interval)
        printf("%-40s %9s  %-16s  %s\n", "contour", "est. Dice", "interval", "decision");
    else
        printf("%-40s %9s  %s\n", "contour", "est. Dice", "decision");
}

static void print_json(const predict_row *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", r->id);
    if (r->image) cJSON_AddStringToObject(j, "image", r->image);
    if (r->contour) cJSON_AddStringToObject(j, "contour", r->contour);
    if (r->site && r->site[0]) cJSON_AddStringToObject(j, "site", r->site);
    if (r->ok) {
        cJSON_AddNumberToObject(j, "estimated_dice", r->estimate);
        if (r->has_interval) {
            cJSON *iv = cJSON_AddArrayToObject(j, "interval");
            cJSON_AddItemToArray(iv, cJSON_CreateNumber(r->lo));
            cJSON_AddItemToArray(iv, cJSON_CreateNumber(r->hi));
            cJSON_AddNumberToObject(j, "coverage", r->coverage);
        }
        cJSON_AddNumberToObject(j, "threshold", r->threshold);
        cJSON_AddBoolToObject(j, "accept", r->accept);
    } else {
        cJSON_AddStringToObject(j, "error", r->error->msg);
        cJSON_AddStringToObject(j, "error_kind", sq_code_name(r->error->code));
    }
    char *t = cJSON_PrintUnformatted(j);
    if (t) printf("%s\n", t);
    cJSON_free(t);
    cJSON_Delete(j);
}

void predict_print_row(const predict_opts *o, const predict_row *r) {
    if (!r->ok) fprintf(stderr, "segqa predict: %s: %s\n", r->id, r->error->msg);
    if (o->json)
        print_json(r);
    else if (r->ok && r->has_interval)
        printf("%-40s %9.4f  [%.3f, %.3f]    %s\n", r->id, r->estimate, r->lo, r->hi,
               r->accept ? "accept" : "REJECT");
    else if (r->ok)
        printf("%-40s %9.4f  %s\n", r->id, r->estimate, r->accept ? "accept" : "REJECT");
    else
        printf("%-40s %9s  ERROR: %s\n", r->id, "-", r->error->msg);
    fflush(stdout);
}
