/* png.h — write an 8-bit RGB PNG with zlib (no libpng needed) and draw on an RGB canvas: the
 * pictures of the QC report (qc_report.h) and the drift monitor.
 *
 * Not for: plots with axes and legends (report.c uses gnuplot for those).
 */
#ifndef SEGQA_TRAIN_PNG_H
#define SEGQA_TRAIN_PNG_H

#include "core/status.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_canvas {
    int w, h;
    uint8_t *rgb; /* h rows of w RGB triplets */
} sq_canvas;

sq_code sq_canvas_alloc(sq_canvas *c, int w, int h, uint8_t r, uint8_t g, uint8_t b, sq_status *st);
void sq_canvas_free(sq_canvas *c);
static inline void sq_canvas_put(sq_canvas *c, int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    uint8_t *p = c->rgb + 3 * ((size_t)y * (size_t)c->w + (size_t)x);
    p[0] = r, p[1] = g, p[2] = b;
}
/* Text in a 5x7 pixel font scaled by `scale`: digits, A-Z, space and . : = - + % ( ) /;
 * other characters draw as blanks. Returns the x after the text. */
int sq_canvas_text(sq_canvas *c, int x, int y, int scale, const char *text, uint8_t r, uint8_t g,
                   uint8_t b);
/* Written to a temporary name beside path and renamed. */
sq_code sq_png_write(const char *path, const sq_canvas *c, sq_status *st);

#ifdef __cplusplus
}
#endif
#endif
