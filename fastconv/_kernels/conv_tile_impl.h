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

/* FC_CAT, FC_LOAD and FC_STORE: simd.h. */

/* A 3x3 kernel's nine taps run unrolled in the tiles' channel loops (FC_TILEV_BODY,
 * FC_OC_BODY): a tap of a 14-column AVX-512 output-channel tile is 28 multiply-adds,
 * and the tap loop's own counter, pointer and branch instructions beside them compete
 * for the two ports that run the multiply-adds (Intel). Nine at a time, a C copy of
 * resnet-deep's tile ran 1.06-1.07x as fast (188 -> 200 GFLOP/s of a 229 peak, one
 * thread); in the library (Intel Xeon, alternating processes, one thread) resnet-deep's
 * convolution 1.06-1.08x and input gradient 1.03-1.11x, dilated's convolution (column
 * tiles) 1.05-1.09x, cifar 1.02x; at the AVX2 level resnet-deep 1.07x, resnet-mid 1.04x,
 * the column tiles even. The sums are the same in the same order. Only at the AVX2 and
 * AVX-512 levels, where it was measured: the x86-64 baseline's SSE tile ran 0.86x as fast
 * unrolled, and aarch64 has not been measured. */
#if FC_VF >= 8 /* (the AVX2 and AVX-512 levels: this switch and FC_UNROLL_TAPS below) */
#define FC_UNROLL_3X3 1
#define FC_UNROLL_TAPS _Pragma("GCC unroll 8")
#else
#define FC_UNROLL_3X3 0
#define FC_UNROLL_TAPS
#endif

/* The column tiles' passes over a band (FC_PASSES: 4 channels x 3 vectors, 12 multiply-adds
 * a tap; the band runs at the 16-register levels, AVX2 and the baseline) take their taps
 * eight at a time at the AVX2 level, whatever the kernel: per tap the loop's counter,
 * pointer, compare and branch beside the tap's offset load, 3 input loads and 4 broadcasts.
 * AMD EPYC (Zen 1, whose 256-bit multiply-adds issue as two 128-bit halves), AVX2,
 * alternating processes, medians of 5-7: stem's convolution (147 taps) 1.04-1.05x at one
 * thread, 1.06x at two, float64 1.05x; cifar's (27) 0.99-1.00x; 2, 4 and 16 at a time
 * 1.02x, 1.03x and 1.04x on stem. Same sums in the same order. The baseline's SSE passes
 * ran 0.99-1.00x and keep the loop. (FC_UNROLL_TAPS is defined with FC_UNROLL_3X3 above.) */

#define FC_TILE_BODY(T, VT, VW)                                                       \
    VT acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7;                                \
    acc0 = (VT){0} + bias[0]; acc1 = (VT){0} + bias[1];                               \
    acc2 = (VT){0} + bias[2]; acc3 = (VT){0} + bias[3];                               \
    acc4 = (VT){0} + bias[4]; acc5 = (VT){0} + bias[5];                               \
    acc6 = (VT){0} + bias[6]; acc7 = (VT){0} + bias[7];                               \
    const T *wt = w; /* (a pointer stepped per tap: no index arithmetic in the loop) */ \
    for (int c = 0; c < C; c++) {                                                     \
        const T *xc = x + c * cs;                                                     \
        for (int t = 0; t < ntaps; t++, wt += 8) {                                    \
            VT v;                                                                     \
            FC_LOAD(VT, v, xc + taps[t]);                                             \
            acc0 += v * wt[0]; acc1 += v * wt[1]; acc2 += v * wt[2]; acc3 += v * wt[3]; \
            acc4 += v * wt[4]; acc5 += v * wt[5]; acc6 += v * wt[6]; acc7 += v * wt[7]; \
        }                                                                             \
    }                                                                                 \
    if (nk == 8 && ncols == VW) { /* every channel live, whole vectors: stored from the registers */ \
        memcpy(out, &acc0, sizeof(VT)); memcpy(out + ocs, &acc1, sizeof(VT));         \
        memcpy(out + 2 * ocs, &acc2, sizeof(VT)); memcpy(out + 3 * ocs, &acc3, sizeof(VT)); \
        memcpy(out + 4 * ocs, &acc4, sizeof(VT)); memcpy(out + 5 * ocs, &acc5, sizeof(VT)); \
        memcpy(out + 6 * ocs, &acc6, sizeof(VT)); memcpy(out + 7 * ocs, &acc7, sizeof(VT)); \
        return;                                                                       \
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

/* Wide tiles: NK output channels (8, or 4 for blocks of at most 4 live ones) x NV
 * vectors of columns, NK*NV accumulators. Weights are the column tile's [c][tap][8] (an
 * NK = 4 tile reads the first 4 of each 8). Each output sums in the column tile's order,
 * so results are equal bit for bit; each tap loads NV inputs per NK broadcast weights
 * instead of one, so more of the loop is multiply-adds (and with NK = 4, fewer of them
 * are spent on channels that do not exist). Full width only (ncols == NV*VW); channels
 * j < nk <= NK are stored. With 32 vector registers (AVX-512): 8 x 2, 8 x 3 and 4 x 6;
 * with 16: 4 x 3 (12 accumulators, 3 inputs, 1 weight), and 8 x 3 as two of those. */
/* (their parts: the accumulators from the bias; one tap of input SRC, NV loads and NK*NV
 * multiply-adds with the weights at wt; the stores of the nk live channels) */
#define FC_TILEV_INIT(T, VT, NK, NV)                                                  \
    VT acc[NK][NV];                                                                   \
    _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++)                              \
        _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++) acc[j][v] = (VT){0} + bias[j]; \
    const T *wt = w;
#define FC_TILEV_TAP(T, VT, VW, NK, NV, SRC)                                          \
    {                                                                                 \
        VT in[NV];                                                                    \
        const T *xt = (SRC);                                                          \
        _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++)                          \
            FC_LOAD(VT, in[v], xt + v * VW);                                          \
        _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++) {                        \
            const T wj = wt[j];                                                       \
            _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++) acc[j][v] += in[v] * wj; \
        }                                                                             \
    }
#define FC_TILEV_STORE(T, VT, VW, NK, NV) FC_TILEV_STORE_AT(T, VT, NK, NV, v * VW) (void)ncols;
/* (vector v of channel j stored at out + j*ocs + AT, an expression of v) */
#define FC_TILEV_STORE_AT(T, VT, NK, NV, AT)                                          \
    if (nk == NK) { /* every channel live: stored from the registers */              \
        _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++)                          \
            _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++)                      \
                memcpy(out + j * ocs + (AT), &acc[j][v], sizeof(VT));                 \
        return;                                                                       \
    }                                                                                 \
    VT done[NK][NV]; /* (fewer live: indexed by nk below, so acc stays in registers) */ \
    _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++)                              \
        _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++) done[j][v] = acc[j][v];  \
    for (int j = 0; j < nk; j++)                                                      \
        _Pragma("GCC unroll 6") for (int v = 0; v < NV; v++)                          \
            memcpy(out + j * ocs + (AT), &done[j][v], sizeof(VT));
#define FC_TILEV_CHANNELS(T, VT, VW, NK, NV, NTAPS, UNROLL)                           \
    for (int c = 0; c < C; c++) {                                                     \
        const T *xc = x + c * cs;                                                     \
        UNROLL for (int t = 0; t < (NTAPS); t++, wt += 8) FC_TILEV_TAP(T, VT, VW, NK, NV, xc + taps[t]) \
    }
#define FC_TILEV_BODY(T, VT, VW, NK, NV)                                              \
    FC_TILEV_INIT(T, VT, NK, NV)                                                      \
    if (FC_UNROLL_3X3 && ntaps == 9) {                                                \
        FC_TILEV_CHANNELS(T, VT, VW, NK, NV, 9, _Pragma("GCC unroll 9"))              \
    } else {                                                                          \
        FC_TILEV_CHANNELS(T, VT, VW, NK, NV, ntaps, )                                 \
    }                                                                                 \
    FC_TILEV_STORE(T, VT, VW, NK, NV)

#define FC_TILEV(NAME, T, VT, NK, NV)                                                  \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols) \
    {                                                                                 \
        FC_TILEV_BODY(T, VT, (int)(sizeof(VT) / sizeof(T)), NK, NV)                   \
    }
/* The pointwise product's tile (conv2d_pointwise): FC_TILEV's 8 channels x 3 vectors with
 * one tap at offset 0, so the channel loop is loads and multiply-adds only (taps and ntaps
 * are not read). Each output sums in the column tile's order: the same bits. */
#define FC_PWTILE_BODY(T, VT, VW, NK, NV)                                             \
    FC_TILEV_INIT(T, VT, NK, NV)                                                      \
    for (int c = 0; c < C; c++, wt += 8) FC_TILEV_TAP(T, VT, VW, NK, NV, x + c * cs)  \
    FC_TILEV_STORE(T, VT, VW, NK, NV)                                                 \
    (void)taps; (void)ntaps;
#define FC_PWTILE(NAME, T, VT, NK)                                                     \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols) \
    {                                                                                 \
        FC_PWTILE_BODY(T, VT, (int)(sizeof(VT) / sizeof(T)), NK, 3)                   \
    }
/* The pointwise tile that also asks for the next panel's rows: each channel's row of the
 * NV*VW items after the tile's (the next panel of a row read in place) into the L2 cache, a
 * whole panel ahead of the tile that will read it. Run by the first block of filters over
 * each panel read in place (conv2d_pointwise): the rows lie a plane apart, more streams than
 * the hardware prefetchers follow, so without it that block waits on memory for every
 * channel. The same sums as FC_PWTILE's: the same bits. */
#if defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#else
#define FC_PREFETCH_L2(p) ((void)0)
#endif
#define FC_PWNEXT(NAME, T, VT, NK)                                                     \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols) \
    {                                                                                 \
        enum { VW_ = (int)(sizeof(VT) / sizeof(T)), BYTES_ = 3 * VW_ * (int)sizeof(T) }; \
        FC_TILEV_INIT(T, VT, NK, 3)                                                   \
        for (int c = 0; c < C; c++, wt += 8) {                                        \
            /* every line of the next panel's row: 3 if it starts a line, else 4 */  \
            const char *next_ = (const char *)(x + c * cs + 3 * VW_);                 \
            FC_PREFETCH_L2(next_);                                                    \
            FC_PREFETCH_L2(next_ + 64);                                               \
            FC_PREFETCH_L2(next_ + 128);                                              \
            FC_PREFETCH_L2(next_ + BYTES_ - 1);                                       \
            FC_TILEV_TAP(T, VT, VW_, NK, 3, x + c * cs)                               \
        }                                                                             \
        FC_TILEV_STORE(T, VT, VW_, NK, 3)                                             \
        (void)taps; (void)ntaps;                                                      \
    }
/* Gather tiles: the column tile of NK channels x NV vectors over NV vectors of columns at
 * any offsets: vector v reads x + in_off[v] (+ c*cs + taps[t]) and its first ncols columns
 * (ncols <= VW) are stored at out + out_off[v] (+ j*ocs). The single vectors a row leaves
 * after its wide tiles (the fourth of a 32-column row; a 14-column row's vector and its
 * overlapping tail), and rows narrower than a vector but wider than half of one (ncols
 * columns each), run NV at a time, from consecutive rows, instead of one by one in the
 * one-vector tile (8 accumulators; at 16 registers 9 loads per 8 multiply-adds, where 4 x 3
 * takes 7 per 12). With 16 registers, blocks of 5 or 6 live channels run every whole
 * vector of their rows in 6 x 2 (all its accumulators live; two passes of 4 x 3 leave a
 * quarter idle), the others 8 x 3 as two passes of 4 x 3. Each output sums in the column
 * tile's order: the same bits. */
