/* Direct-convolution register tiles with run-time instruction-set dispatch.
 *
 * conv_tile_impl.h is compiled once per target with GCC/Clang vector
 * extensions (x86-64: baseline SSE2, AVX2+FMA, AVX-512F; elsewhere: the
 * compiler's default target, e.g. NEON on aarch64). fc_select_level() picks
 * one at import time from the CPU's features; Cython calls fc_tile_f32/f64.
 * Compilers without vector extensions (MSVC) get a portable scalar tile.
 */
#ifndef FASTCONV_CONV_TILE_H
#define FASTCONV_CONV_TILE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"
#ifdef FC_HAVE_X86_LEVELS
#include <immintrin.h> /* (the AVX-512 output-channel tiles' transposing store) */
#endif

typedef void (*fc_tile_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *,
                               const float *, float *, ptrdiff_t, int, int);
typedef void (*fc_tile_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *,
                               const double *, double *, ptrdiff_t, int, int);
/* Tail tiles over several blocks of filters (conv_tile_impl.h, FC_TAILBLOCKS): x, cs, C, w,
 * wstep, bias, out, ocs, ncols. */
typedef void (*fc_tailblocks_f32_fn)(const float *, ptrdiff_t, int, const float *, ptrdiff_t, const float *,
                                     float *, ptrdiff_t, int);
typedef void (*fc_tailblocks_f64_fn)(const double *, ptrdiff_t, int, const double *, ptrdiff_t, const double *,
                                     double *, ptrdiff_t, int);
/* Weight-gradient tiles: see conv_tile_impl.h. x, x_img, xk, taps, ntaps, g, g_img, gk,
 * len, n0, n1, nk, dw, ldw. */
typedef void (*fc_wtile_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, int, const float *,
                                ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, float *, ptrdiff_t);
typedef void (*fc_wtile_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, const ptrdiff_t *, int, const double *,
                                ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, double *, ptrdiff_t);
/* Depthwise plane tiles (9 taps): x, row_step, taps, w, wstep, bias, out, OH, OW. */
typedef void (*fc_dwplane_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, const float *, ptrdiff_t, float,
                                  float *, int, int);
typedef void (*fc_dwplane_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, const double *, ptrdiff_t, double,
                                  double *, int, int);
/* Weight-gradient output-channel tiles: x, offs, m, x_img, wq, OH, OW, gt, nimg, sums. */
typedef void (*fc_ocwtile_f32_fn)(const float *, const ptrdiff_t *, int, ptrdiff_t, ptrdiff_t, int, int,
                                  const float *, int, float *);
typedef void (*fc_ocwtile_f64_fn)(const double *, const ptrdiff_t *, int, ptrdiff_t, ptrdiff_t, int, int,
                                  const double *, int, double *);
/* Output-channel tiles over whole rows of Q < FC_OCROWS_Q columns: x, cs, taps, ntaps, C,
 * w, bias, out, ocs, nk, irs (input row step). */
enum { FC_OCROWS_Q = 8 };
typedef void (*fc_ocrows_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *,
                                 const float *, float *, ptrdiff_t, int, ptrdiff_t);
typedef void (*fc_ocrows_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *,
                                 const double *, double *, ptrdiff_t, int, ptrdiff_t);
/* Edge tiles (AVX-512: 3x3 kernels over rows between zero padding, without the padding's
 * products), the same arguments: the tiles of a shape, one row of 14 columns, two rows of 7
 * or one row of 7 (each between the padding columns), or 14 columns at the start of a longer
 * row (the left padding only), at its end (the right only) or between (neither), are 4 in a
 * row of the table, [shape + top + 2 * bottom] (top: the tile's first row is the plane's
 * first, padded above; bottom: its last is the plane's last). */
enum {
    FC_EDGE_ROW14 = 0,
    FC_EDGE_ROWS7 = 4,
    FC_EDGE_ROW7 = 8,
    FC_EDGE_ROW14_LEFT = 12,
    FC_EDGE_ROW14_RIGHT = 16,
    FC_EDGE_ROW14_INNER = 20,
    FC_EDGE_TILES = 24
};
/* Columns a tail tile (tail32, tail64) computes: a row's last ones (see FC_TAILTILE). */
enum { FC_TAIL_COLS = 4 };
/* Blocks of 8 filters the tail tiles over several blocks take: of a last pixel (tail1x8) and of
 * up to FC_TAIL_COLS (tail4x4); see FC_TAILBLOCKS. */
enum { FC_TAIL1_BLOCKS = 8, FC_TAIL4_BLOCKS = 4 };
/* Output-channel tiles over two rows (AVX2): x, cs, taps, ntaps, C, w, bias, out, ocs, nk,
 * ncols (5 or 6), split (its columns on the first row, 1 .. ncols - 1), gap (input row step
 * minus output row width). A band run so is cut into segments of FC_OCSPLIT_MIN to
 * FC_OCSPLIT_MAX columns (the counts these tiles and the level's one-row tiles take). */
