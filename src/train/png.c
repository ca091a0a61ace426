/* png.c — a minimal PNG writer (IHDR, one zlib IDAT, IEND; filter 0) and a 5x7 bitmap font. */
#include "train/png.h"

#include "core/fileio.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

sq_code sq_canvas_alloc(sq_canvas *c, int w, int h, uint8_t r, uint8_t g, uint8_t b,
                        sq_status *st) {
    c->w = w, c->h = h;
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!c->rgb) return sq_fail(st, SQ_ERR_NOMEM, "out of memory for a %dx%d picture", w, h);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        c->rgb[3 * i] = r, c->rgb[3 * i + 1] = g, c->rgb[3 * i + 2] = b;
    return SQ_OK;
}

void sq_canvas_free(sq_canvas *c) {
    free(c->rgb);
    c->rgb = NULL;
}

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
typedef struct glyph {
    char ch;
    uint8_t rows[7];
} glyph;
static const glyph font[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
    {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
    {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
    {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},
    {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}},
    {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
    {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
    {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},
    {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
    {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'Z', {31, 1, 2, 4, 8, 16, 31}},
    {'.', {0, 0, 0, 0, 0, 12, 12}},      {':', {0, 12, 12, 0, 12, 12, 0}},
    {'=', {0, 0, 31, 0, 31, 0, 0}},      {'-', {0, 0, 0, 31, 0, 0, 0}},
    {'+', {0, 4, 4, 31, 4, 4, 0}},       {'%', {24, 25, 2, 4, 8, 19, 3}},
    {'(', {2, 4, 8, 8, 8, 4, 2}},        {')', {8, 4, 2, 2, 2, 4, 8}},
    {'/', {0, 1, 2, 4, 8, 16, 0}},       {'[', {14, 8, 8, 8, 8, 8, 14}},
    {']', {14, 2, 2, 2, 2, 2, 14}},      {',', {0, 0, 0, 0, 12, 4, 8}},
};

static const uint8_t *glyph_rows(char ch) {
    ch = (char)toupper((unsigned char)ch);
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].ch == ch) return font[i].rows;
    return NULL;
}

int sq_canvas_text(sq_canvas *c, int x, int y, int scale, const char *text, uint8_t r, uint8_t g,
                   uint8_t b) {
    for (const char *p = text; *p; p++, x += 6 * scale) {
        const uint8_t *rows = glyph_rows(*p);
        if (!rows) continue;
        for (int gy = 0; gy < 7; gy++)
            for (int gx = 0; gx < 5; gx++)
                if (rows[gy] & (1u << (4 - gx)))
                    for (int sy = 0; sy < scale; sy++)
                        for (int sx = 0; sx < scale; sx++)
                            sq_canvas_put(c, x + gx * scale + sx, y + gy * scale + sy, r, g, b);
    }
    return x;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static int write_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len) {
    uint8_t head[8];
    put_u32(head, len);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len) crc = crc32(crc, data, len);
    uint8_t tail[4];
    put_u32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (!len || fwrite(data, 1, len, f) == len) &&
           fwrite(tail, 1, 4, f) == 4;
}

/* Rows with a leading filter byte 0, deflated. */
static sq_code deflate_rows(const sq_canvas *c, uint8_t **out, uLongf *out_len, sq_status *st) {
    size_t row = (size_t)c->w * 3 + 1, raw_len = row * (size_t)c->h;
    uint8_t *raw = malloc(raw_len);
    *out_len = compressBound((uLong)raw_len);
    *out = malloc(*out_len);
    sq_code rc = raw && *out ? SQ_OK : sq_fail(st, SQ_ERR_NOMEM, "out of memory");
    for (int y = 0; rc == SQ_OK && y < c->h; y++) {
        raw[row * (size_t)y] = 0;
        memcpy(raw + row * (size_t)y + 1, c->rgb + (size_t)y * (size_t)c->w * 3, row - 1);
    }
    if (rc == SQ_OK && compress2(*out, out_len, raw, (uLong)raw_len, 6) != Z_OK)
        rc = sq_fail(st, SQ_ERR_INTERNAL, "zlib could not compress a picture");
    free(raw);
    if (rc != SQ_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

sq_code sq_png_write(const char *path, const sq_canvas *c, sq_status *st) {
    uint8_t *z = NULL;
    uLongf zlen = 0;
    SQ_TRY(deflate_rows(c, &z, &zlen, st));
    char tmp[SQ_PATH_MAX];
    sq_code rc = sq_tmp_path(path, tmp, sizeof tmp, st);
    FILE *f = rc == SQ_OK ? fopen(tmp, "wb") : NULL;
    if (rc == SQ_OK && !f) rc = sq_fail(st, SQ_ERR_IO, "%s: cannot create", tmp);
    if (f) {
        static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
        uint8_t ihdr[13] = {0};
        put_u32(ihdr, (uint32_t)c->w);
        put_u32(ihdr + 4, (uint32_t)c->h);
        ihdr[8] = 8, ihdr[9] = 2; /* 8-bit RGB, deflate, filter 0, no interlace */
        int ok = fwrite(sig, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) &&
                 write_chunk(f, "IDAT", z, (uint32_t)zlen) && write_chunk(f, "IEND", NULL, 0);
        ok = (fclose(f) == 0) && ok;
        rc = ok ? sq_commit_file(tmp, path, st)
                : sq_fail(st, SQ_ERR_IO, "%s: write failed (disk full?)", path);
        if (rc != SQ_OK) remove(tmp);
    }
    free(z);
    return rc;
}
