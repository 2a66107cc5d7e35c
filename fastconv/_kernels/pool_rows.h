/* Pooling's inner loops with run-time instruction-set dispatch: max pooling's NCHW interior
 * rows (2x2 windows at stride 2, 3-tap window rows at strides 1 and 2) and NHWC's windows over
 * vectors of channels ("pixels"); NHWC average pooling's windows and its gradient's.
 *
 * pool_rows_impl.h is compiled once per level (simd.h: x86-64 baseline, AVX2, AVX-512F;
 * elsewhere the compiler's default target) for float32 and float64 with GCC/Clang vector
 * extensions. fc_pool_select_level() picks a level's table (the same level as the
 * convolution tiles: fastconv._simd selects both); _pool calls through
 * fc_pool_active_rows(), which is NULL without vector extensions (MSVC): _pool's own loops
 * run then.
 *
 * Why not the compiler's vectorizer at each level: built with -march=native on an Intel
 * Xeon, _pool's loops ran 1.1-1.5x as fast on large planes but 0.57x on 14x14 ones, where
 * a row's few outputs went to a scalar remainder loop that GCC compiled with branches
 * (mispredicted on every other tap of random data). Here every output is a vector lane.
 */
#ifndef FASTCONV_POOL_ROWS_H
#define FASTCONV_POOL_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "simd.h"

typedef void (*fc_max2x2_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, float *);
typedef void (*fc_max2x2_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, double *);
typedef void (*fc_max2x2_idx_f32_fn)(const float *, ptrdiff_t, int32_t, ptrdiff_t, float *, int32_t *);
typedef void (*fc_max3_f32_fn)(const float *, ptrdiff_t, float *);
typedef void (*fc_max3_f64_fn)(const double *, ptrdiff_t, double *);
typedef void (*fc_max3_idx_f32_fn)(const float *, int32_t, ptrdiff_t, float *, int32_t *);
/* NHWC: image, W, C, h0, hn, DH, w0, wn, DW, out, taps (float32 only; NULL: no indices), for
 * C >= FC_PIXEL_MIN_CHANNELS (the baseline's lanes; fewer: _pool's loops, which ran 2.1x as
 * fast as a scalar loop here on 3 channels). */
#define FC_PIXEL_MIN_CHANNELS 4
typedef void (*fc_max_pixel_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    ptrdiff_t, ptrdiff_t, float *, int32_t *);
typedef void (*fc_max_pixel_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    ptrdiff_t, ptrdiff_t, double *, int64_t *);
/* NHWC average pooling: image, W, C, h0, hn, w0, wn, out, d (C >= FC_PIXEL_MIN_CHANNELS). */
typedef void (*fc_avg_pixel_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    float *, float);
typedef void (*fc_avg_pixel_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                    double *, double);
/* NHWC average pooling's gradient: image, row, pixel (steps in items), h0, hn, w0, wn, g, d, n. */
typedef void (*fc_avg_spread_f32_fn)(float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                     const float *, float, ptrdiff_t);
typedef void (*fc_avg_spread_f64_fn)(double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                     const double *, double, ptrdiff_t);

/* One level's row functions (see pool_rows_impl.h for what each computes). */
typedef struct {
    fc_max2x2_f32_fn max2x2_f32; /* 2x2 windows at stride 2 */
    fc_max2x2_f64_fn max2x2_f64;
    fc_max2x2_idx_f32_fn max2x2_idx_f32;
    fc_max3_f32_fn max3s1_f32; /* a window row of 3 taps folded in, stride 1 and 2 */
    fc_max3_f32_fn max3s2_f32;
    fc_max3_f64_fn max3s1_f64;
    fc_max3_f64_fn max3s2_f64;
    fc_max3_idx_f32_fn max3s1_idx_f32;
    fc_max3_idx_f32_fn max3s2_idx_f32;
    fc_max_pixel_f32_fn max_pixel_f32; /* NHWC: a pixel's window over all channels */
    fc_max_pixel_f64_fn max_pixel_f64;
    fc_avg_pixel_f32_fn avg_pixel_f32; /* NHWC: a pixel's window averaged over all channels */
    fc_avg_pixel_f64_fn avg_pixel_f64;
    fc_avg_spread_f32_fn avg_spread_f32; /* NHWC: an output pixel's average gradient over its window */
    fc_avg_spread_f64_fn avg_spread_f64;
    int level;
} fc_pool_rows;

#if defined(__GNUC__) || defined(__clang__)

/* AVX2's in-half picks (see pool_rows_impl.h): float32 (8 lanes) and float64 (4 lanes). */
#define FC_LANED_EVENS_8 0, 2, 8, 10, 4, 6, 12, 14
#define FC_LANED_ODDS_8 1, 3, 9, 11, 5, 7, 13, 15
#define FC_UNLANE_8 0, 1, 4, 5, 2, 3, 6, 7
#define FC_LANED_EVENS_4 0, 4, 2, 6
#define FC_LANED_ODDS_4 1, 5, 3, 7
#define FC_UNLANE_4 0, 2, 1, 3