enum { FC_OCSPLIT_MIN = 5, FC_OCSPLIT_MAX = 6 };
typedef void (*fc_ocsplit_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *,
                                  const float *, float *, ptrdiff_t, int, int, int, ptrdiff_t);
typedef void (*fc_ocsplit_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *,
                                  const double *, double *, ptrdiff_t, int, int, int, ptrdiff_t);
/* Taps one weight-gradient tile call takes at most (plain / depthwise). */
enum { FC_WTILE_TAPS = 3, FC_DWWTILE_TAPS = 9 }; /* (the scalar tiles; fc_tiles.wt_taps for a level) */
/* Row tiles (one output channel x FC_ROWS rows x one vector of columns): x, cs, taps,
 * ntaps, C, w, bias, out, ors (output row step), irs (input row step), ncols. */
enum { FC_ROWS = 8 };
typedef void (*fc_rowtile_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *, float,
                                  float *, ptrdiff_t, ptrdiff_t, int);
typedef void (*fc_rowtile_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *, double,
                                  double *, ptrdiff_t, ptrdiff_t, int);
/* Gather tiles (a column tile of NV vectors, each at its own offset): x, cs, taps, ntaps,
 * C, w, bias, out, ocs, nk, in_off[NV], out_off[NV], ncols (columns stored of each vector);
 * NV = 3 (gather32), 2 (gather6x2_32). */
typedef void (*fc_gtile_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *,
                                const float *, float *, ptrdiff_t, int, const ptrdiff_t *, const ptrdiff_t *, int);
typedef void (*fc_gtile_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *,
                                const double *, double *, ptrdiff_t, int, const ptrdiff_t *, const ptrdiff_t *, int);
/* The column tiles' row loop over a band (16 registers): x, cs, taps, ntaps, C, w, bias, out,
 * ocs, nk, nrows, irs (input row step), ors (output row step), nseg, singles, nsingles. */
typedef void (*fc_band_f32_fn)(const float *, ptrdiff_t, const ptrdiff_t *, int, int, const float *,
                               const float *, float *, ptrdiff_t, int, int, ptrdiff_t, ptrdiff_t, int,
                               const ptrdiff_t *, int);
typedef void (*fc_band_f64_fn)(const double *, ptrdiff_t, const ptrdiff_t *, int, int, const double *,
                               const double *, double *, ptrdiff_t, int, int, ptrdiff_t, ptrdiff_t, int,
                               const ptrdiff_t *, int);
/* Depthwise groups with channels in the vector lanes (dw_lanes_impl.h): x, cs, rs, ws, nc,
 * H, W, xs, WP, top, left, taps, ntaps, sh, sw, w, bias, out, ocs, OH, OW. */
typedef void (*fc_dwlanes_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, float *, ptrdiff_t,
                                  int, int, const ptrdiff_t *, int, int, int, const float *, const float *,
                                  float *, ptrdiff_t, int, int);
typedef void (*fc_dwlanes_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, double *,
                                  ptrdiff_t, int, int, const ptrdiff_t *, int, int, int, const double *,
                                  const double *, double *, ptrdiff_t, int, int);
/* Their weight gradient: x, xns, cs, rs, ws, g, gns, gcs, grs, gws, N, nc, H, W, xs, gs, WP,
 * top, left, taps, ntaps, sh, sw, sums, OH, OW. */
typedef void (*fc_dwlanes_wgrad_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *,
                                        ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, int, float *,
                                        float *, ptrdiff_t, int, int, const ptrdiff_t *, int, int, int, float *,
                                        int, int);
typedef void (*fc_dwlanes_wgrad_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                        const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int,
                                        int, double *, double *, ptrdiff_t, int, int, const ptrdiff_t *, int, int,
                                        int, double *, int, int);
/* Their input gradient: g, gcs, grs, gws, nc, OH, OW, xs, gs, HP, WP, top, left, taps, ntaps,
 * sh, sw, w, out, ocs, H, W. */
typedef void (*fc_dwlanes_gradin_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, float *,
                                         float *, ptrdiff_t, ptrdiff_t, int, int, const ptrdiff_t *, int, int, int,
                                         const float *, float *, ptrdiff_t, int, int);
typedef void (*fc_dwlanes_gradin_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, double *,
                                         double *, ptrdiff_t, ptrdiff_t, int, int, const ptrdiff_t *, int, int, int,
                                         const double *, double *, ptrdiff_t, int, int);
/* Depthwise rows of NHWC arrays (dw_nhwc_impl.h): x, rs, ws, H, W, k0, k1, KH, KW, dh, dw,
 * sh, sw, top, left, w, wts, bias, out, ows, oh, OW, ahead. */
typedef void (*fc_dwnhwc_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int, int,
                                 int, int, int, const float *, ptrdiff_t, const float *, float *, ptrdiff_t, int,
                                 int, int);
