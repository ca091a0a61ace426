/* nifti.c — NIfTI reading/writing through nifti2_io (a .nii.gz's voxels inflated whole by
 * libdeflate where built with it), dtype conversion and input checks. */
#include "data/nifti.h"

#include "core/fileio.h"

#include <math.h>
#include <nifti2_io.h>
#ifdef SEGQA_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- header pre-check ----
 * The header is read and checked here before libnifti sees it, for two reasons: libnifti reads a
 * file without a NIfTI magic as ANALYZE 7.5 (and the error then surfaces far away, e.g. as an
 * affine mismatch), and it prints its own "** ERROR: ..." lines for some bad fields, beside the
 * one line segqa promises. A header that passes here is one libnifti reads without complaint. */

typedef struct hdr_facts {
    int version;   /* 1 or 2 */
    int swapped;   /* other byte order than this machine */
    int pair_file; /* magic ni1/ni2: voxels in a separate .img file */
    int64_t dim[8];
    int datatype;
    double vox_offset, slope, inter;
} hdr_facts;

static void swap_bytes(void *p, int n) {
    uint8_t *b = p;
    for (int i = 0; i < n / 2; i++) {
        uint8_t t = b[i];
        b[i] = b[n - 1 - i], b[n - 1 - i] = t;
    }
}

/* Field of n bytes at offset off of the raw header, in this machine's byte order. */
static void field(const uint8_t *raw, int off, int n, int swapped, void *out) {
    memcpy(out, raw + off, (size_t)n);
    if (swapped) swap_bytes(out, n);
}

static void facts_n1(const uint8_t *raw, int sw, hdr_facts *f) {
    for (int i = 0; i < 8; i++) {
        int16_t d;
        field(raw, 40 + 2 * i, 2, sw, &d);
        f->dim[i] = d;
    }
    int16_t dt;
    float vo, sl, in;
    field(raw, 70, 2, sw, &dt), field(raw, 108, 4, sw, &vo);
    field(raw, 112, 4, sw, &sl), field(raw, 116, 4, sw, &in);
    f->datatype = dt, f->vox_offset = vo, f->slope = sl, f->inter = in;
}

static void facts_n2(const uint8_t *raw, int sw, hdr_facts *f) {
    for (int i = 0; i < 8; i++)
        field(raw, 16 + 8 * i, 8, sw, &f->dim[i]);
    int16_t dt;
    int64_t vo;
    field(raw, 12, 2, sw, &dt), field(raw, 168, 8, sw, &vo);
    field(raw, 176, 8, sw, &f->slope), field(raw, 184, 8, sw, &f->inter);
    f->datatype = dt, f->vox_offset = (double)vo;
}

/* Read the raw header (NIfTI-1: 348 bytes, NIfTI-2: 540) and its magic. */
static sq_code read_facts(const char *path, hdr_facts *f, sq_status *st) {
    uint8_t raw[540];
    znzFile fp = znzopen(path, "rb", nifti_is_gzfile(path));
    if (znz_isnull(fp)) return sq_fail(st, SQ_ERR_IO, "%s: cannot open", path);
    size_t got = znzread(raw, 1, sizeof raw, fp);
    znzclose(fp);
    if (got < 4) return sq_fail(st, SQ_ERR_FORMAT, "%s: header truncated: %zu bytes", path, got);
    int32_t raw_size, size;
    memcpy(&raw_size, raw, 4);
    size = raw_size;
    memset(f, 0, sizeof *f);
    f->swapped = size != 348 && size != 540;
    if (f->swapped) swap_bytes(&size, 4);
    if (size != 348 && size != 540)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: sizeof_hdr = %d, expected 348 (NIfTI-1) or 540 (NIfTI-2)", path,
                       (int)raw_size);
    if (got < (size_t)size)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: header truncated: %zu of %d bytes", path, got, size);
    f->version = size == 348 ? 1 : 2;
    const char *magic = (const char *)raw + (f->version == 1 ? 344 : 4);
    int ok = f->version == 1
                 ? !memcmp(magic, "n+1", 4) || !memcmp(magic, "ni1", 4)
                 : !memcmp(magic, "n+2\0\r\n\032\n", 8) || !memcmp(magic, "ni2\0\r\n\032\n", 8);
    if (!ok)
        return sq_fail(
            st, SQ_ERR_FORMAT,
            "%s: magic is not \"n+%d\" (an ANALYZE file or not NIfTI-%d), expected a NIfTI "
            "file",
            path, f->version, f->version);
    f->pair_file = magic[1] == 'i';
    if (f->version == 1)
        facts_n1(raw, f->swapped, f);
    else
        facts_n2(raw, f->swapped, f);
    return SQ_OK;
}

