/* Max pooling's interior rows (NCHW) and pixels (NHWC), then NHWC average pooling's pixels and
 * its gradient's (at the end), instantiated once per instruction set and type.
 *
 * Included by pool_rows_types.h with FC_ISA (a name suffix), FC_T / FC_TN (float, f32 or
 * double, f64), FC_N (lanes of a vector), FC_IT (the integer type of a lane's mask),
 * FC_SMALL(name) (the function rows of fewer than FC_N outputs call; FC_SMALL_PADDED: one
 * defined here) and the level's target active. No include guard: it is meant to be
 * included several times; it undefines its parameters. (FC_UNUSED: a build without the
 * wider levels leaves some of the baseline's functions, which those call, unused.)
 *
 * Every function takes n outputs of one output row whose windows are all inside the
 * image (the caller's interior) and visits each window's taps in row-major order with
 * PyTorch's rule (a strictly larger value or a NaN takes the maximum and its index), as
 * _max_row_nchw's scalar loops do: the same values and indices, bit for bit. A row goes
 * in blocks of FC_N outputs, one vector each; the last block, if partial, is the row's last
 * FC_N outputs again (a window's maximum recomputed, or folded with the same taps again,
 * keeps its value and index), so no lane ever reads past the row's last tap. With indices
 * (float32 only: its int32 lanes match the values' lanes), `taps` holds the running
 * int32 plane indices of the row's outputs, `k32` is the plane index of src[0].
 */

#define FC_FN(name) FC_CAT(FC_CAT(fc_pool_##name, FC_TN), FC_ISA)
#define FC_V FC_FN(vec)
#define FC_M FC_FN(mask)

typedef FC_T FC_V __attribute__((vector_size(sizeof(FC_T) * FC_N)));
typedef FC_IT FC_M __attribute__((vector_size(sizeof(FC_T) * FC_N)));

/* The windows' first (FC_EVENS) and second (FC_ODDS) taps from two vectors of a row at
 * stride 2. With FC_IN_LANE (AVX2) each 16-byte half picks its own items (one vshufps or
 * vunpcklpd, where AVX2 needs three instructions across halves), so the lanes hold the
 * windows in FC_LANED_ order; FC_UNLANE puts a result back in window order (one vpermpd).
 * AVX2, one thread, against _pool's loops before pool_rows.h (alternating processes): 2x2 windows
 * at stride 2 on 56x56 planes 1.02x across halves, 1.36x in halves (float64 1.05x, 1.35x); 3x3
 * at stride 2 on 112x112 1.44x, 1.50x (float64 1.16x, 1.35x). */
#if FC_IN_LANE
#define FC_EVENS(a, b) FC_SHUFFLE(FC_M, a, b, FC_LIST(FC_LANED_EVENS_, FC_N))
#define FC_ODDS(a, b) FC_SHUFFLE(FC_M, a, b, FC_LIST(FC_LANED_ODDS_, FC_N))
#define FC_UNLANE(v) FC_SHUFFLE(FC_M, v, v, FC_LIST(FC_UNLANE_, FC_N))
#define FC_FIRST_TAPS FC_LIST(FC_LANED_EVENS_, FC_N)
#else
#define FC_EVENS(a, b) FC_SHUFFLE(FC_M, a, b, FC_LIST(FC_EVENS_, FC_N))
#define FC_ODDS(a, b) FC_SHUFFLE(FC_M, a, b, FC_LIST(FC_ODDS_, FC_N))
#define FC_UNLANE(v) (v)
#define FC_FIRST_TAPS FC_LIST(FC_EVENS_, FC_N)
#endif

/* Lane by lane: v where PyTorch's rule takes it over m (v > m, or v is NaN), else m. */
static inline FC_V FC_FN(take)(FC_V v, FC_V m)
{
    FC_M t = (v > m) | (v != v);
    return (FC_V)(((FC_M)v & t) | ((FC_M)m & ~t));
}

