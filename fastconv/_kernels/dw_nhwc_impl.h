/* Depthwise convolution of NHWC arrays, where a pixel's channels lie side by side: a vector
 * of channels is one load, and no plane is laid out. Compiled once per level (FC_ISA, FC_VF,
 * FC_VD: see conv_tile.h, which includes this header after dw_lanes_impl.h).
 *
 * One call computes output row oh of one image for channels k0 .. k1 - 1 (k0 a multiple of
 * the level's lanes VW). The row's pixels go RB at a time and, within a block, the channels
 * VW at a time: RB vectors of sums, each the bias and then each tap's product in tap order
 * (the plane tiles' order, FC_DWPLANE_SUM, and the lanes kernel's: the same bits), stored
 * as they are. A group's pixels lie next to the previous group's, so a block reads and
 * writes whole runs of the input's and the output's rows. Taps outside the input read a
 * vector of zeros and add its product as the others, as the padded planes do (a weight that
 * is not finite makes the sum NaN there too); only blocks with such taps check columns, and
 * only a last group of fewer than VW channels reads and writes part of a vector.
 *
 * Arguments (FC_DWNHWC): x (the image's first item; rs, ws the items between rows and
 * columns, channels contiguous), H, W (at least 1), k0, k1, KH, KW, dh, dw (dilations), sh,
 * sw (strides), top, left (padding), w (tap t of channel k at w[t * wts + k]: HWIO with
 * wts = K), bias (K items, or NULL: zeros), out (the output row's first item; ows items
 * between its pixels, channels contiguous), oh, OW. */

/* (dst = the nc items at src, zeros past them: a whole vector where nc == VW) */
#define FC_DWN_LOAD(T, VT, VW, dst, src)                                              \
    do {                                                                              \
        if (PARTIAL) {                                                                \
            (dst) = (VT){0};                                                          \
            memcpy(&(dst), (src), (size_t)nc * sizeof(T));                            \
        } else {                                                                      \
            FC_LOAD(VT, dst, src);                                                    \
        }                                                                             \
    } while (0)

/* (the block's cnt pixels from ow for the nc channels from k; CHECK: taps may lie outside
 * the input's columns; PARTIAL: nc < VW) */
#define FC_DWN_BLOCK(T, VT, VW, RB, CHECK, PARTIAL_)                                  \
    {                                                                                 \
        enum { PARTIAL = (PARTIAL_) };                                                \
        VT b_ = (VT){0};                                                              \
        if (bias != NULL) FC_DWN_LOAD(T, VT, VW, b_, bias + k);                       \
        b_ = (VT){0} + b_; /* (as the plane tiles start: -0.0 becomes +0.0) */        \
        VT acc_[RB];                                                                  \
        _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) acc_[r] = b_;         \
        for (int i = 0; i < KH; i++) {                                                \
            const ptrdiff_t ih = ih0 + (ptrdiff_t)i * dh;                             \
            /* (a row outside the input: every pixel reads the zero vector) */        \
            const int row_in = ih >= 0 && ih < H;                                     \
            const T *xr = row_in ? x + ih * rs + k : zeros_;                          \
            const ptrdiff_t wsr = row_in ? ws : 0;                                    \
            for (int j = 0; j < KW; j++) {                                            \
                VT wv_;                                                               \
                FC_DWN_LOAD(T, VT, VW, wv_, w + (ptrdiff_t)(i * KW + j) * wts + k);   \
                const ptrdiff_t iw0 = ow * sw + (ptrdiff_t)j * dw - left;             \
                _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) {             \
                    if (r < cnt) {                                                    \
                        const ptrdiff_t iw = iw0 + (ptrdiff_t)r * sw;                 \
                        const T *src_ = xr + iw * wsr;                                \
                        if ((CHECK) && (iw < 0 || iw >= W)) src_ = zeros_;            \
                        VT v_;                                                        \
                        FC_DWN_LOAD(T, VT, VW, v_, src_);                             \
                        acc_[r] += v_ * wv_;                                          \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
        _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) {                     \
            if (r < cnt) {                                                            \
                T *dst_ = out + (ow + r) * ows + k;                                   \
                if (PARTIAL)                                                          \
                    memcpy(dst_, &acc_[r], (size_t)nc * sizeof(T));                   \
                else                                                                  \
                    FC_STORE(VT, dst_, acc_[r]);                                      \
            }                                                                         \
        }                                                                             \
    }

/* (FC_DWN_BLOCK for VW channels of a kernel 3 columns wide, undilated, at column stride
 * SW: each input row's (RB - 1) * SW + 3 vectors loaded once and used by every pixel and
 * tap that reads it; CHECK: columns outside the input read zeros, and only cnt pixels are
 * stored) */
#define FC_DWN_WINDOW(T, VT, VW, RB, SW, CHECK)                                       \
    {                                                                                 \
        enum { NIN_ = ((RB) - 1) * (SW) + 3 };                                        \
        VT b_ = (VT){0};                                                              \
        if (bias != NULL) FC_LOAD(VT, b_, bias + k);                                  \
        b_ = (VT){0} + b_; /* (as the plane tiles start: -0.0 becomes +0.0) */        \
        VT acc_[RB];                                                                  \
        _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) acc_[r] = b_;         \
        const ptrdiff_t iw0 = ow * (SW) - left;                                       \
        for (int i = 0; i < KH; i++) {                                                \
            const ptrdiff_t ih = ih0 + (ptrdiff_t)i * dh;                             \
            const int row_in = ih >= 0 && ih < H;                                     \
            const T *xr = row_in ? x + ih * rs + k : zeros_;                          \
            const ptrdiff_t wsr = row_in ? ws : 0;                                    \
            VT in_[NIN_], w_[3];                                                      \
            _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++) FC_LOAD(VT, w_[j], w + (ptrdiff_t)(i * 3 + j) * wts + k); \
            _Pragma("GCC unroll 32") for (int q = 0; q < NIN_; q++) {                 \
                const T *src_ = xr + (iw0 + q) * wsr;                                 \
                if ((CHECK) && (iw0 + q < 0 || iw0 + q >= W)) src_ = zeros_;          \
                FC_LOAD(VT, in_[q], src_);                                            \
            }                                                                         \
            _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++) {                     \
                _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) acc_[r] += in_[r * (SW) + j] * w_[j]; \
            }                                                                         \
        }                                                                             \
        _Pragma("GCC unroll 16") for (int r = 0; r < (RB); r++) {                     \
            if (!(CHECK) || r < cnt) FC_STORE(VT, out + (ow + r) * ows + k, acc_[r]); \
        }                                                                             \
    }

