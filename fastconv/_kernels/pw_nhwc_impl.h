/* 1x1 NHWC convolutions and their weight gradients: products whose operands are read where
 * they lie. Compiled once per level (FC_ISA, FC_VF, FC_VD: see conv_tile.h, which includes this
 * header after conv_tile_impl.h, whose vector types it uses).
 *
 * In NHWC a pixel's channels lie side by side, in x, in the grad and in the output, and a 1x1
 * HWIO weight is a (C, K) matrix: the convolution is out[p][k] = bias[k] + sum over c of
 * x[p][c] * w[c][k], its weight gradient dW[c][k] = sum over the batch's pixels p of
 * x[p][c] * g[p][k]. One call computes
 *
 *     out[b * os + v] = bias[v] + sum over steps r < P of B[r * bs + b * bstride] * V[r * vs + v]
 *
 * for the rows b0 <= b < b1 and the columns v < nv (bias NULL: zeros). The weight gradient: the
 * steps are pixels, B and V are x and g in either order (bstride 1; the caller passes as V the
 * one with fewer channels, so that a pixel's columns are a few whole lines: its pixels' vectors
 * stay in L1 for every block of rows). The convolution: the steps are channels, the rows
 * pixels (B = x, bs 1, bstride C) and V the weight. A tile keeps RC rows x NV vectors of columns
 * in registers; for each step it loads the NV vectors of V's row and multiplies each by one item
 * of B (broadcast) for each of its RC rows. The steps go in chunks (V's chunk of a block of
 * columns, FC_PWGW_BYTES, stays in L1), and every tile of a chunk starts from the sums the chunk
 * before stored (the first from the bias, -0.0 as +0.0, as the NCHW tiles start): each output
 * is the sum over the steps in order, whatever the chunk, the rows a call takes or the thread
 * count. With prefetch, the tiles over the first block of columns ask for the next chunk's
 * items of B (the weight gradient's: the rows of a channel-rich array lie a kilobyte or more
 * apart, which the hardware's streams do not follow).
 *
 * A last block of fewer than RC rows multiplies duplicates of row b1 - 1 (no row outside
 * [b0, b1) of B is read) and stores only its own rows; a last vector of fewer than VW columns
 * loads and stores only them (through a zeroed vector). */

#if FC_VF >= 16 /* 32 vector registers: 6 rows x 4 vectors */
#define FC_PWGW_RC 6
#define FC_PWGW_NV 4
#else /* 16: 4 rows x 3 vectors */
#define FC_PWGW_RC 4
#define FC_PWGW_NV 3
#endif
/* (the rows of this level's tiles, for the tables of conv_tile.h: FC_PWGW_ROWS_base, ...) */
enum { FC_CAT(FC_PWGW_ROWS, FC_ISA) = FC_PWGW_RC };

/* (rows b .. b + RC - 1 x NV vectors from column v over pixels p0 .. p1 - 1; the last vector
 * holds nc columns where PARTIAL) */