/* 2x2 windows at stride 2: out[i] = max(s[2i], s[2i+1], s[W+2i], s[W+2i+1]). */
static inline void FC_FN(max2x2_block)(const FC_T *s, ptrdiff_t W, FC_T *out)
{
    FC_V a, b, c, d, m;
    FC_LOAD(FC_V, a, s);
    FC_LOAD(FC_V, b, s + FC_N);
    FC_LOAD(FC_V, c, s + W);
    FC_LOAD(FC_V, d, s + W + FC_N);
    m = FC_EVENS(a, b);
    m = FC_FN(take)(FC_ODDS(a, b), m);
    m = FC_FN(take)(FC_EVENS(c, d), m);
    m = FC_FN(take)(FC_ODDS(c, d), m);
    FC_STORE(FC_V, out, FC_UNLANE(m));
}

/* One window row of 3 taps at stride 1 folded into the running maxima `out`. */
static inline void FC_FN(max3s1_block)(const FC_T *s, FC_T *out)
{
    FC_V m, v;
    FC_LOAD(FC_V, m, out);
    FC_LOAD(FC_V, v, s);
    m = FC_FN(take)(v, m);
    FC_LOAD(FC_V, v, s + 1);
    m = FC_FN(take)(v, m);
    FC_LOAD(FC_V, v, s + 2);
    m = FC_FN(take)(v, m);
    FC_STORE(FC_V, out, m);
}

/* The same at stride 2: taps s[2i], s[2i+1], s[2i+2] (the third, the odd lanes of the
 * vectors from s + 1, ends on the row's last tap). */
static inline void FC_FN(max3s2_block)(const FC_T *s, FC_T *out)
{
    FC_V a, b, p, q, m;
#if FC_IN_LANE
    FC_V v;
#endif
    FC_LOAD(FC_V, m, out);
    FC_LOAD(FC_V, a, s);
    FC_LOAD(FC_V, b, s + FC_N);
    FC_LOAD(FC_V, p, s + 1);
    FC_LOAD(FC_V, q, s + FC_N + 1);
#if FC_IN_LANE /* the taps' maximum, then the running one's (the same value as tap by tap) */
    v = FC_FN(take)(FC_ODDS(a, b), FC_EVENS(a, b));
    v = FC_FN(take)(FC_ODDS(p, q), v);
    m = FC_FN(take)(FC_UNLANE(v), m);
#else
    m = FC_FN(take)(FC_EVENS(a, b), m);
    m = FC_FN(take)(FC_ODDS(a, b), m);
    m = FC_FN(take)(FC_ODDS(p, q), m);
#endif
    FC_STORE(FC_V, out, m);
}

#if FC_INDEX
/* take() carrying each lane's plane index: k becomes kv where v is taken. */
static inline FC_V FC_FN(take_at)(FC_V v, FC_V m, FC_M kv, FC_M *k)
{
    FC_M t = (v > m) | (v != v);
    *k = (kv & t) | (*k & ~t);
    return (FC_V)(((FC_M)v & t) | ((FC_M)m & ~t));
}

static inline void FC_FN(max2x2_idx_block)(const FC_T *s, ptrdiff_t W, FC_IT k0, FC_T *out, FC_IT *taps)
{
    const FC_M k = (FC_M){FC_FIRST_TAPS} + k0; /* the windows' first taps (2 x window) */
    FC_V a, b, c, d, m;
    FC_M km = k;
    FC_LOAD(FC_V, a, s);
    FC_LOAD(FC_V, b, s + FC_N);
    FC_LOAD(FC_V, c, s + W);
    FC_LOAD(FC_V, d, s + W + FC_N);
    m = FC_EVENS(a, b);
    m = FC_FN(take_at)(FC_ODDS(a, b), m, k + 1, &km);
    m = FC_FN(take_at)(FC_EVENS(c, d), m, k + (FC_IT)W, &km);
    m = FC_FN(take_at)(FC_ODDS(c, d), m, k + (FC_IT)(W + 1), &km);
    FC_STORE(FC_V, out, FC_UNLANE(m));
    FC_STORE(FC_M, taps, FC_UNLANE(km));
}

