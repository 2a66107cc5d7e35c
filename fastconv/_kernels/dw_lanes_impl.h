/* Depthwise convolution with channels in the vector lanes, compiled once per level (FC_ISA,
 * FC_VF, FC_VD: see conv_tile.h, which includes this header after conv_tile_impl.h, whose
 * vector types it uses).
 *
 * One call computes a group of VW planes of one image (VW the level's lanes: 16 floats or
 * 8 doubles at AVX-512), lane l for channel l. The planes are laid out pixel by pixel in
 * xs, a padded (HP, WP) plane of vectors, xs[(i*WP + j)*VW + l] = x[l][i - top][j - left]
 * (the caller zeroes xs once: every call writes the same elements, so the padding stays
 * zero); each output pixel is then one vector, the bias plus each tap's product in tap
 * order (the order of the plane tiles, FC_DWPLANE_SUM: the same bits), and VW of them at a
 * time go back to the planes. Both ways run through a VW x VW register transpose (log2 VW
 * rounds of even/odd shuffles, FC_DWL_TRANSPOSE) over VW consecutive pixels of the planes
 * taken as flat sequences, so planes narrower than a vector fill every lane. Where planes
 * are small (7x7, or 14x14 at stride 2) the plane tiles fill a fraction of a vector per
 * output row and spend most of their time on each plane's padded copy. The weight
 * gradient (FC_DWL_WGRAD) and the input gradient (FC_DWL_GRADIN) below run on the same
 * layouts and transposes.
 *
 * The forward's arguments (FC_DWLANES): x (the group's first plane; cs, rs, ws the element strides between planes,
 * rows and columns), nc (planes, 1 .. VW: lanes past nc are computed from zeros and not
 * stored), H, W (each plane's, at least 1), xs, WP, top, left (the padded plane; the
 * caller sizes it so that every pixel copied and read lies in it), taps (ntaps offsets, in
 * items, of the taps from an output pixel's first), sh, sw (strides), w (ntaps vectors:
 * the taps' weights of the VW channels), bias (a vector), out (the group's first output
 * plane; ocs items between planes, each plane contiguous). */

/* (R, VW vectors of VW lanes, transposed in place: log2 VW rounds of unzipping pairs) */
#define FC_DWL_TRANSPOSE(VT, M, VW, R)                                                \
    _Pragma("GCC unroll 4") for (int round_ = 1; round_ < (VW); round_ *= 2) {        \
        VT t_[VW];                                                                    \
        _Pragma("GCC unroll 8") for (int i_ = 0; i_ < (VW) / 2; i_++) {               \
            t_[i_] = FC_SHUFFLE(M, R[2 * i_], R[2 * i_ + 1], FC_LIST(FC_EVENS_, VW)); \
            t_[(VW) / 2 + i_] = FC_SHUFFLE(M, R[2 * i_], R[2 * i_ + 1], FC_LIST(FC_ODDS_, VW)); \
        }                                                                             \
        _Pragma("GCC unroll 16") for (int i_ = 0; i_ < (VW); i_++) R[i_] = t_[i_];    \
    }

/* (R, the vectors of VW pixels q0 .. q0 + cnt - 1 (zeros past cnt), transposed and stored
 * into the nc planes at out, ocs items apart: each plane's cnt items from q0) */
#define FC_DWL_STORE_PLANES(T, VT, M, VW, R)                                          \
    FC_DWL_TRANSPOSE(VT, M, VW, R)                                                    \
    _Pragma("GCC unroll 16") for (int l = 0; l < VW; l++) {                           \
        if (l < nc) {                                                                 \
            if (cnt == VW)                                                            \
                FC_STORE(VT, out + l * ocs + q0, R[l]);                               \
            else                                                                      \
                memcpy(out + l * ocs + q0, &R[l], (size_t)cnt * sizeof(T));          \
        }                                                                             \
    }

/* The group's nc planes (x, cs, rs, ws; H x W each) into xs, pixel by pixel, from row
 * top and column left of its planes of WP vectors a row: a pixel's channels at a time
 * where they lie side by side (cs == 1, NHWC), VW pixels of the flat planes at a time
 * where the planes are contiguous, else item by item. Lanes past nc get zeros (through
 * the transpose) or are left as they are (the other two). */
