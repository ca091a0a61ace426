/* args.c — getopt_long over an sq_option table, with --config JSON underneath (see cli.h). */
#include "cli.h"

#include "core/log.h"
#include "hpc/comm.h"
#include "nn/registry.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_HELP = 1000, OPT_CONFIG, OPT_QUIET, OPT_VERBOSE, OPT_BASE = 2000 };

void sq_cli_print_help(const sq_cli_spec *spec, FILE *f) {
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", spec->usage, spec->description);
    sq_options_print_help(f, spec->opts, spec->nopts);
    fprintf(f, "%-32s %s\n", "      --config FILE.json",
            "read options from a JSON object whose keys are the long option names;");
    fprintf(f, "%-32s %s\n", "", "options given on the command line override it");
    fprintf(f, "%-32s %s\n", "  -q, --quiet", "print warnings and errors only");
    fprintf(f, "%-32s %s\n", "  -v, --verbose", "print debug messages, on every rank");
    fprintf(f, "%-32s %s\n", "  -h, --help", "show this help and exit");
}

int sq_cli_report(const char *command, const sq_status *st) {
    if (st->code == SQ_OK) return 0;
    fprintf(stderr, "segqa %s: %s\n", command, st->msg[0] ? st->msg : sq_code_name(st->code));
    return sq_exit_code(st->code);
}

/* --config is applied before every other option so that the command line overrides it. */
static sq_code prescan_config(const sq_cli_spec *spec, int argc, char **argv, sq_cli_args *a,
                              sq_status *st) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) break;
        const char *path = NULL;
        if (strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc)
                return sq_fail(st, SQ_ERR_USAGE, "option '--config' needs a FILE.json argument");
            path = argv[++i];
        } else if (strncmp(arg, "--config=", 9) == 0) {
            path = arg + 9;
        }
        if (!path) continue;
        if (strlen(path) >= sizeof a->config_path)
            return sq_fail(st, SQ_ERR_USAGE, "--config: path too long");
        strcpy(a->config_path, path);
        SQ_TRY(sq_options_apply_file(spec->opts, spec->nopts, path, st));
    }
    return SQ_OK;
}

sq_code sq_cli_parse(const sq_cli_spec *spec, int argc, char **argv, sq_cli_args *a,
                     sq_status *st) {
    memset(a, 0, sizeof *a);
    int n = spec->nopts;
    struct option *lo = calloc((size_t)n + 5, sizeof *lo);
    char shorts[256];
    int ns = 0;
    if (!lo) return sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    shorts[ns++] = ':'; /* report a missing argument as ':' rather than '?' */
    for (int i = 0; i < n; i++) {
        const sq_option *o = &spec->opts[i];
        lo[i].name = o->name;
        lo[i].has_arg = o->type == SQ_OPT_FLAG ? no_argument : required_argument;
        lo[i].flag = NULL;
        lo[i].val = OPT_BASE + i;
        if (o->short_name && ns < 250) {
            shorts[ns++] = o->short_name;
            if (o->type != SQ_OPT_FLAG) shorts[ns++] = ':';
        }
    }
    lo[n + 0] = (struct option){"help", no_argument, NULL, OPT_HELP};
    lo[n + 1] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    lo[n + 2] = (struct option){"quiet", no_argument, NULL, OPT_QUIET};
    lo[n + 3] = (struct option){"verbose", no_argument, NULL, OPT_VERBOSE};
    lo[n + 4] = (struct option){NULL, 0, NULL, 0};
    shorts[ns++] = 'h';
    shorts[ns++] = 'q';
    shorts[ns++] = 'v';
    shorts[ns] = '\0';

    sq_code rc = prescan_config(spec, argc, argv, a, st);
    if (rc != SQ_OK) {
        free(lo);
        return rc;
    }

    optind = 0; /* GNU: full re-initialisation, so commands can parse in turn (tests) */
    opterr = 0;
    for (;;) {
        int idx = -1;
        int prev = optind ? optind : 1;
        int c = getopt_long(argc, argv, shorts, lo, &idx);
        if (c == -1) break;
        if (c == '?' || c == ':') {
            const char *bad = argv[prev < argc ? prev : argc - 1];
            if (c == ':')
                rc = sq_fail(st, SQ_ERR_USAGE, "option '%s' needs a value (see segqa %s --help)",
                             bad, spec->command);
            else if (optopt && optopt < 256)
                rc = sq_fail(st, SQ_ERR_USAGE, "unknown option '-%c' (see segqa %s --help)", optopt,
                             spec->command);
            else
                rc = sq_fail(st, SQ_ERR_USAGE, "unknown option '%s' (see segqa %s --help)", bad,
                             spec->command);
            break;
        }
        if (c == 'h' || c == OPT_HELP) {
            a->help = 1;
            continue;
        }
        if (c == OPT_CONFIG) continue; /* applied by prescan_config */
        if (c == 'q' || c == OPT_QUIET) {
            sq_log_set_level(SQ_LOG_WARN);
            continue;
        }
        if (c == 'v' || c == OPT_VERBOSE) {
            sq_log_set_level(SQ_LOG_DEBUG);
            continue;
        }
        const sq_option *o = NULL;
        if (c >= OPT_BASE && c < OPT_BASE + n) {
            o = &spec->opts[c - OPT_BASE];
        } else {
            for (int i = 0; i < n; i++)
                if (spec->opts[i].short_name == c) o = &spec->opts[i];
        }
        if (!o) {
            rc = sq_fail(st, SQ_ERR_INTERNAL, "option table mismatch for '%c'", c);
            break;
        }
        char origin[160];
        snprintf(origin, sizeof origin, "--%s", o->name);
        rc = sq_option_set_text(o, o->type == SQ_OPT_FLAG ? NULL : optarg, origin, st);
        if (rc != SQ_OK) break;
    }
    free(lo);
    if (rc != SQ_OK) return rc;
    if (a->help) {
        sq_cli_print_help(spec, stdout);
        return SQ_OK;
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    if (a->npos < spec->min_pos || (spec->max_pos >= 0 && a->npos > spec->max_pos)) {
        if (spec->max_pos == 0)
            return sq_fail(st, SQ_ERR_USAGE, "unexpected argument '%s' (usage: %s)", a->pos[0],
                           spec->usage);
        return sq_fail(st, SQ_ERR_USAGE, "expected %s%d argument%s, got %d (usage: %s)",
                       spec->max_pos == spec->min_pos ? "" : "at least ", spec->min_pos,
                       spec->min_pos == 1 ? "" : "s", a->npos, spec->usage);
    }
    return SQ_OK;
}

struct sq_backend *sq_cli_backend(const char *device, int threads, int deterministic, char *chosen,
                                  size_t chosen_size, sq_status *st) {
    sq_backend_opts o = sq_backend_opts_default();
    o.threads = threads;
    o.local_rank = sq_local_rank_from_env();
    o.deterministic = deterministic;
    return sq_backend_create(device, &o, chosen, chosen_size, st);
}