typedef void (*fc_dwnhwc_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int,
                                 int, int, int, int, const double *, ptrdiff_t, const double *, double *,
                                 ptrdiff_t, int, int, int);
/* Their weight gradient: x, xns, xrs, xws, g, gns, grs, gws, N, H, W, OH, OW, k0, k1, KH, KW,
 * dh, dw, sh, sw, top, left, band, sums. */
typedef void (*fc_dwnhwc_wgrad_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float *, ptrdiff_t,
                                       ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int, int, int, int,
                                       int, int, int, int, int, float *);
typedef void (*fc_dwnhwc_wgrad_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t,
                                       ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int, int, int, int,
                                       int, int, int, int, int, double *);
/* 1x1 NHWC convolutions and their weight gradients, products with both operands in place
 * (pw_nhwc_impl.h) */
typedef void (*fc_pwgw_f32_fn)(const float *, ptrdiff_t, ptrdiff_t, int, int, const float *, ptrdiff_t, int, ptrdiff_t,
                               const float *, float *, ptrdiff_t, int);
typedef void (*fc_pwgw_f64_fn)(const double *, ptrdiff_t, ptrdiff_t, int, int, const double *, ptrdiff_t, int,
                               ptrdiff_t, const double *, double *, ptrdiff_t, int);
/* dst[i] += src[i] for i < n: dst, src, n. */
typedef void (*fc_addrow_f32_fn)(float *, const float *, int);
typedef void (*fc_addrow_f64_fn)(double *, const double *, int);

#if defined(__GNUC__) || defined(__clang__)

/* ---- the compiler's default target */
#define FC_ISA base
#define FC_VF 4
#define FC_VD 2
#include "conv_tile_impl.h"
#include "dw_lanes_impl.h"
#include "dw_nhwc_impl.h"
#include "pw_nhwc_impl.h"
#undef FC_ISA
#undef FC_VF
#undef FC_VD

#ifdef FC_HAVE_X86_LEVELS
FC_TARGET_AVX2
#define FC_ISA avx2
#define FC_VF 8
#define FC_VD 4
#include "conv_tile_impl.h"
#include "dw_lanes_impl.h"
#include "dw_nhwc_impl.h"
#include "pw_nhwc_impl.h"
#undef FC_ISA
#undef FC_VF
#undef FC_VD
FC_TARGET_END

FC_TARGET_AVX512
#define FC_ISA avx512
#define FC_VF 16
#define FC_VD 8
#include "conv_tile_impl.h"
#include "dw_lanes_impl.h"
#include "dw_nhwc_impl.h"
#include "pw_nhwc_impl.h"
#undef FC_ISA
#undef FC_VF
#undef FC_VD
FC_TARGET_END
#endif /* x86 */

#else /* no vector extensions: one portable scalar tile of 4 columns */

static void fc_tile_f32_base(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C,
                             const float *w, const float *bias, float *out, ptrdiff_t ocs, int nk, int ncols)
{
    float acc[8][4];
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 4; i++) acc[j][i] = bias[j];
    for (int c = 0; c < C; c++)
        for (int t = 0; t < ntaps; t++) {
            const float *src = x + c * cs + taps[t];
            const float *wt = w + ((ptrdiff_t)c * ntaps + t) * 8;
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < 4; i++) acc[j][i] += src[i] * wt[j];
        }
    for (int j = 0; j < nk; j++) memcpy(out + j * ocs, acc[j], (size_t)ncols * sizeof(float));
}

static void fc_tile_f64_base(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C,
                             const double *w, const double *bias, double *out, ptrdiff_t ocs, int nk, int ncols)
{
    double acc[8][2];
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 2; i++) acc[j][i] = bias[j];
    for (int c = 0; c < C; c++)
        for (int t = 0; t < ntaps; t++) {
            const double *src = x + c * cs + taps[t];
            const double *wt = w + ((ptrdiff_t)c * ntaps + t) * 8;
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < 2; i++) acc[j][i] += src[i] * wt[j];
        }
    for (int j = 0; j < nk; j++) memcpy(out + j * ocs, acc[j], (size_t)ncols * sizeof(double));
}

static void fc_dwtile_f32_base(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C,
                               const float *w, const float *bias, float *out, ptrdiff_t ocs, int nk, int ncols)
{
    (void)C;
    for (int j = 0; j < nk; j++)
        for (int i = 0; i < ncols; i++) {
            float acc = bias[j];
            for (int t = 0; t < ntaps; t++) acc += x[j * cs + taps[t] + i] * w[t * 8 + j];
            out[j * ocs + i] = acc;
        }
}

static void fc_dwtile_f64_base(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C,
                               const double *w, const double *bias, double *out, ptrdiff_t ocs, int nk, int ncols)
{
    (void)C;
    for (int j = 0; j < nk; j++)
        for (int i = 0; i < ncols; i++) {
            double acc = bias[j];
            for (int t = 0; t < ntaps; t++) acc += x[j * cs + taps[t] + i] * w[t * 8 + j];
            out[j * ocs + i] = acc;
        }
}