#define FC_GATHER(NAME, T, VT, NK, NV)                                                \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, \
                                     const ptrdiff_t *in_off, const ptrdiff_t *out_off, int ncols) \
    {                                                                                 \
        ptrdiff_t io[NV], at[NV];                                                     \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {                        \
            io[v] = in_off[v];                                                        \
            at[v] = out_off[v];                                                       \
        }                                                                             \
        FC_TILEV_INIT(T, VT, NK, NV)                                                  \
        for (int c = 0; c < C; c++) {                                                 \
            const T *xc = x + c * cs;                                                 \
            for (int t = 0; t < ntaps; t++, wt += 8) {                                \
                const T *xt = xc + taps[t];                                           \
                VT in[NV];                                                            \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                  \
                    FC_LOAD(VT, in[v], xt + io[v]);                                   \
                _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++) {                \
                    const T wj = wt[j];                                               \
                    _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[j][v] += in[v] * wj; \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        if (ncols < (int)(sizeof(VT) / sizeof(T))) { /* rows narrower than a vector */ \
            VT part[NK][NV];                                                          \
            _Pragma("GCC unroll 8") for (int j = 0; j < NK; j++)                      \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) part[j][v] = acc[j][v]; \
            for (int j = 0; j < nk; j++)                                              \
                _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)                  \
                    memcpy(out + j * ocs + at[v], &part[j][v], (size_t)ncols * sizeof(T)); \
            return;                                                                   \
        }                                                                             \
        FC_TILEV_STORE_AT(T, VT, NK, NV, at[v])                                       \
    }
#if FC_VF >= 16
FC_GATHER(fc_gather3_f32, float, FC_CAT(fc_vf, FC_ISA), 8, 3)
FC_GATHER(fc_gather3_f64, double, FC_CAT(fc_vd, FC_ISA), 8, 3)
#else
FC_GATHER(fc_gather4x3_f32, float, FC_CAT(fc_vf, FC_ISA), 4, 3)
FC_GATHER(fc_gather4x3_f64, double, FC_CAT(fc_vd, FC_ISA), 4, 3)
FC_GATHER(fc_gather6x2_f32, float, FC_CAT(fc_vf, FC_ISA), 6, 2)
FC_GATHER(fc_gather6x2_f64, double, FC_CAT(fc_vd, FC_ISA), 6, 2)
#define FC_GATHER_PAIR(NAME, NARROW, T)                                               \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, \
                                     const ptrdiff_t *in_off, const ptrdiff_t *out_off, int ncols) \
    {                                                                                 \
        FC_CAT(NARROW, FC_ISA)(x, cs, taps, ntaps, C, w, bias, out, ocs, nk < 4 ? nk : 4, in_off, out_off, \
                               ncols);                                                \
        if (nk > 4)                                                                   \
            FC_CAT(NARROW, FC_ISA)(x, cs, taps, ntaps, C, w + 4, bias + 4, out + 4 * ocs, ocs, nk - 4, \
                                   in_off, out_off, ncols);                           \
    }
FC_GATHER_PAIR(fc_gather3_f32, fc_gather4x3_f32, float)
FC_GATHER_PAIR(fc_gather3_f64, fc_gather4x3_f64, double)
#undef FC_GATHER_PAIR
#endif
#undef FC_GATHER

#if FC_VF >= 16
FC_TILEV(fc_tile2_f32, float, FC_CAT(fc_vf, FC_ISA), 8, 2)
FC_TILEV(fc_tile2_f64, double, FC_CAT(fc_vd, FC_ISA), 8, 2)
FC_TILEV(fc_tile3_f32, float, FC_CAT(fc_vf, FC_ISA), 8, 3)
FC_TILEV(fc_tile3_f64, double, FC_CAT(fc_vd, FC_ISA), 8, 3)
FC_TILEV(fc_tile4x6_f32, float, FC_CAT(fc_vf, FC_ISA), 4, 6)
FC_TILEV(fc_tile4x6_f64, double, FC_CAT(fc_vd, FC_ISA), 4, 6)
FC_PWTILE(fc_pwtile_f32, float, FC_CAT(fc_vf, FC_ISA), 8)
FC_PWTILE(fc_pwtile_f64, double, FC_CAT(fc_vd, FC_ISA), 8)
FC_PWNEXT(fc_pwnext_f32, float, FC_CAT(fc_vf, FC_ISA), 8)
FC_PWNEXT(fc_pwnext_f64, double, FC_CAT(fc_vd, FC_ISA), 8)
#else
FC_TILEV(fc_tile4x3_f32, float, FC_CAT(fc_vf, FC_ISA), 4, 3)
FC_TILEV(fc_tile4x3_f64, double, FC_CAT(fc_vd, FC_ISA), 4, 3)
FC_PWTILE(fc_pwtile4_f32, float, FC_CAT(fc_vf, FC_ISA), 4)
FC_PWTILE(fc_pwtile4_f64, double, FC_CAT(fc_vd, FC_ISA), 4)
/* 8 channels x 3 vectors in two passes of the 4 x 3 tile (and of its one-tap twin): the
 * input is read twice (from L1), but each tap takes 3 input loads and 4 broadcasts per 12
 * multiply-adds, where the one-vector tile takes 9 loads per 8. */
#define FC_TILE3_PAIR(NAME, NARROW, T)                                                \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols) \
    {                                                                                 \
        FC_CAT(NARROW, FC_ISA)(x, cs, taps, ntaps, C, w, bias, out, ocs, nk < 4 ? nk : 4, ncols); \
        if (nk > 4)                                                                   \
            FC_CAT(NARROW, FC_ISA)(x, cs, taps, ntaps, C, w + 4, bias + 4, out + 4 * ocs, ocs, nk - 4, ncols); \
    }
FC_TILE3_PAIR(fc_tile3_f32, fc_tile4x3_f32, float)
FC_TILE3_PAIR(fc_tile3_f64, fc_tile4x3_f64, double)
FC_TILE3_PAIR(fc_pwtile_f32, fc_pwtile4_f32, float)
FC_TILE3_PAIR(fc_pwtile_f64, fc_pwtile4_f64, double)
#undef FC_TILE3_PAIR
/* The row loop of the column tiles for a band of nrows output rows (irs / ors: the input /
 * output row steps), in one call: each row runs nseg 4 x 3 segments of 3 vectors from its
 * first column (a 1x1 kernel read in place, one tap at offset 0: the pointwise tile PW, no
 * tap loop), then its single whole vectors at columns singles[i] (i < nsingles) wait and
 * run three at a time, from consecutive rows, in the gather tile's passes; those left at the
 * end run one at a time in the one-vector tile (ONE). The rows go in order, each row's
 * columns left to right, as the caller's loop went (so the output is written in order); the
 * call, its arguments and the loop are paid once per band instead of per row and pass. Each
 * output sums in the column tile's order: the same bits. */
/* (the 4 x 3 passes over channels h, h + 1, ...: vector v reads XB + IN_AT (+ c*cs + taps[t])
 * and is stored at OB + OUT_AT (+ j*ocs); channels j < nk - h stored) */
#define FC_PASSES(T, VT, XB, OB, IN_AT, OUT_AT)                                       \
    for (int h = 0; h < nk; h += 4) {                                                 \
        VT acc[4][3];                                                                 \
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)                           \
            _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) acc[j][v] = (VT){0} + bias[h + j]; \
        const T *wt = w + h;                                                          \
        T *oj = (OB) + h * ocs;                                                       \
        for (int c = 0; c < C; c++) {                                                 \
            const T *xc = (XB) + c * cs;                                              \
            FC_UNROLL_TAPS for (int t = 0; t < ntaps; t++, wt += 8) {                 \
                const T *xt = xc + taps[t];                                           \
                VT in[3];                                                             \
                _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++)                   \
                    FC_LOAD(VT, in[v], xt + (IN_AT));                                 \
                _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                 \
                    const T wj = wt[j];                                               \
                    _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) acc[j][v] += in[v] * wj; \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        if (nk - h >= 4) { /* every channel of the pass live: from the registers */   \
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++)                   \
                    memcpy(oj + j * ocs + (OUT_AT), &acc[j][v], sizeof(VT));          \
        } else {                                                                      \
            VT done[4][3];                                                            \
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)                       \
                _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++) done[j][v] = acc[j][v]; \
            for (int j = 0; j < nk - h; j++)                                          \
                _Pragma("GCC unroll 3") for (int v = 0; v < 3; v++)                   \
                    memcpy(oj + j * ocs + (OUT_AT), &done[j][v], sizeof(VT));         \
        }                                                                             \
    }
#define FC_BAND_ROWS(T, VT, ONE_TAP, PW)                                              \
    for (int r = 0; r < nrows; r++) {                                                 \
        for (int s = 0; s < nseg; s++) {                                              \
            const ptrdiff_t col = (ptrdiff_t)s * 3 * VW;                              \
            if (ONE_TAP)                                                              \
                FC_CAT(PW, FC_ISA)(x + r * irs + col, cs, taps, ntaps, C, w, bias, out + r * ors + col, ocs, \
                                   nk, 3 * VW);                                       \
            else                                                                      \
                FC_PASSES(T, VT, x + r * irs + col, out + r * ors + col, v * VW, v * VW) \
        }                                                                             \
        for (int i = 0; i < nsingles; i++) {                                          \
            pin[pending] = r * irs + singles[i];                                      \
            pout[pending] = r * ors + singles[i];                                     \
            if (++pending == 3) {                                                     \
                FC_PASSES(T, VT, x, out, pin[v], pout[v])                             \
                pending = 0;                                                          \
            }                                                                         \
        }                                                                             \
    }
/* (two functions: the one-tap loop calls the pointwise tile per segment, the other runs the passes inline) */
#define FC_BAND_IMPL(NAME, T, VT, ONE, PW, ONE_TAP)                                   \
    static void __attribute__((noinline)) NAME(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, \
                                               int C, const T *w, const T *bias, T *out, ptrdiff_t ocs, \
                                               int nk, int nrows, ptrdiff_t irs, ptrdiff_t ors, int nseg, \
                                               const ptrdiff_t *singles, int nsingles) \
    {                                                                                 \
        const int VW = (int)(sizeof(VT) / sizeof(T));                                 \
        ptrdiff_t pin[3], pout[3];                                                    \
        int pending = 0;                                                              \
        FC_BAND_ROWS(T, VT, ONE_TAP, PW)                                              \
        for (int i = 0; i < pending; i++) /* (fewer than three left: one at a time) */ \
            FC_CAT(ONE, FC_ISA)(x + pin[i], cs, taps, ntaps, C, w, bias, out + pout[i], ocs, nk, VW); \
    }
