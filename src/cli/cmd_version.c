/* cmd_version.c — `segqa version` / `--version`: version, git hash and compiled-in features. */
#include "cli.h"

#include "hpc/mpi_info.h"
#include "segqa_version.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <dnnl.h>
#include <hdf5.h>
#include <stdio.h>
#ifdef SEGQA_HAVE_CUDA
#include "cuda/cuda_info.h"
#endif

static void print_cuda(FILE *f) {
#ifdef SEGQA_HAVE_CUDA
    sq_cuda_info ci;
    sq_cuda_query(&ci);
    fprintf(
        f,
        "cuda:     compiled in (CUDA runtime %d.%d, cuDNN %d.%d.%d, NCCL %d.%d.%d, cuBLAS %d.%d)\n",
        ci.runtime_version / 1000, (ci.runtime_version % 1000) / 10, ci.cudnn_version / 10000,
        (ci.cudnn_version % 10000) / 100, ci.cudnn_version % 100, ci.nccl_version / 10000,
        (ci.nccl_version % 10000) / 100, ci.nccl_version % 100, ci.cublas_version / 10000,
        (ci.cublas_version % 10000) / 100);
    if (ci.device_count > 0)
        fprintf(f, "gpus:     %d (device 0: %s)\n", ci.device_count, ci.device_name);
    else
        fprintf(f, "gpus:     none usable here (%s)\n",
                ci.device_error[0] ? ci.device_error : "no device");
#else
    fprintf(f,
            "cuda:     not compiled in (configure with -DSEGQA_CUDA=ON on a machine with nvcc)\n");
#endif
}

void sq_print_version(FILE *f) {
    fprintf(f, "segqa %s (git %s, %s%s%s)\n", SEGQA_VERSION, SEGQA_GIT_HASH, SEGQA_BUILD_TYPE,
            SEGQA_SANITIZERS[0] ? ", sanitizers " : "", SEGQA_SANITIZERS);
    char mpi[256];
    sq_mpi_library_version(mpi, sizeof mpi);
    fprintf(f, "mpi:      compiled in (%s)\n", mpi);
    print_cuda(f);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    const dnnl_version_t *dv = dnnl_version();
    fprintf(f, "cpu:      oneDNN %d.%d.%d, %s, HDF5 %u.%u.%u, cJSON %s, NIfTI-2 (nifti2_io)\n",
            dv->major, dv->minor, dv->patch, openblas_get_config(), maj, min, rel, cJSON_Version());
}

int sq_cmd_version(int argc, char **argv) {
    static const sq_cli_spec spec = {
        .command = "version",
        .usage = "segqa version",
        .description = "Print the version, the git commit it was built from, and which backends\n"
                       "(CUDA with cuDNN/NCCL versions, MPI) and libraries were compiled in.",
        .opts = NULL,
        .nopts = 0,
        .min_pos = 0,
        .max_pos = 0,
    };
    sq_cli_args a;
    sq_status st;
    sq_status_clear(&st);
    if (sq_cli_parse(&spec, argc, argv, &a, &st) != SQ_OK) return sq_cli_report("version", &st);
    if (a.help) return 0;
    sq_print_version(stdout);
    return 0;
}