static inline void FC_FN(max3s1_idx_block)(const FC_T *s, FC_IT k0, FC_T *out, FC_IT *taps)
{
    const FC_M k = (FC_M){FC_LIST(FC_IOTA_, FC_N)} + k0;
    FC_V m, v;
    FC_M km;
    FC_LOAD(FC_V, m, out);
    FC_LOAD(FC_M, km, taps);
    FC_LOAD(FC_V, v, s);
    m = FC_FN(take_at)(v, m, k, &km);
    FC_LOAD(FC_V, v, s + 1);
    m = FC_FN(take_at)(v, m, k + 1, &km);
    FC_LOAD(FC_V, v, s + 2);
    m = FC_FN(take_at)(v, m, k + 2, &km);
    FC_STORE(FC_V, out, m);
    FC_STORE(FC_M, taps, km);
}

static inline void FC_FN(max3s2_idx_block)(const FC_T *s, FC_IT k0, FC_T *out, FC_IT *taps)
{
    const FC_M k = (FC_M){FC_FIRST_TAPS} + k0;
    FC_V a, b, p, q, m;
    FC_M km;
#if FC_IN_LANE
    FC_V v;
    FC_M kv = k;
#endif
    FC_LOAD(FC_V, m, out);
    FC_LOAD(FC_M, km, taps);
    FC_LOAD(FC_V, a, s);
    FC_LOAD(FC_V, b, s + FC_N);
    FC_LOAD(FC_V, p, s + 1);
    FC_LOAD(FC_V, q, s + FC_N + 1);
#if FC_IN_LANE /* as max3s2_block */
    v = FC_FN(take_at)(FC_ODDS(a, b), FC_EVENS(a, b), k + 1, &kv);
    v = FC_FN(take_at)(FC_ODDS(p, q), v, k + 2, &kv);
    m = FC_FN(take_at)(FC_UNLANE(v), m, FC_UNLANE(kv), &km);
#else
    m = FC_FN(take_at)(FC_EVENS(a, b), m, k, &km);
    m = FC_FN(take_at)(FC_ODDS(a, b), m, k + 1, &km);
    m = FC_FN(take_at)(FC_ODDS(p, q), m, k + 2, &km);
#endif
    FC_STORE(FC_V, out, m);
    FC_STORE(FC_M, taps, km);
}
#endif

/* The row drivers: blocks of FC_N outputs, the last one ending on the row's end. */
#define FC_ROW(block_call, small_call)                                                \
    do {                                                                              \
        ptrdiff_t i;                                                                  \
        if (n < FC_N) {                                                               \
            small_call;                                                               \
            return;                                                                   \
        }                                                                             \
        for (i = 0; i + FC_N <= n; i += FC_N) block_call;                             \
        if (i < n) {                                                                  \
            i = n - FC_N;                                                             \
            block_call;                                                               \
        }                                                                             \
    } while (0)

#if FC_SMALL_PADDED
/* Rows of fewer than FC_N outputs (the baseline level): the taps, the running maxima and
 * their indices copied into zeroed local blocks of one vector, and the n results back. */
static FC_UNUSED void FC_FN(max2x2_small)(const FC_T *src, ptrdiff_t W, ptrdiff_t n, FC_T *out)
{
    FC_T s[4 * FC_N] = {0}, o[FC_N];
    ptrdiff_t i;
    for (i = 0; i < 2 * n; i++) s[i] = src[i], s[2 * FC_N + i] = src[W + i];
    FC_FN(max2x2_block)(s, 2 * FC_N, o);
    for (i = 0; i < n; i++) out[i] = o[i];
}

/* Fold a row of 3 taps at stride `step` (1 or 2) into fewer than FC_N maxima. */
static FC_UNUSED void FC_FN(max3_small)(const FC_T *src, int step, ptrdiff_t n, FC_T *out)
{
    FC_T s[2 * FC_N + 2] = {0}, o[FC_N] = {0};
    ptrdiff_t i;
    for (i = 0; i < step * (n - 1) + 3; i++) s[i] = src[i];
    for (i = 0; i < n; i++) o[i] = out[i];
    if (step == 1)
        FC_FN(max3s1_block)(s, o);
    else
        FC_FN(max3s2_block)(s, o);
    for (i = 0; i < n; i++) out[i] = o[i];
}

static FC_UNUSED void FC_FN(max3s1_small)(const FC_T *src, ptrdiff_t n, FC_T *out) { FC_FN(max3_small)(src, 1, n, out); }
static FC_UNUSED void FC_FN(max3s2_small)(const FC_T *src, ptrdiff_t n, FC_T *out) { FC_FN(max3_small)(src, 2, n, out); }

