/* cli.h — the `segqa` command: the command table and the shared argument parser.
 *
 * Every subcommand declares a sq_cli_spec (usage, description, option table, positional count)
 * and calls sq_cli_parse. The parser adds --help, --config FILE.json, --quiet and --verbose to
 * every command, applies the JSON config first and the command line on top, and reports unknown
 * options and bad values as one line with exit code 2. Only this folder parses command lines.
 */
#ifndef SEGQA_CLI_H
#define SEGQA_CLI_H

#include "core/options.h"
#include "core/status.h"

typedef struct sq_cli_spec {
    const char *command;     /* "train" */
    const char *usage;       /* "segqa train [options] SITE.h5..." */
    const char *description; /* paragraph printed under the usage line */
    const sq_option *opts;
    int nopts;
    int min_pos, max_pos; /* positional arguments; max_pos < 0: unlimited */
} sq_cli_spec;

typedef struct sq_cli_args {
    int help; /* --help was given: help printed, command should return 0 */
    int npos;
    char **pos;             /* positional arguments (points into argv) */
    char config_path[4096]; /* --config, or "" */
} sq_cli_args;

/* Parse argv (argv[0] is the command name). On --help prints help to stdout and sets a->help. */
sq_code sq_cli_parse(const sq_cli_spec *spec, int argc, char **argv, sq_cli_args *a, sq_status *st);
void sq_cli_print_help(const sq_cli_spec *spec, FILE *f);
/* Print "segqa <command>: <message>" on stderr; return the exit code for the status. */
int sq_cli_report(const char *command, const sq_status *st);

/* The compute backend a command asked for (--device cpu|cuda|auto), created through the registry;
 * `chosen` gets the line saying which (and why, for auto). NULL with `st` filled. */
struct sq_backend;
struct sq_backend *sq_cli_backend(const char *device, int threads, int deterministic, char *chosen,
                                  size_t chosen_size, sq_status *st);
#define SQ_CLI_DEVICE_HELP "compute backend: cpu, cuda or auto (CUDA when a GPU is usable)"
#define SQ_CLI_COMM_HELP                                                                           \
    "gradient/BN communication: auto (NCCL when the backend is CUDA), nccl or mpi (the oracle)"
#define SQ_CLI_COMM_TIMEOUT_HELP                                                                   \
    "seconds a collective may take before the job ends with one line and exit 76"

/* Subcommands: each returns the process exit code. */
int sq_cmd_check(int argc, char **argv);
int sq_cmd_ingest(int argc, char **argv);   /* cmd_ingest.c */
int sq_cmd_contours(int argc, char **argv); /* cmd_contours.c */
int sq_cmd_synth(int argc, char **argv);    /* cmd_synth.c */
int sq_cmd_demo(int argc, char **argv);     /* cmd_demo.c */
int sq_cmd_predict(int argc, char **argv);  /* cmd_predict.c */
int sq_cmd_monitor(int argc, char **argv);  /* cmd_monitor.c */
int sq_cmd_cv(int argc, char **argv);       /* cmd_train.c */
int sq_cmd_train(int argc, char **argv);    /* cmd_train.c */
int sq_cmd_baseline(int argc, char **argv); /* cmd_baseline.c */
int sq_cmd_sweep(int argc, char **argv);    /* cmd_sweep.c */
int sq_cmd_report(int argc, char **argv);   /* cmd_sweep.c */
int sq_cmd_bench(int argc, char **argv);    /* cmd_bench.c: dispatches to the bench_*.c below */
int sq_bench_ops(int argc, char **argv);    /* bench_ops.c:  segqa bench ops */
int sq_bench_data(int argc, char **argv);   /* bench_data.c: segqa bench data */
int sq_bench_train(int argc, char **argv);  /* bench_train.c: segqa bench train */
int sq_bench_infer(int argc, char **argv);  /* bench_train.c: segqa bench infer */
int sq_bench_comm(int argc, char **argv);   /* bench_comm.c: segqa bench comm */
int sq_cmd_version(int argc, char **argv);

/* `segqa --version` text. */
void sq_print_version(FILE *f);

#endif