static int supported(int dt);

/* Every field libnifti or the voxel read would trip over, checked with one message each. */
static sq_code check_facts(const char *path, const hdr_facts *f, sq_status *st) {
    if (f->dim[0] < 1 || f->dim[0] > 7)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: dim[0] = %lld, expected 1..7 dimensions", path,
                       (long long)f->dim[0]);
    for (int a = 1; a <= f->dim[0]; a++)
        if (f->dim[a] < 1 || f->dim[a] > (a <= 3 ? 4096 : 1))
            return sq_fail(st, SQ_ERR_FORMAT, "%s: dim[%d] = %lld, expected %s", path, a,
                           (long long)f->dim[a],
                           a <= 3 ? "1..4096 voxels per axis" : "1 (a single 3D volume)");
    if (!supported(f->datatype))
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: datatype %s (%d) not supported, expected an integer or float type",
                       path, nifti_datatype_string(f->datatype), f->datatype);
    if (!isfinite(f->vox_offset) || f->vox_offset < 0 || f->vox_offset > 1e9)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: vox_offset = %g, expected a byte offset", path,
                       f->vox_offset);
    if (isinf(f->slope) || (f->slope != 0 && isfinite(f->slope) && !isfinite(f->inter)))
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: scl_slope = %g, scl_inter = %g, expected finite values", path, f->slope,
                       f->inter);
    return SQ_OK;
}

/* Uncompressed .nii: the voxel data must fit between vox_offset and the end of the file. */
static sq_code check_extent(const char *path, const hdr_facts *f, int nbyper, sq_status *st) {
    if (nifti_is_gzfile(path) || f->pair_file)
        return SQ_OK; /* a short gzip stream is caught by the read */
    struct stat sb;
    if (stat(path, &sb) != 0) return sq_fail(st, SQ_ERR_IO, "%s: cannot stat", path);
    double need = f->vox_offset + (double)f->dim[1] * (double)(f->dim[0] >= 2 ? f->dim[2] : 1) *
                                      (double)(f->dim[0] >= 3 ? f->dim[3] : 1) * nbyper;
    if (need > (double)sb.st_size)
        return sq_fail(st, SQ_ERR_FORMAT,
                       "%s: vox_offset %g + voxel data needs %.0f bytes, the file has %lld", path,
                       f->vox_offset, need, (long long)sb.st_size);
    return SQ_OK;
}

static long g_fast_gz_reads;

long sq_nifti_fast_gz_reads(void) {
    return __atomic_load_n(&g_fast_gz_reads, __ATOMIC_RELAXED);
}

#ifdef SEGQA_HAVE_LIBDEFLATE
/* The whole of a .nii.gz in one libdeflate call per gzip member (about twice zlib's inflate speed:
 * the read was a third of a deployment case's latency, issue 15). Fills nim->data with the `bytes`
 * after the header and returns 1; returns 0, having allocated nothing that stays, when the file is
 * not complete members holding at least that much, and the caller reads through znzlib, whose
 * errors name the problem. Nothing is allocated beyond what deflate can expand the file to
 * (1032:1), so a small file claiming gigabytes still fails on the short read (fuzz_nifti). */
