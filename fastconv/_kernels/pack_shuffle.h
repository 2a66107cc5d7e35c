/* Register shuffles for the packing loops of the direct kernels.
 *
 * Planes to pixel-major order for the weight-gradient tiles: runs of 4 float32 (2 float64)
 * grad planes interleaved through a register transpose.
 *
 * dst[i*step + j] = src_j[i] for i < n: each source is a contiguous run of one plane's row,
 * and pixel i of the run gets the channels j side by side. Transposing 4 x 4 float32 (2 x 2
 * float64) in registers turns scattered 4-byte stores into 16-byte ones.
 *
 * The other way for a column stride of 2: a row's even and odd columns to their two phase
 * planes in one pass (fc_deinterleave), instead of one strided pass per phase, and back
 * (fc_interleave). x86-64 always has SSE2; other targets (and the tails) copy item by item.
 */
#ifndef FASTCONV_PACK_SHUFFLE_H
#define FASTCONV_PACK_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define FC_HAVE_SSE2_INTERLEAVE 1
#endif

/* evens[m] = src[2m], odds[m] = src[2m + 1] for m < n: a row split into its two column
 * phases in one pass (two loads, two shuffles, two stores per 4 float32 pairs). */
static void fc_deinterleave_f32(float *evens, float *odds, const float *src, ptrdiff_t n)
{
    ptrdiff_t m = 0;
#ifdef FC_HAVE_SSE2_INTERLEAVE
    for (; m + 4 <= n; m += 4) {
        __m128 a = _mm_loadu_ps(src + 2 * m), b = _mm_loadu_ps(src + 2 * m + 4);
        _mm_storeu_ps(evens + m, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm_storeu_ps(odds + m, _mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    }
#endif
    for (; m < n; m++) evens[m] = src[2 * m], odds[m] = src[2 * m + 1];
}

static void fc_deinterleave_f64(double *evens, double *odds, const double *src, ptrdiff_t n)
{
    ptrdiff_t m = 0;
#ifdef FC_HAVE_SSE2_INTERLEAVE
    for (; m + 2 <= n; m += 2) {
        __m128d a = _mm_loadu_pd(src + 2 * m), b = _mm_loadu_pd(src + 2 * m + 2);
        _mm_storeu_pd(evens + m, _mm_unpacklo_pd(a, b));
        _mm_storeu_pd(odds + m, _mm_unpackhi_pd(a, b));
    }
#endif
    for (; m < n; m++) evens[m] = src[2 * m], odds[m] = src[2 * m + 1];
}

/* dst[2m] = evens[m], dst[2m + 1] = odds[m] for m < n: two column phases of a row put back
 * together in one pass (two loads, two shuffles, two stores per 4 float32 pairs): the
 * inverse of fc_deinterleave (for float64, fc_interleave2_f64 below with a step of 2).
 * With `stream`, where dst starts on 16 bytes, the stores are non-temporal (past the caches:
 * no read of dst's lines before they are written); the caller fences (fc_store_fence)
 * before anyone reads dst. */
static void fc_interleave_f32(float *dst, const float *evens, const float *odds, ptrdiff_t n, int stream)
{
    ptrdiff_t m = 0;
#ifdef FC_HAVE_SSE2_INTERLEAVE
    const int nt = stream && ((uintptr_t)dst & 15) == 0;
    for (; m + 4 <= n; m += 4) {
        __m128 a = _mm_loadu_ps(evens + m), b = _mm_loadu_ps(odds + m);
        __m128 lo = _mm_unpacklo_ps(a, b), hi = _mm_unpackhi_ps(a, b);
        if (nt) {
            _mm_stream_ps(dst + 2 * m, lo);
            _mm_stream_ps(dst + 2 * m + 4, hi);
        } else {
            _mm_storeu_ps(dst + 2 * m, lo);
            _mm_storeu_ps(dst + 2 * m + 4, hi);
        }
    }
#else
    (void)stream;
#endif
    for (; m < n; m++) dst[2 * m] = evens[m], dst[2 * m + 1] = odds[m];
}

/* Order a thread's non-temporal stores before its later ones (and the end of its parallel region). */
static inline void fc_store_fence(void)
{
#ifdef FC_HAVE_SSE2_INTERLEAVE
    _mm_sfence();
#endif
}

/* Whether a float32 / float64 is an infinity or a nan: exponent bits all ones. */
static inline int fc_nonfinite_f32(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

static inline int fc_nonfinite_f64(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7ff0000000000000u) == 0x7ff0000000000000u;
}

/* The body of fc_interleave4_f32 and fc_interleave4_finite_f32: with `check` (a constant where it
 * is inlined), it also returns whether an element copied is not finite. The vectors' check ORs
 * the bits of v - v, which is +0 for every finite v and a nan for an infinity or a nan: two
 * more instructions a vector, beside the transpose's shuffles. */
static inline int fc_interleave4_body_f32(float *dst, ptrdiff_t step, const float *s0, const float *s1,
                                          const float *s2, const float *s3, ptrdiff_t n, const int check)
{
    ptrdiff_t i = 0;
    int bad = 0;
#ifdef FC_HAVE_SSE2_INTERLEAVE
    __m128 spoiled = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 r0 = _mm_loadu_ps(s0 + i), r1 = _mm_loadu_ps(s1 + i);
        __m128 r2 = _mm_loadu_ps(s2 + i), r3 = _mm_loadu_ps(s3 + i);
        if (check)
            spoiled = _mm_or_ps(spoiled, _mm_or_ps(_mm_or_ps(_mm_sub_ps(r0, r0), _mm_sub_ps(r1, r1)),
                                                   _mm_or_ps(_mm_sub_ps(r2, r2), _mm_sub_ps(r3, r3))));
        __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpacklo_ps(r2, r3);
        __m128 t2 = _mm_unpackhi_ps(r0, r1), t3 = _mm_unpackhi_ps(r2, r3);
        float *d = dst + i * step;
        _mm_storeu_ps(d, _mm_movelh_ps(t0, t1));
        _mm_storeu_ps(d + step, _mm_movehl_ps(t1, t0));
        _mm_storeu_ps(d + 2 * step, _mm_movelh_ps(t2, t3));
        _mm_storeu_ps(d + 3 * step, _mm_movehl_ps(t3, t2));
    }
    if (check)
        bad = _mm_movemask_epi8(_mm_cmpeq_epi32(_mm_castps_si128(spoiled), _mm_setzero_si128())) != 0xffff;
#endif
    for (; i < n; i++) {
        float *d = dst + i * step;
        d[0] = s0[i], d[1] = s1[i], d[2] = s2[i], d[3] = s3[i];
        if (check)
            bad |= fc_nonfinite_f32(s0[i]) | fc_nonfinite_f32(s1[i]) | fc_nonfinite_f32(s2[i]) |
                   fc_nonfinite_f32(s3[i]);
    }
    return bad;
}

static void fc_interleave4_f32(float *dst, ptrdiff_t step, const float *s0, const float *s1, const float *s2,
                               const float *s3, ptrdiff_t n)
{
    (void)fc_interleave4_body_f32(dst, step, s0, s1, s2, s3, n, 0);
}

/* fc_interleave4_f32, returning whether an element copied is not finite (the weight packing's
 * check for the edge tiles, in the copy's registers instead of a pass over what it wrote). */
static int fc_interleave4_finite_f32(float *dst, ptrdiff_t step, const float *s0, const float *s1,
                                     const float *s2, const float *s3, ptrdiff_t n)
{
    return fc_interleave4_body_f32(dst, step, s0, s1, s2, s3, n, 1);
}

static inline int fc_interleave2_body_f64(double *dst, ptrdiff_t step, const double *s0, const double *s1,
                                          ptrdiff_t n, const int check)
{
    ptrdiff_t i = 0;
    int bad = 0;
#ifdef FC_HAVE_SSE2_INTERLEAVE
    __m128d spoiled = _mm_setzero_pd();
    for (; i + 2 <= n; i += 2) {
        __m128d r0 = _mm_loadu_pd(s0 + i), r1 = _mm_loadu_pd(s1 + i);
        if (check)
            spoiled = _mm_or_pd(spoiled, _mm_or_pd(_mm_sub_pd(r0, r0), _mm_sub_pd(r1, r1)));
        _mm_storeu_pd(dst + i * step, _mm_unpacklo_pd(r0, r1));
        _mm_storeu_pd(dst + (i + 1) * step, _mm_unpackhi_pd(r0, r1));
    }
    if (check)
        bad = _mm_movemask_epi8(_mm_cmpeq_epi32(_mm_castpd_si128(spoiled), _mm_setzero_si128())) != 0xffff;
#endif
    for (; i < n; i++) {
        double *d = dst + i * step;
        d[0] = s0[i], d[1] = s1[i];
        if (check)
            bad |= fc_nonfinite_f64(s0[i]) | fc_nonfinite_f64(s1[i]);
    }
    return bad;
}

static void fc_interleave2_f64(double *dst, ptrdiff_t step, const double *s0, const double *s1, ptrdiff_t n)
{
    (void)fc_interleave2_body_f64(dst, step, s0, s1, n, 0);
}

/* fc_interleave2_f64, returning whether an element copied is not finite. */
static int fc_interleave2_finite_f64(double *dst, ptrdiff_t step, const double *s0, const double *s1, ptrdiff_t n)
{
    return fc_interleave2_body_f64(dst, step, s0, s1, n, 1);
}

#endif /* FASTCONV_PACK_SHUFFLE_H */