/* Scalar output-channel tile: 8 output channels x up to 4 columns (see conv_tile_impl.h). */
enum { fc_oc_cols_base = 4 };
#define FC_SCALAR_OCTILE(T, name)                                                                 \
    static void name(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, const T *w, \
                     const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols)                     \
    {                                                                                             \
        T acc[4][8];                                                                              \
        for (int p = 0; p < 4; p++)                                                               \
            for (int j = 0; j < 8; j++) acc[p][j] = bias[j];                                      \
        for (int c = 0; c < C; c++)                                                               \
            for (int t = 0; t < ntaps; t++) {                                                     \
                const T *wt = w + ((ptrdiff_t)c * ntaps + t) * 8;                                 \
                for (int p = 0; p < ncols && p < 4; p++)                                          \
                    for (int j = 0; j < 8; j++) acc[p][j] += x[c * cs + taps[t] + p] * wt[j];     \
            }                                                                                     \
        for (int j = 0; j < nk; j++) /* (ocs < 0: pixels -ocs apart, see FC_OC_STORE) */          \
            for (int p = 0; p < ncols && p < 4; p++)                                              \
                out[ocs < 0 ? p * -ocs + j : j * ocs + p] = acc[p][j];                            \
    }
FC_SCALAR_OCTILE(float, fc_octile_f32_base)
FC_SCALAR_OCTILE(double, fc_octile_f64_base)
#undef FC_SCALAR_OCTILE

/* Scalar depthwise plane tile: the same sums, one column at a time. */
#define FC_SCALAR_DWPLANE(T, name)                                                                \
    static void name(const T *x, ptrdiff_t row_step, const ptrdiff_t *taps, const T *w, ptrdiff_t wstep, \
                     T bias, T *out, int OH, int OW)                                              \
    {                                                                                             \
        for (int oh = 0; oh < OH; oh++)                                                           \
            for (int ow = 0; ow < OW; ow++) {                                                     \
                T acc = bias;                                                                     \
                for (int t = 0; t < 9; t++) acc += x[oh * row_step + taps[t] + ow] * w[t * wstep];\
                out[(ptrdiff_t)oh * OW + ow] = acc;                                               \
            }                                                                                     \
    }
FC_SCALAR_DWPLANE(float, fc_dwplane_f32_base)
FC_SCALAR_DWPLANE(double, fc_dwplane_f64_base)
#undef FC_SCALAR_DWPLANE

#define FC_SCALAR_ADDROW(T, name)                                                                 \
    static void name(T *dst, const T *src, int n)                                                 \
    {                                                                                             \
        for (int i = 0; i < n; i++) dst[i] += src[i];                                             \
    }
FC_SCALAR_ADDROW(float, fc_addrow_f32_base)
FC_SCALAR_ADDROW(double, fc_addrow_f64_base)
#undef FC_SCALAR_ADDROW

/* Scalar weight-gradient output-channel tile: 8 output channels x up to 4 pairs. */
#define FC_SCALAR_OCWTILE(T, name)                                                                \
    static void name(const T *x, const ptrdiff_t *offs, int m, ptrdiff_t x_img, ptrdiff_t wq, int OH, \
                     int OW, const T *gt, int nimg, T *sums)                                      \
    {                                                                                             \
        for (int i = 0; i < m && i < 4; i++)                                                      \
            for (int j = 0; j < 8; j++) {                                                         \
                T acc = 0;                                                                        \
                const T *gq = gt + j;                                                             \
                for (int n = 0; n < nimg; n++)                                                    \
                    for (int oh = 0; oh < OH; oh++)                                               \
                        for (int ow = 0; ow < OW; ow++, gq += 8)                                  \
                            acc += *gq * x[n * x_img + offs[i] + oh * wq + ow];                   \
                sums[i * 8 + j] = acc;                                                            \
            }                                                                                     \
    }
FC_SCALAR_OCWTILE(float, fc_ocwtile_f32_base)
FC_SCALAR_OCWTILE(double, fc_ocwtile_f64_base)
#undef FC_SCALAR_OCWTILE

/* Scalar weight-gradient tiles: the same sums as the vector ones, one lane wide. */
#define FC_SCALAR_WTILE(T, name, DEPTHWISE, TAPS)                                                 \
    static void name(const T *x, ptrdiff_t x_img, ptrdiff_t xk, const ptrdiff_t *taps, int ntaps,  \
                     const T *g, ptrdiff_t g_img, ptrdiff_t gk, ptrdiff_t len, ptrdiff_t n0,       \
                     ptrdiff_t n1, int nk, T *dw, ptrdiff_t ldw)                                   \
    {                                                                                             \
        for (int j = 0; j < nk; j++)                                                              \
            for (int t = 0; t < ntaps && t < TAPS; t++) {                                         \
                T sum = 0;                                                                        \
                for (ptrdiff_t n = n0; n < n1; n++) {                                             \
                    const T *gr = g + n * g_img + j * gk;                                         \
                    const T *xr = x + n * x_img + taps[t] + (DEPTHWISE ? j * xk : 0);             \
                    for (ptrdiff_t q = 0; q < len; q++) sum += gr[q] * xr[q];                     \
                }                                                                                 \
                dw[j * ldw + t] += sum;                                                           \
            }                                                                                     \
    }