static int inflate_whole(nifti_image *nim, size_t bytes) {
    size_t csize = 0, total = (size_t)nim->iname_offset + bytes;
    char *in = NULL;
    uint8_t *out = NULL;
    if (sq_read_file(nim->iname, &in, &csize, NULL) != SQ_OK || total / 1032 > csize + 4096 ||
        !(out = malloc(total))) {
        free(in);
        return 0;
    }
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    size_t pos = 0, got = 0, used_in = 0, used_out = 0;
    while (d && got < total && pos < csize &&
           libdeflate_gzip_decompress_ex(d, in + pos, csize - pos, out + got, total - got, &used_in,
                                         &used_out) == LIBDEFLATE_SUCCESS)
        pos += used_in, got += used_out;
    libdeflate_free_decompressor(d);
    free(in);
    if (got != total) {
        free(out);
        return 0;
    }
    memmove(out, out + nim->iname_offset, bytes);
    free(nim->data);
    nim->data = out;
    __atomic_fetch_add(&g_fast_gz_reads, 1, __ATOMIC_RELAXED);
    return 1;
}
#endif

/* Read `bytes` of voxel data into nim->data; returns the bytes read. The buffer grows with the data
 * actually present (64 MB steps), so a .nii.gz whose header claims gigabytes over a short stream
 * fails on the short read instead of allocating what the header says (found by fuzz_nifti). */
static size_t read_voxels(nifti_image *nim, size_t bytes) {
#ifdef SEGQA_HAVE_LIBDEFLATE
    if (nifti_is_gzfile(nim->iname) && inflate_whole(nim, bytes)) return bytes;
#endif
    znzFile fp = znzopen(nim->iname, "rb", nifti_is_gzfile(nim->iname));
    if (znz_isnull(fp)) return 0;
    size_t got = 0, cap = 0;
    const size_t step = (size_t)64 << 20;
    if (znzseek(fp, (znz_off_t)nim->iname_offset, SEEK_SET) >= 0) {
        while (got < bytes) {
            if (got == cap) {
                size_t ncap = cap + (bytes - cap < step ? bytes - cap : step);
                void *nd = realloc(nim->data, ncap);
                if (!nd) break;
                nim->data = nd, cap = ncap;
            }
            size_t n = znzread((char *)nim->data + got, 1, cap - got, fp);
            if (n == 0 || n > cap - got)
                break; /* gzread's -1 on a corrupt stream comes as SIZE_MAX */
            got += n;
        }
    }
    znzclose(fp);
    return got;
}

/* Header through libnifti (after the pre-check above); voxel data read raw through znzlib,
 * because libnifti's own loader silently replaces NaN/Inf floats by 0 (we must see them to
 * reject them) and a short read must be an error naming the file. */
static nifti_image *open_nifti(const char *path, sq_status *st) {
    if (!sq_file_exists(path)) {
        sq_fail(st, SQ_ERR_IO, "%s: no such file", path);
        return NULL;
    }
    hdr_facts facts;
    if (read_facts(path, &facts, st) || check_facts(path, &facts, st)) return NULL;
    nifti_set_debug_level(0);
    nifti_image *nim = nifti_image_read(path, 0);
    if (!nim) {
        sq_fail(st, SQ_ERR_FORMAT, "%s: not a readable NIfTI-1/2 file (bad or truncated header)",
                path);
        return NULL;
    }
    if (check_extent(path, &facts, nim->nbyper, st)) {
        nifti_image_free(nim);
        return NULL;
    }
    if (nim->nvox <= 0 || nim->nbyper <= 0 || nim->nvox > ((int64_t)1 << 32)) {
        sq_fail(st, SQ_ERR_FORMAT, "%s: %lld voxels of %d bytes, expected a 3D volume", path,
                (long long)nim->nvox, nim->nbyper);
        nifti_image_free(nim);
        return NULL;
    }
    size_t bytes = (size_t)nim->nvox * (size_t)nim->nbyper;
    size_t got = read_voxels(nim, bytes);
    if (got != bytes) {
        sq_fail(st, SQ_ERR_FORMAT,
                "%s: voxel data truncated or corrupt: read %zu of %zu bytes (shape %lldx%lldx%lld)",
                path, got, bytes, (long long)nim->nx, (long long)nim->ny, (long long)nim->nz);
        nifti_image_free(nim);
        return NULL;
    }
    if (nim->byteorder != nifti_short_order() && nim->swapsize > 1)
        nifti_swap_Nbytes(nim->nvox, nim->swapsize, nim->data);
    return nim;
}

