/* col2im adds of a block of four output pixels, transposed in registers.
 *
 * The columns of four consecutive output pixels of one output row are four
 * consecutive rows of cols: read in memory order, four taps of the four pixels
 * at a time (two for doubles), transposed, so that each tap then adds one short
 * vector into its image row (output stride 1) instead of four scattered items.
 * Adding tap by tap instead read one item of every row per tap.
 *
 * Pixel i of the block adds tap j, src[i*ld + j], into rows[j][cols[j] + first
 * + i*sw]: rows[j] is the image row tap j adds into (NULL: the tap falls in the
 * zero padding above or below and is dropped), cols[j] the column pixel 0 of
 * the row reaches there. The caller guarantees every column so reached lies in
 * its row. The taps are j = gk*KW + kw (a kernel row gk of KW taps); the block's
 * sums are transposed into buf (4*J items, 16-byte aligned) first, then added
 * kernel column after kernel column (kw outermost), so that the overlapping
 * adds of neighbouring taps of one image row are far apart: added one after the
 * other, each load waited for the store before it (1.0-1.45x slower).
 * Each pixel receives its sums in the order (kw, gk): one per tap. x86-64
 * always has SSE2; other targets move and add item by item in the same order.
 */
#ifndef FASTCONV_COL2IM_BLOCK_H
#define FASTCONV_COL2IM_BLOCK_H

#include <stddef.h>

#include "prefetch.h"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define FC_HAVE_SSE2_COL2IM 1
#endif

#define FC_COL2IM_BLOCK 4 /* output pixels in a block */

static void fc_col2im_chunk_f32(const float *src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, float *const *rows,
                                const ptrdiff_t *cols, ptrdiff_t first, ptrdiff_t sw, float *buf)
{
    ptrdiff_t j = 0;
#ifdef FC_HAVE_SSE2_COL2IM
    for (; j + 4 <= J; j += 4) {
        __m128 r0 = _mm_loadu_ps(src + j), r1 = _mm_loadu_ps(src + ld + j);
        __m128 r2 = _mm_loadu_ps(src + 2 * ld + j), r3 = _mm_loadu_ps(src + 3 * ld + j);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3); /* r_t: tap j + t of pixels 0..3 */
        _mm_store_ps(buf + 4 * j, r0);
        _mm_store_ps(buf + 4 * j + 4, r1);
        _mm_store_ps(buf + 4 * j + 8, r2);
        _mm_store_ps(buf + 4 * j + 12, r3);
    }
#endif
    for (; j < J; j++)
        for (ptrdiff_t i = 0; i < 4; i++) buf[4 * j + i] = src[i * ld + j];
    for (ptrdiff_t kw = 0; kw < KW; kw++) {
        for (j = kw; j < J; j += KW) {
            float *d = rows[j];
            if (!d) continue;
            d += cols[j] + first;
#ifdef FC_HAVE_SSE2_COL2IM
            if (sw == 1) {
                _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), _mm_load_ps(buf + 4 * j)));
                continue;
            }
#endif
            for (ptrdiff_t i = 0; i < 4; i++) d[i * sw] += buf[4 * j + i];
        }
    }
}

static void fc_col2im_chunk_f64(const double *src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, double *const *rows,
                                const ptrdiff_t *cols, ptrdiff_t first, ptrdiff_t sw, double *buf)
{
    ptrdiff_t j = 0;
#ifdef FC_HAVE_SSE2_COL2IM
    for (; j + 2 <= J; j += 2) {
        __m128d r0 = _mm_loadu_pd(src + j), r1 = _mm_loadu_pd(src + ld + j);
        __m128d r2 = _mm_loadu_pd(src + 2 * ld + j), r3 = _mm_loadu_pd(src + 3 * ld + j);
        _mm_store_pd(buf + 4 * j, _mm_unpacklo_pd(r0, r1)); /* tap j of pixels 0, 1 */
        _mm_store_pd(buf + 4 * j + 2, _mm_unpacklo_pd(r2, r3));
        _mm_store_pd(buf + 4 * j + 4, _mm_unpackhi_pd(r0, r1)); /* tap j + 1 */
        _mm_store_pd(buf + 4 * j + 6, _mm_unpackhi_pd(r2, r3));
    }
#endif
    for (; j < J; j++)
        for (ptrdiff_t i = 0; i < 4; i++) buf[4 * j + i] = src[i * ld + j];
    for (ptrdiff_t kw = 0; kw < KW; kw++) {
        for (j = kw; j < J; j += KW) {
            double *d = rows[j];
            if (!d) continue;
            d += cols[j] + first;
#ifdef FC_HAVE_SSE2_COL2IM
            if (sw == 1) {
                _mm_storeu_pd(d, _mm_add_pd(_mm_loadu_pd(d), _mm_load_pd(buf + 4 * j)));
                _mm_storeu_pd(d + 2, _mm_add_pd(_mm_loadu_pd(d + 2), _mm_load_pd(buf + 4 * j + 2)));
                continue;
            }
#endif
            for (ptrdiff_t i = 0; i < 4; i++) d[i * sw] += buf[4 * j + i];
        }
    }
}

/* The block's taps in chunks of `chunk` (a multiple of KW): buf holds 4*chunk items. */
static void fc_col2im_block_f32(const float *src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, float *const *rows,
                                const ptrdiff_t *cols, ptrdiff_t first, ptrdiff_t sw, float *buf, ptrdiff_t chunk)
{
    for (ptrdiff_t j0 = 0; j0 < J; j0 += chunk)
        fc_col2im_chunk_f32(src + j0, ld, J - j0 < chunk ? J - j0 : chunk, KW, rows + j0, cols + j0, first, sw, buf);
}

/* The block's taps in chunks of `chunk` (a multiple of KW): buf holds 4*chunk items. */
static void fc_col2im_block_f64(const double *src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, double *const *rows,
                                const ptrdiff_t *cols, ptrdiff_t first, ptrdiff_t sw, double *buf, ptrdiff_t chunk)
{
    for (ptrdiff_t j0 = 0; j0 < J; j0 += chunk)
        fc_col2im_chunk_f64(src + j0, ld, J - j0 < chunk ? J - j0 : chunk, KW, rows + j0, cols + j0, first, sw, buf);
}

#endif /* FASTCONV_COL2IM_BLOCK_H */