FC_SCALAR_WTILE(float, fc_wtile_f32_base, 0, FC_WTILE_TAPS)
FC_SCALAR_WTILE(double, fc_wtile_f64_base, 0, FC_WTILE_TAPS)
FC_SCALAR_WTILE(float, fc_dwwtile_f32_base, 1, FC_DWWTILE_TAPS)
FC_SCALAR_WTILE(double, fc_dwwtile_f64_base, 1, FC_DWWTILE_TAPS)
#undef FC_SCALAR_WTILE

#endif /* vector extensions */

#if defined(__GNUC__) || defined(__clang__)
#define FC_BASE_OC_F32 8 /* 2 vectors of 4 floats / 2 doubles */
#define FC_BASE_OC_F64 4
#define FC_BASE_WIDE NULL, NULL, fc_tile3_f32_base, fc_tile3_f64_base
#define FC_BASE_PW fc_pwtile_f32_base, fc_pwtile_f64_base
#define FC_BASE_GATHER fc_gather3_f32_base, fc_gather3_f64_base, fc_gather6x2_f32_base, fc_gather6x2_f64_base
#define FC_BASE_BAND fc_band_f32_base, fc_band_f64_base
#define FC_BASE_NARROW fc_tile4x3_f32_base, fc_tile4x3_f64_base, 3
#define FC_BASE_ROWS fc_rowtile_f32_base, NULL, FC_ROW_CHANNELS, FC_ROWS_KH32(base), {NULL, NULL, NULL}, \
    fc_ocrows_f32_base, fc_ocrows_f64_base /* (no float64 rows: see conv_tile_impl.h) */
#define FC_BASE_WT_TAPS fc_wt_taps_base
#ifdef __aarch64__ /* 32 registers */
#define FC_BASE_OCW1 fc_ocw1tile_f32_base, fc_ocw1tile_f64_base
#else
#define FC_BASE_OCW1 NULL, NULL
#endif
#define FC_BASE_DWLANES fc_dwlanes_f32_base, fc_dwlanes_f64_base, fc_dwlanes_wgrad_f32_base, \
    fc_dwlanes_wgrad_f64_base, fc_dwlanes_gradin_f32_base, fc_dwlanes_gradin_f64_base, fc_dwnhwc_f32_base, \
    fc_dwnhwc_f64_base, fc_dwnhwc_wgrad_f32_base, fc_dwnhwc_wgrad_f64_base
#define FC_BASE_PWGW fc_pwgw_f32_base, fc_pwgw_f64_base, FC_PWGW_ROWS_base
#else
#define FC_BASE_OC_F32 8 /* the scalar tile's 8 channels */
#define FC_BASE_OC_F64 8
#define FC_BASE_WIDE NULL, NULL, NULL, NULL /* no wide or narrow tiles */
#define FC_BASE_PW NULL, NULL
#define FC_BASE_GATHER NULL, NULL, NULL, NULL
#define FC_BASE_BAND NULL, NULL
#define FC_BASE_NARROW NULL, NULL, 0
#define FC_BASE_ROWS NULL, NULL, 0, {NULL, NULL, NULL}, {NULL, NULL, NULL}, NULL, NULL /* no row tiles */
#define FC_BASE_WT_TAPS FC_WTILE_TAPS
#define FC_BASE_OCW1 NULL, NULL
#define FC_BASE_DWLANES NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
#define FC_BASE_PWGW NULL, NULL, 0 /* (the pointwise kernel swapped runs these) */
#endif

/* Blocks with at most this many live channels run row tiles (one channel at a time); with
 * the tiles that reuse input rows, blocks of at most FC_ROWS_KH_CHANNELS (measured: 3
 * channels 1.2-2.1x as fast as the column or narrow tiles, 4 even). */
#define FC_ROW_CHANNELS 2
#define FC_ROWS_KH_CHANNELS 3
#if FC_ROWS_KH_CHANNELS < FC_ROW_CHANNELS
#error "_tile_plane looks for row tiles in blocks of at most FC_ROWS_KH_CHANNELS live channels"
#endif
#define FC_ROWS_KH32(isa) {fc_rowtile_f32_kh3_##isa, fc_rowtile_f32_kh5_##isa, fc_rowtile_f32_kh7_##isa}
#define FC_ROWS_KH64(isa) {fc_rowtile_f64_kh3_##isa, fc_rowtile_f64_kh5_##isa, fc_rowtile_f64_kh7_##isa}