/* Shape, spacing and affine from the header into v (allocating data of dtype dt). */
static sq_code take_geometry(const nifti_image *nim, const char *path, sq_dtype dt, sq_volume *v,
                             sq_status *st) {
    for (int a = 4; a <= 7; a++)
        if (nim->dim[0] >= a && nim->dim[a] > 1)
            return sq_fail(st, SQ_ERR_FORMAT, "%s: dim[%d] = %lld, expected a single 3D volume",
                           path, a, (long long)nim->dim[a]);
    if (nim->nx > 4096 || nim->ny > 4096 || nim->nz > 4096 || nim->nx < 1 || nim->ny < 1 ||
        nim->nz < 1)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: shape %lldx%lldx%lld outside 1..4096 per axis", path,
                       (long long)nim->nx, (long long)nim->ny, (long long)nim->nz);
    SQ_TRY(sq_volume_alloc(v, dt, (int)nim->nz, (int)nim->ny, (int)nim->nx, st));
    v->spacing[0] = nim->dz > 0 ? nim->dz : 1.0;
    v->spacing[1] = nim->dy > 0 ? nim->dy : 1.0;
    v->spacing[2] = nim->dx > 0 ? nim->dx : 1.0;
    const nifti_dmat44 *m = nim->sform_code > 0   ? &nim->sto_xyz
                            : nim->qform_code > 0 ? &nim->qto_xyz
                                                  : NULL;
    if (m) {
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                v->affine[r][c] = m->m[r][c];
    } else {
        v->affine[0][0] = v->spacing[2], v->affine[1][1] = v->spacing[1],
        v->affine[2][2] = v->spacing[0];
    }
    return SQ_OK;
}

/* Voxel i of the raw buffer as double; *ok = 0 for an unsupported datatype. */
static double voxel(const nifti_image *nim, size_t i) {
    const void *p = nim->data;
    switch (nim->datatype) {
    case DT_UINT8: return ((const uint8_t *)p)[i];
    case DT_INT8: return ((const int8_t *)p)[i];
    case DT_INT16: return ((const int16_t *)p)[i];
    case DT_UINT16: return ((const uint16_t *)p)[i];
    case DT_INT32: return ((const int32_t *)p)[i];
    case DT_UINT32: return ((const uint32_t *)p)[i];
    case DT_INT64: return (double)((const int64_t *)p)[i];
    case DT_UINT64: return (double)((const uint64_t *)p)[i];
    case DT_FLOAT32: return ((const float *)p)[i];
    case DT_FLOAT64: return ((const double *)p)[i];
    default: return NAN;
    }
}

/* The raw buffer as floats, v * slope + inter, one loop per datatype (not voxel()'s switch per
 * voxel); stops at the first value that is not finite or beyond float range and returns its index,
 * or n when every voxel converted. */
#define SQ_TO_F32_LOOP(T)                                                                          \
    do {                                                                                           \
        const T *p = (const T *)nim->data;                                                         \
        for (size_t i = 0; i < n; i++) {                                                           \
            double v = (double)p[i] * slope + inter;                                               \
            if (!(fabs(v) <= 3.0e38)) return i;                                                    \
            x[i] = (float)v;                                                                       \
        }                                                                                          \
        return n;                                                                                  \
    } while (0)
