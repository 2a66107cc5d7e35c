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

/* Weight-gradient tile: for NK <= 8 output channels j and up to 3 taps t of one
 * input channel (depthwise: channel j for output channel j), over rows r0..r1 of
 * the flattened (image, output row) index,
 *
 *     dw[j * ldw + t] += sum_{r, col} g[n*g_img + j*gk + oh*OW + col] * x[j? + n*x_img + oh*x_row + taps[t] + col]
 *
 * Lanes past the last column are cleared in both operands, so nothing outside
 * the valid columns (not even an inf) reaches the sums. Each accumulator is
 * reduced lane by lane in a fixed order. */
/* Load a full vector; in a tail block (nc < VW) clear the lanes past the last column
 * bit by bit, so neither a stale value nor an inf from the next row survives.
 * The caller leaves VW elements of slack after every buffer read here. */
#define FC_LOADM(VT, VI, dst, src, nc, VW, mask)                                      \
    do {                                                                              \
        memcpy(&(dst), (src), sizeof(VT));                                            \
        if ((nc) != (VW)) (dst) = (VT)((VI)(dst) & (mask));                           \
    } while (0)

#define FC_WTILE_BODY(T, VT, VI, IT, VW, DEPTHWISE)                                   \
    VT acc[8][3];                                                                     \
    for (int j = 0; j < 8; j++)                                                       \
        for (int t = 0; t < 3; t++) acc[j][t] = (VT){0};                              \
    ptrdiff_t tp[3];                                                                  \
    for (int t = 0; t < 3; t++) tp[t] = taps[t < ntaps ? t : 0];                      \
    ptrdiff_t goff[8], xch[8];                                                        \
    for (int j = 0; j < 8; j++) {                                                     \
        int jj = j < nk ? j : nk - 1;                                                 \
        goff[j] = jj * gk;                                                            \
        xch[j] = DEPTHWISE ? jj * cs : 0;                                             \
    }                                                                                 \
    VI tail_mask;                                                                     \
    {                                                                                 \
        IT bits[VW];                                                                  \
        int nc_tail = OW % VW;                                                        \
        for (int i = 0; i < VW; i++) bits[i] = i < nc_tail ? (IT)-1 : 0;              \
        memcpy(&tail_mask, bits, sizeof(VI));                                         \
    }                                                                                 \
    ptrdiff_t n = r0 / OH, oh = r0 - n * OH; /* advanced row by row: no division */   \
    for (ptrdiff_t r = r0; r < r1; r++, oh++) {                                       \
        if (oh == OH) { oh = 0; n++; }                                                \
        const T *gr = g + n * g_img + oh * OW;                                        \
        const T *xr = x + n * x_img + oh * x_row;                                     \
        for (int ow0 = 0; ow0 < OW; ow0 += VW) {                                      \
            int nc = OW - ow0 < VW ? OW - ow0 : VW;                                   \
            VT x0, x1, x2;                                                            \
            if (!DEPTHWISE) {                                                         \
                FC_LOADM(VT, VI, x0, xr + tp[0] + ow0, nc, VW, tail_mask);            \
                FC_LOADM(VT, VI, x1, xr + tp[1] + ow0, nc, VW, tail_mask);            \
                FC_LOADM(VT, VI, x2, xr + tp[2] + ow0, nc, VW, tail_mask);            \
            }                                                                         \
            for (int j = 0; j < 8; j++) {                                             \
                VT gv;                                                                \
                FC_LOADM(VT, VI, gv, gr + goff[j] + ow0, nc, VW, tail_mask);          \
                if (DEPTHWISE) {                                                      \
                    FC_LOADM(VT, VI, x0, xr + xch[j] + tp[0] + ow0, nc, VW, tail_mask); \
                    FC_LOADM(VT, VI, x1, xr + xch[j] + tp[1] + ow0, nc, VW, tail_mask); \
                    FC_LOADM(VT, VI, x2, xr + xch[j] + tp[2] + ow0, nc, VW, tail_mask); \
                }                                                                     \
                acc[j][0] += gv * x0;                                                 \
                acc[j][1] += gv * x1;                                                 \
                acc[j][2] += gv * x2;                                                 \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    for (int j = 0; j < nk; j++)                                                      \
        for (int t = 0; t < ntaps; t++) {                                             \
            T lanes[VW];                                                              \
            memcpy(lanes, &acc[j][t], sizeof(VT));                                    \
            T sum = 0;                                                                \
            for (int i = 0; i < VW; i++) sum += lanes[i];                             \
            dw[j * ldw + t] += sum;                                                   \
        }

typedef int32_t FC_CAT(fc_vi32, FC_ISA) __attribute__((vector_size(FC_VF * sizeof(int32_t))));
typedef int64_t FC_CAT(fc_vi64, FC_ISA) __attribute__((vector_size(FC_VD * sizeof(int64_t))));

#define FC_WTILE_SIGNATURE(T, name)                                                   \
    static void name(const T *x, ptrdiff_t cs, ptrdiff_t x_img, ptrdiff_t x_row,      \
                     const ptrdiff_t *taps, int ntaps, const T *g, ptrdiff_t g_img,   \
                     ptrdiff_t gk, int OH, int OW, ptrdiff_t r0, ptrdiff_t r1, int nk, \
                     T *dw, ptrdiff_t ldw)

#define FC_APPLY(macro, ...) macro(__VA_ARGS__)
#define FC_VF_ARGS FC_CAT(fc_vf, FC_ISA), FC_CAT(fc_vi32, FC_ISA), int32_t, FC_VF
#define FC_VD_ARGS FC_CAT(fc_vd, FC_ISA), FC_CAT(fc_vi64, FC_ISA), int64_t, FC_VD
FC_WTILE_SIGNATURE(float, FC_CAT(fc_wtile_f32, FC_ISA)) { FC_APPLY(FC_WTILE_BODY, float, FC_VF_ARGS, 0) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_wtile_f64, FC_ISA)) { FC_APPLY(FC_WTILE_BODY, double, FC_VD_ARGS, 0) }
FC_WTILE_SIGNATURE(float, FC_CAT(fc_dwwtile_f32, FC_ISA)) { FC_APPLY(FC_WTILE_BODY, float, FC_VF_ARGS, 1) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_dwwtile_f64, FC_ISA)) { FC_APPLY(FC_WTILE_BODY, double, FC_VD_ARGS, 1) }
#undef FC_VF_ARGS
#undef FC_VD_ARGS
#undef FC_APPLY

#undef FC_TILE_BODY
#undef FC_DWTILE_BODY
#undef FC_WTILE_BODY
#undef FC_WTILE_SIGNATURE
#undef FC_LOADM
