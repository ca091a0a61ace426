/* cmd_synth.c — `segqa synth`: a synthetic prostate-like MRI site with automatic contours and
 * clinical variables (src/data/synth.h). */
#include "cli.h"

#include "core/tensor.h"
#include "data/synth.h"

#include <stdio.h>
#include <string.h>

/* OUT.h5 -> OUT-site<k+1>.h5 (the file of site k of a multi-site study). */
static void site_path(const char *output, int k, char *buf, size_t n) {
    size_t len = strlen(output);
    if (len > 3 && !strcmp(output + len - 3, ".h5")) len -= 3;
    snprintf(buf, n, "%.*s-site%d.h5", (int)len, output, k + 1);
}

static int synth_one(const sq_synth_opts *o, sq_status *st) {
    sq_synth_stats s;
    if (sq_synth(o, &s, st) != SQ_OK) return sq_cli_report("synth", st);
    printf("%d cases, %d contours (Dice %.3f..%.3f) -> %s in %.2f s\n", s.n_cases, s.n_contours,
           s.dice_min, s.dice_max, o->output, s.seconds);
    return 0;
}

/* --sites N: N site files that differ in intensity scale, bias field and resolution. */
static int synth_sites(const sq_synth_opts *base, int nsites, sq_status *st) {
    for (int k = 0; k < nsites; k++) {
        sq_synth_opts o = *base;
        char name[32], path[4200];
        sq_synth_site_variant(&o, k, nsites, name, sizeof name);
        site_path(base->output, k, path, sizeof path);
        o.output = path;
        o.nifti_dir = NULL;
        int rc = synth_one(&o, st);
        if (rc != 0) return rc;
        printf("  %s: intensity x%.2f, bias +%.2f, spacing %.2f x %.3f x %.3f mm\n", name,
               o.intensity_scale, o.bias_extra, o.spacing[0], o.spacing[1], o.spacing[2]);
    }
    return 0;
}

int sq_cmd_synth(int argc, char **argv) {
    sq_synth_opts o = sq_synth_opts_default();
    char output[4096] = "", nifti[4096] = "", shape[64] = "28x160x160";
    long long n = o.n_cases, seed = (long long)o.seed, nsites = 1;
    double two = o.two_contour_frac, signal = o.clinical_signal, offc = 0;
    char spacing[64] = "3.9x0.59x0.59";
    const sq_option opts[] = {
        {"output", 'o', SQ_OPT_STRING, output, sizeof output, "SITE.h5", "site file to write", NULL,
         0, 0},
        {"cases", 'n', SQ_OPT_INT, &n, 0, "N", "number of cases (paper: 60)", NULL, 1, 100000},
        {"shape", 's', SQ_OPT_STRING, shape, sizeof shape, "DxHxW",
         "volume shape z x y x x (paper: 28x160x160; spacing 3.9 x 0.59 x 0.59 mm)", NULL, 0, 0},
        {"two-contours", 0, SQ_OPT_DOUBLE, &two, 0, "F",
         "fraction of cases with a second contour (paper: 20 of 60)", NULL, 0, 1},
        {"seed", 0, SQ_OPT_INT, &seed, 0, "N", "random seed (Philox)", NULL, 0, 9.2e18},
        {"clinical-signal", 0, SQ_OPT_DOUBLE, &signal, 0, "X",
         "tie of age to difficulty: 0 weak (default), 1 age = 66 + 30 difficulty", NULL, 0, 1},
        {"sites", 0, SQ_OPT_INT, &nsites, 0, "N",
         "N site files OUT-site1.h5..OUT-siteN.h5 differing in intensity scale, bias field and "
         "resolution",
         NULL, 1, 64},
        {"spacing", 0, SQ_OPT_STRING, spacing, sizeof spacing, "ZxYxX",
         "voxel spacing in mm (default 3.9x0.59x0.59)", NULL, 0, 0},
        {"off-centre", 0, SQ_OPT_DOUBLE, &offc, 0, "F",
         "move each organ in-plane towards a random corner by F of the room to the edge (0: "
         "centred, the default)",
         NULL, 0, 1},
        {"nifti", 0, SQ_OPT_STRING, nifti, sizeof nifti, "DIR",
         "also write images/, labels/, contours/<name>/ and clinical.csv under DIR", NULL, 0, 0},
    };
    const sq_cli_spec spec = {
        .command = "synth",
        .usage = "segqa synth [options] -o SITE.h5",
        .description =
            "Generate a synthetic prostate-like T2 MRI site: a smooth random organ in textured\n"
            "anatomy with bias field and noise, automatic contours with Dice in about\n"
            "[0.85, 0.95], and clinical variables (age, volume, ISUP, PI-RADS, iPSA, risk class)\n"
            "weakly tied to each case's difficulty. --sites N writes N sites of one study that\n"
            "differ in scanner gain, bias field and in-plane resolution (for --split-by site).",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("synth", &st);
    if (a.help) return 0;
    if (!*output) {
        sq_fail(&st, SQ_ERR_USAGE, "--output SITE.h5 is required");
        return sq_cli_report("synth", &st);
    }
    int64_t shp[SQ_MAX_DIMS];
    int nd = 0;
    if (sq_parse_shape(shape, shp, &nd, &st) != SQ_OK || nd != 3) {
        if (st.code == SQ_OK) sq_fail(&st, SQ_ERR_USAGE, "--shape '%s': expected DxHxW", shape);
        return sq_cli_report("synth", &st);
    }
    for (int i = 0; i < 3; i++)
        o.shape[i] = (int)shp[i];
    o.output = output;
    o.nifti_dir = nifti;
    o.n_cases = (int)n;
    o.seed = (unsigned long long)seed;
    o.two_contour_frac = two;
    o.clinical_signal = signal;
    o.off_centre = offc;
    if (sscanf(spacing, "%lfx%lfx%lf", &o.spacing[0], &o.spacing[1], &o.spacing[2]) != 3 ||
        !(o.spacing[0] > 0 && o.spacing[1] > 0 && o.spacing[2] > 0)) {
        sq_fail(&st, SQ_ERR_USAGE, "--spacing '%s': expected ZxYxX in mm, all > 0", spacing);
        return sq_cli_report("synth", &st);
    }
    o.progress = 1;
    if (nsites > 1 && *nifti) {
        sq_fail(&st, SQ_ERR_USAGE, "--nifti writes one site: not with --sites %lld", nsites);
        return sq_cli_report("synth", &st);
    }
    return nsites > 1 ? synth_sites(&o, (int)nsites, &st) : synth_one(&o, &st);
}
