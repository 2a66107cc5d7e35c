/* One register tile of the direct convolution, instantiated once per instruction set.
 *
 * Included by conv_tile.h with FC_ISA (a name suffix), FC_VF / FC_VD (vector
 * width in floats / doubles) defined and the matching target pragma active.
 * No include guard: it is meant to be included several times.
 *
 * A tile computes NK <= 8 output channels x VW output columns of one output
 * row:
 *
 *     out[j][col] = bias[j] + sum_{c < C} sum_{t < ntaps} w[c][t][j] * x[c*cs + taps[t] + col]
 *
 * The VW accumulators of each channel live in one vector register; each tap is
 * one (unaligned) vector load of input and 8 fused multiply-adds with
 * broadcast weights. The caller guarantees every index is in bounds (it pads
 * and phase-splits the input first) and packs the weights [c][tap][8].
 */

#define FC_CAT2(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT2(a, b)

#define FC_TILE_BODY(T, VT, VW)                                                       \
    VT acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7;                                \
    acc0 = (VT){0} + bias[0]; acc1 = (VT){0} + bias[1];                               \
    acc2 = (VT){0} + bias[2]; acc3 = (VT){0} + bias[3];                               \
    acc4 = (VT){0} + bias[4]; acc5 = (VT){0} + bias[5];                               \
    acc6 = (VT){0} + bias[6]; acc7 = (VT){0} + bias[7];                               \
    for (int c = 0; c < C; c++) {                                                     \
        const T *xc = x + c * cs;                                                     \
        const T *wc = w + (ptrdiff_t)c * ntaps * 8;                                   \
        for (int t = 0; t < ntaps; t++) {                                             \
            VT v;                                                                     \
            memcpy(&v, xc + taps[t], sizeof(VT));                                     \
            const T *wt = wc + t * 8;                                                 \
            acc0 += v * wt[0]; acc1 += v * wt[1]; acc2 += v * wt[2]; acc3 += v * wt[3]; \
            acc4 += v * wt[4]; acc5 += v * wt[5]; acc6 += v * wt[6]; acc7 += v * wt[7]; \
        }                                                                             \
    }                                                                                 \
    VT accs[8] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};                    \
    for (int j = 0; j < nk; j++) {                                                    \
        if (ncols == VW) {                                                            \
            memcpy(out + j * ocs, &accs[j], sizeof(VT));                              \
        } else {                                                                      \
            memcpy(out + j * ocs, &accs[j], (size_t)ncols * sizeof(T));               \
        }                                                                             \
    }

typedef float FC_CAT(fc_vf, FC_ISA) __attribute__((vector_size(FC_VF * sizeof(float))));
typedef double FC_CAT(fc_vd, FC_ISA) __attribute__((vector_size(FC_VD * sizeof(double))));

static void FC_CAT(fc_tile_f32, FC_ISA)(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                        int C, const float *w, const float *bias, float *out,
                                        ptrdiff_t ocs, int nk, int ncols)
{
    FC_TILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
}

static void FC_CAT(fc_tile_f64, FC_ISA)(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                        int C, const double *w, const double *bias, double *out,
                                        ptrdiff_t ocs, int nk, int ncols)
{
    FC_TILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
}

/* Depthwise tile: output channel j reads its own input plane x + j*cs (planes of
 * channels past nk repeat the last valid one, so no read leaves the input);
 * weights are packed [tap][8]. */
#define FC_DWTILE_BODY(T, VT, VW)                                                     \
    const T *xs[8];                                                                   \
    for (int j = 0; j < 8; j++) xs[j] = x + (ptrdiff_t)(j < nk ? j : nk - 1) * cs;    \
    VT accs[8];                                                                       \
    for (int j = 0; j < 8; j++) accs[j] = (VT){0} + bias[j];                          \
    for (int t = 0; t < ntaps; t++) {                                                 \
        const T *wt = w + t * 8;                                                      \
        for (int j = 0; j < 8; j++) {                                                 \
            VT v;                                                                     \
            memcpy(&v, xs[j] + taps[t], sizeof(VT));                                  \
            accs[j] += v * wt[j];                                                     \
        }                                                                             \
    }                                                                                 \
    (void)C;                                                                          \
    for (int j = 0; j < nk; j++) {                                                    \
        memcpy(out + j * ocs, &accs[j], (size_t)ncols * sizeof(T));                   \
    }

