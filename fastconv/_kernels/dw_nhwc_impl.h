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
 * only a last group of fewer than VW channels reads and writes part of a vector. 3x3 kernels
 * at strides 1 and 2 load each tap row's input vectors once into a window of registers
 * (FC_DWN_WINDOW) instead of once per tap. The input gradient runs this kernel once per
 * stride phase (the caller's); the weight gradient (FC_DWNHWC_WGRAD) is below.
 *
 * Arguments (FC_DWNHWC): x (the image's first item; rs, ws the items between rows and
 * columns, channels contiguous), H, W (at least 1), k0, k1, KH, KW, dh, dw (dilations), sh,
 * sw (strides), top, left (padding), w (tap t of channel k at w[t * wts + k]: HWIO with
 * wts = K), bias (K items, or NULL: zeros), out (the output row's first item; ows items
 * between its pixels, channels contiguous), oh, OW, ahead (whether to ask for the next output
 * row's new input lines: FC_DWN_AHEAD). */

/* (dst = the nc items at src, zeros past them: a whole vector where nc == VW) */
#define FC_DWN_LOAD(T, VT, VW, dst, src) FC_LOAD_FIRST(T, VT, dst, src, nc, PARTIAL)

/* (a line into every cache level: conv_tile.h compiles this header with GCC or Clang only) */
#define FC_DWN_PREFETCH(p) __builtin_prefetch((p), 0, 3)

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

/* (with ahead: the lines of group k of the input rows the next output row reads and this one
 * does not (undilated kernels: the sh rows below its last tap row), at this block's leading
 * columns, asked for into L2 while this row is computed. A call whose input and output exceed
 * the caches streams them from memory, and where a pixel's channels are several lines (128
 * float32 channels: 8) the hardware prefetchers were not seen to fetch them in time. Intel
 * Xeon, AVX-512, float32, in-process A/B against the same call without (medians of 21, one /
 * two threads, the same bits): the canonical 128 channels of 28x28 on 32 images 1.42x / 1.44x,
 * 128 of 56x56 at stride 2 on 8 images 1.18x / 1.27x, 64 of 112x112 at stride 2 on 8 images
 * 1.71x / 1.23x, 256 of 56x56 on 8 images 1.24x / 1.23x, 64 of 28x28 on 32 images 1.13x /
 * 1.04x, 32 of 112x112 on 8 images 1.16x / 1.17x; the input gradient of the canonical shape
 * 1.54x / 1.02x. With input and output in the caches the requests cost load slots the hardware
 * did not need: 0.92-0.98x on 3.2 to 6.4 MB of input and output (64 of 112x112 at stride
 * 2 on one image 0.93x / 0.92x, 256 of 14x14 on 16 0.98x / 0.96x); hence the caller's rule,
 * DEPTHWISE_NHWC_AHEAD_BYTES in fastconv._conv.) */
#define FC_DWN_AHEAD                                                                  \
    for (int a_ = 1; ahead && a_ <= sh; a_++) {                                       \
        const ptrdiff_t ah_ = ih0 + (ptrdiff_t)(KH - 1) * dh + a_;                    \
        if (ah_ < 0 || ah_ >= H) continue;                                            \
        const ptrdiff_t ac_ = ow * sw + (ptrdiff_t)(KW - 1) * dw - left;              \
        for (int r = 0; r < cnt * sw; r++)                                            \
            if (ac_ + r >= 0 && ac_ + r < W)                                          \
                __builtin_prefetch(x + ah_ * rs + (ac_ + r) * ws + k, 0, 2);          \
    }

#define FC_DWNHWC(NAME, T, VT, VW, RB)                                                \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t rs, ptrdiff_t ws, int H, int W, int k0, int k1, \
                                     int KH, int KW, int dh, int dw, int sh, int sw, int top, int left, \
                                     const T *w, ptrdiff_t wts, const T *bias, T *out, ptrdiff_t ows, int oh, \
                                     int OW, int ahead)                               \
    {                                                                                 \
        static const T zeros_[VW] = {0}; /* what taps outside the input read */       \
        const ptrdiff_t ih0 = (ptrdiff_t)oh * sh - top;                               \
        /* [owa, owb): the output columns whose every tap reads a column of the input */ \
        const ptrdiff_t span = (ptrdiff_t)W - 1 + left - (ptrdiff_t)(KW - 1) * dw;    \
        const ptrdiff_t owb = span < 0 ? 0 : span / sw + 1 < OW ? span / sw + 1 : OW; \
        const ptrdiff_t owa = ((ptrdiff_t)left + sw - 1) / sw;                        \
        for (ptrdiff_t ow = 0; ow < OW; ow += RB) {                                   \
            const int cnt = OW - ow < (RB) ? (int)(OW - ow) : (RB);                   \
            const int interior = ow >= owa && ow + cnt <= owb;                        \
            const int full = interior && cnt == (RB);                                 \
            const int window = KW == 3 && dw == 1 && (sw == 1 || sw == 2);            \
            for (int k = k0; k < k1; k += VW) {                                       \
                const int nc = k1 - k < VW ? k1 - k : VW;                             \
                FC_DWN_AHEAD                                                          \
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

/* The weight gradient of channels k0 .. k1 - 1 (groups of VW from k0, a multiple of VW; the
 * last may have fewer) over N images (x: image 0's first pixel, xns, xrs, xws the items
 * between images, rows and columns; g the grad's, gns, grs, gws; channels contiguous in
 * both). Image after image, band of `band` output rows after band, group after group: each
 * tap's vector sums the products of the grad and the input its pixels read (zero outside
 * the input, as the padded planes), pixel after pixel from zero over the image (carried from
 * band to band), and the image's sums are added to the group's vector of sums for the tap
 * (sums: ntaps vectors per group, zeroed by the caller, then as many for the image's): the
 * lanes kernel's order, FC_DWL_WSUMS, the same bits. A band's pixels stay in cache while its
 * groups go by; each vector read asks for the next group's (64 bytes on, in a line of its
 * own where there are many channels: no hardware prefetcher follows pixels 4 KiB apart).
 * Taps go 9 at a time (a 3x3 kernel's all at once), each with its row's pointer for the
 * output row; pixels whose taps all lie in the input skip the checks. */
/* (the pixels lo .. hi - 1 of an output row, whose taps all lie in the input: tap i's input
 * from p_[i], step items a pixel; CNT taps) */
#define FC_DWNW_RUN(T, VT, VW, CNT)                                                   \
    for (ptrdiff_t q = 0; q < hi - lo; q++) {                                         \
        VT gv_;                                                                       \
        FC_DWN_LOAD(T, VT, VW, gv_, gr + (lo + q) * gws);                             \
        if (pf) FC_DWN_PREFETCH(gr + (lo + q) * gws + VW);                            \
        _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {                         \
            if (i < (CNT)) {                                                          \
                VT v_;                                                                \
                if (pf) FC_DWN_PREFETCH(p_[i] + q * step + VW);                       \
                FC_DWN_LOAD(T, VT, VW, v_, p_[i] + q * step);                         \
                acc_[i] += v_ * gv_;                                                  \
            }                                                                         \
        }                                                                             \
    }
/* (a 3x3 kernel, undilated, at column stride SW, over a whole output row: each tap row's three
 * columns held in registers and moved along by SW columns a pixel, so each input vector is
 * loaded once per output row instead of once per tap that reads it. Tap row i reads from
 * rb_[i], rw_[i] items a column (the zero vector, 0 a column, for a row outside the input);
 * CHECK: columns outside the input read the zero vector too) */
#define FC_DWNW_COLUMN(T, VT, VW, CHECK, dst, i, iw)                                  \
    {                                                                                 \
        const ptrdiff_t c_iw_ = (iw);                                                 \
        const T *src_ = rb_[i] + c_iw_ * rw_[i];                                      \
        if ((CHECK) && (c_iw_ < 0 || c_iw_ >= W)) src_ = zeros_;                      \
        FC_DWN_LOAD(T, VT, VW, dst, src_);                                            \
        if (pf && src_ != zeros_) FC_DWN_PREFETCH(src_ + VW);                         \
    }
#define FC_DWNW_WINDOW(T, VT, VW, SW, CHECK)                                          \
    {                                                                                 \
        VT c_[3][3];                                                                  \
        _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {                         \
            _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++) FC_DWNW_COLUMN(T, VT, VW, CHECK, c_[i][j], i, j - left); \
        }                                                                             \
        for (ptrdiff_t q = 0; q < OW; q++) {                                          \
            VT gv_;                                                                   \
            FC_DWN_LOAD(T, VT, VW, gv_, gr + q * gws);                                \
            if (pf) FC_DWN_PREFETCH(gr + q * gws + VW);                               \
            _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {                     \
                _Pragma("GCC unroll 3") for (int j = 0; j < 3; j++) acc_[3 * i + j] += c_[i][j] * gv_; \
            }                                                                         \
            if (q + 1 < OW) {                                                         \
                const ptrdiff_t next_ = (q + 1) * (SW) + 3 - (SW) - left;             \
                _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {                 \
                    if ((SW) == 1) {                                                  \
                        c_[i][0] = c_[i][1];                                          \
                        c_[i][1] = c_[i][2];                                          \
                        FC_DWNW_COLUMN(T, VT, VW, CHECK, c_[i][2], i, next_);         \
                    } else {                                                          \
                        c_[i][0] = c_[i][2];                                          \
                        FC_DWNW_COLUMN(T, VT, VW, CHECK, c_[i][1], i, next_);         \
                        FC_DWNW_COLUMN(T, VT, VW, CHECK, c_[i][2], i, next_ + 1);     \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }
#define FC_DWNW_PASS(T, VT, VW, PARTIAL_)                                             \
    {                                                                                 \
        enum { PARTIAL = (PARTIAL_) };                                                \
        for (int t0 = 0; t0 < ntaps; t0 += 9) {                                       \
            const int cnt = ntaps - t0 < 9 ? ntaps - t0 : 9;                          \
            ptrdiff_t dy_[9], dx_[9];                                                 \
            for (int i = 0; i < 9; i++) {                                             \
                const int t = t0 + (i < cnt ? i : 0);                                 \
                dy_[i] = (ptrdiff_t)(t / KW) * dh;                                    \
                dx_[i] = (ptrdiff_t)(t % KW) * dw - left;                             \
            }                                                                         \
            VT acc_[9];                                                               \
            _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {                     \
                acc_[i] = (VT){0};                                                    \
                if (i < cnt) FC_LOAD(VT, acc_[i], gacc + (t0 + i) * VW);              \
            }                                                                         \
            for (ptrdiff_t oh = oh0; oh < oh1; oh++) {                                \
                const T *rp_[9];                                                      \
                int rows_in = 1;                                                      \
                _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {                 \
                    const ptrdiff_t ih = oh * sh - top + dy_[i];                      \
                    const int in_ = ih >= 0 && ih < H;                                \
                    rp_[i] = in_ ? xn + ih * xrs : NULL;                              \
                    if (i < cnt) rows_in &= in_;                                      \
                }                                                                     \
                const T *gr = gn + oh * grs;                                          \
                if (window) {                                                         \
                    const T *rb_[3];                                                  \
                    ptrdiff_t rw_[3];                                                 \
                    _Pragma("GCC unroll 3") for (int i = 0; i < 3; i++) {             \
                        rb_[i] = rp_[3 * i] != NULL ? rp_[3 * i] : zeros_;            \
                        rw_[i] = rp_[3 * i] != NULL ? xws : 0;                        \
                    }                                                                 \
                    if (owa == 0 && owb == OW && sw == 1)                             \
                        FC_DWNW_WINDOW(T, VT, VW, 1, 0)                               \
                    else if (owa == 0 && owb == OW)                                   \
                        FC_DWNW_WINDOW(T, VT, VW, 2, 0)                               \
                    else if (sw == 1)                                                 \
                        FC_DWNW_WINDOW(T, VT, VW, 1, 1)                               \
                    else                                                              \
                        FC_DWNW_WINDOW(T, VT, VW, 2, 1)                               \
                    continue;                                                         \
                }                                                                     \
                /* [lo, hi): the row's pixels whose taps all lie in the input */      \
                const ptrdiff_t lo = rows_in ? owa : OW, hi = rows_in ? owb : OW;     \
                for (ptrdiff_t ow = 0; ow < OW; ow++) {                               \
                    if (ow == lo && lo < hi) {                                        \
                        const T *p_[9];                                               \
                        _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) p_[i] = rp_[i] + (lo * sw + dx_[i]) * xws; \
                        const ptrdiff_t step = sw * xws;                              \
                        FC_DWNW_RUN(T, VT, VW, cnt)                                   \
                        ow = hi - 1;                                                  \
                        continue;                                                     \
                    }                                                                 \
                    VT gv_;                                                           \
                    FC_DWN_LOAD(T, VT, VW, gv_, gr + ow * gws);                       \
                    if (pf) FC_DWN_PREFETCH(gr + ow * gws + VW);                      \
                    _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {             \
                        if (i < cnt) {                                                \
                            const ptrdiff_t iw = ow * sw + dx_[i];                    \
                            const T *src_ = zeros_;                                   \
                            if (rp_[i] != NULL && iw >= 0 && iw < W) {                \
                                src_ = rp_[i] + iw * xws;                             \
                                if (pf) FC_DWN_PREFETCH(src_ + VW);                   \
                            }                                                         \
                            VT v_;                                                    \
                            FC_DWN_LOAD(T, VT, VW, v_, src_);                         \
                            acc_[i] += v_ * gv_;                                      \
                        }                                                             \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
            _Pragma("GCC unroll 9") for (int i = 0; i < 9; i++) {                     \
                if (i < cnt) FC_STORE(VT, gacc + (t0 + i) * VW, acc_[i]);             \
            }                                                                         \
        }                                                                             \
    }
#define FC_DWNHWC_WGRAD(NAME, T, VT, VW)                                              \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t xns, ptrdiff_t xrs, ptrdiff_t xws, const T *g, \
                                     ptrdiff_t gns, ptrdiff_t grs, ptrdiff_t gws, int N, int H, int W, int OH, \
                                     int OW, int k0, int k1, int KH, int KW, int dh, int dw, int sh, int sw, \
                                     int top, int left, int band, T *sums)            \
    {                                                                                 \
        static const T zeros_[VW] = {0}; /* what taps outside the input read */       \
        const int ntaps = KH * KW;                                                    \
        const ptrdiff_t span = (ptrdiff_t)W - 1 + left - (ptrdiff_t)(KW - 1) * dw;    \
        const ptrdiff_t owb = span < 0 ? 0 : span / sw + 1 < OW ? span / sw + 1 : OW; \
        const ptrdiff_t owa = ((ptrdiff_t)left + sw - 1) / sw;                        \
        const int window = KH == 3 && KW == 3 && dw == 1 && (sw == 1 || sw == 2);     \
        const ptrdiff_t all = (ptrdiff_t)((k1 - k0 + VW - 1) / VW) * ntaps * VW;      \
        T *accs = sums + all; /* the image's sums, group by group */                  \
        for (int n = 0; n < N; n++) {                                                 \
            memset(accs, 0, (size_t)all * sizeof(T));                                 \
            for (ptrdiff_t oh0 = 0; oh0 < OH; oh0 += band) {                          \
                const ptrdiff_t oh1 = OH - oh0 < band ? OH : oh0 + band;              \
                for (int k = k0; k < k1; k += VW) {                                   \
                    const int nc = k1 - k < VW ? k1 - k : VW;                         \
                    const int pf = k + VW < k1; /* the next group's vectors asked for */ \
                    const T *xn = x + n * xns + k, *gn = g + n * gns + k;             \
                    T *gacc = accs + (ptrdiff_t)((k - k0) / VW) * ntaps * VW;         \
                    if (nc == VW)                                                     \
                        FC_DWNW_PASS(T, VT, VW, 0)                                    \
                    else                                                              \
                        FC_DWNW_PASS(T, VT, VW, 1)                                    \
                }                                                                     \
            }                                                                         \
            for (ptrdiff_t i = 0; i < all; i += VW) { /* each image's sums added in order */ \
                VT s_, a_;                                                            \
                FC_LOAD(VT, s_, sums + i);                                            \
                FC_LOAD(VT, a_, accs + i);                                            \
                FC_STORE(VT, sums + i, s_ + a_);                                      \
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
FC_DWNHWC_WGRAD(fc_dwnhwc_wgrad_f32, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_DWNHWC_WGRAD(fc_dwnhwc_wgrad_f64, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#undef FC_DWNHWC
#undef FC_DWNHWC_WGRAD
#undef FC_DWNW_PASS
#undef FC_DWNW_RUN
#undef FC_DWNW_WINDOW
#undef FC_DWNW_COLUMN
#undef FC_DWN_RB
#undef FC_DWN_WINDOW
#undef FC_DWN_BLOCK
#undef FC_DWN_LOAD
#undef FC_DWN_PREFETCH
#undef FC_DWN_AHEAD