#define FC_BAND(NAME, T, VT, ONE, PW)                                                   \
    FC_BAND_IMPL(FC_CAT(NAME##_taps, FC_ISA), T, VT, ONE, PW, 0)                       \
    FC_BAND_IMPL(FC_CAT(NAME##_one_tap, FC_ISA), T, VT, ONE, PW, 1)                    \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int nrows, \
                                     ptrdiff_t irs, ptrdiff_t ors, int nseg, const ptrdiff_t *singles, \
                                     int nsingles)                                     \
    {                                                                                 \
        if (ntaps == 1 && taps[0] == 0) /* a 1x1 kernel read in place: no tap loop (pw32's sums) */ \
            FC_CAT(NAME##_one_tap, FC_ISA)(x, cs, taps, ntaps, C, w, bias, out, ocs, nk, nrows, irs, ors, \
                                           nseg, singles, nsingles);                  \
        else                                                                          \
            FC_CAT(NAME##_taps, FC_ISA)(x, cs, taps, ntaps, C, w, bias, out, ocs, nk, nrows, irs, ors, nseg, \
                                        singles, nsingles);                           \
    }
FC_BAND(fc_band_f32, float, FC_CAT(fc_vf, FC_ISA), fc_tile_f32, fc_pwtile_f32)
FC_BAND(fc_band_f64, double, FC_CAT(fc_vd, FC_ISA), fc_tile_f64, fc_pwtile_f64)
#undef FC_BAND
#undef FC_BAND_IMPL
#undef FC_BAND_ROWS
#undef FC_PASSES
#endif
#undef FC_PWTILE
#undef FC_PWTILE_BODY
#undef FC_PWNEXT
#undef FC_TILEV
#undef FC_TILEV_BODY
#undef FC_TILEV_CHANNELS
#undef FC_TILEV_INIT
#undef FC_TILEV_TAP
#undef FC_TILEV_STORE
#undef FC_TILEV_STORE_AT

/* The row tiles' accumulators start at the bias; row r is stored at out + r*ors, its
 * first ncols <= VW columns. */
#define FC_ROWTILE_INIT(VT)                                                           \
    _Pragma("GCC unroll 8") for (int r = 0; r < FC_ROWS; r++) acc[r] = (VT){0} + bias;
#define FC_ROWTILE_STORE(T, VT, VW)                                                   \
    _Pragma("GCC unroll 8") for (int r = 0; r < FC_ROWS; r++) {                       \
        if (ncols == VW)                                                              \
            memcpy(out + r * ors, &acc[r], sizeof(VT));                               \
        else                                                                          \
            memcpy(out + r * ors, &acc[r], (size_t)ncols * sizeof(T));                \
    }

/* Row tiles: ONE output channel x FC_ROWS consecutive output rows x one vector of
 * columns, FC_ROWS accumulators. For blocks with one or two live channels (a layer with
 * one filter, the input gradient of a one-channel image) the column tiles' lanes of the
 * other channels would idle; here each tap loads FC_ROWS input vectors (rows irs apart)
 * for one broadcast weight. Weights are the column tile's [c][tap][8]: w points at the
 * channel's first, and each output sums in the column tile's order, so results are equal
 * bit for bit. Rows are out + r*ors; columns col < ncols <= VW are stored. */
#define FC_ROWTILE(NAME, T, VT)                                                       \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, T bias, T *out, ptrdiff_t ors, ptrdiff_t irs, int ncols) \
    {                                                                                 \
        enum { VW = (int)(sizeof(VT) / sizeof(T)) };                                  \
        VT acc[FC_ROWS];                                                              \
        FC_ROWTILE_INIT(VT)                                                           \
        const T *wt = w;                                                              \
        for (int c = 0; c < C; c++) {                                                 \
            const T *x0 = x + c * cs, *x4 = x0 + 4 * irs; /* rows 0-3 and 4-7 */      \
            for (int t = 0; t < ntaps; t++, wt += 8) {                                \
                const T *a = x0 + taps[t], *b = x4 + taps[t];                         \
                const T wv = wt[0];                                                   \
                VT v[FC_ROWS];                                                        \
                FC_LOAD(VT, v[0], a);                                                 \
                FC_LOAD(VT, v[1], a + irs);                                           \
                FC_LOAD(VT, v[2], a + 2 * irs);                                       \
                FC_LOAD(VT, v[3], b - irs);                                           \
                FC_LOAD(VT, v[4], b);                                                 \
                FC_LOAD(VT, v[5], b + irs);                                           \
                FC_LOAD(VT, v[6], b + 2 * irs);                                       \
                FC_LOAD(VT, v[7], b + 3 * irs);                                       \
                _Pragma("GCC unroll 8") for (int r = 0; r < FC_ROWS; r++) acc[r] += v[r] * wv; \
            }                                                                         \
        }                                                                             \
        FC_ROWTILE_STORE(T, VT, VW)                                                   \
    }
_Static_assert(FC_ROWS == 8, "the row tiles load their 8 rows one by one");
FC_ROWTILE(fc_rowtile_f32, float, FC_CAT(fc_vf, FC_ISA))
#if FC_VD > 2 /* (float64 rows of 2-item vectors measured no faster than the column tile) */
FC_ROWTILE(fc_rowtile_f64, double, FC_CAT(fc_vd, FC_ISA))
#endif
#undef FC_ROWTILE

/* Keep a loaded vector in a register: without this, gcc folds the load into each FMA
 * that uses it (as a memory operand), which multiplies the loads of the tiles built to
 * load a vector once for several FMAs (the reusing row tiles, the weight-gradient tile). */
#if defined(__x86_64__) || defined(__i386__)
#define FC_IN_REGISTER(v) __asm__("" : "+x"(v))
#elif defined(__aarch64__)
#define FC_IN_REGISTER(v) __asm__("" : "+w"(v))
#else
#define FC_IN_REGISTER(v) ((void)0)
#endif

/* Row tiles that reuse each input row across the kernel's rows, for kernels of KH rows
 * (3, 5 or 7) whose taps are ky*irs + cols[kx] (a row stride equal to the row dilation):
 * for each channel and kernel column the tile loads the FC_ROWS + KH - 1 input rows it
 * reads once, and each feeds up to KH accumulators, with that column's KH weights in
 * registers. The plain row tile loads FC_ROWS rows per tap, FC_ROWS*KH per column where
 * these load FC_ROWS + KH - 1. Each output sums over channels, then kernel columns, then
 * kernel rows (the plain tile: channels, then taps row by row), so the two agree to
 * rounding, not bit for bit. Arguments as FC_ROWTILE's, with the kernel's columns cols
 * (its first KW taps) and kw for taps and ntaps; the reads are the plain tile's. */
#define FC_ROWTILE_KH(NAME, T, VT, KH)                                                \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *cols, int kw, int C, \
                                     const T *w, T bias, T *out, ptrdiff_t ors, ptrdiff_t irs, int ncols) \
    {                                                                                 \
        enum { VW = (int)(sizeof(VT) / sizeof(T)) };                                  \
        VT acc[FC_ROWS];                                                              \
        FC_ROWTILE_INIT(VT)                                                           \
        for (int c = 0; c < C; c++) {                                                 \
            const T *wc = w + (ptrdiff_t)c * KH * kw * 8; /* [tap][8], taps row by row */ \
            for (int kx = 0; kx < kw; kx++) {                                         \
                const T *a = x + c * cs + cols[kx];                                   \
                VT wv[KH];                                                            \
                /* (w - 0 is w for every w, so this is a plain broadcast; 0 + w is +0 for -0, an add per weight) */ \
                _Pragma("GCC unroll 8") for (int ky = 0; ky < KH; ky++) wv[ky] = wc[(ky * kw + kx) * 8] - (VT){0}; \
                _Pragma("GCC unroll 16") for (int i = 0; i < FC_ROWS + KH - 1; i++) { \
                    VT v; /* input row i: row r = i - ky of the tile, for each kernel row ky */ \
                    FC_LOAD(VT, v, a + i * irs);                                      \
                    FC_IN_REGISTER(v);                                                \
                    _Pragma("GCC unroll 8") for (int ky = 0; ky < KH; ky++) {         \
                        if (i - ky >= 0 && i - ky < FC_ROWS) acc[i - ky] += v * wv[ky]; \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        FC_ROWTILE_STORE(T, VT, VW)                                                   \
    }
FC_ROWTILE_KH(fc_rowtile_f32_kh3, float, FC_CAT(fc_vf, FC_ISA), 3)
FC_ROWTILE_KH(fc_rowtile_f32_kh5, float, FC_CAT(fc_vf, FC_ISA), 5)
FC_ROWTILE_KH(fc_rowtile_f32_kh7, float, FC_CAT(fc_vf, FC_ISA), 7)
#if FC_VD > 2
FC_ROWTILE_KH(fc_rowtile_f64_kh3, double, FC_CAT(fc_vd, FC_ISA), 3)
FC_ROWTILE_KH(fc_rowtile_f64_kh5, double, FC_CAT(fc_vd, FC_ISA), 5)
FC_ROWTILE_KH(fc_rowtile_f64_kh7, double, FC_CAT(fc_vd, FC_ISA), 7)
#endif
#undef FC_ROWTILE_KH
#undef FC_ROWTILE_INIT
#undef FC_ROWTILE_STORE

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
            FC_LOAD(VT, v, xs[j] + taps[t]);                                          \
            accs[j] += v * wt[j];                                                     \
        }                                                                             \
    }                                                                                 \
    (void)C;                                                                          \
    for (int j = 0; j < nk; j++) {                                                    \
        if (ncols == VW) { /* a fixed size: one vector store, not a call to memcpy */  \
            memcpy(out + j * ocs, &accs[j], sizeof(VT));                              \
        } else {                                                                      \
            memcpy(out + j * ocs, &accs[j], (size_t)ncols * sizeof(T));               \
        }                                                                             \
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

/* Depthwise plane tile for 9 taps (3x3 kernels): one channel's whole output plane,
 * its 9 weights broadcast once into registers, one vector of output columns at a
 * time, so each tap is one input load and one FMA (the 8-plane tile above also
 * loads a broadcast weight per FMA). A row's tail overlaps the previous vector;
 * rows narrower than a vector read past their end (the caller provides slack)
 * and store only OW columns. Tap t of output pixel (oh, ow) reads
 * x[oh*row_step + taps[t] + ow]; weight t is w[t*wstep]. The sums run in the same
 * order as the 8-plane tile's, so the two give bitwise equal results. Where a row and the
 * next row's columns fit one vector (OW + row_step <= VW: rows of 7 in planes 9 wide at
 * AVX-512 float32), a vector takes several rows, the padding columns between them computed
 * and not stored: it starts where the one-row loads start, so reads no further. */
/* (ACC = the bias plus the nine taps' products for a vector of outputs whose tap 0 reads P) */
#define FC_DWPLANE_SUM(T, VT, ACC, P)                                                   \
    VT ACC = (VT){0} + bias;                                                          \
    {                                                                                 \
        const T *p_ = (P);                                                            \
        VT v_;                                                                        \
        FC_LOAD(VT, v_, p_ + t0); ACC += v_ * w0;                                     \
        FC_LOAD(VT, v_, p_ + t1); ACC += v_ * w1;                                     \
        FC_LOAD(VT, v_, p_ + t2); ACC += v_ * w2;                                     \
        FC_LOAD(VT, v_, p_ + t3); ACC += v_ * w3;                                     \
        FC_LOAD(VT, v_, p_ + t4); ACC += v_ * w4;                                     \
        FC_LOAD(VT, v_, p_ + t5); ACC += v_ * w5;                                     \
        FC_LOAD(VT, v_, p_ + t6); ACC += v_ * w6;                                     \
        FC_LOAD(VT, v_, p_ + t7); ACC += v_ * w7;                                     \
        FC_LOAD(VT, v_, p_ + t8); ACC += v_ * w8;                                     \
    }
#define FC_DWPLANE_BODY(T, VT, VW)                                                    \
    VT w0 = (VT){0} + w[0], w1 = (VT){0} + w[wstep], w2 = (VT){0} + w[2 * wstep];     \
    VT w3 = (VT){0} + w[3 * wstep], w4 = (VT){0} + w[4 * wstep];                      \
    VT w5 = (VT){0} + w[5 * wstep], w6 = (VT){0} + w[6 * wstep];                      \
    VT w7 = (VT){0} + w[7 * wstep], w8 = (VT){0} + w[8 * wstep];                      \
    const ptrdiff_t t0 = taps[0], t1 = taps[1], t2 = taps[2], t3 = taps[3];           \
    const ptrdiff_t t4 = taps[4], t5 = taps[5], t6 = taps[6], t7 = taps[7];           \
    const ptrdiff_t t8 = taps[8];                                                     \
    if (OW + row_step <= VW) { /* rows_ rows a vector: row oh + r in lanes r*row_step .. + OW */ \
        const int rows_ = 1 + (VW - OW) / (int)row_step;                              \
        for (int oh = 0; oh < OH; oh += rows_) {                                      \
            FC_DWPLANE_SUM(T, VT, acc, x + oh * row_step)                              \
            T lanes_[VW];                                                             \
            memcpy(lanes_, &acc, sizeof(VT));                                         \
            for (int r = 0; r < rows_ && oh + r < OH; r++)                            \
                memcpy(out + (ptrdiff_t)(oh + r) * OW, lanes_ + r * row_step, (size_t)OW * sizeof(T)); \
        }                                                                             \
        return;                                                                       \
    }                                                                                 \
    for (int oh = 0; oh < OH; oh++) {                                                 \
        const T *xr = x + oh * row_step;                                              \
        T *orow = out + (ptrdiff_t)oh * OW;                                           \
        for (int ow0 = 0; ow0 < OW; ow0 += VW) {                                      \
            int start = ow0, ncols = VW;                                              \
            if (ow0 + VW > OW) {                                                      \
                if (OW >= VW)                                                         \
                    start = OW - VW;                                                  \
                else                                                                  \
                    ncols = OW;                                                       \
            }                                                                         \
            FC_DWPLANE_SUM(T, VT, acc, xr + start)                                    \
            if (ncols == VW)                                                          \
                memcpy(orow + start, &acc, sizeof(VT));                               \
            else                                                                      \
                memcpy(orow + start, &acc, (size_t)ncols * sizeof(T));                \
        }                                                                             \
    }

static void FC_CAT(fc_dwplane_f32, FC_ISA)(const float *x, ptrdiff_t row_step, const ptrdiff_t *taps,
                                           const float *w, ptrdiff_t wstep, float bias, float *out, int OH,
                                           int OW)
{
    FC_DWPLANE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
}

static void FC_CAT(fc_dwplane_f64, FC_ISA)(const double *x, ptrdiff_t row_step, const ptrdiff_t *taps,
                                           const double *w, ptrdiff_t wstep, double bias, double *out, int OH,
                                           int OW)
{
    FC_DWPLANE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
}
#undef FC_DWPLANE_BODY
#undef FC_DWPLANE_SUM

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

/* Tail tiles (AVX-512): the last FC_TAIL_COLS columns of a row whose tail after the wide
 * tiles is that short, with a block's 8 channels along the vector instead of the columns
 * (an 8-lane vector: half an AVX-512 float32 one, a whole float64 one). Each tap is one
 * weight-vector load and FC_TAIL_COLS broadcast inputs, where the half-width tile takes a
 * load and 8 multiply-adds for those columns (LeNet-5's C3 layer: 100-pixel bands, two
 * tiles of 48 and a tail of 4). The caller runs it on the row's last FC_TAIL_COLS columns
 * (those before the tail again, to the same values), so it reads no column past the row;
 * or, for the pointwise product's last panel of ncols < FC_TAIL_COLS pixels (one image of
 * 7x7 leaves 1), on the panel's copy, whose slack takes the reads past it: the tile reads
 * FC_TAIL_COLS columns and stores the first ncols (at most FC_TAIL_COLS).
 * Weights are packed [c][tap][8] as for the column tiles; every output sums in their order:
 * the same bits. */
#if FC_VF >= 16 && defined(FC_HAVE_X86_LEVELS)
#define FC_TAILTILE(NAME, T, V8)                                                      \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols) \
    {                                                                                 \
        V8 acc[FC_TAIL_COLS], b_;                                                     \
        memcpy(&b_, bias, sizeof(V8));                                                \
        _Pragma("GCC unroll 4") for (int q = 0; q < FC_TAIL_COLS; q++) acc[q] = b_;   \
        const T *wt = w;                                                              \
        for (int c = 0; c < C; c++) {                                                 \
            const T *xc = x + c * cs;                                                 \
            for (int t = 0; t < ntaps; t++, wt += 8) {                                \
                V8 w_;                                                                \
                memcpy(&w_, wt, sizeof(V8));                                          \
                const T *xt = xc + taps[t];                                           \
                _Pragma("GCC unroll 4") for (int q = 0; q < FC_TAIL_COLS; q++) acc[q] += w_ * xt[q]; \
            }                                                                         \
        }                                                                             \
        T cols_[FC_TAIL_COLS][8];                                                     \
        memcpy(cols_, acc, sizeof(cols_));                                            \
        if (ncols >= FC_TAIL_COLS) {                                                  \
            for (int j = 0; j < nk; j++)                                              \
                _Pragma("GCC unroll 4") for (int q = 0; q < FC_TAIL_COLS; q++) out[j * ocs + q] = cols_[q][j]; \
            return;                                                                   \
        }                                                                             \
        for (int j = 0; j < nk; j++)                                                  \
            for (int q = 0; q < ncols; q++) out[j * ocs + q] = cols_[q][j];           \
    }
FC_TAILTILE(fc_tailtile_f32, float, FC_CAT(fc_hvf, FC_ISA))
FC_TAILTILE(fc_tailtile_f64, double, FC_CAT(fc_vd, FC_ISA))
#undef FC_TAILTILE

/* Tail tiles over several blocks of filters: the pointwise product's last panel of ncols <=
 * Q pixels, NB consecutive blocks of 8 filters at once (block b's weights at w + b*wstep,
 * packed [c][8]; its bias at bias + 8*b; its channel j's outputs at out + (8*b + j)*ocs).
 * FC_TAILTILE's one block of one 7x7 image's last pixel is a single chain of multiply-adds,
 * each waiting on the one before (4 cycles each, 5.6 a channel measured); here NB*Q chains
 * run side by side: Q = 1 with NB = 8 (the 49th pixel), Q = 4 with NB = 4 (a 14x14 image's
 * last 4). The tile reads Q columns of each row (the panel's copy has the slack) and stores
 * the first ncols. Every output sums in the column tiles' order: the same bits. */
#define FC_TAILBLOCKS(NAME, T, V8, NB, Q)                                             \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, int C, const T *w, ptrdiff_t wstep, \
                                     const T *bias, T *out, ptrdiff_t ocs, int ncols) \
    {                                                                                 \
        V8 acc[NB][Q];                                                                \
        _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {                        \
            V8 b_;                                                                    \
            memcpy(&b_, bias + 8 * b, sizeof(V8));                                    \
            _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++) acc[b][q] = b_;       \
        }                                                                             \
        for (int c = 0; c < C; c++) {                                                 \
            const T *xc = x + c * cs;                                                 \
            _Pragma("GCC unroll 8") for (int b = 0; b < NB; b++) {                    \
                V8 w_;                                                                \
                memcpy(&w_, w + b * wstep + 8 * c, sizeof(V8));                       \
                _Pragma("GCC unroll 4") for (int q = 0; q < Q; q++) acc[b][q] += w_ * xc[q]; \
            }                                                                         \
        }                                                                             \
        for (int b = 0; b < NB; b++) {                                                \
            T cols_[Q][8];                                                            \
            memcpy(cols_, acc[b], sizeof(cols_));                                     \
            for (int j = 0; j < 8; j++)                                               \
                for (int q = 0; q < ncols; q++) out[(8 * b + j) * ocs + q] = cols_[q][j]; \
        }                                                                             \
    }
FC_TAILBLOCKS(fc_tail1x8_f32, float, FC_CAT(fc_hvf, FC_ISA), FC_TAIL1_BLOCKS, 1)
FC_TAILBLOCKS(fc_tail1x8_f64, double, FC_CAT(fc_vd, FC_ISA), FC_TAIL1_BLOCKS, 1)
FC_TAILBLOCKS(fc_tail4x4_f32, float, FC_CAT(fc_hvf, FC_ISA), FC_TAIL4_BLOCKS, FC_TAIL_COLS)
FC_TAILBLOCKS(fc_tail4x4_f64, double, FC_CAT(fc_vd, FC_ISA), FC_TAIL4_BLOCKS, FC_TAIL_COLS)
#undef FC_TAILBLOCKS
#endif

/* Output-channel tiles, for rows too short to fill the column tiles (a 14-column
 * row is 14/16 of an AVX-512 tile). Here a vector holds output channels instead:
 * 2*VW output channels x P consecutive output columns of one row, 2*P vector
 * accumulators. Each tap is two weight-vector loads and P broadcast inputs, so no
 * lane is idle whatever the row length:
 *
 *     out[j][col] = bias[j] + sum_{c < C} sum_{t < ntaps} w[c][t][j] * x[c*cs + taps[t] + col]
 *
 * for j < 2*VW (stored for j < nk) and col < ncols <= FC_OC_COLS. Weights are
 * packed [c][tap][2*VW] and bias [2*VW], zero past nk. Only columns < ncols are
 * read, so no slack is needed after the row. One function per column count P
 * keeps every accumulator in a register; fc_octile picks it. The sums run in the
 * same order as fc_tile's, so the two tiles give bitwise equal results. */
#if FC_VF >= 16 || defined(__aarch64__)
#define FC_OC_COLS 14 /* 32 vector registers: 28 accumulators, 2 weights, 1 input */
#else
#define FC_OC_COLS 6 /* 16 vector registers: 12 accumulators, 2 weights, 1 input, 1 spare */
#endif

/* The output-channel tiles' accumulators start at the bias (lo: channels 0..VW-1, hi:
 * VW..2*VW-1, one pair per column); at the end they are transposed, [col][channel],
 * into the channel planes: column p of channel j goes to out[j*ocs + p], for j < nk.
 * With ocs < 0 the output is pixels, -ocs items apart, each pixel's channels side by
 * side (NHWC): column p of channel j goes to out[p*(-ocs) + j], a pixel's nk channels
 * stored as they lie in its pair of vectors (FC_OC_STORE_PIXELS: no transpose). */
#define FC_OC_INIT(VT, VW, P)                                                         \
    {                                                                                 \
        VT b0, b1;                                                                    \
        FC_LOAD(VT, b0, bias);                                                        \
        FC_LOAD(VT, b1, bias + VW);                                                   \
        for (int p = 0; p < P; p++) {                                                 \
            lo[p] = b0;                                                               \
            hi[p] = b1;                                                               \
        }                                                                             \
    }
#define FC_OC_STORE_PIXELS(T, VT, VW, P)                                              \
    {                                                                                 \
        const ptrdiff_t pst_ = -ocs;                                                  \
        if (nk == 2 * (VW)) {                                                         \
            for (int p = 0; p < P; p++) {                                             \
                FC_STORE(VT, out + p * pst_, lo[p]);                                  \
                FC_STORE(VT, out + p * pst_ + (VW), hi[p]);                           \
            }                                                                         \
        } else {                                                                      \
            for (int p = 0; p < P; p++) {                                             \
                T px_[2 * (VW)];                                                      \
                memcpy(px_, &lo[p], sizeof(VT));                                      \
                memcpy(px_ + (VW), &hi[p], sizeof(VT));                               \
                memcpy(out + p * pst_, px_, (size_t)nk * sizeof(T));                  \
            }                                                                         \
        }                                                                             \
    }
#define FC_OC_STORE_SCALAR(T, VT, VW, P)                                              \
    {                                                                                 \
        T cols[P][2 * VW];                                                            \
        for (int p = 0; p < P; p++) {                                                 \
            memcpy(cols[p], &lo[p], sizeof(VT));                                      \
            memcpy(cols[p] + VW, &hi[p], sizeof(VT));                                 \
        }                                                                             \
        for (int j = 0; j < nk; j++)                                                  \
            for (int p = 0; p < P; p++) out[j * ocs + p] = cols[p][j];                \
    }
#if FC_VF == 16 && defined(FC_HAVE_X86_LEVELS)
/* AVX-512 float32: the P columns' 2 x 16 channels transposed in registers (two 16 x 16
 * transposes, rows P.. copies of the last: four rounds of two-source permutes, 128 in all)
 * and each live channel's P columns stored at once under a mask, instead of through the
 * stack item by item (32 * P loads and stores). The same values to the same places. In the
 * library (Intel Xeon, one process switching the two per call, medians of 9-11): strided's
 * input gradient 1.06x at one thread and 1.05x at two; resnet-deep, 128 channels on 28x28
 * and 512 on 7x7 1.00-1.03x; 32 channels on 64x64 0.99x. (A C copy of resnet-deep's tile
 * without the output prefetch ran 1.06-1.07x: the prefetch hides most of the stores' cost.) */
#define FC_OC_BUTTERFLY(D, L, H)                                                      \
    _Pragma("GCC unroll 16") for (int i_ = 0; i_ < 16; i_++) if (!(i_ & (D))) {       \
        const __m512 x0_ = t_[i_], x1_ = t_[i_ + (D)];                                \
        t_[i_] = _mm512_permutex2var_ps(x0_, L, x1_);                                 \
        t_[i_ + (D)] = _mm512_permutex2var_ps(x0_, H, x1_);                           \
    }
#define FC_OC_STORE_TRANSPOSED(P)                                                     \
    {                                                                                 \
        /* round D: rows i and i + D swap the lanes l of one with l & D set and those of \
         * the other without (lane l of the pair is x0[l], lane 16 + l x1[l]) */       \
        const __m512i l8_ = _mm512_set_epi32(23, 22, 21, 20, 19, 18, 17, 16, 7, 6, 5, 4, 3, 2, 1, 0); \
        const __m512i h8_ = _mm512_set_epi32(31, 30, 29, 28, 27, 26, 25, 24, 15, 14, 13, 12, 11, 10, 9, 8); \
        const __m512i l4_ = _mm512_set_epi32(27, 26, 25, 24, 11, 10, 9, 8, 19, 18, 17, 16, 3, 2, 1, 0); \
        const __m512i h4_ = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 23, 22, 21, 20, 7, 6, 5, 4); \
        const __m512i l2_ = _mm512_set_epi32(29, 28, 13, 12, 25, 24, 9, 8, 21, 20, 5, 4, 17, 16, 1, 0); \
        const __m512i h2_ = _mm512_set_epi32(31, 30, 15, 14, 27, 26, 11, 10, 23, 22, 7, 6, 19, 18, 3, 2); \
        const __m512i l1_ = _mm512_set_epi32(30, 14, 28, 12, 26, 10, 24, 8, 22, 6, 20, 4, 18, 2, 16, 0); \
        const __m512i h1_ = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1); \
        const __mmask16 m_ = (__mmask16)((1u << (P)) - 1u);                           \
        _Pragma("GCC unroll 2") for (int h_ = 0; h_ < 2; h_++) {                      \
            if (h_ * 16 >= nk)                                                        \
                break;                                                                \
            __m512 t_[16];                                                            \
            _Pragma("GCC unroll 16") for (int p_ = 0; p_ < 16; p_++)                  \
                t_[p_] = (__m512)(h_ ? hi[p_ < (P) ? p_ : (P) - 1] : lo[p_ < (P) ? p_ : (P) - 1]); \
            FC_OC_BUTTERFLY(8, l8_, h8_)                                              \
            FC_OC_BUTTERFLY(4, l4_, h4_)                                              \
            FC_OC_BUTTERFLY(2, l2_, h2_)                                              \
            FC_OC_BUTTERFLY(1, l1_, h1_)                                              \
            _Pragma("GCC unroll 16") for (int j_ = 0; j_ < 16; j_++)                  \
                if (h_ * 16 + j_ < nk)                                                \
                    _mm512_mask_storeu_ps(out + (h_ * 16 + j_) * ocs, m_, t_[j_]);    \
        }                                                                             \
    }
#define FC_OC_STORE_float(VT, VW, P) FC_OC_STORE_TRANSPOSED(P)
#define FC_OC_STORE_double(VT, VW, P) FC_OC_STORE_SCALAR(double, VT, VW, P)
#define FC_OC_STORE_PLANES(T, VT, VW, P) FC_CAT2(FC_OC_STORE, T)(VT, VW, P)
#else
#define FC_OC_STORE_PLANES(T, VT, VW, P) FC_OC_STORE_SCALAR(T, VT, VW, P)
#endif
#define FC_OC_STORE(T, VT, VW, P)                                                     \
    if (ocs < 0)                                                                      \
        FC_OC_STORE_PIXELS(T, VT, VW, P)                                              \
    else                                                                              \
        FC_OC_STORE_PLANES(T, VT, VW, P)

/* R rows of Q columns (R*Q accumulator pairs), row r read at xt + r*IRS. Each tap asks
 * for the line its input has in the next channel: a channel's rows lie a plane apart, a
 * stride the hardware prefetchers do not follow through the band (the weights, read in
 * order, they do). Against the build without it (AMD EPYC, AVX2, one thread, float32,
 * alternating processes): resnet-deep's convolution 1.06-1.14x and input gradient
 * 1.04-1.08x, resnet-mid 1.00-1.03x, dilated 0.98-1.03x, 512 channels of 7x7 0.99-1.01x;
 * the next channel but one measured no better. A prefetch never faults, so the last
 * channel's, past the input, is harmless. The tile also asks for its output's lines
 * (first and last column of each channel) before its channel loop, so its stores at
 * the end find them in cache: in a C copy of resnet-deep's tile writing 32 images'
 * output (6.4 MB) instead of one's, 1.02x; in the library (Intel Xeon, AVX-512,
 * alternating processes, medians of 16 / 5 pairs) resnet-deep's convolution 1.02x,
 * strided 1.02x, resnet-mid and resnet-deep's input gradient 1.01x at one thread,
 * even at two. A 3x3 kernel's three taps of a row read the same lines, so its unrolled
 * loop asks only at each row's first tap (PF_EVERY 3): an instruction less per tap for
 * the ports that also issue the multiply-adds. (Nine taps run as 3x3, row by row; a 9x1
 * kernel's taps are nine rows, of which this asks for every third: a hint, no result
 * depends on it.) Intel Xeon, alternating processes,
 * medians of 8 (two threads: 6), convolution and input gradient of resnet-deep,
 * resnet-mid and dilated: AVX2 1.02-1.03x at one thread and 1.03-1.05x at two, AVX-512
 * 1.01-1.04x. (Not measured on the AMD machine where the prefetch was.) */
#if defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH(p) __builtin_prefetch(p)
#define FC_PREFETCH_W(p) __builtin_prefetch((p), 1)
#else
#define FC_PREFETCH(p) ((void)0)
#define FC_PREFETCH_W(p) ((void)0)
#endif
/* Every channel's NTAPS taps (a count known at compile time where UNROLL unrolls them). */
/* (COLUMNS: one tap's multiply-adds, from the weights w0, w1 and the tap's input xt;
 * ask_ says whether the tap asked for its input's line in the next channel) */
#define FC_OC_CHANNELS(T, VT, VW, NTAPS, UNROLL, PF_EVERY, COLUMNS)                   \
    FC_OC_CHANNEL_TAPS(T, VT, VW, 0, NTAPS, NTAPS, UNROLL, PF_EVERY, COLUMNS)
/* The same over taps T0 <= t < T1 of a channel's NTAPS only: the weights of the others
 * are stepped over where they lie (no copy) */
#define FC_OC_CHANNEL_TAPS(T, VT, VW, T0, T1, NTAPS, UNROLL, PF_EVERY, COLUMNS)       \
    wt += (T0) * 2 * VW;                                                              \
    for (int c = 0; c < C; c++, wt += ((NTAPS) - ((T1) - (T0))) * 2 * VW) {           \
        const T *xc = x + c * cs;                                                     \
        UNROLL for (int t = (T0); t < (T1); t++, wt += 2 * VW) {                      \
            VT w0, w1;                                                                \
            FC_LOAD(VT, w0, wt);                                                      \
            FC_LOAD(VT, w1, wt + VW);                                                 \
            const T *xt = xc + taps[t];                                               \
            const int ask_ = t % (PF_EVERY) == 0;                                     \
            if (ask_) /* this tap's input in the next channel (see above) */          \
                FC_PREFETCH(xt + cs);                                                 \
            COLUMNS                                                                   \
        }                                                                             \
    }
/* R rows of Q columns, row r at xt + r*IRS, into the accumulator arrays lo and hi; columns
 * from K on (K < Q: a tile over the end of one row and the start of the next, R = 1) read
 * GAP items further */
#define FC_OC_COLUMNS(T, R, Q, IRS, K, GAP)                                           \
    _Pragma("GCC unroll 16") for (int r = 0; r < (R); r++) {                          \
        _Pragma("GCC unroll 16") for (int q = 0; q < (Q); q++) {                      \
            const T xv = xt[r * (IRS) + (q < (K) ? q : q + (GAP))];                   \
            lo[r * (Q) + q] += w0 * xv;                                               \
            hi[r * (Q) + q] += w1 * xv;                                               \
        }                                                                             \
    }
/* every channel's taps: nine unrolled as 3x3 where FC_UNROLL_3X3 says, else ntaps in a loop */
#define FC_OC_TAPS(T, VT, VW, COLUMNS)                                                \
    const T *wt = w; /* (a pointer stepped per tap: no index arithmetic in the loop) */ \
    if (FC_UNROLL_3X3 && ntaps == 9) {                                                \
        FC_OC_CHANNELS(T, VT, VW, 9, _Pragma("GCC unroll 9"), 3, COLUMNS)             \
    } else {                                                                          \
        FC_OC_CHANNELS(T, VT, VW, ntaps, , 1, COLUMNS)                                \
    }
/* the output lines, for writing (see above) */
#define FC_OC_PREFETCH_OUT(P)                                                         \
    if (ocs < 0) { /* (pixels: each one's first and last channel) */                  \
        for (int p = 0; p < (P); p++) {                                               \
            FC_PREFETCH_W(out - p * ocs);                                             \
            FC_PREFETCH_W(out - p * ocs + nk - 1);                                    \
        }                                                                             \
    } else {                                                                          \
        for (int j = 0; j < nk; j++) {                                                \
            FC_PREFETCH_W(out + j * ocs);                                             \
            FC_PREFETCH_W(out + j * ocs + (P) - 1);                                   \
        }                                                                             \
    }

#define FC_OC_BODY(T, VT, VW, R, Q, IRS)                                              \
    VT lo[(R) * (Q)], hi[(R) * (Q)];                                                  \
    FC_OC_INIT(VT, VW, (R) * (Q))                                                     \
    FC_OC_PREFETCH_OUT((R) * (Q))                                                     \
    FC_OC_TAPS(T, VT, VW, FC_OC_COLUMNS(T, R, Q, IRS, Q, 0))                          \
    FC_OC_STORE(T, VT, VW, (R) * (Q))

/* The AVX2 tile of 6 columns holds 12 accumulators, 2 weights and 1 input: 15 of the 16
 * registers. For it GCC lets multiply-adds write into the weight and input registers
 * (vfmadd132ps), the accumulators move from register to register through the nine taps,
 * and each channel ends with 10 register copies to put them back (210 instructions per
 * 108 multiply-adds). Here each multiply-add is vfmadd231 into its accumulator's own
 * register (inline assembly, named accumulators: 202 instructions, no copies): the same
 * operation on the same operands, so the same bits. A C copy of the tile (Intel Xeon, one
 * thread, 256 channels, rows of 12 columns) ran 1.06-1.07x as fast (114 -> 122 GFLOP/s);
 * the tiles of 4 and 5 columns, written so, ran 0.96-0.97x as fast and keep GCC's code. In
 * the library (alternating processes, AVX2 level): rows of 12, 1.07x at one and two threads
 * (float64 1.03x); dilated 1.01-1.03x, float64 1.05x; resnet-mid 1.00-1.01x, float64 1.04x. */
#if FC_VF == 8 && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define FC_OC6_ASM 1
#define FC_SFX_float "ps"
#define FC_SFX_double "pd"
/* ACC += W * X in ACC's register (SFX: "ps" or "pd") */
#define FC_FMA231(SFX, ACC, W, X)                                                     \
    __asm__("vfmadd231" SFX " %[w_], %[x_], %[a_]" : [a_] "+x"(ACC) : [w_] "x"(W), [x_] "x"(X))
/* Column Q of a tile whose columns from K on lie on the next row, GAP items further (K = 6:
 * one row). (x - 0 is x for every x, so this is a plain broadcast.) */
#define FC_OC6_COLUMN(T, VT, Q, K, GAP)                                               \
    {                                                                                 \
        const VT xb_ = xt[(Q) < (K) ? (Q) : (Q) + (GAP)] - (VT){0};                   \
        FC_FMA231(FC_CAT2(FC_SFX, T), lo##Q, w0, xb_);                                \
        FC_FMA231(FC_CAT2(FC_SFX, T), hi##Q, w1, xb_);                                \
    }
#define FC_OC6_BODY(T, VT, VW, K, GAP)                                                \
    VT lo0, lo1, lo2, lo3, lo4, lo5, hi0, hi1, hi2, hi3, hi4, hi5;                    \
    {                                                                                 \
        VT b0, b1;                                                                    \
        FC_LOAD(VT, b0, bias);                                                        \
        FC_LOAD(VT, b1, bias + VW);                                                   \
        lo0 = lo1 = lo2 = lo3 = lo4 = lo5 = b0;                                       \
        hi0 = hi1 = hi2 = hi3 = hi4 = hi5 = b1;                                       \
    }                                                                                 \
    FC_OC_PREFETCH_OUT(6)                                                             \
    FC_OC_TAPS(T, VT, VW, FC_OC_NEXT_ROW_PREFETCH(K, 6, GAP)                          \
               FC_OC6_COLUMN(T, VT, 0, K, GAP) FC_OC6_COLUMN(T, VT, 1, K, GAP)        \
               FC_OC6_COLUMN(T, VT, 2, K, GAP) FC_OC6_COLUMN(T, VT, 3, K, GAP)        \
               FC_OC6_COLUMN(T, VT, 4, K, GAP) FC_OC6_COLUMN(T, VT, 5, K, GAP))       \
    VT lo[6] = {lo0, lo1, lo2, lo3, lo4, lo5}, hi[6] = {hi0, hi1, hi2, hi3, hi4, hi5}; \
    FC_OC_STORE(T, VT, VW, 6)
/* (a tile over two rows also asks for its second row's line in the next channel) */
#define FC_OC_NEXT_ROW_PREFETCH(K, P, GAP)                                            \
    if ((K) < (P) && ask_) FC_PREFETCH(xt + cs + (GAP) + (P) - 1);
#define FC_OC_FIXED_BODY(T, VT, VW, P)                                                \
    if ((P) == 6) {                                                                   \
        FC_OC6_BODY(T, VT, VW, 6, 0)                                                  \
    } else {                                                                          \
        FC_OC_BODY(T, VT, VW, 1, P, 0)                                                \
    }

/* Tiles over the end of one row and the start of the next. With rows of 14 columns each
 * row was a tile of 4 columns and two of 5, and the tile of 4 (8 accumulators, each
 * multiply-add waiting on the one before it: 4 cycles of latency for 8 of issue) ran at
 * 0.86x the rate of the tile of 5 (a C copy: 102 and 119 GFLOP/s). Taken row after row,
 * a band's pixels make segments of 5 and 6 columns (196 = 31 x 6 + 2 x 5) where one may
 * begin on one row and end on the next: its columns K.. read gap = (input row step) -
 * (output row width) items further, and its output, the planes' rows being contiguous, is
 * the next columns. K is a constant of each function (5 + 4 of them): the reads are a
 * fixed offset from the tap's pointer or from the same plus gap, one register more. C copy,
 * rows of 14, 256 channels: 109 -> 115 GFLOP/s. In the library (Intel Xeon, AVX2 level,
 * alternating processes, both changes against neither): resnet-deep's convolution 1.07x at
 * one thread, 1.08x at two (input gradient at two 1.06-1.08x), float64 1.04x; resnet-mid and
 * dilated 1.02-1.03x (float64 1.05-1.06x). The sums are the one-row tiles'. */
#define FC_OCSPLIT6(T, VT, VW, K)                                                     \
    static void FC_CAT(FC_CAT(fc_ocsplit6_##K, T), FC_ISA)(FC_OCSPLIT_PARAMS(T))       \
    {                                                                                 \
        FC_OC6_BODY(T, VT, VW, K, gap)                                                \
    }
#define FC_OCSPLIT5(T, VT, VW, K)                                                     \
    static void FC_CAT(FC_CAT(fc_ocsplit5_##K, T), FC_ISA)(FC_OCSPLIT_PARAMS(T))       \
    {                                                                                 \
        VT lo[5], hi[5];                                                              \
        FC_OC_INIT(VT, VW, 5)                                                         \
        FC_OC_PREFETCH_OUT(5)                                                         \
        FC_OC_TAPS(T, VT, VW, FC_OC_NEXT_ROW_PREFETCH(K, 5, gap) FC_OC_COLUMNS(T, 1, 5, 0, K, gap)) \
        FC_OC_STORE(T, VT, VW, 5)                                                     \
    }
#define FC_OCSPLIT_PARAMS(T)                                                          \
    const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, const T *w, const T *bias, T *out, \
        ptrdiff_t ocs, int nk, ptrdiff_t gap
/* NAME (fc_ocsplit_f32 / _f64): the tile of ncols (5 or 6) columns whose first split
 * (1 .. ncols - 1) are on one row; other counts do nothing (the caller makes none). */
#define FC_OCSPLIT_SET(NAME, T, VT, VW)                                               \
    FC_OCSPLIT6(T, VT, VW, 1) FC_OCSPLIT6(T, VT, VW, 2) FC_OCSPLIT6(T, VT, VW, 3)     \
    FC_OCSPLIT6(T, VT, VW, 4) FC_OCSPLIT6(T, VT, VW, 5)                               \
    FC_OCSPLIT5(T, VT, VW, 1) FC_OCSPLIT5(T, VT, VW, 2) FC_OCSPLIT5(T, VT, VW, 3)     \
    FC_OCSPLIT5(T, VT, VW, 4)                                                         \
    static void NAME(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, const T *w,  \
                     const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols, int split, ptrdiff_t gap) \
    {                                                                                 \
        switch (ncols * 8 + split) {                                                  \
        case 6 * 8 + 1: FC_CAT(FC_CAT(fc_ocsplit6_1, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 6 * 8 + 2: FC_CAT(FC_CAT(fc_ocsplit6_2, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 6 * 8 + 3: FC_CAT(FC_CAT(fc_ocsplit6_3, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 6 * 8 + 4: FC_CAT(FC_CAT(fc_ocsplit6_4, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 6 * 8 + 5: FC_CAT(FC_CAT(fc_ocsplit6_5, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 5 * 8 + 1: FC_CAT(FC_CAT(fc_ocsplit5_1, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 5 * 8 + 2: FC_CAT(FC_CAT(fc_ocsplit5_2, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 5 * 8 + 3: FC_CAT(FC_CAT(fc_ocsplit5_3, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        case 5 * 8 + 4: FC_CAT(FC_CAT(fc_ocsplit5_4, T), FC_ISA)(FC_OCSPLIT_ARGS); break; \
        default: break;                                                               \
        }                                                                             \
    }
#define FC_OCSPLIT_ARGS x, cs, taps, ntaps, C, w, bias, out, ocs, nk, gap
#else
#define FC_OC_FIXED_BODY(T, VT, VW, P) FC_OC_BODY(T, VT, VW, 1, P, 0)
#endif

#define FC_OCTILE_FIXED(T, VT, VW, NAME, P)                                           \
    static void NAME(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk)         \
    {                                                                                 \
        FC_OC_FIXED_BODY(T, VT, VW, P)                                                \
    }

/* Every output pixel of nimg images, the grad packed STEP items per pixel: PIXEL runs
 * with gq at the pixel's grad and xm[m][ow] its input of pair m. Two pixels per turn of
 * the loop (each accumulator still sums pixel after pixel, so the bits are the same):
 * the loop's counter, pointer and branch instructions, and the pair offsets it reloads
 * (14 of them do not fit in the general registers), are paid once per 56 multiply-adds
 * instead of 28. Weight gradient at one thread (Intel Xeon, alternating processes,
 * medians of 5): AVX-512 resnet-deep 1.04x (1.06x at two threads), resnet-mid,
 * strided and dilated 1.02-1.03x; AVX2 resnet-deep 1.06x. */
#define FC_OCW_PIXELS(T, M, STEP, PIXEL)                                              \
    const T *gq = gt;                                                                 \
    for (int n = 0; n < nimg; n++)                                                    \
        for (int oh = 0; oh < OH; oh++) {                                             \
            const T *row = x + n * x_img + oh * wq;                                   \
            const T *xm[M];                                                           \
            for (int m = 0; m < M; m++) xm[m] = row + offs[m];                        \
            _Pragma("GCC unroll 2") for (int ow = 0; ow < OW; ow++, gq += (STEP)) {   \
                PIXEL                                                                 \
            }                                                                         \
        }

/* Weight-gradient output-channel tile: the same register block with the roles of
 * the operands turned. 2*VW output channels x M (input channel, tap) pairs, summed
 * over every output pixel of nimg images:
 *
 *     sums[m][j] = sum_{n < nimg} sum_{oh < OH, ow < OW}
 *                  gt[((n*OH + oh)*OW + ow)*2*VW + j] * x[n*x_img + offs[m] + oh*wq + ow]
 *
 * gt is the grad of 2*VW output channels packed pixel-major (channels innermost,
 * zero past the last channel); x holds the input's stride-phase planes, so offs[m]
 * (channel offset plus tap) and the row pitch wq find every input a pixel meets.
 * Only pixels of the output are visited: no zero columns, no idle lanes. Each
 * pixel is two grad-vector loads and M broadcast inputs. */
#define FC_OCWTILE_FIXED(T, VT, VW, NAME, M)                                          \
    static void NAME(const T *x, const ptrdiff_t *offs, ptrdiff_t x_img, ptrdiff_t wq, \
                     int OH, int OW, const T *gt, int nimg, T *sums)                  \
    {                                                                                 \
        VT lo[M], hi[M];                                                              \
        for (int m = 0; m < M; m++) {                                                 \
            lo[m] = (VT){0};                                                          \
            hi[m] = (VT){0};                                                          \
        }                                                                             \
        FC_OCW_PIXELS(T, M, 2 * VW,                                                   \
            VT g0;                                                                    \
            VT g1;                                                                    \
            FC_LOAD(VT, g0, gq);                                                      \
            FC_LOAD(VT, g1, gq + VW);                                                 \
            _Pragma("GCC unroll 16") for (int m = 0; m < M; m++) {                    \
                const T xv = xm[m][ow];                                               \
                lo[m] += g0 * xv;                                                     \
                hi[m] += g1 * xv;                                                     \
            })                                                                        \
        for (int m = 0; m < M; m++) {                                                 \
            memcpy(sums + m * (2 * VW), &lo[m], sizeof(VT));                          \
            memcpy(sums + m * (2 * VW) + VW, &hi[m], sizeof(VT));                     \
        }                                                                             \
    }

/* The same with ONE vector of VW output channels (blocks of at most VW: with 32
 * registers a block of two vectors would leave half its lanes idle there). Each pixel
 * is one grad-vector load and M broadcast inputs, each feeding one FMA; sums[m][j] for
 * j < VW. Only built with 32 registers. */
#define FC_OCW1TILE_FIXED(T, VT, VW, NAME, M)                                         \
    static void NAME(const T *x, const ptrdiff_t *offs, ptrdiff_t x_img, ptrdiff_t wq, \
                     int OH, int OW, const T *gt, int nimg, T *sums)                  \
    {                                                                                 \
        VT acc[M];                                                                    \
        for (int m = 0; m < M; m++) acc[m] = (VT){0};                                 \
        FC_OCW_PIXELS(T, M, VW,                                                       \
            VT g0;                                                                    \
            FC_LOAD(VT, g0, gq);                                                      \
            _Pragma("GCC unroll 16") for (int m = 0; m < M; m++) acc[m] += g0 * xm[m][ow];) \
        for (int m = 0; m < M; m++) memcpy(sums + m * VW, &acc[m], sizeof(VT));       \
    }

/* One function per count P (1 .. FC_OC_COLS) of each kind, and a switch over P. */
#define FC_OCNAME(KIND, T, P) FC_CAT(FC_CAT(KIND, P), FC_CAT(T, FC_ISA))
#define FC_OCTILE_SET(FIXED, KIND, T, VT, VW)                                         \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 1), 1)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 2), 2)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 3), 3)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 4), 4)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 5), 5)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 6), 6)                                        \
    FC_OCTILE_MORE(FIXED, KIND, T, VT, VW)

#if FC_OC_COLS > 6
#define FC_OCTILE_MORE(FIXED, KIND, T, VT, VW)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 7), 7)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 8), 8)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 9), 9)                                        \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 10), 10)                                      \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 11), 11)                                      \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 12), 12)                                      \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 13), 13)                                      \
    FIXED(T, VT, VW, FC_OCNAME(KIND, T, 14), 14)
#define FC_OCTILE_MORE_CASES(KIND, T, ARGS)                                           \
    case 7: FC_OCNAME(KIND, T, 7) ARGS; break;                                        \
    case 8: FC_OCNAME(KIND, T, 8) ARGS; break;                                        \
    case 9: FC_OCNAME(KIND, T, 9) ARGS; break;                                        \
    case 10: FC_OCNAME(KIND, T, 10) ARGS; break;                                      \
    case 11: FC_OCNAME(KIND, T, 11) ARGS; break;                                      \
    case 12: FC_OCNAME(KIND, T, 12) ARGS; break;                                      \
    case 13: FC_OCNAME(KIND, T, 13) ARGS; break;                                      \
    case 14: FC_OCNAME(KIND, T, 14) ARGS; break;
#else
#define FC_OCTILE_MORE(FIXED, KIND, T, VT, VW)
#define FC_OCTILE_MORE_CASES(KIND, T, ARGS)
#endif

/* NAME PARAMS runs KIND's function for COUNT (1 .. FC_OC_COLS); other counts do nothing. */
#define FC_OCTILE_DISPATCH(KIND, T, NAME, PARAMS, ARGS, COUNT)                        \
    static void NAME PARAMS                                                           \
    {                                                                                 \
        switch (COUNT) {                                                              \
        case 1: FC_OCNAME(KIND, T, 1) ARGS; break;                                    \
        case 2: FC_OCNAME(KIND, T, 2) ARGS; break;                                    \
        case 3: FC_OCNAME(KIND, T, 3) ARGS; break;                                    \
        case 4: FC_OCNAME(KIND, T, 4) ARGS; break;                                    \
        case 5: FC_OCNAME(KIND, T, 5) ARGS; break;                                    \
        case 6: FC_OCNAME(KIND, T, 6) ARGS; break;                                    \
        FC_OCTILE_MORE_CASES(KIND, T, ARGS)                                           \
        default: break;                                                               \
        }                                                                             \
    }

#define FC_OC_PARAMS(T)                                                               \
    (const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, const T *w,    \
     const T *bias, T *out, ptrdiff_t ocs, int nk, int ncols)
#define FC_OC_ARGS (x, cs, taps, ntaps, C, w, bias, out, ocs, nk)
#define FC_OCW_PARAMS(T)                                                              \
    (const T *x, const ptrdiff_t *offs, int m, ptrdiff_t x_img, ptrdiff_t wq, int OH,  \
     int OW, const T *gt, int nimg, T *sums)
#define FC_OCW_ARGS (x, offs, x_img, wq, OH, OW, gt, nimg, sums)

FC_OCTILE_SET(FC_OCTILE_FIXED, fc_octile, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OCTILE_SET(FC_OCTILE_FIXED, fc_octile, double, FC_CAT(fc_vd, FC_ISA), FC_VD)

#if FC_VF == 16 && defined(FC_HAVE_X86_LEVELS) && FC_UNROLL_3X3
/* Edge tiles: a 3x3 kernel (nine taps, kh = t / 3, kw = t % 3) over R whole rows of Q output
 * columns (one row of 14, two rows of 7 or one of 7: a tile's 14 columns) whose rows' first
 * column's left neighbour and last column's right one are zero padding: column 0 leaves out
 * the taps of kernel column 0 and column Q - 1 those of kernel column 2, whose products are
 * of zeros, as oneDNN leaves them out. (A row of 28, 42, 56... columns runs in tiles of 14:
 * LEFT says the tile's column 0 is the row's first, RIGHT its column 13 the row's last.) With TOP the tile's first row is the plane's first,
 * padded above, and leaves out kernel row 0; with BOTTOM its last row is the plane's last,
 * padded below, and leaves out kernel row 2. A tile of one row steps over those taps'
 * weights where they lie (no loads). On 14x14 the products left out are 9.3 % of the
 * layer's, on 7x7 18.1 %. Each other product is summed in the same order as fc_octile's
 * and fc_ocrows', so the values are the same, but for the sign of a zero sum; the caller
 * takes the full tiles where a weight is not finite (a zero times an infinity is a nan).
 * Only ntaps == 9 (the caller checks). Row r reads x + r*irs and writes out + r*Q. */
#define FC_OC_EDGE_PRODUCTS(T, R, Q, TOP, BOTTOM, LEFT, RIGHT)                       \
    _Pragma("GCC unroll 2") for (int r = 0; r < (R); r++) {                           \
        _Pragma("GCC unroll 16") for (int q = 0; q < (Q); q++) {                      \
            if (((LEFT) && q == 0 && t % 3 == 0) || ((RIGHT) && q == (Q) - 1 && t % 3 == 2)) \
                continue;                                                             \
            if (((TOP) && r == 0 && t < 3) || ((BOTTOM) && r == (R) - 1 && t >= 6))     \
                continue;                                                             \
            const T xv = xt[r * irs + q];                                             \
            lo[r * (Q) + q] += w0 * xv;                                               \
            hi[r * (Q) + q] += w1 * xv;                                               \
        }                                                                             \
    }
#define FC_OC_EDGE_TILE(NAME, T, VT, VW, R, Q, TOP, BOTTOM, LEFT, RIGHT)               \
    static void NAME(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, const T *w, \
                     const T *bias, T *out, ptrdiff_t ocs, int nk, ptrdiff_t irs)     \
    {                                                                                 \
        VT lo[(R) * (Q)], hi[(R) * (Q)];                                              \
        FC_OC_INIT(VT, VW, (R) * (Q))                                                 \
        FC_OC_PREFETCH_OUT((R) * (Q))                                                 \
        const T *wt = w;                                                              \
        FC_OC_CHANNEL_TAPS(T, VT, VW, (R) == 1 && (TOP) ? 3 : 0, (R) == 1 && (BOTTOM) ? 6 : 9, 9, \
                           _Pragma("GCC unroll 9"), 3,                                \
                           FC_OC_EDGE_PRODUCTS(T, R, Q, TOP, BOTTOM, LEFT, RIGHT))    \
        FC_OC_STORE(T, VT, VW, (R) * (Q))                                             \
        (void)ntaps;                                                                  \
    }
/* the four tiles of one shape and one pair of column edges (SIDES: b both, l left, r right,
 * n neither): [TOP + 2 * BOTTOM] */
#define FC_OC_EDGE_NAME(T, R, Q, SIDES, V) FC_CAT(FC_CAT(FC_OCNAME(fc_ocedge, T, R), x##Q##SIDES), _##V)
#define FC_OC_EDGE_SHAPE(T, VT, VW, R, Q, SIDES, LEFT, RIGHT)                          \
    FC_OC_EDGE_TILE(FC_OC_EDGE_NAME(T, R, Q, SIDES, 0), T, VT, VW, R, Q, 0, 0, LEFT, RIGHT) \
    FC_OC_EDGE_TILE(FC_OC_EDGE_NAME(T, R, Q, SIDES, 1), T, VT, VW, R, Q, 1, 0, LEFT, RIGHT) \
    FC_OC_EDGE_TILE(FC_OC_EDGE_NAME(T, R, Q, SIDES, 2), T, VT, VW, R, Q, 0, 1, LEFT, RIGHT) \
    FC_OC_EDGE_TILE(FC_OC_EDGE_NAME(T, R, Q, SIDES, 3), T, VT, VW, R, Q, 1, 1, LEFT, RIGHT)
#define FC_OC_EDGE_NAMES(T, R, Q, SIDES)                                              \
    FC_OC_EDGE_NAME(T, R, Q, SIDES, 0), FC_OC_EDGE_NAME(T, R, Q, SIDES, 1),           \
    FC_OC_EDGE_NAME(T, R, Q, SIDES, 2), FC_OC_EDGE_NAME(T, R, Q, SIDES, 3)
#define FC_OC_EDGE_SHAPES(T, VT, VW)                                                  \
    FC_OC_EDGE_SHAPE(T, VT, VW, 1, 14, b, 1, 1)                                       \
    FC_OC_EDGE_SHAPE(T, VT, VW, 2, 7, b, 1, 1)                                        \
    FC_OC_EDGE_SHAPE(T, VT, VW, 1, 7, b, 1, 1)                                        \
    FC_OC_EDGE_SHAPE(T, VT, VW, 1, 14, l, 1, 0)                                       \
    FC_OC_EDGE_SHAPE(T, VT, VW, 1, 14, r, 0, 1)                                       \
    FC_OC_EDGE_SHAPE(T, VT, VW, 1, 14, n, 0, 0)
#define FC_OC_EDGE_TABLE(T)                                                           \
    {FC_OC_EDGE_NAMES(T, 1, 14, b), FC_OC_EDGE_NAMES(T, 2, 7, b), FC_OC_EDGE_NAMES(T, 1, 7, b), \
     FC_OC_EDGE_NAMES(T, 1, 14, l), FC_OC_EDGE_NAMES(T, 1, 14, r), FC_OC_EDGE_NAMES(T, 1, 14, n)}
FC_OC_EDGE_SHAPES(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OC_EDGE_SHAPES(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
/* [shape + TOP + 2 * BOTTOM], shape FC_EDGE_ROW14, FC_EDGE_ROWS7, FC_EDGE_ROW7,
 * FC_EDGE_ROW14_LEFT, FC_EDGE_ROW14_RIGHT or FC_EDGE_ROW14_INNER (conv_tile.h) */
static fc_ocrows_f32_fn const FC_CAT(fc_ocedge_f32, FC_ISA)[FC_EDGE_TILES] = FC_OC_EDGE_TABLE(float);
static fc_ocrows_f64_fn const FC_CAT(fc_ocedge_f64, FC_ISA)[FC_EDGE_TILES] = FC_OC_EDGE_TABLE(double);
#undef FC_OC_EDGE_TABLE
#undef FC_OC_EDGE_SHAPES
#undef FC_OC_EDGE_NAMES
#undef FC_OC_EDGE_SHAPE
#undef FC_OC_EDGE_NAME
#undef FC_OC_EDGE_TILE
#undef FC_OC_EDGE_PRODUCTS
#endif
FC_OCTILE_SET(FC_OCWTILE_FIXED, fc_ocwtile, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OCTILE_SET(FC_OCWTILE_FIXED, fc_ocwtile, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
FC_OCTILE_DISPATCH(fc_octile, float, FC_CAT(fc_octile_f32, FC_ISA), FC_OC_PARAMS(float), FC_OC_ARGS, ncols)
FC_OCTILE_DISPATCH(fc_octile, double, FC_CAT(fc_octile_f64, FC_ISA), FC_OC_PARAMS(double), FC_OC_ARGS, ncols)
#ifdef FC_OC6_ASM
_Static_assert(FC_OCSPLIT_MIN == 5 && FC_OCSPLIT_MAX == 6 && FC_OC_COLS >= 6,
               "the split tiles take 5 or 6 columns, and the one-row tiles as many");
FC_OCSPLIT_SET(FC_CAT(fc_ocsplit_f32, FC_ISA), float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OCSPLIT_SET(FC_CAT(fc_ocsplit_f64, FC_ISA), double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#endif
FC_OCTILE_DISPATCH(fc_ocwtile, float, FC_CAT(fc_ocwtile_f32, FC_ISA), FC_OCW_PARAMS(float), FC_OCW_ARGS, m)
FC_OCTILE_DISPATCH(fc_ocwtile, double, FC_CAT(fc_ocwtile_f64, FC_ISA), FC_OCW_PARAMS(double), FC_OCW_ARGS, m)
#if FC_OC_COLS >= 14 /* (conv_tile.h names these for the levels with 32 registers) */
FC_OCTILE_SET(FC_OCW1TILE_FIXED, fc_ocw1tile, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OCTILE_SET(FC_OCW1TILE_FIXED, fc_ocw1tile, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
FC_OCTILE_DISPATCH(fc_ocw1tile, float, FC_CAT(fc_ocw1tile_f32, FC_ISA), FC_OCW_PARAMS(float), FC_OCW_ARGS, m)
FC_OCTILE_DISPATCH(fc_ocw1tile, double, FC_CAT(fc_ocw1tile_f64, FC_ISA), FC_OCW_PARAMS(double), FC_OCW_ARGS, m)
#endif
#undef FC_OCW1TILE_FIXED

/* Output-channel tiles over whole rows, for rows of Q <= FC_OC_COLS / 2 columns (7x7
 * images and smaller with 32 registers): R = FC_OC_COLS / Q consecutive rows of the
 * plane at once, R*Q columns' worth of accumulators where a one-row tile fills Q of
 * FC_OC_COLS. Row r of the tile reads x + r*irs and writes out + r*Q (the rows are
 * whole, so the output pixels are consecutive); every output sums in fc_octile's
 * order, so the results are its bits, and the reads are those of R one-row tiles. */
#define FC_OCROWS_FIXED(T, VT, VW, NAME, Q)                                           \
    static void NAME(const T *x, ptrdiff_t cs, const ptrdiff_t *taps, int ntaps, int C, \
                     const T *w, const T *bias, T *out, ptrdiff_t ocs, int nk, ptrdiff_t irs) \
    {                                                                                 \
        FC_OC_BODY(T, VT, VW, FC_OC_COLS / (Q), Q, irs)                               \
    }
FC_OCROWS_FIXED(float, FC_CAT(fc_vf, FC_ISA), FC_VF, FC_OCNAME(fc_ocrows, float, 2), 2)
FC_OCROWS_FIXED(float, FC_CAT(fc_vf, FC_ISA), FC_VF, FC_OCNAME(fc_ocrows, float, 3), 3)
FC_OCROWS_FIXED(double, FC_CAT(fc_vd, FC_ISA), FC_VD, FC_OCNAME(fc_ocrows, double, 2), 2)
FC_OCROWS_FIXED(double, FC_CAT(fc_vd, FC_ISA), FC_VD, FC_OCNAME(fc_ocrows, double, 3), 3)
#if FC_OC_COLS >= 14
#define FC_OCROWS_MORE(T, VT, VW)                                                     \
    FC_OCROWS_FIXED(T, VT, VW, FC_OCNAME(fc_ocrows, T, 4), 4)                         \
    FC_OCROWS_FIXED(T, VT, VW, FC_OCNAME(fc_ocrows, T, 5), 5)                         \
    FC_OCROWS_FIXED(T, VT, VW, FC_OCNAME(fc_ocrows, T, 6), 6)                         \
    FC_OCROWS_FIXED(T, VT, VW, FC_OCNAME(fc_ocrows, T, 7), 7)
FC_OCROWS_MORE(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_OCROWS_MORE(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#undef FC_OCROWS_MORE
#define FC_OCROWS_TABLE(T)                                                            \
    {NULL, NULL, FC_OCNAME(fc_ocrows, T, 2), FC_OCNAME(fc_ocrows, T, 3), FC_OCNAME(fc_ocrows, T, 4), \
     FC_OCNAME(fc_ocrows, T, 5), FC_OCNAME(fc_ocrows, T, 6), FC_OCNAME(fc_ocrows, T, 7)}
#else
#define FC_OCROWS_TABLE(T) {NULL, NULL, FC_OCNAME(fc_ocrows, T, 2), FC_OCNAME(fc_ocrows, T, 3), NULL, NULL, NULL, NULL}
#endif
/* indexed by the row's columns Q; NULL where a one-row tile is as full */
static fc_ocrows_f32_fn const FC_CAT(fc_ocrows_f32, FC_ISA)[FC_OCROWS_Q] = FC_OCROWS_TABLE(float);
static fc_ocrows_f64_fn const FC_CAT(fc_ocrows_f64, FC_ISA)[FC_OCROWS_Q] = FC_OCROWS_TABLE(double);
#undef FC_OCROWS_TABLE
#undef FC_OCROWS_FIXED
#undef FC_OC_BODY
#undef FC_OC_CHANNELS
#undef FC_OC_COLUMNS
#undef FC_OC_TAPS
#undef FC_OC_PREFETCH_OUT
#undef FC_OC_FIXED_BODY
#ifdef FC_OC6_ASM
#undef FC_OC6_ASM
#undef FC_SFX_float
#undef FC_SFX_double
#undef FC_FMA231
#undef FC_OC6_COLUMN
#undef FC_OC6_BODY
#undef FC_OC_NEXT_ROW_PREFETCH
#undef FC_OCSPLIT6
#undef FC_OCSPLIT5
#undef FC_OCSPLIT_PARAMS
#undef FC_OCSPLIT_SET
#undef FC_OCSPLIT_ARGS
#endif
#undef FC_UNROLL_3X3
#undef FC_UNROLL_TAPS
#undef FC_OC_INIT
#undef FC_OC_STORE
#undef FC_OC_STORE_PLANES
#undef FC_OC_STORE_PIXELS
#undef FC_OC_STORE_SCALAR
#undef FC_OC_STORE_float
#undef FC_OC_STORE_double
#undef FC_OC_STORE_TRANSPOSED
#undef FC_OC_BUTTERFLY
#undef FC_PREFETCH
#undef FC_PREFETCH_W
#undef FC_OCWTILE_FIXED
#undef FC_OCW_PIXELS
#undef FC_OC_PARAMS
#undef FC_OC_ARGS
#undef FC_OCW_PARAMS
#undef FC_OCW_ARGS
#undef FC_OCTILE_FIXED
#undef FC_OCTILE_SET
#undef FC_OCTILE_MORE
#undef FC_OCTILE_MORE_CASES
#undef FC_OCTILE_DISPATCH
#undef FC_OCNAME
enum { FC_CAT(fc_oc_cols, FC_ISA) = FC_OC_COLS };
#undef FC_OC_COLS

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
 * fc_wtile: NK <= 8 output channels x up to FC_WTAPS taps of one input channel, in
 * passes of FC_WK channels (as many accumulators as the registers hold). With 32
 * registers a pass is 4 channels x up to 6 taps (one function per tap count): each
 * vector of grad feeds 6 FMAs, and each grad plane is read 9 times per input channel
 * of a 7x7 kernel (9 passes of 5-6 taps) where 8 channels x 3 taps read it 17 times.
 * Measured against that (AVX-512, 1 and 2 threads, bitwise equal results): 3 to 64
 * channels 3x3 on 224x224 images 1.07-1.22x, the textbook's 30 5x5 filters on 28x28
 * 1.05-1.11x, CS231n's 32 7x7 filters 1.04-1.08x float32, cifar and stem 0.99-1.02x.
 * With 16 registers 2 channels x 6 taps measured 0.91-0.97x of 4 x 3 (AVX2), so
 * those keep 4 channels x 3 taps, always computing 3 (tap 0 again for missing ones).
 * fc_dwwtile (depthwise): channel j reads its own plane x + j*xk; up to 9 taps. */
#if FC_VF >= 16 || defined(__aarch64__)
#define FC_WTAPS 6
#else
#define FC_WTAPS 3
#endif
#define FC_WK 4
enum { FC_CAT(fc_wt_taps, FC_ISA) = FC_WTAPS };

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

#if FC_WTAPS == 3
FC_WTILE_SIGNATURE(float, FC_CAT(fc_wtile_f32, FC_ISA)) { FC_WTILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_wtile_f64, FC_ISA)) { FC_WTILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD) }
#else
/* FC_WK channels x TAPS taps: the pass's grad vectors in registers, one input vector per tap. */
#define FC_WTNAME(T, TAPS) FC_CAT(FC_CAT(fc_wtile, TAPS), FC_CAT(T, FC_ISA))
#define FC_WTILE_FIXED(T, VT, VW, TAPS)                                               \
    FC_WTILE_SIGNATURE(T, FC_WTNAME(T, TAPS))                                         \
    {                                                                                 \
        (void)xk;                                                                     \
        (void)ntaps;                                                                  \
        for (int j0 = 0; j0 < nk; j0 += FC_WK) {                                      \
            VT acc[FC_WK][TAPS];                                                      \
            ptrdiff_t goff[FC_WK];                                                    \
            for (int j = 0; j < FC_WK; j++) {                                         \
                goff[j] = (j0 + j < nk ? j0 + j : nk - 1) * gk;                       \
                for (int t = 0; t < TAPS; t++) acc[j][t] = (VT){0};                   \
            }                                                                         \
            for (ptrdiff_t n = n0; n < n1; n++) {                                     \
                const T *gi = g + n * g_img;                                          \
                const T *xt[TAPS];                                                    \
                for (int t = 0; t < TAPS; t++) xt[t] = x + n * x_img + taps[t];       \
                for (ptrdiff_t q = 0; q < len; q += VW) {                             \
                    VT gv[FC_WK];                                                     \
                    for (int j = 0; j < FC_WK; j++) {                                 \
                        FC_LOAD(VT, gv[j], gi + goff[j] + q);                         \
                        FC_IN_REGISTER(gv[j]);                                        \
                    }                                                                 \
                    for (int t = 0; t < TAPS; t++) {                                  \
                        VT v;                                                         \
                        FC_LOAD(VT, v, xt[t] + q);                                    \
                        FC_IN_REGISTER(v);                                            \
                        for (int j = 0; j < FC_WK; j++) acc[j][t] += gv[j] * v;       \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
            for (int j = 0; j < FC_WK && j0 + j < nk; j++)                            \
                for (int t = 0; t < TAPS; t++)                                        \
                    FC_REDUCE_INTO(T, VT, VW, acc[j][t], dw[(j0 + j) * ldw + t]);     \
        }                                                                             \
    }
#define FC_WTILE_SET(T, VT, VW)                                                       \
    FC_WTILE_FIXED(T, VT, VW, 1)                                                      \
    FC_WTILE_FIXED(T, VT, VW, 2)                                                      \
    FC_WTILE_FIXED(T, VT, VW, 3)                                                      \
    FC_WTILE_FIXED(T, VT, VW, 4)                                                      \
    FC_WTILE_FIXED(T, VT, VW, 5)                                                      \
    FC_WTILE_FIXED(T, VT, VW, 6)
FC_WTILE_SET(float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_WTILE_SET(double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#define FC_WTILE_ARGS (x, x_img, xk, taps, ntaps, g, g_img, gk, len, n0, n1, nk, dw, ldw)
/* ntaps (1 .. FC_WTAPS) picks the function; other counts do nothing. */
#define FC_WTILE_DISPATCH(T, NAME)                                                    \
    FC_WTILE_SIGNATURE(T, NAME)                                                       \
    {                                                                                 \
        switch (ntaps) {                                                              \
        case 1: FC_WTNAME(T, 1) FC_WTILE_ARGS; break;                                 \
        case 2: FC_WTNAME(T, 2) FC_WTILE_ARGS; break;                                 \
        case 3: FC_WTNAME(T, 3) FC_WTILE_ARGS; break;                                 \
        case 4: FC_WTNAME(T, 4) FC_WTILE_ARGS; break;                                 \
        case 5: FC_WTNAME(T, 5) FC_WTILE_ARGS; break;                                 \
        case 6: FC_WTNAME(T, 6) FC_WTILE_ARGS; break;                                 \
        default: break;                                                               \
        }                                                                             \
    }
FC_WTILE_DISPATCH(float, FC_CAT(fc_wtile_f32, FC_ISA))
FC_WTILE_DISPATCH(double, FC_CAT(fc_wtile_f64, FC_ISA))
#undef FC_WTILE_DISPATCH
#undef FC_WTILE_ARGS
#undef FC_WTILE_SET
#undef FC_WTILE_FIXED
#undef FC_WTNAME
#endif
FC_WTILE_SIGNATURE(float, FC_CAT(fc_dwwtile_f32, FC_ISA)) { FC_DWWTILE_BODY(float, FC_CAT(fc_vf, FC_ISA), FC_VF) }
FC_WTILE_SIGNATURE(double, FC_CAT(fc_dwwtile_f64, FC_ISA)) { FC_DWWTILE_BODY(double, FC_CAT(fc_vd, FC_ISA), FC_VD) }

/* dst[i] += src[i] for i < n: the input gradient adds each plane of its columns into dx
 * row by row (grad_input_by_columns). Each element gets one add, so every level gives the
 * same bits. */
#define FC_ADDROW(NAME, T, VT)                                                        \
    static void FC_CAT(NAME, FC_ISA)(T *dst, const T *src, int n)                     \
    {                                                                                 \
        enum { VW = (int)(sizeof(VT) / sizeof(T)) };                                  \
        int i = 0;                                                                    \
        for (; i + VW <= n; i += VW) {                                                \
            VT a, b;                                                                  \
            FC_LOAD(VT, a, dst + i);                                                  \
            FC_LOAD(VT, b, src + i);                                                  \
            a += b;                                                                   \
            memcpy(dst + i, &a, sizeof(VT));                                          \
        }                                                                             \
        for (; i < n; i++) dst[i] += src[i];                                          \
    }
FC_ADDROW(fc_addrow_f32, float, FC_CAT(fc_vf, FC_ISA))
FC_ADDROW(fc_addrow_f64, double, FC_CAT(fc_vd, FC_ISA))
#undef FC_ADDROW

#undef FC_TILE_BODY
#undef FC_DWTILE_BODY
#undef FC_WTILE_BODY
#undef FC_DWWTILE_BODY
#undef FC_REDUCE_INTO
#undef FC_IN_REGISTER
#undef FC_WK
#undef FC_WTAPS
#undef FC_WTILE_SIGNATURE