static size_t to_f32(const nifti_image *nim, double slope, double inter, float *x, size_t n) {
    switch (nim->datatype) {
    case DT_UINT8: SQ_TO_F32_LOOP(uint8_t);
    case DT_INT8: SQ_TO_F32_LOOP(int8_t);
    case DT_INT16: SQ_TO_F32_LOOP(int16_t);
    case DT_UINT16: SQ_TO_F32_LOOP(uint16_t);
    case DT_INT32: SQ_TO_F32_LOOP(int32_t);
    case DT_UINT32: SQ_TO_F32_LOOP(uint32_t);
    case DT_INT64: SQ_TO_F32_LOOP(int64_t);
    case DT_UINT64: SQ_TO_F32_LOOP(uint64_t);
    case DT_FLOAT32: SQ_TO_F32_LOOP(float);
    case DT_FLOAT64: SQ_TO_F32_LOOP(double);
    default: return 0;
    }
}
#undef SQ_TO_F32_LOOP

/* "(x=…, y=…, z=…)" of flat index i in v's [z][y][x] layout. */
static void voxel_xyz(const sq_volume *v, size_t i, size_t xyz[3]) {
    xyz[0] = i % (size_t)v->w;
    xyz[1] = i / (size_t)v->w % (size_t)v->h;
    xyz[2] = i / ((size_t)v->w * (size_t)v->h);
}

static int supported(int dt) {
    return dt == DT_UINT8 || dt == DT_INT8 || dt == DT_INT16 || dt == DT_UINT16 || dt == DT_INT32 ||
           dt == DT_UINT32 || dt == DT_INT64 || dt == DT_UINT64 || dt == DT_FLOAT32 ||
           dt == DT_FLOAT64;
}

sq_code sq_nifti_read_image(const char *path, sq_volume *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    nifti_image *nim = open_nifti(path, st);
    if (!nim) return st ? st->code : SQ_ERR_FORMAT;
    sq_code rc = SQ_OK;
    if (!supported(nim->datatype)) {
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: datatype %s (%d) not supported, expected an integer "
                     "or float type",
                     path, nifti_datatype_string(nim->datatype), nim->datatype);
        goto done;
    }
    rc = take_geometry(nim, path, SQ_F32, out, st);
    if (rc) goto done;
    double slope = nim->scl_slope, inter = nim->scl_inter;
    if (!(slope != 0.0) || !isfinite(slope)) slope = 1.0, inter = 0.0;
    if (!isfinite(inter)) inter = 0.0;
    size_t n = sq_volume_numel(out), bad = to_f32(nim, slope, inter, sq_volume_f32(out), n);
    if (bad < n) {
        size_t at[3];
        voxel_xyz(out, bad, at);
        rc = sq_fail(st, SQ_ERR_FORMAT,
                     "%s: voxel (x=%zu, y=%zu, z=%zu) is %g, expected finite intensities", path,
                     at[0], at[1], at[2], voxel(nim, bad) * slope + inter);
        sq_volume_free(out);
    }
done:
    nifti_image_free(nim);
    return rc;
}

sq_code sq_nifti_read_mask(const char *path, sq_volume *out, sq_status *st) {
    memset(out, 0, sizeof *out);
    nifti_image *nim = open_nifti(path, st);
    if (!nim) return st ? st->code : SQ_ERR_FORMAT;
    sq_code rc = SQ_OK;
    if (!supported(nim->datatype)) {
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: datatype %s (%d) not supported for a label mask", path,
                     nifti_datatype_string(nim->datatype), nim->datatype);
        goto done;
    }
    rc = take_geometry(nim, path, SQ_U8, out, st);
    if (rc) goto done;
    uint8_t *m = sq_volume_u8(out);
    size_t n = sq_volume_numel(out);
    for (size_t i = 0; i < n; i++) {
        double v = voxel(nim, i);
        if (!(v >= 0 && v <= 255 && v == floor(v))) {
            size_t at[3];
            voxel_xyz(out, i, at);
            rc = sq_fail(st, SQ_ERR_FORMAT,
                         "%s: voxel (x=%zu, y=%zu, z=%zu) has value %g, expected integer label "
                         "values 0..255",
                         path, at[0], at[1], at[2], v);
            sq_volume_free(out);
            goto done;
        }
        m[i] = (uint8_t)v;
    }
