/* mpi_info.c — see mpi_info.h. */
#include "hpc/mpi_info.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

void sq_mpi_library_version(char *buf, size_t n) {
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, ver = 0, sub = 0;
    MPI_Get_library_version(lib, &len);
    MPI_Get_version(&ver, &sub);
    char *nl = strchr(lib, '\n');
    if (nl) *nl = '\0';
    char *comma = strchr(lib, ',');
    if (comma) *comma = '\0';
    snprintf(buf, n, "%s (MPI %d.%d)", lib, ver, sub);
}