#if FC_INDEX
static FC_UNUSED void FC_FN(max2x2_idx_small)(const FC_T *src, ptrdiff_t W, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_T s[4 * FC_N] = {0}, o[FC_N];
    FC_IT t[FC_N];
    ptrdiff_t i;
    for (i = 0; i < 2 * n; i++) s[i] = src[i], s[2 * FC_N + i] = src[W + i];
    FC_FN(max2x2_idx_block)(s, 2 * FC_N, 0, o, t);
    for (i = 0; i < n; i++) { /* local indices (row W apart there) back to the plane's */
        out[i] = o[i];
        taps[i] = k32 + (t[i] >= 2 * FC_N ? t[i] - 2 * FC_N + (FC_IT)W : t[i]);
    }
}

static FC_UNUSED void FC_FN(max3_idx_small)(const FC_T *src, int step, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_T s[2 * FC_N + 2] = {0}, o[FC_N] = {0};
    FC_IT t[FC_N] = {0};
    ptrdiff_t i;
    for (i = 0; i < step * (n - 1) + 3; i++) s[i] = src[i];
    for (i = 0; i < n; i++) o[i] = out[i], t[i] = taps[i];
    if (step == 1)
        FC_FN(max3s1_idx_block)(s, k32, o, t);
    else
        FC_FN(max3s2_idx_block)(s, k32, o, t);
    for (i = 0; i < n; i++) out[i] = o[i], taps[i] = t[i];
}

static FC_UNUSED void FC_FN(max3s1_idx_small)(const FC_T *src, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_FN(max3_idx_small)(src, 1, k32, n, out, taps);
}

static FC_UNUSED void FC_FN(max3s2_idx_small)(const FC_T *src, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_FN(max3_idx_small)(src, 2, k32, n, out, taps);
}
#endif
#endif

static FC_UNUSED void FC_FN(max2x2)(const FC_T *src, ptrdiff_t W, ptrdiff_t n, FC_T *out)
{
    FC_ROW(FC_FN(max2x2_block)(src + 2 * i, W, out + i), FC_SMALL(max2x2)(src, W, n, out));
}

static FC_UNUSED void FC_FN(max3s1)(const FC_T *src, ptrdiff_t n, FC_T *out)
{
    FC_ROW(FC_FN(max3s1_block)(src + i, out + i), FC_SMALL(max3s1)(src, n, out));
}

static FC_UNUSED void FC_FN(max3s2)(const FC_T *src, ptrdiff_t n, FC_T *out)
{
    FC_ROW(FC_FN(max3s2_block)(src + 2 * i, out + i), FC_SMALL(max3s2)(src, n, out));
}

#if FC_INDEX
static FC_UNUSED void FC_FN(max2x2_idx)(const FC_T *src, ptrdiff_t W, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_ROW(FC_FN(max2x2_idx_block)(src + 2 * i, W, k32 + (FC_IT)(2 * i), out + i, taps + i),
           FC_SMALL(max2x2_idx)(src, W, k32, n, out, taps));
}

static FC_UNUSED void FC_FN(max3s1_idx)(const FC_T *src, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_ROW(FC_FN(max3s1_idx_block)(src + i, k32 + (FC_IT)i, out + i, taps + i),
           FC_SMALL(max3s1_idx)(src, k32, n, out, taps));
}

static FC_UNUSED void FC_FN(max3s2_idx)(const FC_T *src, FC_IT k32, ptrdiff_t n, FC_T *out, FC_IT *taps)
{
    FC_ROW(FC_FN(max3s2_idx_block)(src + 2 * i, k32 + (FC_IT)(2 * i), out + i, taps + i),
           FC_SMALL(max3s2_idx)(src, k32, n, out, taps));
}
#endif