#define FC_PWGW_TILE(T, VT, VW, NV, PARTIAL)                                          \
    {                                                                                 \
        VT acc_[FC_PWGW_RC][NV];                                                      \
        const T *bp_[FC_PWGW_RC];                                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < FC_PWGW_RC; r++) {                \
            const int row = b + r < b1 ? b + r : b1 - 1;                              \
            bp_[r] = B + p0 * bs + row * bstride;                                     \
            _Pragma("GCC unroll 4") for (int j = 0; j < (NV); j++) {                  \
                const int part = (PARTIAL) && j == (NV) - 1;                          \
                if ((p0 == 0 && bias == NULL) || b + r >= b1) {                       \
                    acc_[r][j] = (VT){0};                                             \
                } else {                                                              \
                    const T *from_ = p0 == 0 ? bias + v + j * VW : out + (b + r) * os + v + j * VW; \
                    if (part)                                                         \
                        FC_LOAD_FIRST(T, VT, acc_[r][j], from_, nc, 1);                    \
                    else                                                              \
                        FC_LOAD_FIRST(T, VT, acc_[r][j], from_, nc, 0);                    \
                    if (p0 == 0) acc_[r][j] = (VT){0} + acc_[r][j]; /* (a bias's -0.0 as +0.0) */ \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        const T *vp_ = V + p0 * vs + v;                                               \
        for (ptrdiff_t p = p0; p < p1; p++, vp_ += vs) {                              \
            VT vv_[NV];                                                               \
            _Pragma("GCC unroll 4") for (int j = 0; j < (NV); j++) {                  \
                if ((PARTIAL) && j == (NV) - 1)                                       \
                    FC_LOAD_FIRST(T, VT, vv_[j], vp_ + j * VW, nc, 1);                     \
                else                                                                  \
                    FC_LOAD_FIRST(T, VT, vv_[j], vp_ + j * VW, nc, 0);                     \
            }                                                                         \
            _Pragma("GCC unroll 8") for (int r = 0; r < FC_PWGW_RC; r++) {            \
                const T s_ = *bp_[r];                                                 \
                bp_[r] += bs;                                                         \
                _Pragma("GCC unroll 4") for (int j = 0; j < (NV); j++) acc_[r][j] += s_ * vv_[j]; \
            }                                                                         \
            if (ahead && p + step < P) __builtin_prefetch(B + (p + step) * bs + b * bstride, 0, 2); \
        }                                                                             \
        _Pragma("GCC unroll 8") for (int r = 0; r < FC_PWGW_RC; r++) {                \
            if (b + r < b1) {                                                         \
                _Pragma("GCC unroll 4") for (int j = 0; j < (NV); j++) {              \
                    T *dst_ = out + (b + r) * os + v + j * VW;                        \
                    if ((PARTIAL) && j == (NV) - 1)                                   \
                        memcpy(dst_, &acc_[r][j], (size_t)nc * sizeof(T));            \
                    else                                                              \
                        FC_STORE(VT, dst_, acc_[r][j]);                               \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }

/* V's chunk of a block of columns that stays in L1 for every block of rows */
#define FC_PWGW_BYTES 16384

#define FC_PWGW(NAME, T, VT, VW)                                                      \
    static void FC_CAT(NAME, FC_ISA)(const T *B, ptrdiff_t bs, ptrdiff_t bstride, int b0, int b1, const T *V, \
                                     ptrdiff_t vs, int nv, ptrdiff_t P, const T *bias, T *out, ptrdiff_t os, \
                                     int prefetch)                                    \
    {                                                                                 \
        enum { BLOCK = FC_PWGW_NV * (VW) };                                           \
        const ptrdiff_t chunk = FC_PWGW_BYTES / (BLOCK * (ptrdiff_t)sizeof(T));       \
        for (ptrdiff_t p0 = 0; p0 < P; p0 += chunk) {                                 \
            const ptrdiff_t p1 = P - p0 < chunk ? P : p0 + chunk, step = p1 - p0;     \
            for (int v = 0; v < nv; v += BLOCK) {                                     \
                const int cols = nv - v < BLOCK ? nv - v : BLOCK;                     \
                const int full = cols / (VW), nc = cols - full * (VW);                \
                const int ahead = prefetch && v == 0;                                 \
                for (int b = b0; b < b1; b += FC_PWGW_RC) {                           \
                    if (full == FC_PWGW_NV)                                           \
                        FC_PWGW_TILE(T, VT, VW, FC_PWGW_NV, 0)                        \
                    else if (FC_PWGW_NV > 3 && full == 3 && nc)                       \
                        FC_PWGW_TILE(T, VT, VW, 4, 1)                                 \
                    else if (full == 3)                                               \
                        FC_PWGW_TILE(T, VT, VW, 3, 0)                                 \
                    else if (full == 2 && nc)                                         \
                        FC_PWGW_TILE(T, VT, VW, 3, 1)                                 \
                    else if (full == 2)                                               \
                        FC_PWGW_TILE(T, VT, VW, 2, 0)                                 \
                    else if (full == 1 && nc)                                         \
                        FC_PWGW_TILE(T, VT, VW, 2, 1)                                 \
                    else if (full == 1)                                               \
                        FC_PWGW_TILE(T, VT, VW, 1, 0)                                 \
                    else                                                              \
                        FC_PWGW_TILE(T, VT, VW, 1, 1)                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }

FC_PWGW(fc_pwgw_f32, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_PWGW(fc_pwgw_f64, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#undef FC_PWGW
#undef FC_PWGW_TILE
#undef FC_PWGW_BYTES
#undef FC_PWGW_RC
#undef FC_PWGW_NV
