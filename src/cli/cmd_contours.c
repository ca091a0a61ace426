/* cmd_contours.c — `segqa contours`: add automatic contours (atlas transfer, perturbed GT) with
 * their true Dice to a site file. */
#include "cli.h"

#include "data/contours.h"

#include <stdio.h>
#include <string.h>

int sq_cmd_contours(int argc, char **argv) {
    char output[4096] = "";
    const sq_contours_opts d = sq_contours_opts_default();
    long long n_atlas = d.n_atlas, n_perturb = d.n_perturb, n_near = d.n_near,
              seed = (long long)d.seed;
    double strength = d.strength, near_lo = d.near_lo, near_hi = d.near_hi;
    const sq_option opts[] = {
        {"output", 'o', SQ_OPT_STRING, output, sizeof output, "OUT.h5",
         "site file to write (default: replace the input atomically)", NULL, 0, 0},
        {"atlas", 0, SQ_OPT_INT, &n_atlas, 0, "N",
         "atlas-transfer contours per case (atlas_0..): another case's GT aligned by moments", NULL,
         0, 16},
        {"perturb", 0, SQ_OPT_INT, &n_perturb, 0, "N",
         "perturbed-GT contours per case (perturb_0..): erode/dilate, boundary noise, shifts", NULL,
         0, 16},
        {"near", 0, SQ_OPT_INT, &n_near, 0, "N",
         "near-GT contours per case (near_0..): mild perturbations, the top of the Dice range",
         NULL, 0, 16},
        {"near-lo", 0, SQ_OPT_DOUBLE, &near_lo, 0, "X",
         "near-GT contours: lowest strength (times the perturbation parameters)", NULL, 0, 10},
        {"near-hi", 0, SQ_OPT_DOUBLE, &near_hi, 0, "X", "near-GT contours: highest strength", NULL,
         0, 10},
        {"seed", 0, SQ_OPT_INT, &seed, 0, "N", "random seed (Philox)", NULL, 0, 9.2e18},
        {"strength", 0, SQ_OPT_DOUBLE, &strength, 0, "X",
         "scale of the perturbation parameters (1 = radius +-2 mm, noise 1.5 mm, shift 2.5 mm)",
         NULL, 0, 10},
    };
    const sq_cli_spec spec = {
        .command = "contours",
        .usage = "segqa contours [options] SITE.h5",
        .description =
            "Make automatic contours for a site that has none: atlas transfer (another case's GT\n"
            "aligned to this image by intensity moments), perturbations of the GT, and near-GT\n"
            "contours (mild perturbations: the top of the Dice range, where a good model's\n"
            "contours lie). Each is stored with its method, parameters (JSON) and Dice against\n"
            "the GT. The defaults make the contours both training recipes expect.",
        .opts = opts,
        .nopts = (int)(sizeof opts / sizeof opts[0]),
        .min_pos = 1,
        .max_pos = 1,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("contours", &st);
    if (a.help) return 0;
    if (near_hi < near_lo) {
        sq_fail(&st, SQ_ERR_USAGE, "--near-hi %g is below --near-lo %g", near_hi, near_lo);
        return sq_cli_report("contours", &st);
    }
    sq_contours_opts o = d;
    o.input = a.pos[0];
    o.output = *output ? output : a.pos[0];
    o.n_atlas = (int)n_atlas, o.n_perturb = (int)n_perturb, o.n_near = (int)n_near;
    o.seed = (unsigned long long)seed;
    o.strength = (float)strength;
    o.near_lo = (float)near_lo, o.near_hi = (float)near_hi;
    o.progress = 1;
    sq_contours_stats s;
    if (sq_contours_run(&o, &s, &st) != SQ_OK) return sq_cli_report("contours", &st);
    printf("%d contours on %d cases -> %s in %.2f s; Dice min %.3f mean %.3f max %.3f\n",
           s.n_contours, s.n_cases, o.output, s.seconds, s.dice_min, s.dice_mean, s.dice_max);
    return 0;
}