/* ---- dispatch: one table per level; the active one is swapped as a single pointer, so a
 * reader always gets a tile function and the width that goes with it. */
typedef struct {
    fc_tile_f32_fn f32;
    fc_tile_f64_fn f64;
    fc_tile_f32_fn dw32;
    fc_tile_f64_fn dw64;
    fc_tile_f32_fn half32; /* the same tiles, half a vector wide (or the full ones again) */
    fc_tile_f64_fn half64;
    fc_tile_f32_fn halfdw32;
    fc_tile_f64_fn halfdw64;
    fc_tile_f32_fn oc32; /* output-channel tiles: 2 vectors of channels x up to oc_cols columns */
    fc_tile_f64_fn oc64;
    fc_ocwtile_f32_fn ocwt32; /* their weight-gradient twins: 2 vectors of channels x up to oc_cols pairs */
    fc_ocwtile_f64_fn ocwt64;
    fc_dwplane_f32_fn dwplane32; /* depthwise, 9 taps: one channel's plane, weights in registers */
    fc_dwplane_f64_fn dwplane64;
    fc_wtile_f32_fn wt32;
    fc_wtile_f64_fn wt64;
    fc_wtile_f32_fn dwwt32;
    fc_wtile_f64_fn dwwt64;
    int width_f32;
    int width_f64;
    int half_f32; /* columns of the half tiles (== width where there are none) */
    int half_f64;
    int oc_block_f32; /* output channels per output-channel tile (weights packed in blocks of it) */
    int oc_block_f64;
    int oc_cols; /* most columns an output-channel tile takes */
    int level;
    fc_tile_f32_fn wide32; /* column tiles two vectors wide (NULL where registers are too few) */
    fc_tile_f64_fn wide64;
    fc_tile_f32_fn wide3_32; /* and three vectors wide (16 registers: in two passes of 4 channels) */
    fc_tile_f64_fn wide3_64;
    fc_tile_f32_fn narrow32; /* 4 channels x narrow_vectors vectors, for blocks of <= 4 (or NULL) */
    fc_tile_f64_fn narrow64;
    int narrow_vectors;
    fc_rowtile_f32_fn rows32; /* one channel x FC_ROWS rows, for blocks of <= rows_channels (or NULL) */
    fc_rowtile_f64_fn rows64;
    int rows_channels;
    fc_rowtile_f32_fn rows_kh32[3]; /* row tiles reusing input rows, kernels of 3, 5, 7 rows (or NULL) */
    fc_rowtile_f64_fn rows_kh64[3];
    const fc_ocrows_f32_fn *ocrows32; /* [Q]: output-channel tiles over whole rows of Q columns (or NULL) */
    const fc_ocrows_f64_fn *ocrows64;
    int wt_taps; /* most taps a weight-gradient tile (wt32, wt64) takes per call */
    fc_ocwtile_f32_fn ocw1t32; /* weight-gradient output-channel tiles of ONE vector of channels (or NULL) */
    fc_ocwtile_f64_fn ocw1t64;
    fc_addrow_f32_fn addrow32; /* dst += src along a row */
    fc_addrow_f64_fn addrow64;
    fc_tile_f32_fn pw32; /* wide3_32 for one tap at offset 0: the pointwise product's panels (or NULL) */
    fc_tile_f64_fn pw64;
    fc_gtile_f32_fn gather32; /* wide3_32 over three vectors at any offsets (or NULL) */
    fc_gtile_f64_fn gather64;
    fc_gtile_f32_fn gather6x2_32; /* 6 channels x 2 vectors at any offsets, for blocks of 5-6 (or NULL) */
    fc_gtile_f64_fn gather6x2_64;
    fc_band_f32_fn band32; /* the 4 x 3 column tiles' row loop over a band (16 registers; or NULL) */
    fc_band_f64_fn band64;
    fc_ocsplit_f32_fn ocsplit32; /* output-channel tiles over the end of a row and the start of the next (or NULL) */
    fc_ocsplit_f64_fn ocsplit64;
    /* [FC_EDGE_TILES]: 3x3 over rows between zero padding, without its products (or NULL; see
     * FC_EDGE_ROW14) */
    const fc_ocrows_f32_fn *ocedge32;
    const fc_ocrows_f64_fn *ocedge64;
    fc_tile_f32_fn pwnext32; /* pw32 asking for the next panel's rows (or NULL; see FC_PWNEXT) */
    fc_tile_f64_fn pwnext64;
    fc_tile_f32_fn tail32; /* a row's last FC_TAIL_COLS columns, channels along the vector (or NULL) */
    fc_tile_f64_fn tail64;
    fc_dwlanes_f32_fn dwlanes32; /* depthwise groups with channels in the lanes (or NULL) */
    fc_dwlanes_f64_fn dwlanes64;
    fc_dwlanes_wgrad_f32_fn dwlanes_wgrad32; /* their weight gradient (NULL where dwlanes32 is) */
    fc_dwlanes_wgrad_f64_fn dwlanes_wgrad64;
    fc_dwlanes_gradin_f32_fn dwlanes_gradin32; /* their input gradient (NULL where dwlanes32 is) */
    fc_dwlanes_gradin_f64_fn dwlanes_gradin64;
    fc_dwnhwc_f32_fn dwnhwc32; /* depthwise rows of NHWC arrays (NULL where dwlanes32 is) */
    fc_dwnhwc_f64_fn dwnhwc64;
    fc_dwnhwc_wgrad_f32_fn dwnhwc_wgrad32; /* their weight gradient (NULL where dwlanes32 is) */
    fc_dwnhwc_wgrad_f64_fn dwnhwc_wgrad64;
    fc_tailblocks_f32_fn tail1x8_32; /* a last pixel, FC_TAIL1_BLOCKS blocks at once (or NULL) */
    fc_tailblocks_f64_fn tail1x8_64;
    fc_tailblocks_f32_fn tail4x4_32; /* a last FC_TAIL_COLS pixels or fewer, FC_TAIL4_BLOCKS blocks (or NULL) */
    fc_tailblocks_f64_fn tail4x4_64;
    fc_pwgw_f32_fn pwgw32; /* 1x1 NHWC convolutions and their weight gradients in place (or NULL) */
    fc_pwgw_f64_fn pwgw64;
    int pwgw_rows; /* rows of their tiles */
} fc_tiles;

