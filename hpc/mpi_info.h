/* mpi_info.h — which MPI library segqa was built against (usable before MPI_Init). */
#ifndef SEGQA_HPC_MPI_INFO_H
#define SEGQA_HPC_MPI_INFO_H

#include <stddef.h>

/* First line of MPI_Get_library_version, e.g. "Open MPI v4.1.4, ...", and the MPI standard level.
 */
void sq_mpi_library_version(char *buf, size_t n);

#endif
