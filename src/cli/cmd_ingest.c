/* cmd_ingest.c — `segqa ingest`: NIfTI folder or CSV manifest -> one HDF5 site file. */
#include "cli.h"

#include "core/log.h"
#include "core/tensor.h"
#include "data/ingest.h"

#include <stdio.h>
#include <string.h>

int sq_cmd_ingest(int argc, char **argv) {
    char output[4096] = "", clinical[4096] = "", site[128] = "", shape[64] = "40x56x40",
         labels[256] = "all";
    double lo = 0, hi = 99;
    long long limit = 0;
    const sq_option opts[] = {
        {"output", 'o', SQ_OPT_STRING, output, sizeof output, "SITE.h5", "site file to write", NULL,
         0, 0},
        {"clinical", 0, SQ_OPT_STRING, clinical, sizeof clinical, "FILE.csv",
         "clinical variables (column 'case' or 'patient' + one column per variable)", NULL, 0, 0},
        {"site", 0, SQ_OPT_STRING, site, sizeof site, "NAME",
         "site name (default: the input folder or manifest name)", NULL, 0, 0},
        {"shape", 's', SQ_OPT_STRING, shape, sizeof shape, "DxHxW",
         "centre crop/pad to this shape, z x y x x (paper: 28x160x160)", NULL, 0, 0},
        {"label", 'l', SQ_OPT_STRING, labels, sizeof labels, "all|L1,L2",
         "GT labels that make the organ ('all' = every non-zero label)", NULL, 0, 0},
        {"lo-pct", 0, SQ_OPT_DOUBLE, &lo, 0, "P", "percentile mapped to 0", NULL, 0, 100},
        {"hi-pct", 0, SQ_OPT_DOUBLE, &hi, 0, "P", "percentile mapped to 255", NULL, 0, 100},
        {"limit", 0, SQ_OPT_INT, &limit, 0, "N", "ingest the first N cases only (0 = all)", NULL, 0,
         1e9},
    };
    const sq_cli_spec spec = {
        .command = "ingest",
        .usage = "segqa ingest [options] -o SITE.h5 (FOLDER | MANIFEST.csv)",
        .description =
            "Read NIfTI images, ground-truth masks and optional contours, check them (shapes and\n"
            "affines agree, integer labels, finite intensities, non-empty GT), centre crop/pad to\n"
            "--shape, map the 0th/99th percentile to [0,255] and write one HDF5 site file with\n"
            "each contour's Dice (docs/data-format.md). FOLDER holds images/, labels/ and\n"
            "optionally contours/; a manifest has columns case,patient,image,gt,contour...,site.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = 1,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("ingest", &st);
    if (a.help) return 0;
    sq_ingest_opts o;
    memset(&o, 0, sizeof o);
    if (!*output) {
        sq_fail(&st, SQ_ERR_USAGE, "--output SITE.h5 is required");
        return sq_cli_report("ingest", &st);
    }
    int64_t shp[SQ_MAX_DIMS];
    int nd = 0;
    if (sq_parse_shape(shape, shp, &nd, &st) != SQ_OK || nd != 3) {
        if (st.code == SQ_OK)
            sq_fail(&st, SQ_ERR_USAGE, "--shape '%s': expected DxHxW", shape);
        else
            sq_context(&st, "--shape");
        return sq_cli_report("ingest", &st);
    }
    for (int i = 0; i < 3; i++)
        o.shape[i] = (int)shp[i];
    if (sq_label_set_parse(labels, &o.labels, &st) != SQ_OK) return sq_cli_report("ingest", &st);
    if (!(hi > lo)) {
        sq_fail(&st, SQ_ERR_USAGE, "--hi-pct (%g) must be above --lo-pct (%g)", hi, lo);
        return sq_cli_report("ingest", &st);
    }
    o.input = a.pos[0];
    o.output = output;
    o.clinical = clinical;
    o.site = site;
    o.lo_pct = lo, o.hi_pct = hi;
    o.limit = (int)limit;
    o.progress = 1;
    sq_ingest_stats s;
    if (sq_ingest(&o, &s, &st) != SQ_OK) return sq_cli_report("ingest", &st);
    printf("ingested %d cases (%d contours) into %s in %.2f s\n", s.n_cases, s.n_contours, output,
           s.seconds);
    return 0;
}
