# Third-party libraries, found as ../shared/TOOLCHAIN.md measured on Debian 12.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
find_package(MPI REQUIRED COMPONENTS C)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(dnnl CONFIG REQUIRED)
find_package(ZLIB REQUIRED)

pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# Debian's NIFTI CMake config points at a libznz.so in the wrong folder: find the pieces directly.
# Only nifti2 (reads NIfTI-1 and -2); never link niftiio as well (same symbols, other structs).
find_path(NIFTI_INCLUDE_DIR nifti2_io.h PATH_SUFFIXES nifti REQUIRED)
find_library(NIFTI2_LIBRARY nifti2 REQUIRED)
find_library(ZNZ_LIBRARY znz REQUIRED)
add_library(segqa_nifti INTERFACE)
target_include_directories(segqa_nifti INTERFACE ${NIFTI_INCLUDE_DIR})
target_link_libraries(segqa_nifti INTERFACE ${NIFTI2_LIBRARY} ${ZNZ_LIBRARY} ZLIB::ZLIB m)
# libdeflate (libdeflate-dev): .nii.gz voxel data inflated in one call, about twice zlib's speed.
# Optional: without it every .nii.gz is read through znzlib/zlib as before (src/data/nifti.c).
find_path(LIBDEFLATE_INCLUDE_DIR libdeflate.h)
find_library(LIBDEFLATE_LIBRARY deflate)
if(LIBDEFLATE_INCLUDE_DIR AND LIBDEFLATE_LIBRARY)
  target_include_directories(segqa_nifti INTERFACE ${LIBDEFLATE_INCLUDE_DIR})
  target_link_libraries(segqa_nifti INTERFACE ${LIBDEFLATE_LIBRARY})
  target_compile_definitions(segqa_nifti INTERFACE SEGQA_HAVE_LIBDEFLATE=1)
  set(SEGQA_LIBDEFLATE ON)
else()
  set(SEGQA_LIBDEFLATE OFF)
  message(STATUS "segqa: libdeflate not found: .nii.gz read through zlib only")
endif()

# OpenBLAS (the sgemm peak the benchmarks compare against).
find_path(OPENBLAS_INCLUDE_DIR cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-pthread
          PATH_SUFFIXES openblas REQUIRED)
find_library(OPENBLAS_LIBRARY openblas REQUIRED)
add_library(segqa_openblas INTERFACE)
target_include_directories(segqa_openblas INTERFACE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(segqa_openblas INTERFACE ${OPENBLAS_LIBRARY})

add_library(segqa_hdf5 INTERFACE)
target_include_directories(segqa_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
target_link_libraries(segqa_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
target_compile_definitions(segqa_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} H5_USE_110_API)

get_target_property(_dnnl_ver DNNL::dnnl VERSION)
message(STATUS "segqa: MPI ${MPI_C_VERSION}, HDF5 ${HDF5_VERSION}, oneDNN ${dnnl_VERSION}, cJSON ${CJSON_VERSION}, NIfTI ${NIFTI2_LIBRARY}")