done:
    nifti_image_free(nim);
    return rc;
}

sq_code sq_nifti_read_values(const char *path, sq_volume *out, int *is_float, sq_status *st) {
    memset(out, 0, sizeof *out);
    nifti_image *nim = open_nifti(path, st);
    if (!nim) return st ? st->code : SQ_ERR_FORMAT;
    sq_code rc = SQ_OK;
    if (!supported(nim->datatype))
        rc = sq_fail(st, SQ_ERR_FORMAT, "%s: datatype %s (%d) not supported for a mask", path,
                     nifti_datatype_string(nim->datatype), nim->datatype);
    if (rc == SQ_OK) rc = take_geometry(nim, path, SQ_F32, out, st);
    if (rc == SQ_OK) {
        *is_float = nim->datatype == DT_FLOAT32 || nim->datatype == DT_FLOAT64;
        size_t n = sq_volume_numel(out), bad = to_f32(nim, 1.0, 0.0, sq_volume_f32(out), n);
        if (bad < n) {
            size_t at[3];
            voxel_xyz(out, bad, at);
            rc = sq_fail(st, SQ_ERR_FORMAT,
                         "%s: voxel (x=%zu, y=%zu, z=%zu) is %g, expected finite mask values", path,
                         at[0], at[1], at[2], voxel(nim, bad));
            sq_volume_free(out);
        }
    }
    nifti_image_free(nim);
    return rc;
}

sq_code sq_nifti_check_pair(const sq_volume *img, const char *img_path, const sq_volume *mask,
                            const char *mask_path, sq_status *st) {
    if (img->d != mask->d || img->h != mask->h || img->w != mask->w)
        return sq_fail(st, SQ_ERR_FORMAT, "%s: shape %dx%dx%d differs from image %s %dx%dx%d",
                       mask_path, mask->w, mask->h, mask->d, img_path, img->w, img->h, img->d);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (fabs(img->affine[r][c] - mask->affine[r][c]) > 1e-3)
                return sq_fail(st, SQ_ERR_FORMAT,
                               "%s: affine[%d][%d] = %g differs from image %s (%g)", mask_path, r,
                               c, mask->affine[r][c], img_path, img->affine[r][c]);
    return SQ_OK;
}

/* "dir/name.nii.gz" -> "dir/name.tmp<pid>.nii.gz" (libnifti picks the format by extension). */
static sq_code tmp_name(const char *path, char *buf, size_t n, sq_status *st) {
    size_t len = strlen(path);
    const char *ext = NULL;
    if (len > 7 && !strcmp(path + len - 7, ".nii.gz"))
        ext = path + len - 7;
    else if (len > 4 && !strcmp(path + len - 4, ".nii"))
        ext = path + len - 4;
    if (!ext) return sq_fail(st, SQ_ERR_USAGE, "%s: expected a .nii or .nii.gz name", path);
    int k = snprintf(buf, n, "%.*s.tmp%ld%s", (int)(ext - path), path, (long)getpid(), ext);
    if (k < 0 || (size_t)k >= n) return sq_fail(st, SQ_ERR_RANGE, "%s: path too long", path);
    return SQ_OK;
}

