/* One tile of a 2-D transpose: dst[s * dst_row + r] = src[r * src_row + s], r < rows, s < cols.
 *
 * 4-byte items go through 4 x 4 register transposes (gather4x4.h's fc_gather4x4) where a
 * quad of rows meets a quad of columns: four 16-byte loads and four 16-byte stores instead of
 * sixteen of each; a tile's last rows (columns) take a quad overlapping the one before, as
 * im2col_block.h's last taps do. Tiles narrower than 4 either way, 8-byte items and targets
 * without SSE2 copy item by item.
 */
#ifndef FASTCONV_TRANSPOSE_TILE_H
#define FASTCONV_TRANSPOSE_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "gather4x4.h"

#define FC_ALIASED_ROWS 4096 /* bytes: rows a multiple of this apart share the L1 cache's sets */

static void fc_transpose_tile_u32(const uint32_t *src, ptrdiff_t src_row, uint32_t *dst, ptrdiff_t dst_row,
                                  ptrdiff_t rows, ptrdiff_t cols)
{
#ifdef FC_HAVE_SSE2_TRANSPOSE
    if (rows >= 4 && cols >= 4 && (dst_row * 4) % FC_ALIASED_ROWS == 0) {
        /* destination rows a multiple of 4 KiB apart share the L1 cache's sets: each quad of them is
         * written whole (its lines completed) before the next, where the order below keeps sixteen
         * lines of one set open at once (NHWC to NCHW on 32 x 32 images: 1.9x) */
        for (ptrdiff_t s = 0; s < cols; s += 4) {
            if (s + 4 > cols) s = cols - 4;
            for (ptrdiff_t r0 = 0; r0 < rows; r0 += 4) {
                if (r0 + 4 > rows) r0 = rows - 4;
                const uint32_t *s0 = src + r0 * src_row, *s1 = s0 + src_row, *s2 = s1 + src_row, *s3 = s2 + src_row;
                __m128i o[4];
                fc_gather4x4(s0, s1, s2, s3, s, 1, o);
                for (int p = 0; p < 4; p++) _mm_storeu_si128((__m128i *)(dst + (s + p) * dst_row + r0), o[p]);
            }
        }
        return;
    }
    if (rows >= 4 && cols >= 4) {
        for (ptrdiff_t r0 = 0; r0 < rows; r0 += 4) {
            if (r0 + 4 > rows) r0 = rows - 4; /* the last rows: a quad overlapping the one before */
            const uint32_t *s0 = src + r0 * src_row, *s1 = s0 + src_row, *s2 = s1 + src_row, *s3 = s2 + src_row;
            for (ptrdiff_t s = 0; s < cols; s += 4) {
                if (s + 4 > cols) s = cols - 4; /* (the same for columns) */
                __m128i o[4];
                fc_gather4x4(s0, s1, s2, s3, s, 1, o);
                for (int p = 0; p < 4; p++) _mm_storeu_si128((__m128i *)(dst + (s + p) * dst_row + r0), o[p]);
            }
        }
        return;
    }
#endif
    for (ptrdiff_t s = 0; s < cols; s++)
        for (ptrdiff_t r = 0; r < rows; r++) dst[s * dst_row + r] = src[r * src_row + s];
}

static void fc_transpose_tile_u64(const uint64_t *src, ptrdiff_t src_row, uint64_t *dst, ptrdiff_t dst_row,
                                  ptrdiff_t rows, ptrdiff_t cols)
{
    for (ptrdiff_t s = 0; s < cols; s++)
        for (ptrdiff_t r = 0; r < rows; r++) dst[s * dst_row + r] = src[r * src_row + s];
}

/* A block of the transpose, any size: dst[s * dst_row + r] = src[r * src_row + s], r < rows, s < cols, in
 * tiles of FC_TRANSPOSE_TILE x FC_TRANSPOSE_TILE, a strip of source columns (destination rows) at a time
 * down every row: each strip's destination rows are written in order, its source lines read a tile's at
 * a time (a block of one strip: a task of a plane's columns; of many: a task of its rows). */
#define FC_TRANSPOSE_TILE 16
#define FC_TRANSPOSE_BLOCK(NAME, WORD, TILE_FN)                                                            \
    static void NAME(const WORD *src, ptrdiff_t src_row, WORD *dst, ptrdiff_t dst_row, ptrdiff_t rows,      \
                     ptrdiff_t cols)                                                                       \
    {                                                                                                      \
        for (ptrdiff_t s0 = 0; s0 < cols; s0 += FC_TRANSPOSE_TILE) {                                      \
            const ptrdiff_t sn = cols - s0 < FC_TRANSPOSE_TILE ? cols - s0 : FC_TRANSPOSE_TILE;            \
            for (ptrdiff_t r0 = 0; r0 < rows; r0 += FC_TRANSPOSE_TILE) {                                  \
                const ptrdiff_t rn = rows - r0 < FC_TRANSPOSE_TILE ? rows - r0 : FC_TRANSPOSE_TILE;        \
                TILE_FN(src + r0 * src_row + s0, src_row, dst + s0 * dst_row + r0, dst_row, rn, sn);      \
            }                                                                                              \
        }                                                                                                  \
    }
FC_TRANSPOSE_BLOCK(fc_transpose_block_u32, uint32_t, fc_transpose_tile_u32)
FC_TRANSPOSE_BLOCK(fc_transpose_block_u64, uint64_t, fc_transpose_tile_u64)
#undef FC_TRANSPOSE_BLOCK

#endif