static const fc_tiles fc_tiles_base = {fc_tile_f32_base, fc_tile_f64_base, fc_dwtile_f32_base, fc_dwtile_f64_base,
                                       fc_tile_f32_base, fc_tile_f64_base, fc_dwtile_f32_base, fc_dwtile_f64_base,
                                       fc_octile_f32_base, fc_octile_f64_base, fc_ocwtile_f32_base,
                                       fc_ocwtile_f64_base, fc_dwplane_f32_base, fc_dwplane_f64_base,
                                       fc_wtile_f32_base,
                                       fc_wtile_f64_base, fc_dwwtile_f32_base, fc_dwwtile_f64_base,
                                       4, 2, 4, 2, FC_BASE_OC_F32, FC_BASE_OC_F64, fc_oc_cols_base,
                                       FC_LEVEL_BASELINE, FC_BASE_WIDE, FC_BASE_NARROW, FC_BASE_ROWS,
                                       FC_BASE_WT_TAPS, FC_BASE_OCW1, fc_addrow_f32_base, fc_addrow_f64_base,
                                       FC_BASE_PW, FC_BASE_GATHER, FC_BASE_BAND, NULL, NULL, NULL, NULL,
                                       NULL, NULL, NULL, NULL, FC_BASE_DWLANES, NULL, NULL, NULL, NULL,
                                       FC_BASE_PWGW};
#ifdef FC_HAVE_X86_LEVELS
static const fc_tiles fc_tiles_avx2 = {fc_tile_f32_avx2, fc_tile_f64_avx2, fc_dwtile_f32_avx2, fc_dwtile_f64_avx2,
                                       fc_htile_f32_avx2, fc_htile_f64_avx2, fc_hdwtile_f32_avx2,
                                       fc_hdwtile_f64_avx2, fc_octile_f32_avx2, fc_octile_f64_avx2,
                                       fc_ocwtile_f32_avx2, fc_ocwtile_f64_avx2, fc_dwplane_f32_avx2,
                                       fc_dwplane_f64_avx2,
                                       fc_wtile_f32_avx2, fc_wtile_f64_avx2, fc_dwwtile_f32_avx2,
                                       fc_dwwtile_f64_avx2, 8, 4, 4, 2, 16, 8, fc_oc_cols_avx2, FC_LEVEL_AVX2,
                                       NULL, NULL, fc_tile3_f32_avx2, fc_tile3_f64_avx2, fc_tile4x3_f32_avx2,
                                       fc_tile4x3_f64_avx2, 3, fc_rowtile_f32_avx2, fc_rowtile_f64_avx2,
                                       FC_ROW_CHANNELS, FC_ROWS_KH32(avx2), FC_ROWS_KH64(avx2),
                                       fc_ocrows_f32_avx2, fc_ocrows_f64_avx2, fc_wt_taps_avx2, NULL, NULL,
                                       fc_addrow_f32_avx2, fc_addrow_f64_avx2, fc_pwtile_f32_avx2,
                                       fc_pwtile_f64_avx2, fc_gather3_f32_avx2, fc_gather3_f64_avx2,
                                       fc_gather6x2_f32_avx2, fc_gather6x2_f64_avx2, fc_band_f32_avx2,
                                       fc_band_f64_avx2, fc_ocsplit_f32_avx2, fc_ocsplit_f64_avx2, NULL, NULL,
                                       NULL, NULL, NULL, NULL, fc_dwlanes_f32_avx2, fc_dwlanes_f64_avx2,
                                       fc_dwlanes_wgrad_f32_avx2, fc_dwlanes_wgrad_f64_avx2,
                                       fc_dwlanes_gradin_f32_avx2, fc_dwlanes_gradin_f64_avx2, fc_dwnhwc_f32_avx2,
                                       fc_dwnhwc_f64_avx2, fc_dwnhwc_wgrad_f32_avx2, fc_dwnhwc_wgrad_f64_avx2,
                                       NULL, NULL, NULL, NULL, fc_pwgw_f32_avx2, fc_pwgw_f64_avx2,
                                       FC_PWGW_ROWS_avx2};