#define FC_DWNHWC(NAME, T, VT, VW, RB)                                                \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t rs, ptrdiff_t ws, int H, int W, int k0, int k1, \
                                     int KH, int KW, int dh, int dw, int sh, int sw, int top, int left, \
                                     const T *w, ptrdiff_t wts, const T *bias, T *out, ptrdiff_t ows, int oh, \
                                     int OW)                                          \
    {                                                                                 \
        static const T zeros_[VW] = {0}; /* what taps outside the input read */       \
        const ptrdiff_t ih0 = (ptrdiff_t)oh * sh - top;                               \
        /* [owa, owb): the output columns whose every tap reads a column of the input */ \
        const ptrdiff_t span = (ptrdiff_t)W - 1 + left - (ptrdiff_t)(KW - 1) * dw;    \
        const ptrdiff_t owb = span < 0 ? 0 : span / sw + 1;                           \
        const ptrdiff_t owa = ((ptrdiff_t)left + sw - 1) / sw;                        \
        for (ptrdiff_t ow = 0; ow < OW; ow += RB) {                                   \
            const int cnt = OW - ow < (RB) ? (int)(OW - ow) : (RB);                   \
            const int interior = ow >= owa && ow + cnt <= owb;                        \
            const int full = interior && cnt == (RB);                                 \
            const int window = KW == 3 && dw == 1 && (sw == 1 || sw == 2);            \
            for (int k = k0; k < k1; k += VW) {                                       \
                const int nc = k1 - k < VW ? k1 - k : VW;                             \
                if (nc < VW)                                                          \
                    FC_DWN_BLOCK(T, VT, VW, RB, 1, 1)                                 \
                else if (window && full && sw == 1)                                   \
                    FC_DWN_WINDOW(T, VT, VW, RB, 1, 0)                                \
                else if (window && full)                                              \
                    FC_DWN_WINDOW(T, VT, VW, RB, 2, 0)                                \
                else if (window && sw == 1)                                           \
                    FC_DWN_WINDOW(T, VT, VW, RB, 1, 1)                                \
                else if (window)                                                      \
                    FC_DWN_WINDOW(T, VT, VW, RB, 2, 1)                                \
                else if (interior)                                                    \
                    FC_DWN_BLOCK(T, VT, VW, RB, 0, 0)                                 \
                else                                                                  \
                    FC_DWN_BLOCK(T, VT, VW, RB, 1, 0)                                 \
            }                                                                         \
        }                                                                             \
    }

/* pixels a block takes: 8 with 32 vector registers (AVX-512), 4 with 16 */
#if FC_VF >= 16
#define FC_DWN_RB 8
#else
#define FC_DWN_RB 4
#endif
FC_DWNHWC(fc_dwnhwc_f32, float, FC_CAT(fc_vf, FC_ISA), FC_VF, FC_DWN_RB)
FC_DWNHWC(fc_dwnhwc_f64, double, FC_CAT(fc_vd, FC_ISA), FC_VD, FC_DWN_RB)
#undef FC_DWNHWC
#undef FC_DWN_RB
#undef FC_DWN_WINDOW
#undef FC_DWN_BLOCK
#undef FC_DWN_LOAD