static void FC_CAT(fc_dwtile_f32, FC_ISA)(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                          int C, const float *w, const float *bias, float *out,
                                          ptrdiff_t ocs, int nk, int ncols)
{
    FC_DWTILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
}

static void FC_CAT(fc_dwtile_f64, FC_ISA)(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                          int C, const double *w, const double *bias, double *out,
                                          ptrdiff_t ocs, int nk, int ncols)
{
    FC_DWTILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
}

/* Half-width tiles (half a vector of output columns) for a row's tail: a row of
 * 56 columns is 3 full AVX-512 tiles and one half tile instead of 4 full ones.
 * Only where half a vector is still a vector of two or more lanes. */
#if FC_VF >= 8
#define FC_HAVE_HALF_TILES 1
typedef float FC_CAT(fc_hvf, FC_ISA) __attribute__((vector_size(FC_VF / 2 * sizeof(float))));
typedef double FC_CAT(fc_hvd, FC_ISA) __attribute__((vector_size(FC_VD / 2 * sizeof(double))));

static void FC_CAT(fc_htile_f32, FC_ISA)(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                         int C, const float *w, const float *bias, float *out,
                                         ptrdiff_t ocs, int nk, int ncols)
{
    FC_TILE_BODY(float, FC_CAT(fc_hvf, FC_ISA), FC_VF / 2)
}

static void FC_CAT(fc_htile_f64, FC_ISA)(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                         int C, const double *w, const double *bias, double *out,
                                         ptrdiff_t ocs, int nk, int ncols)
{
    FC_TILE_BODY(double, FC_CAT(fc_hvd, FC_ISA), FC_VD / 2)
}

static void FC_CAT(fc_hdwtile_f32, FC_ISA)(const float *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                           int C, const float *w, const float *bias, float *out,
                                           ptrdiff_t ocs, int nk, int ncols)
{
    FC_DWTILE_BODY(float, FC_CAT(fc_hvf, FC_ISA), FC_VF / 2)
}

static void FC_CAT(fc_hdwtile_f64, FC_ISA)(const double *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps,
                                           int C, const double *w, const double *bias, double *out,
                                           ptrdiff_t ocs, int nk, int ncols)
{
    FC_DWTILE_BODY(double, FC_CAT(fc_hvd, FC_ISA), FC_VD / 2)
}
#undef FC_HAVE_HALF_TILES
#endif

/* Weight-gradient tiles. Every operand is a flat plane per image: the caller lays
 * out x by stride phase (rows and columns) and pads each grad row with zeros to
 * the phase width, so that for image n
 *
 *     dw[j * ldw + t] += sum_{q < len} g[n*g_img + j*gk + q] * x[j*xk + n*x_img + taps[t] + q]
 *
 * is a dot product over one contiguous range: no row loop, no tail, no mask.
 * The zero columns of g meet real (finite) inputs; the caller sends inputs with
 * an inf or nan elsewhere. len is a multiple of the vector width and the caller
 * proves every read in bounds. Each accumulator is reduced lane by lane in a
 * fixed order, and images are summed in order, so results do not depend on
 * how callers split the work between threads.
 *
 * fc_wtile: NK <= 8 output channels x up to 3 taps of one input channel, in
 * passes of FC_WK channels (as many accumulators as the registers hold).
 * fc_dwwtile (depthwise): channel j reads its own plane x + j*xk; up to 9 taps. */
#if FC_VF >= 16 || defined(__aarch64__)
#define FC_WK 8
#else
#define FC_WK 4
#endif

#define FC_LOAD(VT, dst, src) memcpy(&(dst), (src), sizeof(VT))
/* Keep a loaded vector in a register: without this, gcc folds the load into each
 * of the 3 FMAs that use it, tripling the loads of the weight-gradient tile. */
#if defined(__x86_64__) || defined(__i386__)
#define FC_IN_REGISTER(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define FC_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define FC_IN_REGISTER(v) ((void)0)
#endif

#define FC_REDUCE_INTO(T, VT, VW, accv, target)                                      \
    do {                                                                              \
        T lanes[VW];                                                                  \
        memcpy(lanes, &(accv), sizeof(VT));                                           \
        for (int w_ = VW / 2; w_ >= 1; w_ /= 2) /* pairwise: halves, then quarters */ \
            for (int i = 0; i < w_; i++) lanes[i] += lanes[i + w_];                   \
        (target) += lanes[0];                                                         \
    } while (0)