/* Rows of fewer outputs than a vector's lanes go to the next narrower level's function of
 * the same row (the baseline's float32 rows take 4), or, at the narrowest, through zeroed
 * local blocks of one vector (FC_*_PADDED). The baseline has no float64 rows: SSE2 has no
 * variable blend for 64-bit lanes, and GCC turned their select into scalar cmov (0.44-0.74x
 * _pool's own loops, Intel Xeon, one thread); the baseline's float32 3-tap rows at stride 1
 * ran 0.875x of those loops on 56x56 planes and are used only for AVX2's short rows (the
 * other float32 rows 1.05-2.75x); its NHWC pixels ran 0.68-0.85x of those loops, which
 * GCC vectorizes over the channels at this level. Those serve only the wider levels' short
 * rows and few channels; NULL entries leave a call to _pool's loops. */
#define FC_LEVEL_FN(name, tn, isa) FC_CAT(FC_CAT(fc_pool_##name, tn), isa)

/* ---- the compiler's default target: 16-byte vectors, float32 only */
#define FC_ISA base
#define FC_NF 4
#define FC_F32_PADDED 1
#define FC_F32_SMALL(name) FC_FN(name##_small)
#include "pool_rows_types.h"

static const fc_pool_rows fc_pool_rows_base = {fc_pool_max2x2_f32_base, NULL, fc_pool_max2x2_idx_f32_base, NULL,
                                               fc_pool_max3s2_f32_base, NULL, NULL,
                                               fc_pool_max3s1_idx_f32_base, fc_pool_max3s2_idx_f32_base,
                                               NULL, NULL, fc_pool_avg_pixel_f32_base, NULL,
                                               fc_pool_avg_spread_f32_base, NULL, FC_LEVEL_BASELINE};

#ifdef FC_HAVE_X86_LEVELS
/* ---- AVX2 (32-byte vectors): short float32 rows to the baseline's functions */
FC_TARGET_AVX2
#define FC_ISA avx2
#define FC_IN_LANE 1
#define FC_NF 8
#define FC_ND 4
#define FC_F32_PADDED 0
#define FC_F32_SMALL(name) FC_LEVEL_FN(name, f32, base)
#define FC_F64_PADDED 1
#define FC_F64_SMALL(name) FC_FN(name##_small)
#include "pool_rows_types.h"
FC_TARGET_END

/* ---- AVX-512 (64-byte vectors): short rows to AVX2's (2x2 windows on 28x28 planes, rows of
 * 14: 0.80 ms at AVX2 against 0.91 through the baseline's, 32x128 planes, one thread) */
FC_TARGET_AVX512
#define FC_ISA avx512
#define FC_NF 16
#define FC_ND 8
#define FC_F32_PADDED 0
#define FC_F32_SMALL(name) FC_LEVEL_FN(name, f32, avx2)
#define FC_F64_PADDED 0
#define FC_F64_SMALL(name) FC_LEVEL_FN(name, f64, avx2)
#include "pool_rows_types.h"
FC_TARGET_END

/* A level's table: its functions in fc_pool_rows's order. */
#define FC_POOL_TABLE(isa, level)                                                                     \
    {fc_pool_max2x2_f32_##isa,  fc_pool_max2x2_f64_##isa,  fc_pool_max2x2_idx_f32_##isa,          \
     fc_pool_max3s1_f32_##isa,  fc_pool_max3s2_f32_##isa,  fc_pool_max3s1_f64_##isa,             \
     fc_pool_max3s2_f64_##isa,  fc_pool_max3s1_idx_f32_##isa, fc_pool_max3s2_idx_f32_##isa,   \
     fc_pool_max_pixel_f32_##isa, fc_pool_max_pixel_f64_##isa, fc_pool_avg_pixel_f32_##isa,        \
     fc_pool_avg_pixel_f64_##isa, fc_pool_avg_spread_f32_##isa, fc_pool_avg_spread_f64_##isa, level}
static const fc_pool_rows fc_pool_rows_avx2 = FC_POOL_TABLE(avx2, FC_LEVEL_AVX2);
static const fc_pool_rows fc_pool_rows_avx512 = FC_POOL_TABLE(avx512, FC_LEVEL_AVX512);
#endif /* x86 */

static const fc_pool_rows *fc_pool_active = &fc_pool_rows_base;

#else /* no vector extensions: _pool's own loops */

static const fc_pool_rows *fc_pool_active = NULL;

#endif

/* Use level `level`'s rows (clamped to what the CPU supports). */
static void fc_pool_select_level(int level)
{
#ifdef FC_HAVE_X86_LEVELS
    int best = fc_cpu_level();
    if (level > best) level = best;
    fc_pool_active = level == FC_LEVEL_AVX512 ? &fc_pool_rows_avx512
                     : level == FC_LEVEL_AVX2 ? &fc_pool_rows_avx2
                                              : &fc_pool_rows_base;
#else
    (void)level;
#endif
}

/* The rows in force (NULL: none, use _pool's loops). */
static const fc_pool_rows *fc_pool_active_rows(void) { return fc_pool_active; }

#endif /* FASTCONV_POOL_ROWS_H */