static const fc_tiles fc_tiles_avx512 = {fc_tile_f32_avx512, fc_tile_f64_avx512, fc_dwtile_f32_avx512,
                                         fc_dwtile_f64_avx512, fc_htile_f32_avx512, fc_htile_f64_avx512,
                                         fc_hdwtile_f32_avx512, fc_hdwtile_f64_avx512, fc_octile_f32_avx512,
                                         fc_octile_f64_avx512, fc_ocwtile_f32_avx512, fc_ocwtile_f64_avx512,
                                         fc_dwplane_f32_avx512, fc_dwplane_f64_avx512,
                                         fc_wtile_f32_avx512, fc_wtile_f64_avx512,
                                         fc_dwwtile_f32_avx512, fc_dwwtile_f64_avx512, 16, 8, 8, 4, 32, 16,
                                         fc_oc_cols_avx512, FC_LEVEL_AVX512, fc_tile2_f32_avx512,
                                         fc_tile2_f64_avx512, fc_tile3_f32_avx512, fc_tile3_f64_avx512,
                                         fc_tile4x6_f32_avx512, fc_tile4x6_f64_avx512, 6, fc_rowtile_f32_avx512,
                                         fc_rowtile_f64_avx512, FC_ROW_CHANNELS, FC_ROWS_KH32(avx512),
                                         FC_ROWS_KH64(avx512), fc_ocrows_f32_avx512, fc_ocrows_f64_avx512,
                                         fc_wt_taps_avx512, fc_ocw1tile_f32_avx512, fc_ocw1tile_f64_avx512,
                                         fc_addrow_f32_avx512, fc_addrow_f64_avx512, fc_pwtile_f32_avx512,
                                         fc_pwtile_f64_avx512, fc_gather3_f32_avx512, fc_gather3_f64_avx512,
                                         NULL, NULL, NULL, NULL, NULL, NULL, fc_ocedge_f32_avx512,
                                         fc_ocedge_f64_avx512, fc_pwnext_f32_avx512, fc_pwnext_f64_avx512,
                                         fc_tailtile_f32_avx512, fc_tailtile_f64_avx512, fc_dwlanes_f32_avx512,
                                         fc_dwlanes_f64_avx512, fc_dwlanes_wgrad_f32_avx512,
                                         fc_dwlanes_wgrad_f64_avx512, fc_dwlanes_gradin_f32_avx512,
                                         fc_dwlanes_gradin_f64_avx512, fc_dwnhwc_f32_avx512,
                                         fc_dwnhwc_f64_avx512, fc_dwnhwc_wgrad_f32_avx512,
                                         fc_dwnhwc_wgrad_f64_avx512, fc_tail1x8_f32_avx512,
                                         fc_tail1x8_f64_avx512, fc_tail4x4_f32_avx512, fc_tail4x4_f64_avx512,
                                         fc_pwgw_f32_avx512, fc_pwgw_f64_avx512, FC_PWGW_ROWS_avx512};
#endif
static const fc_tiles *fc_active = &fc_tiles_base;

/* Select a level (clamped to what the CPU supports); returns the level in force. */
static int fc_select_level(int level)
{
    int best = fc_cpu_level();
    if (level > best) level = best;
    const fc_tiles *chosen = &fc_tiles_base;
#ifdef FC_HAVE_X86_LEVELS
    if (level == FC_LEVEL_AVX2) chosen = &fc_tiles_avx2;
    if (level == FC_LEVEL_AVX512) chosen = &fc_tiles_avx512;
#endif
    fc_active = chosen;
    return chosen->level;
}

static const fc_tiles *fc_active_tiles(void) { return fc_active; }

/* The table of one level (clamped to what the CPU supports), whichever is active. */
static const fc_tiles *fc_level_tiles(int level)
{
    if (level > fc_cpu_level()) level = fc_cpu_level();
#ifdef FC_HAVE_X86_LEVELS
    if (level == FC_LEVEL_AVX2) return &fc_tiles_avx2;
    if (level == FC_LEVEL_AVX512) return &fc_tiles_avx512;
#endif
    return &fc_tiles_base;
}

#endif /* FASTCONV_CONV_TILE_H */