#define FC_WTILE_BODY(T, VT, VW)                                                      \
    (void)xk;                                                                         \
    ptrdiff_t tp[3];                                                                  \
    for (int t = 0; t < 3; t++) tp[t] = taps[t < ntaps ? t : 0];                      \
    for (int j0 = 0; j0 < nk; j0 += FC_WK) {                                          \
        VT acc[FC_WK][3];                                                             \
        ptrdiff_t goff[FC_WK];                                                        \
        for (int j = 0; j < FC_WK; j++) {                                             \
            goff[j] = (j0 + j < nk ? j0 + j : nk - 1) * gk;                           \
            for (int t = 0; t < 3; t++) acc[j][t] = (VT){0};                          \
        }                                                                             \
        for (ptrdiff_t n = n0; n < n1; n++) {                                         \
            const T *gi = g + n * g_img;                                              \
            const T *x0 = x + n * x_img + tp[0], *x1 = x + n * x_img + tp[1];         \
            const T *x2 = x + n * x_img + tp[2];                                      \
            for (ptrdiff_t q = 0; q < len; q += VW) {                                 \
                VT v0, v1, v2;                                                        \
                FC_LOAD(VT, v0, x0 + q);                                              \
                FC_LOAD(VT, v1, x1 + q);                                              \
                FC_LOAD(VT, v2, x2 + q);                                              \
                for (int j = 0; j < FC_WK; j++) {                                     \
                    VT gv;                                                            \
                    FC_LOAD(VT, gv, gi + goff[j] + q);                                \
                    FC_IN_REGISTER(gv);                                               \
                    acc[j][0] += gv * v0;                                             \
                    acc[j][1] += gv * v1;                                             \
                    acc[j][2] += gv * v2;                                             \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        for (int j = 0; j < FC_WK && j0 + j < nk; j++)                                \
            for (int t = 0; t < ntaps; t++)                                           \
                FC_REDUCE_INTO(T, VT, VW, acc[j][t], dw[(j0 + j) * ldw + t]);         \
    }

#define FC_DWWTILE_BODY(T, VT, VW)                                                    \
    ptrdiff_t tp[9];                                                                  \
    for (int t = 0; t < 9; t++) tp[t] = taps[t < ntaps ? t : 0];                      \
    for (int j = 0; j < nk; j++) {                                                    \
        VT acc[9];                                                                    \
        for (int t = 0; t < 9; t++) acc[t] = (VT){0};                                 \
        for (ptrdiff_t n = n0; n < n1; n++) {                                         \
            const T *gi = g + n * g_img + j * gk;                                     \
            const T *xi = x + j * xk + n * x_img;                                     \
            for (ptrdiff_t q = 0; q < len; q += VW) {                                 \
                VT gv;                                                                \
                FC_LOAD(VT, gv, gi + q);                                              \
                for (int t = 0; t < 9; t++) {                                         \
                    VT v;                                                             \
                    FC_LOAD(VT, v, xi + tp[t] + q);                                   \
                    acc[t] += gv * v;                                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        for (int t = 0; t < ntaps; t++) FC_REDUCE_INTO(T, VT, VW, acc[t], dw[j * ldw + t]); \
    }

#define FC_WTILE_SIGNATURE(T, name)                                                   \
    static void name(const T *x, ptrdiff_t x_img, ptrdiff_t xk, const ptrdiff_t *taps, int ntaps, \
                     const T *g, ptrdiff_t g_img, ptrdiff_t gk, ptrdiff_t len, ptrdiff_t n0, \
                     ptrdiff_t n1, int nk, T *dw, ptrdiff_t ldw)

FC_WTILE_SIGNATURE(float, FC_CAT(fc_wtile_f32, FC_ISA)) { FC_WTILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_wtile_f64, FC_ISA)) { FC_WTILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD) }
FC_WTILE_SIGNATURE(float, FC_CAT(fc_dwwtile_f32, FC_ISA)) { FC_DWWTILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_dwwtile_f64, FC_ISA)) { FC_DWWTILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD) }

#undef FC_TILE_BODY
#undef FC_DWTILE_BODY
#undef FC_WTILE_BODY
#undef FC_DWWTILE_BODY
#undef FC_REDUCE_INTO
#undef FC_LOAD
#undef FC_IN_REGISTER
#undef FC_WK
#undef FC_WTILE_SIGNATURE

