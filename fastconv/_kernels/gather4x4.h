/* Four runs of four 4-byte items transposed in SSE2 registers (x86-64; elsewhere nothing is defined).
 *
 * Shared by im2col_block.h (blocks of im2col rows) and transpose_tile.h (tiles of 2-D transposes);
 * FC_HAVE_SSE2_TRANSPOSE says whether the target has them.
 */
#ifndef FASTCONV_GATHER4X4_H
#define FASTCONV_GATHER4X4_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define FC_HAVE_SSE2_TRANSPOSE 1
#endif

#ifdef FC_HAVE_SSE2_TRANSPOSE
/* Pixels i..i+3 of one tap's run at stride sw (1 or 2). With stride 2 the two loads
 * end one item past pixel i+3's: the caller only asks for quads followed by another
 * pixel of the run, whose items lie further on. */
static inline __m128i fc_load4(const uint32_t *s, ptrdiff_t i, ptrdiff_t sw)
{
    if (sw == 1) return _mm_loadu_si128((const __m128i *)(s + i));
    __m128 a = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
    __m128 b = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i + 4)));
    return _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
}

/* Pixels i..i+3 of four taps' runs s0..s3, transposed: o[p] holds pixel i+p's four taps.
 * Always inlined, so that o stays in registers (left to itself, GCC kept one out-of-line
 * copy for the whole module: streamed im2col ran 0.7-0.85x). */
#if defined(__GNUC__)
__attribute__((always_inline)) static inline
#elif defined(_MSC_VER)
static __forceinline
#else
static inline
#endif
void fc_gather4x4(const uint32_t *s0, const uint32_t *s1, const uint32_t *s2, const uint32_t *s3,
                         ptrdiff_t i, ptrdiff_t sw, __m128i o[4])
{
    __m128i r0 = fc_load4(s0, i, sw), r1 = fc_load4(s1, i, sw);
    __m128i r2 = fc_load4(s2, i, sw), r3 = fc_load4(s3, i, sw);
    __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
    __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
    o[0] = _mm_unpacklo_epi64(t0, t1), o[1] = _mm_unpackhi_epi64(t0, t1);
    o[2] = _mm_unpacklo_epi64(t2, t3), o[3] = _mm_unpackhi_epi64(t2, t3);
}
#endif

#endif