/* NHWC: one output pixel's window over every channel. Taps (h0 + t*DH, w0 + u*DW) for t < hn,
 * u < wn (hn, wn >= 1, all inside the image, in row-major order) of `image` (rows of W
 * pixels of C channels); out[c] is the maximum of channel c. With `taps`, taps[c] gets the
 * winner's plane index (the plane's pixels must fit in int32). C >= FC_PIXEL_MIN_CHANNELS
 * (the caller checks). Channels go one vector of FC_N at a time, its maximum kept in a
 * register over all the window's taps; the last vector, if partial, is the last FC_N
 * channels again; fewer than FC_N channels go to FC_SMALL's function (a level of
 * FC_PIXEL_MIN_CHANNELS lanes takes every C). */
static inline void FC_FN(max_pixel_block)(const FC_T *image, ptrdiff_t W, ptrdiff_t C, ptrdiff_t h0, ptrdiff_t hn,
                                          ptrdiff_t DH, ptrdiff_t w0, ptrdiff_t wn, ptrdiff_t DW, FC_T *out)
{
    FC_V m, v;
    ptrdiff_t t, u;
    FC_LOAD(FC_V, m, image + (h0 * W + w0) * C);
    for (t = 0; t < hn; t++)
        for (u = t == 0; u < wn; u++) {
            FC_LOAD(FC_V, v, image + ((h0 + t * DH) * W + w0 + u * DW) * C);
            m = FC_FN(take)(v, m);
        }
    FC_STORE(FC_V, out, m);
}

#if FC_INDEX
static inline void FC_FN(max_pixel_idx_block)(const FC_T *image, ptrdiff_t W, ptrdiff_t C, ptrdiff_t h0,
                                              ptrdiff_t hn, ptrdiff_t DH, ptrdiff_t w0, ptrdiff_t wn, ptrdiff_t DW,
                                              FC_T *out, FC_IT *taps)
{
    FC_V m, v;
    FC_M km = (FC_M){0} + (FC_IT)(h0 * W + w0);
    ptrdiff_t t, u, k;
    FC_LOAD(FC_V, m, image + (h0 * W + w0) * C);
    for (t = 0; t < hn; t++)
        for (u = t == 0; u < wn; u++) {
            k = (h0 + t * DH) * W + w0 + u * DW;
            FC_LOAD(FC_V, v, image + k * C);
            m = FC_FN(take_at)(v, m, (FC_M){0} + (FC_IT)k, &km);
        }
    FC_STORE(FC_V, out, m);
    FC_STORE(FC_M, taps, km);
}
#endif

#if FC_SMALL_PADDED && FC_N > FC_PIXEL_MIN_CHANNELS
#error "a level without a narrower one must take pixels of FC_PIXEL_MIN_CHANNELS channels"
#endif

static FC_UNUSED void FC_FN(max_pixel)(const FC_T *image, ptrdiff_t W, ptrdiff_t C, ptrdiff_t h0, ptrdiff_t hn, ptrdiff_t DH,
                             ptrdiff_t w0, ptrdiff_t wn, ptrdiff_t DW, FC_T *out, FC_IT *taps)
{
    ptrdiff_t c;
    (void)taps; /* (float64: always NULL) */
#if !FC_SMALL_PADDED
    if (C < FC_N) {
        FC_SMALL(max_pixel)(image, W, C, h0, hn, DH, w0, wn, DW, out, taps);
        return;
    }
#endif
#if FC_INDEX
    if (taps) {
        for (c = 0; c + FC_N <= C; c += FC_N)
            FC_FN(max_pixel_idx_block)(image + c, W, C, h0, hn, DH, w0, wn, DW, out + c, taps + c);
        if (c < C)
            FC_FN(max_pixel_idx_block)(image + C - FC_N, W, C, h0, hn, DH, w0, wn, DW, out + C - FC_N,
                                       taps + C - FC_N);
        return;
    }
#endif
    for (c = 0; c + FC_N <= C; c += FC_N) FC_FN(max_pixel_block)(image + c, W, C, h0, hn, DH, w0, wn, DW, out + c);
    if (c < C) FC_FN(max_pixel_block)(image + C - FC_N, W, C, h0, hn, DH, w0, wn, DW, out + C - FC_N);
}