sq_code sq_nifti_write(const char *path, const sq_volume *v, sq_status *st) {
    char tmp[SQ_PATH_MAX];
    SQ_TRY(tmp_name(path, tmp, sizeof tmp, st));
    int64_t dims[8] = {3, v->w, v->h, v->d, 1, 1, 1, 1};
    int dt = v->dtype == SQ_F32 ? DT_FLOAT32 : DT_UINT8;
    nifti_image *nim = nifti_make_new_nim(dims, dt, 0);
    if (!nim) return sq_fail(st, SQ_ERR_NOMEM, "%s: could not create a NIfTI header", path);
    nim->dx = nim->pixdim[1] = v->spacing[2];
    nim->dy = nim->pixdim[2] = v->spacing[1];
    nim->dz = nim->pixdim[3] = v->spacing[0];
    nim->xyz_units = NIFTI_UNITS_MM;
    nifti_dmat44 m;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            m.m[r][c] = v->affine[r][c];
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_dmat44_inverse(m);
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    double ddx, ddy, ddz;
    nifti_dmat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x,
                            &nim->qoffset_y, &nim->qoffset_z, &ddx, &ddy, &ddz, &nim->qfac);
    nim->qto_xyz = m;
    nim->qto_ijk = nim->sto_ijk;
    nim->nifti_type = NIFTI_FTYPE_NIFTI1_1;
    if (nifti_set_filenames(nim, tmp, 0, 1) != 0) {
        nifti_image_free(nim);
        return sq_fail(st, SQ_ERR_IO, "%s: bad output name", path);
    }
    nim->data = v->data;
    nifti_set_debug_level(0);
    nifti_image_write(nim);
    nim->data = NULL;
    nifti_image_free(nim);
    if (!sq_file_exists(tmp)) return sq_fail(st, SQ_ERR_IO, "%s: could not write", path);
    return sq_commit_file(tmp, path, st);
}

sq_code sq_nifti_selfcheck(const char *data_dir, const char *file, char *detail, size_t n,
                           sq_status *st) {
    if (!file) file = "hippocampus_004.nii.gz";
    char ip[SQ_PATH_MAX], lp[SQ_PATH_MAX];
    int k1 = snprintf(ip, sizeof ip, "%s/images/%s", data_dir, file);
    int k2 = snprintf(lp, sizeof lp, "%s/labels/%s", data_dir, file);
    if (k1 < 0 || k2 < 0 || (size_t)k1 >= sizeof ip || (size_t)k2 >= sizeof lp)
        return sq_fail(st, SQ_ERR_RANGE, "%s: path too long", data_dir);
    sq_volume img, lab, all;
    SQ_TRY(sq_nifti_read_image(ip, &img, st));
    sq_code rc = sq_nifti_read_mask(lp, &lab, st);
    if (!rc) rc = sq_nifti_check_pair(&img, ip, &lab, lp, st);
    if (!rc) rc = sq_volume_alloc(&all, SQ_U8, lab.d, lab.h, lab.w, st);
    if (!rc) {
        memcpy(all.data, lab.data, sq_volume_numel(&lab));
        sq_label_set one = {0, 1, {1}}, both = {0, 2, {1, 2}};
        sq_label_set_apply(&one, &lab);
        sq_label_set_apply(&both, &all);
        size_t nall = sq_mask_count(&all);
        double d = sq_dice_u8(sq_volume_u8(&lab), sq_volume_u8(&all), sq_volume_numel(&all));
        if (nall == 0)
            rc = sq_fail(st, SQ_ERR_FORMAT, "%s: ground truth is empty", lp);
        else
            snprintf(detail, n,
                     "%s: %dx%dx%d (x*y*z), %.3gx%.3gx%.3g mm, %zu GT voxels, Dice(1 vs 1+2) %.4f",
                     file, img.w, img.h, img.d, img.spacing[2], img.spacing[1], img.spacing[0],
                     nall, d);
        sq_volume_free(&all);
    }
    sq_volume_free(&img);
    sq_volume_free(&lab);
    return rc;
}