#define FC_DWL_PACK_FN(NAME, T, VT, M, VW)                                            \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, ptrdiff_t rs, ptrdiff_t ws, int nc, int H, \
                                     int W, T *xs, ptrdiff_t WP, int top, int left)   \
    {                                                                                 \
        if (cs == 1) { /* channels side by side (NHWC): a pixel's channels are its vector */ \
            for (int h = 0; h < H; h++)                                               \
                for (int j = 0; j < W; j++) {                                         \
                    const T *src_ = x + h * rs + j * ws;                              \
                    T *d_ = xs + ((ptrdiff_t)(h + top) * WP + left + j) * VW;         \
                    if (nc == VW)                                                     \
                        memcpy(d_, src_, sizeof(VT));                                 \
                    else                                                              \
                        memcpy(d_, src_, (size_t)nc * sizeof(T));                     \
                }                                                                     \
        } else if (ws == 1 && rs == W) {                                              \
            const ptrdiff_t P = (ptrdiff_t)H * W;                                     \
            int h = 0, j = 0;                                                         \
            for (ptrdiff_t q0 = 0; q0 < P; q0 += VW) {                                \
                const int cnt = P - q0 < VW ? (int)(P - q0) : VW;                     \
                VT r_[VW];                                                            \
                _Pragma("GCC unroll 16") for (int l = 0; l < VW; l++) {               \
                    if (l < nc && cnt == VW) {                                        \
                        FC_LOAD(VT, r_[l], x + l * cs + q0);                          \
                    } else {                                                          \
                        T part_[VW] = {0};                                            \
                        if (l < nc) memcpy(part_, x + l * cs + q0, (size_t)cnt * sizeof(T)); \
                        memcpy(&r_[l], part_, sizeof(VT));                            \
                    }                                                                 \
                }                                                                     \
                FC_DWL_TRANSPOSE(VT, M, VW, r_)                                       \
                _Pragma("GCC unroll 16") for (int i = 0; i < VW; i++) {               \
                    if (i < cnt) {                                                    \
                        memcpy(xs + ((ptrdiff_t)(h + top) * WP + left + j) * VW, &r_[i], sizeof(VT)); \
                        if (++j == W) {                                               \
                            j = 0;                                                    \
                            h++;                                                      \
                        }                                                             \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
        } else {                                                                      \
            for (int l = 0; l < nc; l++)                                              \
                for (int h = 0; h < H; h++) {                                         \
                    const T *xr = x + l * cs + h * rs;                                \
                    T *d = xs + ((ptrdiff_t)(h + top) * WP + left) * VW + l;          \
                    for (int j = 0; j < W; j++) d[(ptrdiff_t)j * VW] = xr[j * ws];    \
                }                                                                     \
        }                                                                             \
    }

/* (the outputs, VW pixels of the flat planes at a time: each pixel's vector of sums, then
 * transposed into the planes; WEIGHT(VT, dst, t) sets dst to tap t's weights) */
#define FC_DWL_SUMS(T, VT, M, VW, NTAPS, UNROLL, WEIGHT)                              \
    {                                                                                 \
        const ptrdiff_t Q = (ptrdiff_t)OH * OW;                                       \
        int oh = 0, ow = 0;                                                           \
        for (ptrdiff_t q0 = 0; q0 < Q; q0 += VW) {                                    \
            const int cnt = Q - q0 < VW ? (int)(Q - q0) : VW;                         \
            VT r_[VW];                                                                \
            _Pragma("GCC unroll 16") for (int i = 0; i < VW; i++) {                   \
                r_[i] = (VT){0};                                                      \
                if (i < cnt) {                                                        \
                    const T *p = xs + ((ptrdiff_t)oh * sh * WP + (ptrdiff_t)ow * sw) * VW; \
                    VT acc = b_;                                                      \
                    UNROLL for (int t = 0; t < (NTAPS); t++) {                        \
                        VT v_, w_;                                                    \
                        FC_LOAD(VT, v_, p + taps[t]);                                 \
                        WEIGHT(VT, w_, t);                                            \
                        acc += v_ * w_;                                               \
                    }                                                                 \
                    r_[i] = acc;                                                      \
                    if (++ow == OW) {                                                 \
                        ow = 0;                                                       \
                        oh++;                                                         \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
            FC_DWL_STORE_PLANES(T, VT, M, VW, r_)                                     \
        }                                                                             \
    }
#define FC_DWL_HELD(VT, dst, t) ((dst) = wv_[t])
#define FC_DWL_READ(VT, dst, t) FC_LOAD(VT, dst, w + (t) * VW_)
/* (BODY(T, VT, M, VW, NTAPS, UNROLL, WEIGHT) over the ntaps weight vectors at w: a 3x3
 * kernel's nine held in registers, others read tap by tap) */
#define FC_DWL_BY_TAPS(BODY, T, VT, M, VW)                                            \
    if (ntaps == 9) {                                                                 \
        VT wv_[9];                                                                    \
        _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) FC_LOAD(VT, wv_[t], w + t * VW_); \
        BODY(T, VT, M, VW, 9, _Pragma("GCC unroll 9"), FC_DWL_HELD)                   \
    } else {                                                                          \
        BODY(T, VT, M, VW, ntaps, , FC_DWL_READ)                                      \
    }

#define FC_DWLANES(NAME, PACK, T, VT, M, VW)                                          \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t cs, ptrdiff_t rs, ptrdiff_t ws, int nc, int H, \
                                     int W, T *xs, ptrdiff_t WP, int top, int left, const ptrdiff_t *taps, \
                                     int ntaps, int sh, int sw, const T *w, const T *bias, T *out, \
                                     ptrdiff_t ocs, int OH, int OW)                   \
    {                                                                                 \
        enum { VW_ = VW };                                                            \
        FC_CAT(PACK, FC_ISA)(x, cs, rs, ws, nc, H, W, xs, WP, top, left);             \
        VT b_;                                                                        \
        FC_LOAD(VT, b_, bias);                                                        \
        b_ = (VT){0} + b_; /* (as the plane tiles start: -0.0 becomes +0.0) */        \
        FC_DWL_BY_TAPS(FC_DWL_SUMS, T, VT, M, VW)                                     \
    }

/* The weight gradient of a group of nc channels over N images (x: the group's first input
 * plane, xns items between images; g the grad's, gns between images, gcs, grs, gws as x's):
 * each image's input planes go into xs as the forward's (padded) and its grad planes into
 * gs (OH*OW vectors, unpadded); each tap's vector sums the products of the grad and the
 * input its pixels read, pixel after pixel from zero, and is added to the tap's vector of
 * sums (sums: ntaps vectors) image after image (an image's sum, not each product: fewer
 * roundings on long batches). Taps go TB at a time (TB accumulators; 3x3 kernels all 9 at
 * once). */
#define FC_DWL_WSUMS(T, VT, VW, TB, T0, CNT)                                          \
    {                                                                                 \
        VT acc_[TB];                                                                  \
        _Pragma("GCC unroll 9") for (int i = 0; i < (TB); i++) {                      \
            acc_[i] = (VT){0};                                                        \
        }                                                                             \
        int oh = 0, ow = 0;                                                           \
        for (ptrdiff_t q = 0; q < Q; q++) {                                           \
            VT gv_;                                                                   \
            FC_LOAD(VT, gv_, gs + q * VW);                                            \
            const T *p = xs + ((ptrdiff_t)oh * sh * WP + (ptrdiff_t)ow * sw) * VW;    \
            _Pragma("GCC unroll 9") for (int i = 0; i < (TB); i++) {                  \
                if (i < (CNT)) {                                                      \
                    VT v_;                                                            \
                    FC_LOAD(VT, v_, p + taps[(T0) + i]);                              \
                    acc_[i] += v_ * gv_;                                              \
                }                                                                     \
            }                                                                         \
            if (++ow == OW) {                                                         \
                ow = 0;                                                               \
                oh++;                                                                 \
            }                                                                         \
        }                                                                             \
        _Pragma("GCC unroll 9") for (int i = 0; i < (TB); i++) {                      \
            if (i < (CNT)) {                                                          \
                VT s_;                                                                \
                FC_LOAD(VT, s_, sums + ((T0) + i) * VW);                              \
                FC_STORE(VT, sums + ((T0) + i) * VW, s_ + acc_[i]);                   \
            }                                                                         \
        }                                                                             \
    }
#define FC_DWL_WGRAD(NAME, PACK, T, VT, VW)                                           \
    static void FC_CAT(NAME, FC_ISA)(const T *x, ptrdiff_t xns, ptrdiff_t cs, ptrdiff_t rs, ptrdiff_t ws, \
                                     const T *g, ptrdiff_t gns, ptrdiff_t gcs, ptrdiff_t grs, ptrdiff_t gws, \
                                     int N, int nc, int H, int W, T *xs, T *gs, ptrdiff_t WP, int top, \
                                     int left, const ptrdiff_t *taps, int ntaps, int sh, int sw, T *sums, \
                                     int OH, int OW)                                  \
    {                                                                                 \
        const ptrdiff_t Q = (ptrdiff_t)OH * OW;                                       \
        for (int n = 0; n < N; n++) {                                                 \
            FC_CAT(PACK, FC_ISA)(x + n * xns, cs, rs, ws, nc, H, W, xs, WP, top, left); \
            FC_CAT(PACK, FC_ISA)(g + n * gns, gcs, grs, gws, nc, OH, OW, gs, OW, 0, 0); \
            if (ntaps == 9) {                                                         \
                FC_DWL_WSUMS(T, VT, VW, 9, 0, 9)                                      \
            } else {                                                                  \
                for (int t0 = 0; t0 < ntaps; t0 += 4) {                               \
                    const int cnt_ = ntaps - t0 < 4 ? ntaps - t0 : 4;                 \
                    FC_DWL_WSUMS(T, VT, VW, 4, t0, cnt_)                              \
                }                                                                     \
            }                                                                         \
        }                                                                             \
    }

/* The inverse of FC_DWL_PACK_FN for planes in memory: rows top .. top + H - 1, columns
 * left .. left + W - 1 of xs (WP vectors a row) to nc contiguous planes of H x W items at
 * out (ocs items apart), VW pixels of the flat planes at a time through the transpose. */
#define FC_DWL_UNPACK_FN(NAME, T, VT, M, VW)                                          \
    static void FC_CAT(NAME, FC_ISA)(const T *xs, ptrdiff_t WP, int top, int left, int nc, int H, int W, \
                                     T *out, ptrdiff_t ocs)                           \
    {                                                                                 \
        const ptrdiff_t P = (ptrdiff_t)H * W;                                         \
        int h = 0, j = 0;                                                             \
        for (ptrdiff_t q0 = 0; q0 < P; q0 += VW) {                                    \
            const int cnt = P - q0 < VW ? (int)(P - q0) : VW;                         \
            VT r_[VW];                                                                \
            _Pragma("GCC unroll 16") for (int i = 0; i < VW; i++) {                   \
                r_[i] = (VT){0};                                                      \
                if (i < cnt) {                                                        \
                    FC_LOAD(VT, r_[i], xs + ((ptrdiff_t)(h + top) * WP + left + j) * VW); \
                    if (++j == W) {                                                   \
                        j = 0;                                                        \
                        h++;                                                          \
                    }                                                                 \
                }                                                                     \
            }                                                                         \
            FC_DWL_STORE_PLANES(T, VT, M, VW, r_)                                     \
        }                                                                             \
    }
/* The input gradient of a group of nc channels of one image (the adjoint of FC_DWLANES):
 * the grad planes (g; gcs, grs, gws) go into gs (OH*OW vectors, unpadded); xs, HP x WP
 * vectors, is zeroed, and each grad pixel's vector times each tap's weights is added to the
 * pixel that tap reads (grad pixels in order, each's taps in order); rows top .. and
 * columns left .. of xs then go to the nc planes of out (H x W items each, ocs apart). */
#define FC_DWL_SCATTER(T, VT, M, VW, NTAPS, UNROLL, WEIGHT)                           \
    {                                                                                 \
        int oh = 0, ow = 0;                                                           \
        for (ptrdiff_t q = 0; q < Q; q++) {                                           \
            VT gv_;                                                                   \
            FC_LOAD(VT, gv_, gs + q * VW);                                            \
            T *p = xs + ((ptrdiff_t)oh * sh * WP + (ptrdiff_t)ow * sw) * VW;          \
            UNROLL for (int t = 0; t < (NTAPS); t++) {                                \
                VT v_, w_;                                                            \
                FC_LOAD(VT, v_, p + taps[t]);                                         \
                WEIGHT(VT, w_, t);                                                    \
                v_ += gv_ * w_;                                                       \
                FC_STORE(VT, p + taps[t], v_);                                        \
            }                                                                         \
            if (++ow == OW) {                                                         \
                ow = 0;                                                               \
                oh++;                                                                 \
            }                                                                         \
        }                                                                             \
    }
#define FC_DWL_GRADIN(NAME, PACK, UNPACK, T, VT, VW)                                  \
    static void FC_CAT(NAME, FC_ISA)(const T *g, ptrdiff_t gcs, ptrdiff_t grs, ptrdiff_t gws, int nc, int OH, \
                                     int OW, T *xs, T *gs, ptrdiff_t HP, ptrdiff_t WP, int top, int left, \
                                     const ptrdiff_t *taps, int ntaps, int sh, int sw, const T *w, T *out, \
                                     ptrdiff_t ocs, int H, int W)                     \
    {                                                                                 \
        enum { VW_ = VW };                                                            \
        const ptrdiff_t Q = (ptrdiff_t)OH * OW;                                       \
        FC_CAT(PACK, FC_ISA)(g, gcs, grs, gws, nc, OH, OW, gs, OW, 0, 0);             \
        memset(xs, 0, (size_t)(HP * WP * VW) * sizeof(T));                            \
        FC_DWL_BY_TAPS(FC_DWL_SCATTER, T, VT, M, VW)                                  \
        FC_CAT(UNPACK, FC_ISA)(xs, WP, top, left, nc, H, W, out, ocs);                \
    }

typedef int32_t FC_CAT(fc_dwl_mf, FC_ISA) __attribute__((vector_size(FC_VF * sizeof(int32_t))));
typedef int64_t FC_CAT(fc_dwl_md, FC_ISA) __attribute__((vector_size(FC_VD * sizeof(int64_t))));
FC_DWL_PACK_FN(fc_dwl_pack_f32, float, FC_CAT(fc_vf, FC_ISA), FC_CAT(fc_dwl_mf, FC_ISA), FC_VF)
FC_DWL_PACK_FN(fc_dwl_pack_f64, double, FC_CAT(fc_vd, FC_ISA), FC_CAT(fc_dwl_md, FC_ISA), FC_VD)
FC_DWLANES(fc_dwlanes_f32, fc_dwl_pack_f32, float, FC_CAT(fc_vf, FC_ISA), FC_CAT(fc_dwl_mf, FC_ISA), FC_VF)
FC_DWLANES(fc_dwlanes_f64, fc_dwl_pack_f64, double, FC_CAT(fc_vd, FC_ISA), FC_CAT(fc_dwl_md, FC_ISA), FC_VD)
FC_DWL_WGRAD(fc_dwlanes_wgrad_f32, fc_dwl_pack_f32, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_DWL_WGRAD(fc_dwlanes_wgrad_f64, fc_dwl_pack_f64, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
FC_DWL_UNPACK_FN(fc_dwl_unpack_f32, float, FC_CAT(fc_vf, FC_ISA), FC_CAT(fc_dwl_mf, FC_ISA), FC_VF)
FC_DWL_UNPACK_FN(fc_dwl_unpack_f64, double, FC_CAT(fc_vd, FC_ISA), FC_CAT(fc_dwl_md, FC_ISA), FC_VD)
FC_DWL_GRADIN(fc_dwlanes_gradin_f32, fc_dwl_pack_f32, fc_dwl_unpack_f32, float, FC_CAT(fc_vf, FC_ISA), FC_VF)
FC_DWL_GRADIN(fc_dwlanes_gradin_f64, fc_dwl_pack_f64, fc_dwl_unpack_f64, double, FC_CAT(fc_vd, FC_ISA), FC_VD)
#undef FC_DWLANES
#undef FC_DWL_HELD
#undef FC_DWL_READ
#undef FC_DWL_SUMS
#undef FC_DWL_PACK_FN
#undef FC_DWL_WGRAD
#undef FC_DWL_UNPACK_FN
#undef FC_DWL_SCATTER
#undef FC_DWL_GRADIN
#undef FC_DWL_WSUMS
#undef FC_DWL_TRANSPOSE
#undef FC_DWL_STORE_PLANES
#undef FC_DWL_BY_TAPS