/* NHWC average pooling: one output pixel's window, rows h0 <= h < h0 + hn, columns w0 <= w < w0 + wn
 * of `image` (rows of W pixels of C channels), summed from 0 in row-major order and divided once by
 * d into out[c], as _pool's loop sums them (the same bits). C >= FC_PIXEL_MIN_CHANNELS (the caller
 * checks). Channels go a vector of FC_N at a time, the sum kept in a register over the window;
 * the last vector, if partial, is the last FC_N channels again (the same sums); fewer than FC_N
 * channels go to FC_SMALL's function. */
static inline void FC_FN(avg_pixel_block)(const FC_T *image, ptrdiff_t W, ptrdiff_t C, ptrdiff_t h0, ptrdiff_t hn,
                                          ptrdiff_t w0, ptrdiff_t wn, FC_T *out, FC_T d)
{
    FC_V sum = (FC_V){0}, v;
    ptrdiff_t h, w;
    for (h = h0; h < h0 + hn; h++)
        for (w = w0; w < w0 + wn; w++) {
            FC_LOAD(FC_V, v, image + (h * W + w) * C);
            sum = sum + v;
        }
    FC_STORE(FC_V, out, sum / ((FC_V){0} + d));
}

static FC_UNUSED void FC_FN(avg_pixel)(const FC_T *image, ptrdiff_t W, ptrdiff_t C, ptrdiff_t h0, ptrdiff_t hn,
                                       ptrdiff_t w0, ptrdiff_t wn, FC_T *out, FC_T d)
{
    ptrdiff_t c;
#if !FC_SMALL_PADDED
    if (C < FC_N) {
        FC_SMALL(avg_pixel)(image, W, C, h0, hn, w0, wn, out, d);
        return;
    }
#endif
    for (c = 0; c + FC_N <= C; c += FC_N) FC_FN(avg_pixel_block)(image + c, W, C, h0, hn, w0, wn, out + c, d);
    if (c < C) FC_FN(avg_pixel_block)(image + C - FC_N, W, C, h0, hn, w0, wn, out + C - FC_N, d);
}

/* NHWC average pooling's gradient: one output pixel's gradient g (n channels) over its divisor d,
 * added to every pixel of its window: rows h0 <= h < h0 + hn, columns w0 <= w < w0 + wn of
 * `image` (pixel (h, w) at image + h*row + w*pixel, its n channels adjacent). Each element takes
 * one add, g[c] / d, the division _pool's loops make (the same bits), made once a vector of
 * channels instead of once a tap; the vector stays in a register over the window. Channels go
 * FC_N at a time; the rest go to FC_SMALL's function (narrower vectors), or, at a level
 * without one, one at a time. */
static FC_UNUSED void FC_FN(avg_spread)(FC_T *image, ptrdiff_t row, ptrdiff_t pixel, ptrdiff_t h0, ptrdiff_t hn,
                                        ptrdiff_t w0, ptrdiff_t wn, const FC_T *g, FC_T d, ptrdiff_t n)
{
    ptrdiff_t c, h, w;
    FC_T *p;
    for (c = 0; c + FC_N <= n; c += FC_N) {
        FC_V q, v;
        FC_LOAD(FC_V, q, g + c);
        q = q / ((FC_V){0} + d);
        for (h = h0; h < h0 + hn; h++)
            for (w = 0, p = image + h * row + w0 * pixel + c; w < wn; w++, p += pixel) {
                FC_LOAD(FC_V, v, p);
                FC_STORE(FC_V, p, v + q);
            }
    }
    if (c == n)
        return;
#if FC_SMALL_PADDED
    for (; c < n; c++) {
        FC_T q = g[c] / d;
        for (h = h0; h < h0 + hn; h++)
            for (w = 0, p = image + h * row + w0 * pixel + c; w < wn; w++, p += pixel)
                *p += q;
    }
#else
    FC_SMALL(avg_spread)(image + c, row, pixel, h0, hn, w0, wn, g + c, d, n - c);
#endif
}

#undef FC_ROW
#undef FC_EVENS
#undef FC_ODDS
#undef FC_UNLANE
#undef FC_FIRST_TAPS
#undef FC_V
#undef FC_M
#undef FC_FN
#undef FC_T
#undef FC_TN
#undef FC_N
#undef FC_IT
#undef FC_INDEX
#undef FC_SMALL
#undef FC_SMALL_PADDED
