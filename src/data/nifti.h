/* nifti.h — NIfTI-1/-2 input and output (.nii, .nii.gz) through libnifti's nifti2_io, with the
 * checks segqa needs before data enters a site file.
 *
 * Reading converts any integer or float datatype to float32 (images) or to uint8 label values
 * (masks: every voxel must be an integer in 0..255, non-integer or out-of-range values are an
 * error). scl_slope/scl_inter are applied to images. Only 3D volumes (or 4D with one volume)
 * are accepted. Every error message starts with the file name.
 *
 * Not for: the HDF5 site format (site.h).
 */
#ifndef SEGQA_DATA_NIFTI_H
#define SEGQA_DATA_NIFTI_H

#include "core/status.h"
#include "data/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An image: F32 volume; fails on NaN/Inf voxels. */
sq_code sq_nifti_read_image(const char *path, sq_volume *out, sq_status *st);
/* A label mask: U8 volume holding the label values (not yet binarised). */
sq_code sq_nifti_read_mask(const char *path, sq_volume *out, sq_status *st);

/* A mask's raw voxel values as an F32 volume, whatever the datatype (no scl_slope: mask values
 * are taken as stored); *is_float tells whether the file's datatype is FLOAT32/FLOAT64. Fails on
 * NaN/Inf. Binarising is data/mask.h's job. */
sq_code sq_nifti_read_values(const char *path, sq_volume *out, int *is_float, sq_status *st);

/* Check that mask and image have the same shape and (to 1e-3 mm) the same affine. */
sq_code sq_nifti_check_pair(const sq_volume *img, const char *img_path, const sq_volume *mask,
                            const char *mask_path, sq_status *st);

/* Write a volume (F32 as FLOAT32, U8 as UINT8) with its spacing and affine (as sform and qform,
 * code 1). The extension picks the format: .nii or .nii.gz. Written to a temporary name in the
 * same folder and renamed on success. */
sq_code sq_nifti_write(const char *path, const sq_volume *v, sq_status *st);

/* How many .nii.gz voxel reads took the one-call libdeflate path since the process started (the
 * rest went through znzlib: no libdeflate at build time, or a stream it would not take whole). */
long sq_nifti_fast_gz_reads(void);

/* Self-check for `segqa check` (to be wired by src/cli): read DIR/images/FILE and
 * DIR/labels/FILE of one bundled case (FILE NULL: hippocampus_004.nii.gz), check shape/affine
 * agreement, label values and finite intensities, and compute the Dice of label 1 vs labels
 * {1,2}; a one-line summary goes into detail. */
sq_code sq_nifti_selfcheck(const char *data_dir, const char *file, char *detail, size_t n,
                           sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
