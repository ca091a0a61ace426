/* options.h — one table of options per command, settable from the command line and from JSON.
 *
 * A command declares its options once (name, type, target, help, bounds). src/cli builds the
 * getopt_long table from it; `--config FILE.json` is applied first through sq_options_apply_json,
 * whose keys are exactly the long option names; command-line values then override. The resolved
 * values serialise back to JSON (sq_options_to_json) for the run folder's config.json.
 *
 * Not for: parsing argv (only src/cli does that).
 */
#ifndef SEGQA_CORE_OPTIONS_H
#define SEGQA_CORE_OPTIONS_H

#include "core/status.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sq_opt_type {
    SQ_OPT_FLAG,   /* int target: 0/1; JSON boolean */
    SQ_OPT_INT,    /* long long target; JSON integer */
    SQ_OPT_DOUBLE, /* double target; JSON number */
    SQ_OPT_STRING, /* char[cap] target; JSON string */
    SQ_OPT_CHOICE, /* char[cap] target, one of `choices` ("a|b|c"); JSON string */
} sq_opt_type;

typedef struct sq_option {
    const char *name; /* long option and JSON key, e.g. "epochs" */
    char short_name;  /* 0 for none */
    sq_opt_type type;
    void *target;
    size_t cap;           /* STRING/CHOICE: size of the char buffer */
    const char *arg_name; /* "N", "FILE", ... (help text) */
    const char *help;
    const char *choices; /* CHOICE only */
    double min, max;     /* INT/DOUBLE bounds, checked when min < max */
} sq_option;

const sq_option *sq_options_find(const sq_option *opts, int n, const char *name);

/* Set one option from text (a command-line argument). `origin` names the source in messages,
 * e.g. "--epochs". FLAG accepts NULL (sets 1) or true/false/1/0/yes/no. */
sq_code sq_option_set_text(const sq_option *o, const char *text, const char *origin, sq_status *st);

/* Apply a JSON object: every key must name an option (else "unknown key 'x'" listing the closest
 * match), and every value must have the option's JSON type and bounds. `origin` is the file. */
sq_code sq_options_apply_json(const sq_option *opts, int n, const cJSON *obj, const char *origin,
                              sq_status *st);

/* Read FILE.json and apply it. */
sq_code sq_options_apply_file(const sq_option *opts, int n, const char *path, sq_status *st);

/* The current values as a JSON object (caller deletes). */
cJSON *sq_options_to_json(const sq_option *opts, int n);

/* "  -e, --epochs N        help (default: 200)" lines. */
void sq_options_print_help(FILE *f, const sq_option *opts, int n);

#ifdef __cplusplus
}
#endif
#endif
