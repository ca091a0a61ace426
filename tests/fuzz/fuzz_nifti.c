/* fuzz_nifti.c — libFuzzer target: the NIfTI reader (header pre-check, libnifti, raw voxel read,
 * dtype conversion) as an image and as a mask, plain or gzip (chosen by the input's magic). */
#include "fuzz_util.h"

#include "data/nifti.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    const char *ext = size >= 2 && data[0] == 0x1f && data[1] == 0x8b ? ".nii.gz" : ".nii";
    if (fuzz_write_file("nifti", ext, data, size, path, sizeof path)) return 0;
    sq_status st;
    sq_volume v;
    if (sq_nifti_read_image(path, &v, &st) == SQ_OK) sq_volume_free(&v);
    if (sq_nifti_read_mask(path, &v, &st) == SQ_OK) sq_volume_free(&v);
    unlink(path);
    return 0;
}
