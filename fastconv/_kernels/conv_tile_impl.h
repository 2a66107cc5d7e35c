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

#undef FC_TILE_BODY
#undef FC_DWTILE_BODY
