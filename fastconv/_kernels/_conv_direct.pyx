"""Direct 2-D convolution (cross-correlation) over a padded input, no column buffer.

The caller pads the input, resolves groups, checks every shape, fills
``bias`` (zeros when there is none) and allocates ``out``. Each output element
sums its taps in a fixed order, so results do not depend on the thread count.

:func:`conv2d_packed`, which small NCHW calls reach, runs in plain C when
called for one thread: an OpenMP team, even of one thread, costs about 0.6 µs
per parallel loop (each barrier is a futex system call in libgomp), as much
as a small call's arithmetic.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t

from fastconv._kernels._openmp cimport fc_omp_barrier

ctypedef fused acc_t:
    float
    double
    int64_t


def conv2d_nchw(const acc_t[:, :, :, ::1] xp, const acc_t[:, :, :, ::1] w,
                const acc_t[::1] bias, acc_t[:, :, :, ::1] out,
                Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                Py_ssize_t groups, int num_threads):
    """``out[n, k] = bias[k] + sum_{c, kh, kw} w[k, c, kh, kw] * xp[n, g*Cg + c, ...]``.

    ``xp`` is ``(N, C, Hp, Wp)``, ``w`` is OIHW ``(K, C/groups, KH, KW)``.
    Parallel over ``(n, k)`` output planes; each plane is built row by row.
    """
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t t, n, k, g, oh, ow, c, kh, kw
    cdef acc_t wv
    cdef acc_t* orow
    cdef const acc_t* xs
    for t in prange(N * K, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // K
        k = t - n * K
        g = k // Kg
        for oh in range(OH):
            orow = &out[n, k, oh, 0]
            for ow in range(OW):
                orow[ow] = bias[k]
            for c in range(Cg):
                for kh in range(KH):
                    for kw in range(KW):
                        wv = w[k, c, kh, kw]
                        xs = &xp[n, g * Cg + c, oh * SH + kh * DH, kw * DW]
                        if SW == 1:
                            for ow in range(OW):
                                orow[ow] += wv * xs[ow]
                        else:
                            for ow in range(OW):
                                orow[ow] += wv * xs[ow * SW]


def conv2d_nhwc(const acc_t[:, :, :, ::1] xp, const acc_t[:, :, :, ::1] w,
                const acc_t[::1] bias, acc_t[:, :, :, ::1] out,
                Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                Py_ssize_t groups, int num_threads):
    """Channels-last twin of :func:`conv2d_nchw`.

    ``xp`` is ``(N, Hp, Wp, C)``, ``w`` is HWIO ``(KH, KW, C/groups, K)``, ``out``
    is ``(N, OH, OW, K)``. Parallel over ``(n, oh)`` output rows; the innermost
    loop runs over contiguous output channels.
    """
    cdef Py_ssize_t N = out.shape[0], OH = out.shape[1], OW = out.shape[2], K = out.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], Cg = w.shape[2]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t t, n, oh, ow, kh, kw, g, c, k
    cdef acc_t xv
    cdef acc_t* opix
    cdef const acc_t* xpix
    cdef const acc_t* wrow
    for t in prange(N * OH, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // OH
        oh = t - n * OH
        for ow in range(OW):
            opix = &out[n, oh, ow, 0]
            for k in range(K):
                opix[k] = bias[k]
            for kh in range(KH):
                for kw in range(KW):
                    xpix = &xp[n, oh * SH + kh * DH, ow * SW + kw * DW, 0]
                    for g in range(groups):
                        for c in range(Cg):
                            xv = xpix[g * Cg + c]
                            wrow = &w[kh, kw, c, g * Kg]
                            for k in range(Kg):
                                opix[g * Kg + k] += xv * wrow[k]


# ---------------------------------------------------------------------------
# Register-tiled direct convolution: Cython owns the loops, blocking and
# parallel split; conv_tile.h owns the innermost tile (8 output channels x one
# vector of output columns), compiled for several instruction sets.

from libc.limits cimport INT_MAX
from libc.stddef cimport ptrdiff_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

cdef extern from "transpose_tile.h" nogil:
    void fc_transpose_block_u32(const uint32_t* src, Py_ssize_t src_row, uint32_t* dst, Py_ssize_t dst_row,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fc_transpose_block_u64(const uint64_t* src, Py_ssize_t src_row, uint64_t* dst, Py_ssize_t dst_row,
                                Py_ssize_t rows, Py_ssize_t cols)

cdef extern from "prefetch.h" nogil:
    void fc_prefetch_runs(const void* p, ptrdiff_t runs, ptrdiff_t stride, ptrdiff_t nbytes) noexcept

cdef extern from "pack_shuffle.h" nogil:
    void fc_deinterleave_f32(float* evens, float* odds, const float* src, ptrdiff_t n) noexcept
    void fc_deinterleave_f64(double* evens, double* odds, const double* src, ptrdiff_t n) noexcept
    void fc_interleave_f32(float* dst, const float* evens, const float* odds, ptrdiff_t n, int stream) noexcept
    void fc_store_fence() noexcept
    void fc_interleave4_f32(float* dst, ptrdiff_t step, const float* s0, const float* s1, const float* s2,
                            const float* s3, ptrdiff_t n) noexcept
    void fc_interleave2_f64(double* dst, ptrdiff_t step, const double* s0, const double* s1,
                            ptrdiff_t n) noexcept
    int fc_interleave4_finite_f32(float* dst, ptrdiff_t step, const float* s0, const float* s1, const float* s2,
                                  const float* s3, ptrdiff_t n) noexcept
    int fc_interleave2_finite_f64(double* dst, ptrdiff_t step, const double* s0, const double* s1,
                                  ptrdiff_t n) noexcept
    bint fc_nonfinite_f32(float v) noexcept
    bint fc_nonfinite_f64(double v) noexcept

cdef extern from "conv_tile.h" nogil:
    ctypedef void (*fc_tile_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*,
                                    const float*, float*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_tile_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*,
                                    const double*, double*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_tailblocks_f32_fn)(const float*, ptrdiff_t, int, const float*, ptrdiff_t, const float*,
                                          float*, ptrdiff_t, int) noexcept
    ctypedef void (*fc_tailblocks_f64_fn)(const double*, ptrdiff_t, int, const double*, ptrdiff_t, const double*,
                                          double*, ptrdiff_t, int) noexcept
    ctypedef void (*fc_wtile_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, const ptrdiff_t*, int, const float*,
                                     ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, float*,
                                     ptrdiff_t) noexcept
    ctypedef void (*fc_wtile_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, const ptrdiff_t*, int, const double*,
                                     ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, double*,
                                     ptrdiff_t) noexcept
    ctypedef void (*fc_ocwtile_f32_fn)(const float*, const ptrdiff_t*, int, ptrdiff_t, ptrdiff_t, int, int,
                                       const float*, int, float*) noexcept
    ctypedef void (*fc_ocwtile_f64_fn)(const double*, const ptrdiff_t*, int, ptrdiff_t, ptrdiff_t, int, int,
                                       const double*, int, double*) noexcept
    ctypedef void (*fc_dwplane_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, const float*, ptrdiff_t, float,
                                       float*, int, int) noexcept
    ctypedef void (*fc_dwplane_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, const double*, ptrdiff_t,
                                       double, double*, int, int) noexcept
    ctypedef void (*fc_dwlanes_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, float*,
                                       ptrdiff_t, int, int, const ptrdiff_t*, int, int, int, const float*,
                                       const float*, float*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_dwlanes_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, double*,
                                       ptrdiff_t, int, int, const ptrdiff_t*, int, int, int, const double*,
                                       const double*, double*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_dwlanes_wgrad_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                             const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int,
                                             int, int, float*, float*, ptrdiff_t, int, int, const ptrdiff_t*, int,
                                             int, int, float*, int, int) noexcept
    ctypedef void (*fc_dwlanes_wgrad_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t,
                                             const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int,
                                             int, int, double*, double*, ptrdiff_t, int, int, const ptrdiff_t*,
                                             int, int, int, double*, int, int) noexcept
    ctypedef void (*fc_dwlanes_gradin_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int,
                                              float*, float*, ptrdiff_t, ptrdiff_t, int, int, const ptrdiff_t*,
                                              int, int, int, const float*, float*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_dwlanes_gradin_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int,
                                              double*, double*, ptrdiff_t, ptrdiff_t, int, int, const ptrdiff_t*,
                                              int, int, int, const double*, double*, ptrdiff_t, int, int) noexcept
    ctypedef void (*fc_dwnhwc_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int,
                                      int, int, int, int, const float*, ptrdiff_t, const float*, float*, ptrdiff_t,
                                      int, int, int) noexcept
    ctypedef void (*fc_dwnhwc_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int,
                                      int, int, int, int, const double*, ptrdiff_t, const double*, double*,
                                      ptrdiff_t, int, int, int) noexcept
    ctypedef void (*fc_dwnhwc_wgrad_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t,
                                            ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int, int, int,
                                            int, int, int, int, int, int, float*) noexcept
    ctypedef void (*fc_dwnhwc_wgrad_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, ptrdiff_t, const double*,
                                            ptrdiff_t, ptrdiff_t, ptrdiff_t, int, int, int, int, int, int, int, int,
                                            int, int, int, int, int, int, int, int, double*) noexcept
    ctypedef void (*fc_pwgw_f32_fn)(const float*, ptrdiff_t, ptrdiff_t, int, int, const float*, ptrdiff_t, int,
                                    ptrdiff_t, const float*, float*, ptrdiff_t, int) noexcept
    ctypedef void (*fc_pwgw_f64_fn)(const double*, ptrdiff_t, ptrdiff_t, int, int, const double*, ptrdiff_t, int,
                                    ptrdiff_t, const double*, double*, ptrdiff_t, int) noexcept
    ctypedef void (*fc_rowtile_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*, float,
                                       float*, ptrdiff_t, ptrdiff_t, int) noexcept
    ctypedef void (*fc_rowtile_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*, double,
                                       double*, ptrdiff_t, ptrdiff_t, int) noexcept
    ctypedef void (*fc_gtile_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*,
                                     const float*, float*, ptrdiff_t, int, const ptrdiff_t*, const ptrdiff_t*,
                                     int) noexcept
    ctypedef void (*fc_gtile_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*,
                                     const double*, double*, ptrdiff_t, int, const ptrdiff_t*,
                                     const ptrdiff_t*, int) noexcept
    ctypedef void (*fc_band_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*,
                                    const float*, float*, ptrdiff_t, int, int, ptrdiff_t, ptrdiff_t, int,
                                    const ptrdiff_t*, int) noexcept
    ctypedef void (*fc_band_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*,
                                    const double*, double*, ptrdiff_t, int, int, ptrdiff_t, ptrdiff_t, int,
                                    const ptrdiff_t*, int) noexcept
    ctypedef void (*fc_addrow_f32_fn)(float*, const float*, int)
    ctypedef void (*fc_addrow_f64_fn)(double*, const double*, int)
    ctypedef void (*fc_ocrows_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*,
                                      const float*, float*, ptrdiff_t, int, ptrdiff_t) noexcept
    ctypedef void (*fc_ocrows_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*,
                                      const double*, double*, ptrdiff_t, int, ptrdiff_t) noexcept
    ctypedef void (*fc_ocsplit_f32_fn)(const float*, ptrdiff_t, const ptrdiff_t*, int, int, const float*,
                                       const float*, float*, ptrdiff_t, int, int, int, ptrdiff_t) noexcept
    ctypedef void (*fc_ocsplit_f64_fn)(const double*, ptrdiff_t, const ptrdiff_t*, int, int, const double*,
                                       const double*, double*, ptrdiff_t, int, int, int, ptrdiff_t) noexcept
    enum:
        FC_DWWTILE_TAPS
        FC_ROWS
        FC_OCSPLIT_MIN
        FC_OCSPLIT_MAX
        FC_ROWS_KH_CHANNELS
        FC_OCROWS_Q
        FC_EDGE_ROW14
        FC_EDGE_ROWS7
        FC_EDGE_ROW7
        FC_EDGE_ROW14_LEFT
        FC_EDGE_ROW14_RIGHT
        FC_EDGE_ROW14_INNER
        FC_TAIL_COLS
        FC_TAIL1_BLOCKS
        FC_TAIL4_BLOCKS
    ctypedef struct fc_tiles:
        fc_tile_f32_fn f32
        fc_tile_f64_fn f64
        fc_tile_f32_fn dw32
        fc_tile_f64_fn dw64
        fc_tile_f32_fn half32
        fc_tile_f64_fn half64
        fc_tile_f32_fn halfdw32
        fc_tile_f64_fn halfdw64
        fc_tile_f32_fn oc32
        fc_tile_f64_fn oc64
        fc_ocwtile_f32_fn ocwt32
        fc_ocwtile_f64_fn ocwt64
        fc_dwplane_f32_fn dwplane32
        fc_dwplane_f64_fn dwplane64
        fc_wtile_f32_fn wt32
        fc_wtile_f64_fn wt64
        fc_wtile_f32_fn dwwt32
        fc_wtile_f64_fn dwwt64
        int width_f32
        int width_f64
        int half_f32
        int half_f64
        int oc_block_f32
        int oc_block_f64
        int oc_cols
        int level
        fc_tile_f32_fn wide32
        fc_tile_f64_fn wide64
        fc_tile_f32_fn wide3_32
        fc_tile_f64_fn wide3_64
        fc_tile_f32_fn narrow32
        fc_tile_f64_fn narrow64
        int narrow_vectors
        fc_rowtile_f32_fn rows32
        fc_rowtile_f64_fn rows64
        int rows_channels
        fc_rowtile_f32_fn rows_kh32[3]
        fc_rowtile_f64_fn rows_kh64[3]
        const fc_ocrows_f32_fn* ocrows32
        const fc_ocrows_f64_fn* ocrows64
        int wt_taps
        fc_ocwtile_f32_fn ocw1t32
        fc_ocwtile_f64_fn ocw1t64
        fc_addrow_f32_fn addrow32
        fc_addrow_f64_fn addrow64
        fc_tile_f32_fn pw32
        fc_tile_f64_fn pw64
        fc_gtile_f32_fn gather32
        fc_gtile_f64_fn gather64
        fc_gtile_f32_fn gather6x2_32
        fc_gtile_f64_fn gather6x2_64
        fc_band_f32_fn band32
        fc_band_f64_fn band64
        fc_ocsplit_f32_fn ocsplit32
        fc_ocsplit_f64_fn ocsplit64
        const fc_ocrows_f32_fn* ocedge32
        const fc_ocrows_f64_fn* ocedge64
        fc_tile_f32_fn pwnext32
        fc_tile_f64_fn pwnext64
        fc_tile_f32_fn tail32
        fc_tile_f64_fn tail64
        fc_dwlanes_f32_fn dwlanes32
        fc_dwlanes_f64_fn dwlanes64
        fc_dwlanes_wgrad_f32_fn dwlanes_wgrad32
        fc_dwlanes_wgrad_f64_fn dwlanes_wgrad64
        fc_dwlanes_gradin_f32_fn dwlanes_gradin32
        fc_dwlanes_gradin_f64_fn dwlanes_gradin64
        fc_dwnhwc_f32_fn dwnhwc32
        fc_dwnhwc_f64_fn dwnhwc64
        fc_dwnhwc_wgrad_f32_fn dwnhwc_wgrad32
        fc_dwnhwc_wgrad_f64_fn dwnhwc_wgrad64
        fc_tailblocks_f32_fn tail1x8_32
        fc_tailblocks_f64_fn tail1x8_64
        fc_tailblocks_f32_fn tail4x4_32
        fc_tailblocks_f64_fn tail4x4_64
        fc_pwgw_f32_fn pwgw32
        fc_pwgw_f64_fn pwgw64
        int pwgw_rows
    const fc_tiles* fc_active_tiles() noexcept
    const fc_tiles* fc_level_tiles(int level) noexcept
    int fc_select_level(int level) noexcept
    int fc_cpu_level() noexcept

ctypedef fused real_t:
    float
    double

#: Names of the instruction-set levels, indexed by level number.
SIMD_LEVELS = ("baseline", "avx2", "avx512")
cdef enum:
    TILE_SLACK = 16  # largest tile width (elements) of any level
    CACHE_LINE = 64  # bytes; packed buffers start at a multiple of it
    PACK_CHANNELS = 8  # input channels of a block whose weights _pack_block asks for at a time
    PACK_ROW_RUN = 64  # weights of a row a part of a convolution's own weight takes, at least (_pack_block)
    IN_PLACE_ALIAS_BYTES = 4096  # channel rows this far apart (or a multiple) are copied (conv2d_pointwise)
    ADJOINT_RUNS_AHEAD = 16  # rows _pack_adjoint_runs asks for before it copies them
    COPY_PIXELS_BAND = 4096  # items of a band's input rows _pack_column_copies_pixels transposes on the stack
    EDGE_COLUMNS_FLAG = 1
    EDGE_TOP_ROW_FLAG = 2
    EDGE_BOTTOM_ROW_FLAG = 4

#: Largest tile width (elements) of any level: inputs read past a row end need this much slack.
MAX_TILE_WIDTH = TILE_SLACK
ROW_TILE_ROWS = FC_ROWS  # output rows of a row tile
COPY_PIXELS_BAND_ITEMS = COPY_PIXELS_BAND  # a band's input items _pack_column_copies_pixels stages
ROW_TILE_CHANNELS = FC_ROWS_KH_CHANNELS  # most live channels of a block that runs row tiles
#: Flags of ``edges`` (:func:`_octile_plane`): rows of 14 or 7 output columns between zero
#: padding (3x3, stride 1) leave out the padding columns' products; with EDGE_COLUMNS, the plane's
#: first row (padded above) leaves out kernel row 0's and its last (padded below) kernel row 2's.
EDGE_COLUMNS = EDGE_COLUMNS_FLAG
EDGE_TOP_ROW = EDGE_TOP_ROW_FLAG
EDGE_BOTTOM_ROW = EDGE_BOTTOM_ROW_FLAG


cdef void* _calloc_aligned(size_t count, size_t size, bint zeroed=True) noexcept nogil:
    """``count`` zeroed elements of ``size`` bytes at a 64-byte boundary, or NULL.

    Release with :func:`_free_aligned`. Large ``malloc`` blocks start 16 bytes past
    a page boundary: without this, every AVX-512 vector load from a packed buffer
    (weights, grad tiles) would straddle two cache lines. The block's own address
    is kept in the word before the aligned one. Not zeroed with ``zeroed`` False
    (for buffers written whole before they are read: no ``memset`` of reused memory).
    """
    if size != 0 and count > (<size_t>-1 - 2 * CACHE_LINE) // size:
        return NULL
    cdef char* memory = <char*>(calloc(count * size + 2 * CACHE_LINE, 1) if zeroed
                                else malloc(count * size + 2 * CACHE_LINE))
    if memory == NULL:
        return NULL
    cdef char* aligned = <char*>((<uintptr_t>memory + 2 * CACHE_LINE) & ~(<uintptr_t>(CACHE_LINE - 1)))
    (<void**>aligned - 1)[0] = memory
    return aligned


cdef void _free_aligned(void* aligned) noexcept nogil:
    """Release a block of :func:`_calloc_aligned` (NULL does nothing)."""
    if aligned != NULL:
        free((<void**>aligned - 1)[0])


def cpu_level():
    """Highest SIMD level (index into SIMD_LEVELS) this CPU and build support."""
    return fc_cpu_level()


def select_level(int level):
    """Use SIMD level ``level`` (clamped to what the CPU supports); return the level in force."""
    return fc_select_level(level)


def current_level():
    """SIMD level in force."""
    return fc_active_tiles().level


def tile_width(dtype_char, int level=-1):
    """Output columns per tile at ``level`` (default: the current one): ``'f'`` float32, ``'d'`` float64."""
    cdef const fc_tiles* tiles = fc_active_tiles() if level < 0 else fc_level_tiles(level)
    return tiles.width_f32 if dtype_char == "f" else tiles.width_f64


def half_tile_width(dtype_char, int level=-1):
    """Output columns per half tile at ``level``, as :func:`tile_width` (the full width where there are none)."""
    cdef const fc_tiles* tiles = fc_active_tiles() if level < 0 else fc_level_tiles(level)
    return tiles.half_f32 if dtype_char == "f" else tiles.half_f64


def narrow_tile_vectors(int level=-1):
    """Vectors of columns a narrow tile (4 output channels, for blocks of at most 4) takes at ``level``.

    As :func:`tile_width`; 0 where there are no narrow tiles.
    """
    cdef const fc_tiles* tiles = fc_active_tiles() if level < 0 else fc_level_tiles(level)
    return tiles.narrow_vectors if tiles.narrow32 != NULL else 0


def has_one_vector_weight_tiles(int level):
    """Whether SIMD level ``level`` has weight-gradient output-channel tiles of one vector of channels."""
    return fc_level_tiles(level).ocw1t32 != NULL


def weight_tile_taps(int level):
    """Taps a weight-gradient column tile takes per pass at SIMD level ``level`` (``wt_taps``)."""
    return fc_level_tiles(level).wt_taps


def oc_tile_shape(int level, dtype_char):
    """``(channels, columns)`` of the output-channel tile of SIMD level ``level``.

    ``'f'`` float32, ``'d'`` float64. Weights for it are packed in blocks of
    ``channels`` output channels; one tile takes at most ``columns`` columns.
    """
    cdef const fc_tiles* tiles = fc_level_tiles(level)
    return (tiles.oc_block_f32 if dtype_char == "f" else tiles.oc_block_f64), tiles.oc_cols


def has_edge_tiles(int level):
    """Whether SIMD level ``level`` has the edge tiles (see :func:`fastconv._conv.edges`)."""
    return fc_level_tiles(level).ocedge32 != NULL


cdef const fc_tiles* _tiles_for(int oc_level, Py_ssize_t* block, bint is_float) noexcept nogil:
    """The active tiles (``block`` = 8), or level ``oc_level``'s when it is >= 0 (its channel block)."""
    cdef const fc_tiles* tiles
    if oc_level < 0:
        block[0] = 8
        return fc_active_tiles()
    tiles = fc_level_tiles(oc_level)
    block[0] = tiles.oc_block_f32 if is_float else tiles.oc_block_f64
    return tiles


cdef bint _rows_finite(const real_t* p, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    """Whether ``n`` elements ``step`` apart are finite: exponent bits not all ones.

    Integer tests without branches, so the unit-step loop vectorizes (spelt
    out per type: a fused helper with the mask as an argument did not, and ran
    half as fast).
    """
    cdef Py_ssize_t i
    cdef uint32_t bad32 = 0
    cdef uint64_t bad64 = 0
    cdef const uint32_t* p32 = <const uint32_t*>p
    cdef const uint64_t* p64 = <const uint64_t*>p
    if real_t is float:
        if step == 1:
            for i in range(n):
                bad32 |= (p32[i] & 0x7f800000u) == 0x7f800000u
        else:
            for i in range(n):
                bad32 |= (p32[i * step] & 0x7f800000u) == 0x7f800000u
        return bad32 == 0
    else:
        if step == 1:
            for i in range(n):
                bad64 |= (p64[i] & 0x7ff0000000000000u) == 0x7ff0000000000000u
        else:
            for i in range(n):
                bad64 |= (p64[i * step] & 0x7ff0000000000000u) == 0x7ff0000000000000u
        return bad64 == 0


cdef bint _plane_finite(const real_t[:, :, :, :] x, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """Whether every element of the plane ``x[n, c]`` is finite: one run where its rows are
    contiguous and back to back (a 14-pixel row at a time cost the depthwise weight gradient
    of 512 channels on 14x14 11 %), else row by row."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], h
    cdef Py_ssize_t step = x.strides[3] // <Py_ssize_t>sizeof(real_t)
    if H == 0 or W == 0:
        return True
    if step == 1 and x.strides[2] == W * <Py_ssize_t>sizeof(real_t):
        return _rows_finite(&x[n, c, 0, 0], H * W, 1)
    for h in range(H):
        if not _rows_finite(&x[n, c, h, 0], W, step):
            return False
    return True


cdef struct PackSource:
    # where _pack_block finds weight (output channel k, input channel c, tap t) of group g of what it
    # packs: element g*group_step + k*k_step + c*c_step + (taps[t] if taps else t) of the weight given
    Py_ssize_t group_step
    Py_ssize_t k_step
    Py_ssize_t c_step
    const ptrdiff_t* taps
    # filters that are output pixels of a strided 1x1 NHWC convolution (_pixel_source; 0: none): filter
    # k = (n*rows + r)*row_filters + j at n*image_step + r*row_step + j*k_step (one group, one tap)
    Py_ssize_t row_filters
    Py_ssize_t rows
    Py_ssize_t row_step
    Py_ssize_t image_step


cdef PackSource _pack_source(Py_ssize_t wk, Py_ssize_t wc, Py_ssize_t wt, Py_ssize_t K, Py_ssize_t cg,
                             Py_ssize_t ntaps, Py_ssize_t groups, adjoint_taps, str caller,
                             hwio_taps=None) except *:
    """Where :func:`_pack_block` reads the ``(K, cg, ntaps)`` weights of ``groups`` groups it packs.

    The weight given is C-contiguous ``(wk, wc, wt)``. Without
    ``adjoint_taps`` it is what is packed: ``(K, cg, ntaps)``. With them, it
    is a convolution's weight and what is packed is its adjoint's (the
    input gradient's): output channel ``g*wc + c`` and input channel ``k``
    of group ``g`` are the forward's input channel ``c`` and output channel
    ``g*(wk//groups) + k``, and tap ``t`` is forward tap ``adjoint_taps[t]``,
    so ``K = groups*wc``, ``cg = wk//groups`` and ``ntaps =
    len(adjoint_taps)``. Every element :func:`_pack_block` reads is then
    inside the weight (checked here: the kernels index it unchecked).
    Raises ValueError naming ``caller`` otherwise.

    With ``hwio_taps`` (intp), the weight given is an HWIO one, ``(wk, wc,
    wt)`` = ``(taps, cg, K)`` C-contiguous, read in place (an NHWC
    convolution's weight, not transposed first): without ``adjoint_taps``
    what is packed is its OIHW ``(K, cg, taps)``, and ``hwio_taps[t]`` must
    be ``t * cg * K``; with them, its adjoint's ``(groups * wc, wt //
    groups, len(adjoint_taps))``, and ``hwio_taps[t]`` must be
    ``adjoint_taps[t] * wc * wt``.
    """
    cdef PackSource source
    source.row_filters = 0
    cdef const ptrdiff_t[::1] at
    cdef Py_ssize_t t
    if groups < 1 or K % groups or ntaps < 1 or min(wk, wc, wt) < 1:
        raise ValueError(f"{caller}: the weight must be (K, cg, taps), the groups must divide K, and a kernel "
                         "needs a tap")
    cdef const ptrdiff_t[::1] adjoint
    if hwio_taps is not None:
        at = hwio_taps
        if at.shape[0] != ntaps:
            raise ValueError(f"{caller}: one HWIO tap offset a tap packed")
        if adjoint_taps is None:
            if wk != ntaps or wc != cg or wt != K:
                raise ValueError(f"{caller}: an HWIO weight must be (taps, cg, K)")
            for t in range(ntaps):
                if at[t] != t * cg * K:
                    raise ValueError(f"{caller}: the HWIO taps must be t * cg * K")
            source.group_step, source.k_step, source.c_step, source.taps = K // groups, 1, K, &at[0]
            return source
        adjoint = adjoint_taps
        if wt % groups or K != groups * wc or cg != wt // groups or adjoint.shape[0] != ntaps:
            raise ValueError(f"{caller}: the adjoint of an HWIO (taps', cg', K') weight is (groups * cg', "
                             "K' // groups, len(adjoint_taps))")
        for t in range(ntaps):
            if not 0 <= adjoint[t] < wk or at[t] != adjoint[t] * wc * wt:
                raise ValueError(f"{caller}: the HWIO taps must be adjoint_taps * cg' * K', each a tap of the weight")
        source.group_step, source.k_step, source.c_step, source.taps = wt // groups, wt, 1, &at[0]
        return source
    if adjoint_taps is None:
        if wk != K or wc != cg or wt != ntaps:
            raise ValueError(f"{caller}: the weight must be (K, cg, taps)")
        source.group_step, source.k_step, source.c_step, source.taps = K // groups * cg * ntaps, cg * ntaps, ntaps, NULL
        return source
    at = adjoint_taps
    if wk % groups:
        raise ValueError(f"{caller}: the groups must divide the weight's output channels")
    if K != groups * wc or cg != wk // groups or at.shape[0] != ntaps:
        raise ValueError(f"{caller}: the adjoint of a (K', cg', taps') weight is (groups * cg', K' // groups, "
                         "len(adjoint_taps))")
    for t in range(ntaps):
        if not 0 <= at[t] < wt:
            raise ValueError(f"{caller}: an adjoint tap is not a tap of the weight")
    source.group_step, source.k_step, source.c_step, source.taps = wk // groups * wc * wt, wt, wc * wt, &at[0]
    return source


cdef PackSource _pixel_source(Py_ssize_t wk, Py_ssize_t wc, Py_ssize_t wt, Py_ssize_t K, Py_ssize_t C,
                              filter_pixels, str caller) except *:
    """Where :func:`_pack_pixel_block` reads filters that are the pixels a strided 1x1 NHWC convolution reads.

    The weight given is C-contiguous ``(wk, wc, wt)`` = ``(N*H*W, C, 1)``:
    an NHWC input's pixels, each a row of ``C`` channels. ``filter_pixels``
    is ``(H, W, OH, OW, sh, sw)``: filter ``k`` is output pixel ``k`` of the
    ``N`` images' ``(OH, OW)`` outputs, image after image, which reads input
    pixel ``(oh*sh, ow*sw)``; so ``K == N*OH*OW``. Every pixel read is then
    inside the weight (checked here: the kernels index it unchecked).
    Raises ValueError naming ``caller`` otherwise.
    """
    cdef Py_ssize_t H, W, OH, OW, sh, sw
    H, W, OH, OW, sh, sw = filter_pixels
    if min(H, W, OH, OW, sh, sw) < 1 or (OH - 1) * sh >= H or (OW - 1) * sw >= W:
        raise ValueError(f"{caller}: filter_pixels must be (H, W, OH, OW, sh, sw), each output pixel reading "
                         "an input pixel")
    if wt != 1 or wc != C or wk % (H * W) or K != wk // (H * W) * OH * OW:
        raise ValueError(f"{caller}: filters from pixels need a (N*H*W, C, 1) weight and N*OH*OW filters")
    cdef PackSource source
    source.group_step, source.k_step, source.c_step, source.taps = 0, sw * C, 1, NULL
    source.row_filters, source.rows, source.row_step, source.image_step = OW, OH, sh * W * C, H * W * C
    return source


def pack_weights(const real_t[:, :, ::1] weight, bias, real_t[::1] w_packed, real_t[::1] bias_packed,
                 Py_ssize_t groups, Py_ssize_t block, int num_threads, adjoint_taps=None,
                 bint check_finite=False, hwio_taps=None):
    """Pack ``(K, Cg, taps)`` weights and a ``(K,)`` bias (or None: zeros) in blocks for the tiles.

    ``w_packed`` is ``[group][block of channels][c][tap][channel in block]``
    and ``bias_packed`` ``[group][block of channels][channel in block]``;
    lanes past a group's last channel are zero. One pass, parallel over blocks.

    With ``adjoint_taps`` (intp), ``weight`` is a convolution's own ``(K',
    Cg', taps')`` and what is packed is its adjoint's, the input gradient's
    weight: ``(groups * Cg', K' // groups, len(adjoint_taps))``, whose tap
    ``t`` is tap ``adjoint_taps[t]`` of the forward kernel (reversed, and for
    a stride phase only the taps that reach it): see :func:`_pack_source`.

    With ``hwio_taps``, ``weight`` is an HWIO ``(taps, Cg, K)`` one, packed
    as its OIHW layout would be, or its adjoint as the OIHW one's (see
    :func:`_pack_source`).

    Returns None, or with ``check_finite`` whether every weight packed is
    finite (each block checked as it is packed, as :func:`conv2d_packed`
    does for the edge tiles). Raises MemoryError if the check's flags cannot
    be allocated.
    """
    cdef Py_ssize_t K = weight.shape[0], cg = weight.shape[1], ntaps = weight.shape[2]
    if adjoint_taps is not None and groups >= 1:  # what is packed is the adjoint (_pack_source checks the rest)
        K, ntaps = groups * weight.shape[1], len(adjoint_taps)
        cg = (weight.shape[2] if hwio_taps is not None else weight.shape[0]) // groups
    elif hwio_taps is not None:
        K, ntaps = weight.shape[2], weight.shape[0]
    cdef PackSource source = _pack_source(weight.shape[0], weight.shape[1], weight.shape[2], K, cg, ntaps,
                                          groups, adjoint_taps, "pack_weights", hwio_taps)
    if block < 1:
        raise ValueError("pack_weights: a block needs at least one channel")
    cdef Py_ssize_t kg = K // groups, blocks = (kg + block - 1) // block
    cdef Py_ssize_t per_block = cg * ntaps * block
    if w_packed.shape[0] != groups * blocks * per_block or bias_packed.shape[0] != groups * blocks * block:
        raise ValueError("pack_weights: packed arrays of the wrong size")
    cdef const real_t[::1] b
    cdef bint has_bias = bias is not None
    if has_bias:
        b = bias
        if b.shape[0] != K:
            raise ValueError("pack_weights: one bias per output channel")
    cdef Py_ssize_t r
    cdef char* nonfinite = NULL  # a flag per block (see conv2d_packed)
    if check_finite:
        nonfinite = <char*>calloc(max(1, groups * blocks), 1)
        if nonfinite == NULL:
            raise MemoryError("pack_weights: cannot allocate the weights' finiteness flags")
    cdef Py_ssize_t parts = max(1, min(num_threads, blocks)), part
    if (source.taps != NULL and source.k_step == 1 and ntaps == 1 and groups == 1 and block == 8
            and nonfinite == NULL):  # the adjoint of a 1x1 kernel: a part of its blocks a thread, row by row
        for part in prange(parts, nogil=True, num_threads=num_threads, schedule="static"):
            _pack_pointwise_blocks(&weight[0, 0, 0], &source, &b[0] if has_bias else NULL,
                                   &w_packed[0] + part * blocks // parts * per_block,
                                   &bias_packed[0] + part * blocks // parts * block, part * blocks // parts,
                                   (part + 1) * blocks // parts, kg, cg)
        return None
    for r in prange(groups * blocks, nogil=True, num_threads=num_threads, schedule="static"):
        _pack_block(&weight[0, 0, 0], &source, &b[0] if has_bias else NULL, &w_packed[0] + r * per_block,
                    &bias_packed[0] + r * block, r, blocks, kg, cg, ntaps, block,
                    nonfinite + r if nonfinite != NULL else NULL)
    if not check_finite:
        return None
    cdef bint finite = _none_set(nonfinite, groups * blocks)
    free(nonfinite)
    return finite


cdef void _pack_block(const real_t* weight, const PackSource* source, const real_t* bias, real_t* w_dst,
                      real_t* b_dst, Py_ssize_t r, Py_ssize_t blocks, Py_ssize_t kg, Py_ssize_t cg,
                      Py_ssize_t ntaps, Py_ssize_t block, char* nonfinite=NULL) noexcept nogil:
    """Block ``r`` (group ``r // blocks``) of ``(K, cg, ntaps)`` weights, read as ``source`` says, and a bias (or NULL).

    ``w_dst`` gets ``[c][tap][channel in block]``, ``b_dst`` ``[channel in
    block]``; lanes past the group's last channel are zero.

    ``PACK_CHANNELS`` input channels at a time (:func:`_pack_channels`), or
    for a convolution's own weight with fewer than 8 taps enough channels
    for ``PACK_ROW_RUN`` weights of each row (64 channels of a pointwise
    weight: its packing 1.19-1.72x as fast as in parts of 8, a 3-tap
    weight's 1.04x; an adjoint's parts of 64 ran 0.76x), each
    part asking first for the next one's weights (:func:`fc_prefetch_runs`):
    for a convolution's own weight, ``live`` rows of them ``cg x taps``
    apart, of which each channel takes a run of ``taps``; for an adjoint, a
    run of ``live x taps`` per channel. The weights come from DRAM or L3 (a
    network's weights are read once per pass). An adjoint's 512 channels of
    3x3 (9.4 MB, cold caches, one thread, Intel Xeon): 2.6 ms item by item,
    1.8 ms with the prefetch; copying row after row of the weight instead
    ran 1.4-1.5x slower.

    With ``nonfinite`` (not NULL), ``nonfinite[0]`` is set to 1 if a weight
    packed is not finite, and left as it is otherwise: checked in the
    copy's registers (:func:`_pack_channels`). A pass over each part after
    it was packed made the packing of 512 channels of 3x3 (9.4 MB, one
    thread) 1.31x slower, 128 channels 1.47x.
    """
    cdef Py_ssize_t g = r // blocks, kb = r % blocks
    cdef Py_ssize_t k0 = g * kg + kb * block
    cdef Py_ssize_t live = min(block, kg - kb * block)  # channels of this block that exist
    cdef Py_ssize_t j, c, t, c0, c1, part
    cdef Py_ssize_t k_bytes = source.k_step * <Py_ssize_t>sizeof(real_t)
    cdef Py_ssize_t c_bytes = source.c_step * <Py_ssize_t>sizeof(real_t)
    cdef const real_t* first = weight + g * source.group_step + kb * block * source.k_step
    # input channels a part: PACK_CHANNELS, or for a convolution's own weight with few taps enough
    # for a run of about PACK_ROW_RUN weights of each row
    cdef Py_ssize_t part_channels = PACK_CHANNELS
    if source.k_step >= source.c_step:
        part_channels = max(PACK_CHANNELS, PACK_ROW_RUN // ntaps)
    for part in range((cg + part_channels - 1) // part_channels):
        c0 = part * part_channels
        c1 = min(cg, c0 + part_channels)
        if c1 < cg:  # the next part's weights, while these are copied
            if source.k_step >= source.c_step:  # (rows of channels: the next channels' part of each)
                fc_prefetch_runs(first + c1 * source.c_step, live, k_bytes, min(part_channels, cg - c1) * c_bytes)
            else:  # (a run of the block's channels per channel)
                fc_prefetch_runs(first + c1 * source.c_step, min(part_channels, cg - c1), c_bytes, live * k_bytes)
        if _pack_channels(first, source, w_dst, c0, c1, live, ntaps, block, nonfinite != NULL):
            nonfinite[0] = 1
        for c in range(c0, c1):
            for t in range(ntaps):
                for j in range(live, block):
                    w_dst[(c * ntaps + t) * block + j] = 0
    for j in range(block):
        b_dst[j] = bias[k0 + j] if bias != NULL and j < live else 0


cdef inline bint _pack_channels(const real_t* first, const PackSource* source, real_t* w_dst, Py_ssize_t c0,
                                Py_ssize_t c1, Py_ssize_t live, Py_ssize_t ntaps, Py_ssize_t block,
                                bint check) noexcept nogil:
    """Input channels ``c0 <= c < c1`` of :func:`_pack_block`'s block: ``w_dst[(c*ntaps + t)*block + j]``, ``j < live``.

    Returns, with ``check``, whether a weight copied is not finite (checked
    in the copy's registers), and False without.

    ``first`` is the block's first weight in ``source``. Where a row (an
    output channel) holds these channels' taps as one run (a convolution's
    own weight), 4 rows at a time (2 in float64) go through a register
    transpose (:func:`fc_interleave4_f32`). 512 channels of 3x3 from L3 at
    one thread: 0.9 ms, against 1.2-1.4 ms item by item (from DRAM both
    wait on memory, 2.0-2.3 ms). The rest item by item.
    """
    cdef Py_ssize_t j = 0, jj, c, t, at
    cdef Py_ssize_t k = source.k_step, p0 = c0 * ntaps, count = (c1 - c0) * ntaps
    cdef const real_t* run = first + p0
    cdef bint bad = False
    cdef real_t v
    if source.taps == NULL and source.c_step == ntaps:
        if real_t is float:
            while j + 4 <= live:
                if check:
                    bad |= fc_interleave4_finite_f32(w_dst + p0 * block + j, block, run + j * k, run + (j + 1) * k,
                                                     run + (j + 2) * k, run + (j + 3) * k, count)
                else:
                    fc_interleave4_f32(w_dst + p0 * block + j, block, run + j * k, run + (j + 1) * k,
                                       run + (j + 2) * k, run + (j + 3) * k, count)
                j += 4
        else:
            while j + 2 <= live:
                if check:
                    bad |= fc_interleave2_finite_f64(w_dst + p0 * block + j, block, run + j * k, run + (j + 1) * k,
                                                     count)
                else:
                    fc_interleave2_f64(w_dst + p0 * block + j, block, run + j * k, run + (j + 1) * k, count)
                j += 2
    if j == live:
        return bad
    for c in range(c0, c1):
        for t in range(ntaps):
            at = c * source.c_step + (source.taps[t] if source.taps != NULL else t)
            for jj in range(j, live):
                v = first[at + jj * k]
                w_dst[(c * ntaps + t) * block + jj] = v
                if check:
                    bad |= fc_nonfinite_f32(v) if real_t is float else fc_nonfinite_f64(v)
    return bad


def conv2d_tiled(const real_t[::1] x, Py_ssize_t image_stride, Py_ssize_t channel_stride,
                 Py_ssize_t row_step, const ptrdiff_t[::1] taps, const real_t[::1] w_packed,
                 const real_t[::1] bias_packed, real_t[:, :, :, ::1] out, Py_ssize_t groups,
                 Py_ssize_t cg, bint depthwise, int num_threads, int oc_level=-1, int edges=0,
                 bint blocks_outer=False):
    """NCHW convolution by register tiles, parallel over (image, group, block of channels).

    ``x`` is the flat padded (and, for stride > 1, phase-split) input with
    slack at the end; tap ``t`` of output column ``ow`` of output row ``oh``
    reads ``x[n*image_stride + c*channel_stride + oh*row_step + taps[t] + ow]``.
    ``w_packed`` is ``(groups, blocks, cg, ntaps, 8)``, ``bias_packed``
    ``(groups, blocks, 8)``, zero-filled past each group's channels.

    ``depthwise`` (``groups == C == K``): the 8 channels of a block are 8
    groups, each reading its own plane; ``w_packed`` is ``(blocks, ntaps, 8)``
    and ``bias_packed`` ``(blocks, 8)``, and the loop runs over (image, block).

    ``oc_level >= 0`` (not with ``depthwise``) runs the output-channel tiles of
    that SIMD level instead, whose blocks hold ``oc_tile_shape(oc_level)[0]``
    channels: ``w_packed`` and ``bias_packed`` are packed in blocks of that size.

    The tile function and its width come from one table read once, so a level
    switched by another thread cannot pair one level's width with another's tile.
    The caller provides ``MAX_TILE_WIDTH`` elements of slack after the input
    when ``OW < MAX_TILE_WIDTH``; otherwise every read stays within valid columns.

    ``edges``: see :func:`_octile_plane` (the caller vouches for the
    geometry and for finite weights).

    The tasks go to the threads in order, image by image; with
    ``blocks_outer``, block by block (each block over every image in turn),
    so each thread reads its share of the weights once, not all of them once
    per image: for weights larger than the L2 cache. The same tiles either
    way: the same bits.
    """
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t block
    cdef const fc_tiles* tiles = _tiles_for(-1 if depthwise else oc_level, &block, real_t is float)
    cdef bint octile = oc_level >= 0 and not depthwise
    cdef Py_ssize_t kg = K // groups
    cdef Py_ssize_t blocks = (kg + block - 1) // block
    if depthwise:  # one "group" of K channels, 8 independent planes per block
        kg = K
        blocks = (K + 7) // 8
        groups = 1
    if (w_packed.shape[0] != groups * blocks * block * cg * taps.shape[0]
            or bias_packed.shape[0] != groups * blocks * block):
        raise ValueError("conv2d_tiled: weights not packed in blocks of this tile's channels")
    cdef Py_ssize_t ntaps = taps.shape[0]
    cdef Py_ssize_t t, n, r, g, kb, k0
    cdef const real_t* xbase
    for t in prange(N * groups * blocks, nogil=True, num_threads=num_threads, schedule="static"):
        if blocks_outer:
            r = t // N
            n = t - r * N
        else:
            n = t // (groups * blocks)
            r = t - n * (groups * blocks)
        g = r // blocks
        kb = r - g * blocks
        k0 = g * kg + kb * block
        xbase = &x[0] + n * image_stride + (k0 if depthwise else g * cg) * channel_stride
        if octile:
            _octile_plane(tiles, xbase, channel_stride, row_step, &taps[0], ntaps, cg,
                          &w_packed[0] + r * cg * ntaps * block, &bias_packed[0] + r * block, &out[n, k0, 0, 0],
                          OH, OW, OH * OW, min(block, kg - kb * block), 0, OH, 0, edges)
        else:
            _tile_plane(tiles, depthwise, xbase, channel_stride, row_step, &taps[0], ntaps, cg,
                        &w_packed[0] + r * cg * ntaps * 8, &bias_packed[0] + r * 8, &out[n, k0, 0, 0], OH, OW,
                        OH * OW, min(8, kg - kb * 8), 0, OH, 0)


cdef inline Py_ssize_t _pixel_step(Py_ssize_t ocs) noexcept nogil:
    """Items from one output pixel to the next where the output-channel tiles store with ``ocs``.

    1 for channel planes ``ocs`` apart; ``-ocs`` for pixels whose channels
    lie side by side (``ocs < 0``: NHWC, see ``FC_OC_STORE``).
    """
    return -ocs if ocs < 0 else 1


cdef void _octile_plane(const fc_tiles* tiles, const real_t* xbase, Py_ssize_t channel_stride,
                        Py_ssize_t row_step, const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t cg,
                        const real_t* wb, const real_t* bb, real_t* oplane, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t ocs, Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1,
                        Py_ssize_t in_row0, int edges) noexcept nogil:
    """Output rows ``oh0 <= oh < oh1`` of ``nk`` output planes (``ocs`` apart) by output-channel tiles.

    As :func:`_tile_plane`, whose arguments these are; but ``ocs`` < 0
    makes ``oplane`` pixels ``-ocs`` items apart, each pixel's ``nk``
    channels side by side (an NHWC output: :func:`_pixel_step`). With ``edges &
    EDGE_COLUMNS`` (a 3x3 kernel, stride 1, zero padding left and right of
    the row: see :func:`fastconv._conv.edge_columns`), rows of 14 columns
    (or 28, 42, ... in tiles of 14), or pairs of rows of 7 and a last
    single row, run the edge tiles
    (``tiles.ocedge32``) where the level has them: the tiles without the
    products of the padding columns. With ``EDGE_TOP_ROW`` too, the plane's
    row 0 leaves out the products of kernel row 0 (the padding above it);
    with ``EDGE_BOTTOM_ROW``, row ``OH - 1`` those of kernel row 2 (see
    :func:`fastconv._conv.edges`). A row's sums do not depend on the tile
    it is in: the same bits for any ``oh0``.

    A row is cut into the fewest segments of at most ``tiles.oc_cols`` columns,
    of sizes as even as they can be; each is one tile, which reads only the
    columns it computes. Rows of at most half that many columns run tiles
    over ``oc_cols // OW`` whole rows where the level has them (fewer loads
    of weights per multiply-add), and the rows left over one row at a time:
    every tile sums in the same order, so the results are the same bits.
    Where the level has tiles over two rows (``tiles.ocsplit32``: AVX2, 5 or
    6 columns) and rows are wider than a tile, the band's pixels, row after
    row, make the segments instead (:func:`_octile_split_band`).
    """
    cdef Py_ssize_t segments = (OW + tiles.oc_cols - 1) // tiles.oc_cols
    cdef Py_ssize_t oh, s, start, end, pst = _pixel_step(ocs)
    cdef bint edge = edges & EDGE_COLUMNS_FLAG and (OW == 7 or (OW > 0 and OW % 14 == 0)) and ntaps == 9
    if edge and (tiles.ocedge32 != NULL if real_t is float else tiles.ocedge64 != NULL):
        _octile_edge_rows(tiles, xbase, channel_stride, row_step, taps, cg, wb, bb, oplane, OH, OW, ocs, nk, oh0,
                          oh1, in_row0, edges)
        return
    if OW > FC_OCSPLIT_MAX and _octile_split_band(tiles, xbase, channel_stride, row_step, taps, ntaps, cg, wb, bb,
                                                 oplane, ocs, OW, nk, oh0, oh1, in_row0):
        return
    cdef Py_ssize_t rows = tiles.oc_cols // OW if 0 < OW < FC_OCROWS_Q else 0  # rows per whole-row tile
    cdef fc_ocrows_f32_fn r32 = NULL
    cdef fc_ocrows_f64_fn r64 = NULL
    if rows >= 2 and oh1 - oh0 >= rows:
        if real_t is float:
            r32 = tiles.ocrows32[OW] if tiles.ocrows32 != NULL else NULL
        else:
            r64 = tiles.ocrows64[OW] if tiles.ocrows64 != NULL else NULL
    if r32 != NULL or r64 != NULL:
        oh = oh0
        while oh + rows <= oh1:
            if real_t is float:
                r32(xbase + (oh - in_row0) * row_step, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                    oplane + oh * OW * pst, ocs, <int>nk, row_step)
            else:
                r64(xbase + (oh - in_row0) * row_step, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                    oplane + oh * OW * pst, ocs, <int>nk, row_step)
            oh = oh + rows
        oh0 = oh  # the rest: one row at a time
    for oh in range(oh0, oh1):
        for s in range(segments):
            start = s * OW // segments
            end = (s + 1) * OW // segments
            if real_t is float:
                tiles.oc32(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                           oplane + (oh * OW + start) * pst, ocs, <int>nk, <int>(end - start))
            else:
                tiles.oc64(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                           oplane + (oh * OW + start) * pst, ocs, <int>nk, <int>(end - start))


cdef void _octile_edge_rows(const fc_tiles* tiles, const real_t* xbase, Py_ssize_t channel_stride,
                            Py_ssize_t row_step, const ptrdiff_t* taps, Py_ssize_t cg, const real_t* wb,
                            const real_t* bb, real_t* oplane, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t ocs,
                            Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t in_row0,
                            int edges) noexcept nogil:
    """:func:`_octile_plane`'s rows ``oh0 <= oh < oh1`` by the edge tiles (``OW`` 7 or a multiple of 14, nine taps).

    Rows of 14 run one at a time, longer ones in tiles of 14 (the first
    without the left padding column's products, the last without the
    right's, those between without either), rows of 7 two at a time and a
    last odd one alone; a tile whose first row is row 0 takes the variant
    without kernel row 0 where ``edges`` has ``EDGE_TOP_ROW``, one whose
    last row is ``OH - 1`` the variant without kernel row 2 where it has
    ``EDGE_BOTTOM_ROW``.
    """
    cdef Py_ssize_t oh = oh0, rows, shape, s, segments = OW // 14 if OW != 7 else 1, pst = _pixel_step(ocs)
    cdef const real_t* xrow
    cdef int variant
    while oh < oh1:
        rows = 2 if OW == 7 and oh + 2 <= oh1 else 1
        variant = 0
        if oh == 0 and edges & EDGE_TOP_ROW_FLAG:
            variant = 1
        if oh + rows == OH and edges & EDGE_BOTTOM_ROW_FLAG:
            variant = variant + 2
        xrow = xbase + (oh - in_row0) * row_step
        for s in range(segments):
            if OW == 7:
                shape = FC_EDGE_ROWS7 if rows == 2 else FC_EDGE_ROW7
            elif segments == 1:
                shape = FC_EDGE_ROW14
            elif s == 0:
                shape = FC_EDGE_ROW14_LEFT
            elif s == segments - 1:
                shape = FC_EDGE_ROW14_RIGHT
            else:
                shape = FC_EDGE_ROW14_INNER
            if real_t is float:
                tiles.ocedge32[shape + variant](xrow + 14 * s, channel_stride, taps, 9, <int>cg, wb, bb,
                                                oplane + (oh * OW + 14 * s) * pst, ocs, <int>nk, row_step)
            else:
                tiles.ocedge64[shape + variant](xrow + 14 * s, channel_stride, taps, 9, <int>cg, wb, bb,
                                                oplane + (oh * OW + 14 * s) * pst, ocs, <int>nk, row_step)
        oh = oh + rows


cdef bint _octile_split_band(const fc_tiles* tiles, const real_t* xbase, Py_ssize_t channel_stride,
                             Py_ssize_t row_step, const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t cg,
                             const real_t* wb, const real_t* bb, real_t* oplane, Py_ssize_t ocs, Py_ssize_t OW,
                             Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t in_row0) noexcept nogil:
    """:func:`_octile_plane`'s rows ``oh0 <= oh < oh1`` in segments of the band's pixels; False if not run.

    The ``P = (oh1 - oh0) * OW`` pixels make the fewest segments of at most
    ``FC_OCSPLIT_MAX`` (6) pixels, of sizes as even as they can be; it runs
    only where each has at least ``FC_OCSPLIT_MIN`` (5) and the level has
    the tiles (``tiles.ocsplit32``), else returns False and does nothing. A
    segment on one row is the one-row tile; one that ends on the next row
    (at most two: the caller's ``OW > FC_OCSPLIT_MAX``) takes the tile over
    two rows: its first ``split`` columns end row ``oh``, the others start
    row ``oh + 1``,
    ``row_step - OW`` items further on in the input, and the next in the
    output (whose rows are contiguous). Every pixel sums as in the one-row
    tiles: the same bits.
    """
    cdef Py_ssize_t pixels = (oh1 - oh0) * OW, pst = _pixel_step(ocs)
    cdef Py_ssize_t count = (pixels + FC_OCSPLIT_MAX - 1) // FC_OCSPLIT_MAX
    cdef Py_ssize_t i, first, n, oh, col, split
    cdef const real_t* xin
    if (tiles.ocsplit32 == NULL if real_t is float else tiles.ocsplit64 == NULL) or pixels < count * FC_OCSPLIT_MIN:
        return False
    for i in range(count):
        first = i * pixels // count
        n = (i + 1) * pixels // count - first  # FC_OCSPLIT_MIN <= n <= FC_OCSPLIT_MAX
        oh = oh0 + first // OW
        col = first - (oh - oh0) * OW
        split = min(n, OW - col)
        xin = xbase + (oh - in_row0) * row_step + col
        if split == n:
            if real_t is float:
                tiles.oc32(xin, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + (oh * OW + col) * pst, ocs,
                           <int>nk, <int>n)
            else:
                tiles.oc64(xin, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + (oh * OW + col) * pst, ocs,
                           <int>nk, <int>n)
        elif real_t is float:
            tiles.ocsplit32(xin, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + (oh * OW + col) * pst, ocs,
                            <int>nk, <int>n, <int>split, row_step - OW)
        else:
            tiles.ocsplit64(xin, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + (oh * OW + col) * pst, ocs,
                            <int>nk, <int>n, <int>split, row_step - OW)
    return True


cdef void _tile_plane(const fc_tiles* tiles, bint depthwise, const real_t* xbase, Py_ssize_t channel_stride,
                      Py_ssize_t row_step, const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t cg,
                      const real_t* wb, const real_t* bb, real_t* oplane, Py_ssize_t OH, Py_ssize_t OW,
                      Py_ssize_t ocs, Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1,
                      Py_ssize_t in_row0) noexcept nogil:
    """Output rows ``oh0 <= oh < oh1`` of ``nk <= 8`` output planes (``ocs`` apart from ``oplane``).

    Full tiles along the row, three or two vectors wide where the level has
    such tiles (three while at least three vectors of columns are left, but
    for four: two and two where there are two-vector tiles), and for
    ``nk <= 4`` first the narrow tiles of 4 channels x
    ``tiles.narrow_vectors`` vectors; a tail of at most half a tile runs a
    half-width tile (one of at most ``FC_TAIL_COLS`` columns the tail tile,
    ``tiles.tail32``, over the row's last ones, where the level has it), a
    longer one a full tile that overlaps the previous one (no scalar tail).
    The single whole vectors the rows leave (the fourth of a row of four,
    with 16 registers), or the rows themselves where they are
    narrower than a vector but wider than half of one, wait and run three at
    a time, from consecutive rows, in the gather tile (``tiles.gather32``: the
    three-vector tile at any offsets), those left at the end one at a time;
    blocks of 5 or 6 live channels run all their whole vectors two at a
    time in the 6 x 2 gather tile where the level has one. Blocks of at most
    ``tiles.rows_channels`` channels (of
    ``FC_ROWS_KH_CHANNELS`` for kernels whose input rows the row tiles reuse)
    run row tiles instead where the band has ``FC_ROWS`` rows (:func:`_row_tiles`).
    A 1x1 kernel read in place (one tap, at offset 0) runs the three-vector
    tiles made for it (``tiles.pw32``: no tap loop; the same sums). At the
    levels of 16 registers, where every wide tile is 4 x 3, this loop runs
    in C, one call per band (:func:`_tile_band`), but for blocks of 5 or 6.
    Tap ``t`` of output pixel ``(oh, ow)`` of input channel ``c`` reads
    ``xbase[c*channel_stride + (oh - in_row0)*row_step + taps[t] + ow]``.
    """
    cdef fc_tile_f32_fn f32 = tiles.dw32 if depthwise else tiles.f32
    cdef fc_tile_f64_fn f64 = tiles.dw64 if depthwise else tiles.f64
    cdef fc_tile_f32_fn h32 = tiles.halfdw32 if depthwise else tiles.half32
    cdef fc_tile_f64_fn h64 = tiles.halfdw64 if depthwise else tiles.half64
    cdef Py_ssize_t width = tiles.width_f32 if real_t is float else tiles.width_f64
    cdef Py_ssize_t half = tiles.half_f32 if real_t is float else tiles.half_f64
    cdef fc_tile_f32_fn w32 = NULL if depthwise else tiles.wide32
    cdef fc_tile_f64_fn w64 = NULL if depthwise else tiles.wide64
    cdef fc_tile_f32_fn w3_32 = NULL if depthwise else tiles.wide3_32
    cdef fc_tile_f64_fn w3_64 = NULL if depthwise else tiles.wide3_64
    if not depthwise and ntaps == 1 and taps[0] == 0 and tiles.pw32 != NULL:
        w3_32 = tiles.pw32  # the same tile for one tap at offset 0, its loop only loads and FMAs
        w3_64 = tiles.pw64
    cdef bint wide = (w32 != NULL) if real_t is float else (w64 != NULL)
    cdef bint wide3 = (w3_32 != NULL) if real_t is float else (w3_64 != NULL)
    cdef fc_tile_f32_fn n32 = NULL if depthwise or nk > 4 else tiles.narrow32
    cdef fc_tile_f64_fn n64 = NULL if depthwise or nk > 4 else tiles.narrow64
    cdef bint narrow = (n32 != NULL) if real_t is float else (n64 != NULL)
    # single whole vectors wait (their offsets below) and run `group` at a time in a gather tile;
    # blocks of 5 or 6 live channels run every whole vector so, in the 6 x 2 tile where the level
    # has one (the 4 x 3 tile's two passes would leave a quarter of their lanes idle; measured
    # 1.0-1.05x against the 1x1 kernels' pw32 as well)
    cdef fc_gtile_f32_fn gt32 = NULL if depthwise else tiles.gather32
    cdef fc_gtile_f64_fn gt64 = NULL if depthwise else tiles.gather64
    cdef Py_ssize_t group = 3
    if not depthwise and 5 <= nk <= 6 and ((tiles.gather6x2_32 != NULL) if real_t is float
                                           else (tiles.gather6x2_64 != NULL)):
        gt32, gt64, group = tiles.gather6x2_32, tiles.gather6x2_64, 2
        wide3 = False
    cdef bint gather = (gt32 != NULL) if real_t is float else (gt64 != NULL)
    # a tail of at most FC_TAIL_COLS columns: the row's last ones by the tail tile (channels along the
    # vector) where the level has one, not a half-width tile
    cdef bint tail = not depthwise and ((tiles.tail32 != NULL) if real_t is float else (tiles.tail64 != NULL))
    # the columns of the single vectors gathered: whole ones, or rows narrower than a vector
    cdef Py_ssize_t gcols = width if OW >= width else OW
    cdef ptrdiff_t pending_in[3]
    cdef ptrdiff_t pending_out[3]
    cdef Py_ssize_t pending = 0, i
    cdef Py_ssize_t vectors, span
    cdef fc_tile_f32_fn g32 = NULL
    cdef fc_tile_f64_fn g64 = NULL
    cdef Py_ssize_t oh, ow0, start, ncols
    cdef bint use_half
    cdef real_t* orow
    cdef bint rows = (tiles.rows32 != NULL) if real_t is float else (tiles.rows64 != NULL)
    cdef Py_ssize_t kw = 0, kh = 0
    # (FC_ROWS_KH_CHANNELS >= tiles.rows_channels: the taps are scanned only where row tiles may run)
    if rows and not depthwise and nk <= FC_ROWS_KH_CHANNELS and oh1 - oh0 >= FC_ROWS:
        kh = _kernel_rows_reusable(taps, ntaps, row_step, &kw)
        if kh:  # the row tiles that reuse input rows, where the level has them
            if real_t is float:
                kh = kh if tiles.rows_kh32[(kh - 3) // 2] != NULL else 0
            else:
                kh = kh if tiles.rows_kh64[(kh - 3) // 2] != NULL else 0
        if nk <= (FC_ROWS_KH_CHANNELS if kh else tiles.rows_channels):
            _row_tiles(tiles, xbase, channel_stride, row_step, taps, ntaps, kh, kw, cg, wb, bb, oplane, OH, OW,
                       ocs, nk, oh0, oh1, in_row0)
            return
    # 16 registers: the loop below, in C, one call per band (the band tile; the same tiles)
    if not depthwise and group == 3 and not wide and (not narrow or tiles.narrow_vectors == 3) \
            and ((tiles.band32 != NULL) if real_t is float else (tiles.band64 != NULL)):
        _tile_band(tiles, xbase, channel_stride, row_step, taps, ntaps, cg, wb, bb, oplane, OW, ocs, nk, oh0, oh1,
                   in_row0)
        return
    for oh in range(oh0, oh1):
        orow = oplane + oh * OW
        ow0 = 0
        while ow0 < OW:
            vectors = (OW - ow0) // width
            span = 0  # columns a wide tile takes here, if one does
            if narrow and vectors >= tiles.narrow_vectors:  # at most 4 channels: fewer idle lanes
                g32 = n32
                g64 = n64
                span = tiles.narrow_vectors * width
            elif wide3 and vectors >= 3 and (vectors != 4 or not wide):  # (four: two wide tiles)
                g32 = w3_32
                g64 = w3_64
                span = 3 * width
            elif wide and vectors >= 2:  # two vectors at once: the same sums, fewer loads
                g32 = w32
                g64 = w64
                span = 2 * width
            if span:
                if real_t is float:
                    g32(xbase + (oh - in_row0) * row_step + ow0, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                        orow + ow0, ocs, <int>nk, <int>span)
                else:
                    g64(xbase + (oh - in_row0) * row_step + ow0, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                        orow + ow0, ocs, <int>nk, <int>span)
                ow0 = ow0 + span
                continue
            use_half = _single_tile_at(ow0, OW, width, half, &start, &ncols)
            if use_half and tail and OW - ow0 <= FC_TAIL_COLS <= OW:
                start = OW - FC_TAIL_COLS
                if real_t is float:
                    tiles.tail32(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps,
                                 <int>cg, wb, bb, orow + start, ocs, <int>nk, FC_TAIL_COLS)
                else:
                    tiles.tail64(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps,
                                 <int>cg, wb, bb, orow + start, ocs, <int>nk, FC_TAIL_COLS)
                ow0 = ow0 + width
                continue
            if gather and ncols == gcols and not use_half:
                pending_in[pending] = (oh - in_row0) * row_step + start
                pending_out[pending] = oh * OW + start
                pending = pending + 1
                if pending == group:
                    if real_t is float:
                        gt32(xbase, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane, ocs, <int>nk,
                             pending_in, pending_out, <int>gcols)
                    else:
                        gt64(xbase, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane, ocs, <int>nk,
                             pending_in, pending_out, <int>gcols)
                    pending = 0
                ow0 = ow0 + width
                continue
            if real_t is float:
                (h32 if use_half else f32)(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps,
                                           <int>cg, wb, bb, orow + start, ocs, <int>nk, <int>ncols)
            else:
                (h64 if use_half else f64)(xbase + (oh - in_row0) * row_step + start, channel_stride, taps, <int>ntaps,
                                           <int>cg, wb, bb, orow + start, ocs, <int>nk, <int>ncols)
            ow0 = ow0 + width
    for i in range(pending):  # (fewer than a group left: one at a time)
        if real_t is float:
            f32(xbase + pending_in[i], channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + pending_out[i],
                ocs, <int>nk, <int>gcols)
        else:
            f64(xbase + pending_in[i], channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane + pending_out[i],
                ocs, <int>nk, <int>gcols)


cdef inline bint _single_tile_at(Py_ssize_t ow0, Py_ssize_t OW, Py_ssize_t width, Py_ssize_t half,
                                 Py_ssize_t* start, Py_ssize_t* ncols) noexcept nogil:
    """Where the one-vector tile for the columns from ``ow0`` runs: ``start``, ``ncols``; True for a half tile.

    A whole vector where one fits; a tail of at most half a tile, a half
    tile; a longer tail, a whole tile that overlaps the one before it (no
    scalar tail); a row narrower than a tile, its ``OW`` columns.
    """
    if ow0 + width <= OW:
        start[0], ncols[0] = ow0, width
        return False
    if OW - ow0 <= half:
        if OW >= half:
            start[0], ncols[0] = OW - half, half  # overlap the previous tile instead of a scalar tail
        else:
            start[0], ncols[0] = 0, OW
        return True
    if OW >= width:
        start[0], ncols[0] = OW - width, width
    else:
        start[0], ncols[0] = 0, OW
    return False


cdef void _tile_band(const fc_tiles* tiles, const real_t* xbase, Py_ssize_t channel_stride, Py_ssize_t row_step,
                     const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t cg, const real_t* wb, const real_t* bb,
                     real_t* oplane, Py_ssize_t OW, Py_ssize_t ocs, Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1,
                     Py_ssize_t in_row0) noexcept nogil:
    """:func:`_tile_plane`'s column tiles at a level of 16 registers: its row loop in one call per band.

    Every row is cut the same way: segments of three vectors, then single
    whole vectors (gathered three at a time), then perhaps a tail of a half
    tile or fewer columns. ``tiles.band32`` runs the segments and the whole
    vectors of every row, in the order of the loop in :func:`_tile_plane`
    (the same tiles, the same bits); the tails follow row by row, those of
    rows narrower than a vector (but wider than half of one) three rows at a
    time in the gather tile, as in :func:`_tile_plane`.
    """
    cdef Py_ssize_t width = tiles.width_f32 if real_t is float else tiles.width_f64
    cdef Py_ssize_t half = tiles.half_f32 if real_t is float else tiles.half_f64
    cdef Py_ssize_t nseg = (OW // width) // 3
    cdef Py_ssize_t ow0 = nseg * 3 * width, start = 0, ncols = 0, oh
    cdef ptrdiff_t singles[3]
    cdef int nsingles = 0, i
    cdef bint use_half = False, tail = False
    while ow0 < OW:  # at most three single vectors (the last perhaps a tail)
        use_half = _single_tile_at(ow0, OW, width, half, &start, &ncols)
        if ncols == width and not use_half:
            singles[nsingles] = start
            nsingles = nsingles + 1
        else:
            tail = True
        ow0 = ow0 + width
    if real_t is float:
        tiles.band32(xbase + (oh0 - in_row0) * row_step, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                     oplane + oh0 * OW, ocs, <int>nk, <int>(oh1 - oh0), row_step, OW, <int>nseg, singles, nsingles)
    else:
        tiles.band64(xbase + (oh0 - in_row0) * row_step, channel_stride, taps, <int>ntaps, <int>cg, wb, bb,
                     oplane + oh0 * OW, ocs, <int>nk, <int>(oh1 - oh0), row_step, OW, <int>nseg, singles, nsingles)
    if not tail:
        return
    cdef ptrdiff_t pending_in[3]
    cdef ptrdiff_t pending_out[3]
    cdef bint gather = ((tiles.gather32 != NULL) if real_t is float else (tiles.gather64 != NULL)) \
        and OW < width and not use_half
    if gather:  # rows narrower than a vector: their tiles three rows at a time (see _tile_plane)
        oh = oh0
        while oh + 3 <= oh1:
            for i in range(3):
                pending_in[i] = (oh + i - in_row0) * row_step
                pending_out[i] = (oh + i) * OW
            if real_t is float:
                tiles.gather32(xbase, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane, ocs, <int>nk,
                               pending_in, pending_out, <int>OW)
            else:
                tiles.gather64(xbase, channel_stride, taps, <int>ntaps, <int>cg, wb, bb, oplane, ocs, <int>nk,
                               pending_in, pending_out, <int>OW)
            oh = oh + 3
        oh0 = oh  # (the rows left: one at a time)
    for oh in range(oh0, oh1):  # the tail (the last column's tile: nothing overlaps it)
        if real_t is float:
            (tiles.half32 if use_half else tiles.f32)(xbase + (oh - in_row0) * row_step + start, channel_stride,
                                                      taps, <int>ntaps, <int>cg, wb, bb, oplane + oh * OW + start,
                                                      ocs, <int>nk, <int>ncols)
        else:
            (tiles.half64 if use_half else tiles.f64)(xbase + (oh - in_row0) * row_step + start, channel_stride,
                                                      taps, <int>ntaps, <int>cg, wb, bb, oplane + oh * OW + start,
                                                      ocs, <int>nk, <int>ncols)


cdef Py_ssize_t _kernel_rows_reusable(const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t row_step,
                                      Py_ssize_t* kw) noexcept nogil:
    """Rows ``kh`` (3, 5 or 7) of a kernel whose taps are ``taps[ky*kw + kx] = ky*row_step + taps[kx]``, else 0.

    Sets ``kw[0] = ntaps // kh``. Such taps (a row stride equal to the row
    dilation) let the row tiles load each input row once for all the kernel's
    rows: tap ``ky*kw + kx`` of tile row ``r`` reads input row ``r + ky`` at
    column ``taps[kx]``, so those tiles read exactly the elements (and
    weights) the plain row tiles read. The answer depends on the kernel and
    the strides only: in the whole-batch layout and in the bands alike, the
    row offsets of the taps are ``ky*row_step`` exactly when the row stride
    equals the row dilation.
    """
    cdef Py_ssize_t kh, ky, kx
    cdef bint ok
    for kh in range(3, 9, 2):
        if ntaps % kh or ntaps < kh:
            continue
        kw[0] = ntaps // kh
        ok = True
        for ky in range(kh):
            for kx in range(kw[0]):
                if taps[ky * kw[0] + kx] != taps[kx] + ky * row_step:
                    ok = False
        if ok:
            return kh
    return 0


cdef void _row_tiles(const fc_tiles* tiles, const real_t* xbase, Py_ssize_t channel_stride, Py_ssize_t row_step,
                     const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t cg,
                     const real_t* wb, const real_t* bb, real_t* oplane, Py_ssize_t OH, Py_ssize_t OW,
                     Py_ssize_t ocs, Py_ssize_t nk, Py_ssize_t oh0, Py_ssize_t oh1,
                     Py_ssize_t in_row0) noexcept nogil:
    """:func:`_tile_plane` for blocks of few live channels and ``oh1 - oh0 >= FC_ROWS``: row tiles.

    Each channel on its own, ``FC_ROWS`` rows x one vector of columns per tile;
    the last rows and the last columns of the band overlap the tile before
    them (they are computed again, to the same bits), so every tile is whole
    but for rows shorter than a vector. ``kh`` is 0 for the plain row tiles
    (``nk <= tiles.rows_channels``), or the rows (3, 5 or 7) of a kernel of
    ``kw`` columns whose row taps are a row apart (:func:`_kernel_rows_reusable`)
    for the tiles that load each input row once for all the kernel's rows
    (``nk <= FC_ROWS_KH_CHANNELS``; the caller checks the level has them).
    Those sum kernel columns before kernel rows, so an output's bits depend
    on which row tile computes it but not on where the tile sits.
    """
    cdef Py_ssize_t width = tiles.width_f32 if real_t is float else tiles.width_f64
    cdef Py_ssize_t j, oh, top, ow0, start, ncols
    cdef fc_rowtile_f32_fn r32 = tiles.rows32
    cdef fc_rowtile_f64_fn r64 = tiles.rows64
    cdef Py_ssize_t tap_count = ntaps  # taps, or the kernel's columns for the reusing tiles
    if kh:
        tap_count = kw
        if real_t is float:
            r32 = tiles.rows_kh32[(kh - 3) // 2]
        else:
            r64 = tiles.rows_kh64[(kh - 3) // 2]
    for j in range(nk):
        oh = oh0
        while oh < oh1:
            top = min(oh, oh1 - FC_ROWS)  # the last rows: overlap the tile before them
            ow0 = 0
            while ow0 < OW:
                if ow0 + width <= OW:
                    start, ncols = ow0, width
                elif OW >= width:
                    start, ncols = OW - width, width  # overlap the tile before it
                else:
                    start, ncols = 0, OW
                if real_t is float:
                    r32(xbase + (top - in_row0) * row_step + start, channel_stride, taps, <int>tap_count,
                        <int>cg, wb + j, bb[j], oplane + j * ocs + top * OW + start, OW, row_step, <int>ncols)
                else:
                    r64(xbase + (top - in_row0) * row_step + start, channel_stride, taps, <int>tap_count,
                        <int>cg, wb + j, bb[j], oplane + j * ocs + top * OW + start, OW, row_step, <int>ncols)
                ow0 = ow0 + width
            oh = top + FC_ROWS


def conv2d_packed(const real_t[:, :, :, :] x, const real_t[:, :, :, ::1] weight, bias,
                  real_t[:, :, :, ::1] out, Py_ssize_t groups, Py_ssize_t cg, Py_ssize_t pad_top,
                  Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t band, Py_ssize_t hb,
                  Py_ssize_t wq, const ptrdiff_t[::1] taps, int num_threads, int oc_level=-1,
                  adjoint_taps=None, Py_ssize_t images=1, Py_ssize_t copies=0, Py_ssize_t copy_step=1,
                  int edges=0, hwio_taps=None, bint channels_last=False):
    """NCHW convolution from the unpadded input (any strides), one band of output rows per task.

    Each task takes ``band`` output rows of one image (:func:`_band_tasks`):
    it pads and splits the input rows the band reads by stride phase into a
    per-thread scratch buffer (planes of ``hb`` phase rows: ``sh*sw*hb*wq``
    elements per channel, :func:`_pack_phase_rows`) and runs every block of
    output channels on them while they are in cache. So the input is read
    from memory about once and the extra memory is one band per thread; and
    the threads share the work in pieces of a band, not of a whole image
    (on 8 images, two threads could otherwise wait up to half an image's
    time for each other). ``taps`` are
    :func:`fastconv._conv.stride_phases`' computed with ``hb`` phase rows per
    plane; ``hb`` must hold a band and the phase rows a tap reaches below it
    (checked). ``weight`` is OIHW ``(K, cg, KH, KW)`` and ``bias`` ``(K,)`` or
    None; the kernel packs them for the tile ``oc_level`` chooses (as
    :func:`pack_weights` does, in one parallel pass before the convolution),
    so a small call makes no other Python call. With ``adjoint_taps``,
    ``weight`` is a forward convolution's and the kernel packs its adjoint's
    ``(K, cg, len(adjoint_taps))`` as :func:`pack_weights` does (an input
    gradient, with no reversed copy of the weight). With ``images`` > 1
    (where a band is the whole image: ``band >= OH``, checked) a task takes
    that many images: it lays out all of them, then runs each block of
    output channels over every one in turn, so a block's weights come into
    the L2 cache once per ``images`` images (the same tiles on the same
    inputs: the same bits).

    With ``copies`` > 0 (stride 1 only, ``wq == OW``) each input channel is
    laid out as that many planes of ``hb`` rows of ``OW`` columns, plane
    ``j`` shifted ``j * copy_step`` columns (:func:`_pack_column_copies`),
    and the band's output rows are one row of ``band * OW`` columns to the
    tiles (:func:`_conv_image_banded`): a convolution of ``KW`` kernel
    columns ``copy_step`` apart as one of ``C * KW`` channels and a kernel of
    one column, whose rows merge; an input whose channels lie side by side
    (an NHWC array's view) is transposed band by band as the copies are
    made (:func:`_pack_column_copies_pixels`). ``weight`` is then that
    convolution's, ``(K, cg, 1, KH)`` with ``cg`` counting the copies
    (``x.shape[1] * copies == groups * cg``), and every tap a whole number
    of rows (``taps[t] % wq == 0``). ``edges``: see
    :func:`_octile_plane` (the caller vouches for the geometry; the packing
    checks the weights as it packs them, and where one is not finite the
    call runs the full tiles, ``edges`` 0). With ``hwio_taps`` (not with
    ``copies``), ``weight`` is an NHWC convolution's, HWIO ``(KH, KW, cg,
    K)``, packed in place, or its adjoint with ``adjoint_taps``
    (:func:`_pack_source`).

    With ``channels_last``, ``out`` is ``(N, OH, OW, K)``: the output-channel
    tiles (``oc_level`` >= 0) store its pixels themselves, each pixel's
    channels as their vectors hold them; the column tiles write a task's
    band into a per-thread scratch of ``K`` planes of ``band`` rows
    (:func:`_banded_scratch`), which :func:`_band_to_pixels` then
    transposes into ``out``'s pixels while it is in cache. Either way the
    tiles and their sums are those of the NCHW output (the same bits).
    Raises ValueError for inconsistent shapes, MemoryError if a buffer
    cannot be allocated.
    """
    cdef Py_ssize_t N = out.shape[0]
    cdef Py_ssize_t K = out.shape[3] if channels_last else out.shape[1]
    cdef Py_ssize_t OH = out.shape[1] if channels_last else out.shape[2]
    cdef Py_ssize_t OW = out.shape[2] if channels_last else out.shape[3]
    cdef Py_ssize_t C = x.shape[1]
    cdef Py_ssize_t chan = sh * sw * hb * wq
    cdef Py_ssize_t planes = C * copies if copies else C  # planes of chan elements per image
    cdef Py_ssize_t block
    cdef const fc_tiles* tiles = _tiles_for(oc_level, &block, real_t is float)
    cdef bint octile = oc_level >= 0
    cdef Py_ssize_t ntaps = taps.shape[0]
    cdef Py_ssize_t n, r
    # (before any division by groups)
    cdef PackSource source
    if hwio_taps is None:
        source = _pack_source(weight.shape[0], weight.shape[1], weight.shape[2] * weight.shape[3], K, cg, ntaps,
                              groups, adjoint_taps, "conv2d_packed")
    else:  # (KH, KW, cg, K)
        source = _pack_source(weight.shape[0] * weight.shape[1], weight.shape[2], weight.shape[3], K, cg, ntaps,
                              groups, adjoint_taps, "conv2d_packed", hwio_taps)
    cdef Py_ssize_t kg = K // groups, blocks = (kg + block - 1) // block
    cdef const real_t[::1] b
    cdef bint has_bias = bias is not None
    if has_bias:
        b = bias
        if b.shape[0] != K:
            raise ValueError("conv2d_packed: one bias per output channel")
    if x.shape[0] != N or planes != groups * cg:
        raise ValueError("conv2d_packed: x must have out's images and groups * cg channels (with their copies)")
    cdef Py_ssize_t t
    if copies < 0 or copy_step < 1 or (copies and (sh != 1 or sw != 1 or wq != OW)):
        raise ValueError("conv2d_packed: column copies need stride 1 and rows of OW columns")
    for t in range(ntaps if copies else 0):  # the band's rows are one row: a tap starts a row
        if taps[t] % wq:
            raise ValueError("conv2d_packed: with column copies every tap is a whole number of rows")
    if band < 1 or band > max(OH, 1) or wq < 1:  # (a band past OH would start its last one above row 0)
        raise ValueError("conv2d_packed: a band needs at least one row, and at most the output's")
    for t in range(ntaps):  # each tap's row in its phase plane, below the band's first row
        if taps[t] < 0 or band + (taps[t] // wq) % hb > hb or taps[t] >= sh * sw * hb * wq:
            raise ValueError("conv2d_packed: the band's phase planes do not hold every tap")
    cdef Py_ssize_t per_block = cg * ntaps * block
    if images < 1 or (images > 1 and band < OH):
        raise ValueError("conv2d_packed: a task takes one image, or several whose bands are whole images")
    cdef Py_ssize_t per_image = _band_tasks(OH, band), i
    cdef Py_ssize_t n1, tasks = (N + images - 1) // images if images > 1 else N * per_image
    # (every element is written by _pack_block before any tile reads it)
    cdef real_t* w_packed = <real_t*>_calloc_aligned(groups * blocks * per_block, sizeof(real_t), False)
    cdef real_t* bias_packed = <real_t*>malloc(groups * blocks * block * sizeof(real_t))
    if w_packed == NULL or bias_packed == NULL:
        _free_aligned(w_packed)
        free(bias_packed)
        raise MemoryError("conv2d: cannot allocate the packed weights")
    cdef real_t* xs
    cdef real_t* ys = NULL
    # NHWC: the output-channel tiles store pixels themselves; the column tiles' planes go through a scratch
    cdef bint scratch_pixels = channels_last and not octile
    cdef Py_ssize_t y_image = _banded_scratch(K, OH, OW, band) if scratch_pixels else 0
    cdef int failed[1]
    failed[0] = 0
    # (with edges: a flag per block of packed weights, set where one is not finite; no two
    # threads write one flag)
    cdef char* nonfinite = NULL
    cdef int run_edges = edges
    if edges:
        nonfinite = <char*>calloc(max(1, groups * blocks), 1)
        if nonfinite == NULL:
            _free_aligned(w_packed)
            free(bias_packed)
            raise MemoryError("conv2d: cannot allocate the weights' finiteness flags")
    if num_threads == 1:  # no OpenMP team for one thread (see the module docstring)
        with nogil:
            for r in range(groups * blocks):
                _pack_block(&weight[0, 0, 0, 0], &source, &b[0] if has_bias else NULL,
                            w_packed + r * per_block, bias_packed + r * block, r, blocks, kg, cg, ntaps, block,
                            nonfinite + r if nonfinite != NULL else NULL)
            run_edges = edges if _none_set(nonfinite, groups * blocks) else 0
            xs = <real_t*>_calloc_aligned(images * planes * chan + TILE_SLACK, sizeof(real_t))
            if scratch_pixels:  # (every item a band's transpose reads, its tiles wrote)
                ys = <real_t*>_calloc_aligned(images * y_image, sizeof(real_t), False)
            if xs == NULL or (scratch_pixels and ys == NULL):
                failed[0] = 1
            else:
                for t in range((N + images - 1) // images):  # (one task: each its images' rows 0 .. OH)
                    n = t * images
                    _conv_image_banded(tiles, octile, x, n, min(N, n + images), 0, OH, xs, chan, pad_top, pad_left,
                                       sh, sw, band, hb, wq, &taps[0], ntaps, groups, blocks, block, kg, cg,
                                       w_packed, bias_packed, out, copies, copy_step, run_edges, channels_last, ys,
                                       y_image)
            _free_aligned(xs)
            _free_aligned(ys)
    else:
        with nogil, parallel(num_threads=num_threads):
            for r in prange(groups * blocks, schedule="static"):
                _pack_block(&weight[0, 0, 0, 0], &source, &b[0] if has_bias else NULL,
                            w_packed + r * per_block, bias_packed + r * block, r, blocks, kg, cg, ntaps, block,
                            nonfinite + r if nonfinite != NULL else NULL)
            # every thread reads every block's weights and flag: wait until all are packed (the
            # prange ends without a barrier, see fc_omp_barrier)
            fc_omp_barrier()
            run_edges = edges if _none_set(nonfinite, groups * blocks) else 0  # (each thread: the same)
            # zeroed once: every band writes the same columns of every row, so the padding
            # columns stay zero; rows outside the image are zeroed as they come
            xs = <real_t*>_calloc_aligned(images * planes * chan + TILE_SLACK, sizeof(real_t))
            # (every item a band's transpose reads, its tiles wrote; assigned in the block: each thread's own)
            ys = <real_t*>_calloc_aligned(images * y_image, sizeof(real_t), False) if scratch_pixels else NULL
            for t in prange(tasks, schedule="dynamic"):
                if xs == NULL or (scratch_pixels and ys == NULL):
                    failed[0] = 1
                    continue
                if images > 1:  # images t*images on, whole (one band each)
                    n = t * images
                    n1 = min(N, n + images)
                    i = 0
                else:  # the image's i-th task: rows from i * band, to OH for the last
                    n = t // per_image
                    n1 = n + 1
                    i = t - n * per_image
                _conv_image_banded(tiles, octile, x, n, n1, i * band, OH if i == per_image - 1 else (i + 1) * band,
                                   xs, chan, pad_top, pad_left, sh, sw, band, hb, wq, &taps[0], ntaps, groups,
                                   blocks, block, kg, cg, w_packed, bias_packed, out, copies, copy_step,
                                   run_edges, channels_last, ys, y_image)
            _free_aligned(xs)
            _free_aligned(ys)
    _free_aligned(w_packed)
    free(bias_packed)
    free(nonfinite)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the tiles' scratch buffer")


cdef inline bint _none_set(const char* flags, Py_ssize_t count) noexcept nogil:
    """Whether none of ``count`` flags is set (NULL: no flags, so none)."""
    cdef Py_ssize_t r
    for r in range(count if flags != NULL else 0):
        if flags[r]:
            return False
    return True


def band_tasks(Py_ssize_t OH, Py_ssize_t band):
    """The tasks :func:`conv2d_packed` makes of an image of ``OH`` output rows in bands of ``band`` (1 to ``OH``)."""
    if band < 1 or band > max(OH, 1):
        raise ValueError("band_tasks: a band needs at least one row, and at most the output's")
    return _band_tasks(OH, band)


cdef inline Py_ssize_t _band_tasks(Py_ssize_t OH, Py_ssize_t band) noexcept nogil:
    """The tasks :func:`conv2d_packed` makes of an image's ``OH`` output rows: one per band of ``band`` rows.

    A short last band (fewer than ``FC_ROWS`` rows, see
    :func:`_conv_image_banded`) overlaps the band before it, so the two make
    one task: no two threads write the same output row.
    """
    cdef Py_ssize_t bands = (OH + band - 1) // band
    if bands > 1 and OH - (bands - 1) * band < FC_ROWS <= band:
        bands -= 1
    return bands


cdef void _conv_image_banded(const fc_tiles* tiles, bint octile, const real_t[:, :, :, :] x, Py_ssize_t n0,
                             Py_ssize_t n1, Py_ssize_t row0, Py_ssize_t row1,
                             real_t* xs, Py_ssize_t chan, Py_ssize_t pad_top, Py_ssize_t pad_left,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t band, Py_ssize_t hb, Py_ssize_t wq,
                             const ptrdiff_t* taps, Py_ssize_t ntaps, Py_ssize_t groups, Py_ssize_t blocks,
                             Py_ssize_t block, Py_ssize_t kg, Py_ssize_t cg, const real_t* w_packed,
                             const real_t* bias_packed, real_t[:, :, :, ::1] out, Py_ssize_t copies,
                             Py_ssize_t copy_step, int edges, bint channels_last=False, real_t* ys=NULL,
                             Py_ssize_t y_image=0) noexcept nogil:
    """Output rows ``row0 <= oh < row1`` of images ``n0 <= n < n1`` of :func:`conv2d_packed`, ``band`` rows at a time.

    The bands go through the scratch ``xs`` (the thread's ``C * chan`` phase
    planes per image), which is zero where no band writes: the padding. Rows
    ``0 .. OH`` in one call or in :func:`_band_tasks`' pieces make the same
    bands. Several images (checked by the caller: whole images, one band
    each) are laid out one after the other, then each block of output
    channels runs over all of them. With ``copies`` (see :func:`conv2d_packed`)
    a channel's band is that many shifted planes (``chan`` elements each), and
    the band's output rows run as one row of the tiles (rows of a plane, and
    of the output, follow each other in memory).

    With ``channels_last``, ``out`` is ``(N, OH, OW, K)``. The output-channel
    tiles (``octile``) store its pixels themselves (``ocs`` < 0, see
    :func:`_pixel_step`: a pixel's channels are what they hold in a vector);
    the column tiles write a band's ``K`` planes into ``ys``, the thread's
    scratch of ``y_image`` items an image (:func:`_banded_scratch`),
    ``band * OW`` items apart, each at its rows' own offset (``oh * OW``, or
    0 with ``copies``), and :func:`_band_to_pixels` moves them into ``out``.
    """
    cdef Py_ssize_t C = x.shape[1]
    cdef Py_ssize_t OH = out.shape[1] if channels_last else out.shape[2]
    cdef Py_ssize_t OW = out.shape[2] if channels_last else out.shape[3]
    cdef Py_ssize_t K = out.shape[3] if channels_last else out.shape[1]
    cdef bint pixels = channels_last and octile  # (the tiles store pixels: no scratch)
    # apart from one output plane to the next: out's planes, or the scratch's planes of a band; or
    # (negative) from one output pixel to the next
    cdef Py_ssize_t ocs = -K if pixels else band * OW if channels_last else OH * OW
    cdef Py_ssize_t planes = C * copies if copies else C
    cdef Py_ssize_t per_block = cg * ntaps * block
    cdef Py_ssize_t oh0 = row0, oh1, c, r, g, kb, k0, n
    # the tiles' view of the band: its rows, or (copies) one row of all its columns
    cdef Py_ssize_t t_rows, t_cols, t_row0, t_row1
    cdef const real_t* xband
    cdef real_t* oband
    # each row copied asks for the same row of the next channel: the copy of a band waits on
    # memory (70 % of its time on the loads; an AVX-512 deinterleave in place of the SSE2 one ran
    # no faster), and a channel's rows start a new stream the prefetchers have to find. Intel Xeon,
    # AVX-512, in-process A/B: strided 1.04-1.05x at one and two threads, resnet-mid and stem
    # 1.00x, one or two images already in cache 0.98-1.01x; two or four channels ahead no better
    cdef Py_ssize_t ahead = x.strides[1] // <Py_ssize_t>sizeof(real_t)
    # an input whose channels lie side by side (an NHWC array's view): its copies come from its pixels
    cdef bint copy_pixels = copies and C > 1 and x.strides[1] == <Py_ssize_t>sizeof(real_t)
    while oh0 < row1:
        oh1 = min(row1, oh0 + band)
        if oh1 - oh0 < FC_ROWS <= band:  # a short last band: as many rows as a row tile, overlapping
            oh0 = oh1 - FC_ROWS  # the band before it (those rows are computed again, to the same bits)
        for n in range(n0, n1):
            if copy_pixels:
                _pack_column_copies_pixels(x, n, xs + (n - n0) * C * copies * chan, pad_top, pad_left, oh0, hb, wq,
                                           copies, copy_step)
                continue
            for c in range(C):  # output row oh reads phase rows oh .. oh + hb - band
                if copies:
                    _pack_column_copies(x, n, c, xs + ((n - n0) * C + c) * copies * chan, pad_top, pad_left, oh0,
                                        hb, wq, copies, copy_step, ahead if c + 1 < C else 0)
                else:
                    _pack_phase_rows(x, n, c, xs + ((n - n0) * C + c) * chan, pad_top, pad_left, sh, sw, oh0, hb,
                                     wq, True, ahead if c + 1 < C else 0)
        if copies:
            t_rows, t_cols, t_row0, t_row1 = 1, (oh1 - oh0) * OW, 0, 1
        else:
            t_rows, t_cols, t_row0, t_row1 = OH, OW, oh0, oh1
        for r in range(groups * blocks):
            g = r // blocks
            kb = r - g * blocks
            k0 = g * kg + kb * block
            for n in range(n0, n1):
                xband = xs + ((n - n0) * planes + g * cg) * chan
                if pixels:  # (the tiles add oh * OW pixels)
                    oband = &out[n, oh0, 0, k0] if copies else &out[n, 0, 0, k0]
                elif channels_last:  # (the tiles add oh * OW: rows oh0 .. oh1 of plane k at k * ocs + oh0 * OW)
                    oband = ys + (n - n0) * y_image + k0 * ocs
                else:
                    oband = &out[n, k0, oh0, 0] if copies else &out[n, k0, 0, 0]
                if octile:
                    _octile_plane(tiles, xband, chan, wq, taps, ntaps, cg, w_packed + r * per_block,
                                  bias_packed + r * block, oband, t_rows, t_cols, ocs,
                                  min(block, kg - kb * block), t_row0, t_row1, t_row0, edges)
                else:
                    _tile_plane(tiles, False, xband, chan, wq, taps, ntaps, cg, w_packed + r * per_block,
                                bias_packed + r * block, oband, t_rows, t_cols, ocs, min(8, kg - kb * 8),
                                t_row0, t_row1, t_row0)
        if channels_last and not pixels:
            for n in range(n0, n1):
                _band_to_pixels(ys + (n - n0) * y_image + (0 if copies else oh0 * OW), ocs, &out[n, oh0, 0, 0], K,
                                (oh1 - oh0) * OW)
        oh0 = oh1


cdef Py_ssize_t _banded_scratch(Py_ssize_t K, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t band) noexcept nogil:
    """Items of an image's scratch for :func:`_conv_image_banded`'s NHWC output: ``(K * band + OH) * OW``.

    Plane ``k`` of a band of rows ``oh0 .. oh1`` (at most ``band`` of them)
    takes items ``k * band * OW + oh0 * OW`` on, ``(oh1 - oh0) * OW`` of them:
    the tiles write the rows at their own offsets, so the last plane's reach
    ``(K - 1) * band * OW + OH * OW``.
    """
    return (K * band + OH) * OW


cdef void _band_to_pixels(const real_t* planes, Py_ssize_t plane_step, real_t* pixels, Py_ssize_t K,
                          Py_ssize_t P) noexcept nogil:
    """``pixels[p * K + k] = planes[k * plane_step + p]`` for ``k < K``, ``p < P``: a band's planes as NHWC pixels.

    ``fc_transpose_block`` (``transpose_tile.h``): tiles of 16 pixels by 16
    channels, 4 x 4 register transposes for 4-byte items, a strip of
    pixels written in order while the planes (in cache) are read a tile's
    lines at a time.
    """
    if real_t is float:
        fc_transpose_block_u32(<const uint32_t*>planes, plane_step, <uint32_t*>pixels, K, K, P)
    else:
        fc_transpose_block_u64(<const uint64_t*>planes, plane_step, <uint64_t*>pixels, K, K, P)


def conv2d_pointwise(const real_t[:, :, :, :] x, const real_t[::1] w_packed, const real_t[::1] bias_packed,
                     real_t[:, :, ::1] out, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t OW, Py_ssize_t tasks,
                     Py_ssize_t panel, int num_threads, Py_ssize_t pass_blocks=0, bint in_place=False,
                     Py_ssize_t filter_parts=1, weight=None, bias=None, adjoint_taps=None, filter_pixels=None):
    """A 1x1, unpadded, ungrouped NCHW convolution: per image, ``out = W @ x[::sh, ::sw] + bias``.

    ``x`` is ``(N, C, H, W)`` (any strides) and ``out`` ``(N, K, P)``, each
    image's output rows of ``OW`` pixels one after the other; output pixel
    ``(oh, ow)`` reads input pixel ``(oh*sh, ow*sw)``. (A stride-1
    convolution whose image and output rows coincide may come as one row
    per image: ``H == 1``, ``OW == P``.) ``w_packed`` and ``bias_packed``
    are :func:`pack_weights`' for the column tiles (blocks of 8 output
    channels, one tap, one group). The batch's ``N*P`` output pixels, image
    after image, make panels of ``panel`` pixels (the first and last, what
    is left: see ``shift`` below), shared as evenly as can be among ``tasks`` tasks (at most one
    per panel) of consecutive panels. A task copies its pixels' inputs into
    a per-thread buffer, each panel its ``C`` channels' rows one after the
    other, and runs every block of output channels on a panel while it is
    in cache (the tiles of :func:`_tile_plane` over one row of ``panel``
    columns); with ``pass_blocks`` > 0, ``pass_blocks`` blocks at a time
    over every panel of the task (so large weights pass through the caches
    once per task, not once per panel). A panel that ends in the next image
    stores its outputs into a per-thread buffer, then copies each image's
    part. With ``in_place``, a panel the three-vector tile covers whole
    (``panel`` its width, every block of filters more than 4 live) and that
    lies in one row of one image of ``x``, whose rows are adjacent items
    (``sw == 1``, the image one row: ``x.shape[2] == 1``), is not copied:
    the tiles read it where it is, each channel's row a plane apart; where
    the next panel is read so too, the first block of filters over a panel
    asks for the next one's rows (``tiles.pwnext32``). Not where the rows
    are a multiple of ``IN_PLACE_ALIAS_BYTES`` (4 KiB) apart (planes of
    32x32, 64x64, 96x96 float32): there a panel's rows fall on a few sets of
    the caches, which cannot hold them for the next block of filters. Intel
    Xeon, one thread, in place against the copies: 512 to 512 channels on
    64x64 70 against 212 GFLOP/s, 256 to 64 77 against 166; on 96x96 0.81x;
    on 32x32 1024 to 256 0.41x, 512 to 128 0.72x, 256 to 256 0.95x (but
    256 to 64 1.10x). Nor where a panel does not start a cache line, nor
    its channels' rows a whole number of lines apart (planes of 14x14 and
    7x7): there every vector load of the tile straddles two lines, and the
    copies ran 1.01-1.22x as fast as reading in place (Intel Xeon, float32,
    one and two threads, one process switching the two, medians of 15:
    planes of 28x28 and 56x56 with inputs 16 bytes past a line, 14x14 and
    7x7); read in place from a line, 56x56 ran 1.14-1.21x as fast as its
    copies. So where image 0's first pixel does not start a line, the
    panels end ``shift`` pixels before the multiples of ``panel``, so that
    they start on the first one that does (:func:`_in_place_shift`): the
    first panel is short and copied, and where each image's pixels and a
    panel are whole lines (planes of 28x28 and 56x56), the whole panels
    of every image are read in place. A panel of at
    most ``FC_TAIL_COLS`` pixels (one image of 7x7 leaves 1 of 49) runs the
    tail tile (``tiles.tail32``: a block's channels along the vector, one
    accumulator a pixel) where the level has one.
    With ``filter_parts`` > 1, each task's blocks of filters are cut into
    that many parts, as even as can be, and each (task, part) pair is a
    task of its own, which copies the task's panels itself: for batches of
    few panels (one image of 7x7 or 14x14), where tasks of whole panels
    leave threads idle or uneven.
    With ``weight`` (and ``w_packed`` and ``bias_packed`` None), the kernel
    packs the weights itself: ``weight``, ``bias`` (or None) and
    ``adjoint_taps`` are :func:`pack_weights`' (one group, one tap), and
    each task packs each pass's blocks into its thread's buffer as the pass
    begins, so packed weights never go through memory (for batches whose
    tasks are one a thread: each block is packed once). With
    ``filter_pixels`` ``(H, W, OH, OW, sh, sw)`` too (and no
    ``adjoint_taps``), ``weight`` is an NHWC input's ``(N*H*W, C, 1)``
    pixels and the filters are those a 1x1 convolution at strides ``sh``,
    ``sw`` reads, output pixel after output pixel (``K == N*OH*OW``: see
    :func:`_pixel_source`), packed from where they lie (the roles of
    :func:`fastconv._conv.pointwise_nhwc`, without a copy of the pixels).
    Each output sums its channels in order from its bias, as every
    column tile does, so the results depend neither on ``tasks``, ``panel``,
    ``shift``, ``pass_blocks``, ``in_place``, ``filter_parts`` and who
    packs the weights nor on the thread count. Raises MemoryError if a
    buffer cannot be allocated.
    """
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], P = out.shape[2], C = x.shape[1]
    cdef Py_ssize_t blocks = (K + 7) // 8
    if x.shape[0] != N or sh < 1 or sw < 1 or OW < 1 or P % OW:
        raise ValueError("conv2d_pointwise: out must be (N, K, OH*OW) for x's images, strides at least 1")
    if P and ((P // OW - 1) * sh >= x.shape[2] or (OW - 1) * sw >= x.shape[3]):
        raise ValueError("conv2d_pointwise: the output reads pixels outside x")
    cdef const real_t[:, :, ::1] raw
    cdef const real_t[::1] raw_bias
    cdef PackSource source
    cdef bint packs = weight is not None
    if packs:  # (what _pack_block reads: checked by _pack_source)
        if w_packed is not None or bias_packed is not None:
            raise ValueError("conv2d_pointwise: packed weights or a weight to pack, not both")
        raw = weight
        if filter_pixels is not None:
            if adjoint_taps is not None:
                raise ValueError("conv2d_pointwise: filters from pixels have no adjoint")
            source = _pixel_source(raw.shape[0], raw.shape[1], raw.shape[2], K, C, filter_pixels,
                                   "conv2d_pointwise")
        else:
            source = _pack_source(raw.shape[0], raw.shape[1], raw.shape[2], K, C, 1, 1, adjoint_taps,
                                  "conv2d_pointwise")
        if bias is not None:
            raw_bias = bias
            if raw_bias.shape[0] != K:
                raise ValueError("conv2d_pointwise: one bias per output channel")
    elif (w_packed is None or bias_packed is None or w_packed.shape[0] != blocks * 8 * C
          or bias_packed.shape[0] != blocks * 8):
        raise ValueError("conv2d_pointwise: weights not packed in blocks of 8 channels of one tap")
    elif filter_pixels is not None:
        raise ValueError("conv2d_pointwise: filters from pixels are packed by the kernel (weight=)")
    if panel < 1 or tasks < 1 or pass_blocks < 0 or filter_parts < 1:
        raise ValueError("conv2d_pointwise: panels of at least one pixel, at least one task, "
                         "pass_blocks 0 (every block) or more, at least one part of the filters")
    filter_parts = min(filter_parts, blocks)
    if pass_blocks == 0 or pass_blocks > blocks:
        pass_blocks = blocks
    if N == 0 or P == 0:
        return
    # panels end where a first aligned panel of image 0 read in place would (see _in_place_shift)
    cdef Py_ssize_t shift = _in_place_shift(x, K, P, OW, sh, sw, panel, in_place)
    cdef Py_ssize_t pixels = N * P, panels = (pixels + shift + panel - 1) // panel
    tasks = min(tasks, panels)
    cdef Py_ssize_t each = panels // tasks, extra = panels % tasks  # tasks t < extra take one panel more
    # a thread's scratch: a task's panels, a tile's slack, then one panel's outputs of 8 channels, then
    # (where the kernel packs the weights) a pass's packed blocks and their bias, from a cache line
    cdef Py_ssize_t outputs_at = C * (each + (extra > 0)) * panel + TILE_SLACK
    cdef Py_ssize_t packed_at = (outputs_at + 8 * panel + CACHE_LINE - 1) // CACHE_LINE * CACHE_LINE
    cdef Py_ssize_t scratch = packed_at + (pass_blocks * 8 * (C + 1) if packs else 0)
    cdef const real_t* w0 = NULL if packs else &w_packed[0]
    cdef const real_t* b0 = NULL if packs else &bias_packed[0]
    cdef const real_t* raw0 = &raw[0, 0, 0] if packs else NULL
    cdef const real_t* raw_b0 = &raw_bias[0] if packs and bias is not None else NULL
    cdef Py_ssize_t t, g0, g1, strip, part
    cdef real_t* xs
    cdef int failed[1]
    failed[0] = 0
    if num_threads == 1:  # no OpenMP team for one thread (see the module docstring)
        with nogil:
            xs = <real_t*>_calloc_aligned(scratch, sizeof(real_t))
            if xs == NULL:
                failed[0] = 1
            else:
                for t in range(tasks * filter_parts):
                    strip = t // filter_parts
                    part = t - strip * filter_parts
                    g0 = (strip * each + min(strip, extra)) * panel
                    g1 = min(pixels, g0 + (each + (strip < extra)) * panel - shift)
                    g0 = max(0, g0 - shift)
                    _pointwise_strip(x, g0, g1 - g0, sh, sw, OW, panel, shift, pass_blocks, in_place, xs,
                                     xs + outputs_at, w0, b0, raw0, &source, raw_b0, xs + packed_at, out,
                                     part * blocks // filter_parts, (part + 1) * blocks // filter_parts)
            _free_aligned(xs)
    else:
        with nogil, parallel(num_threads=num_threads):
            xs = <real_t*>_calloc_aligned(scratch, sizeof(real_t))
            for t in prange(tasks * filter_parts, schedule="static"):
                if xs == NULL:
                    failed[0] = 1
                    continue
                strip = t // filter_parts
                part = t - strip * filter_parts
                g0 = (strip * each + min(strip, extra)) * panel
                g1 = min(pixels, g0 + (each + (strip < extra)) * panel - shift)
                g0 = max(0, g0 - shift)
                _pointwise_strip(x, g0, g1 - g0, sh, sw, OW, panel, shift, pass_blocks, in_place, xs,
                                 xs + outputs_at, w0, b0, raw0, &source, raw_b0, xs + packed_at, out,
                                 part * blocks // filter_parts, (part + 1) * blocks // filter_parts)
            _free_aligned(xs)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the pointwise tiles' scratch buffer")


cdef void _pointwise_strip(const real_t[:, :, :, :] x, Py_ssize_t g0, Py_ssize_t cols, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t OW, Py_ssize_t panel, Py_ssize_t shift, Py_ssize_t pass_blocks,
                           bint in_place, real_t* xs, real_t* ys, const real_t* w_packed, const real_t* bias_packed,
                           const real_t* raw, const PackSource* source, const real_t* raw_bias, real_t* packed,
                           real_t[:, :, ::1] out, Py_ssize_t r_lo, Py_ssize_t r_hi) noexcept nogil:
    """The batch's output pixels ``g0 .. g0 + cols`` (whole panels but the first and last) for :func:`conv2d_pointwise`.

    Blocks of filters ``r_lo <= r < r_hi`` only. Panels end at the batch's
    pixels ``q * panel - shift``.

    ``xs`` holds their panels (but those read in place), ``ys`` a panel's
    outputs for 8 channels where the panel ends in the next image. Block
    ``r``'s packed weights are at ``w_packed + r*C*8`` and its bias at
    ``bias_packed + r*8``; or, with ``raw`` (not NULL), each pass packs its
    blocks from ``raw`` (read as ``source`` says) and ``raw_bias`` (or
    NULL: zeros) into ``packed``: ``pass_blocks`` blocks, then their bias.
    """
    cdef Py_ssize_t C = x.shape[1], K = out.shape[1], P = out.shape[2]
    cdef Py_ssize_t c, i, j, r, r_end, q0, q1, qi, n, p, oh, ow, run, many
    cdef fc_tailblocks_f32_fn tails32
    cdef fc_tailblocks_f64_fn tails64
    cdef bint adjacent = sw == 1 and x.strides[3] == sizeof(real_t)
    cdef const real_t* src
    cdef real_t* dst
    cdef ptrdiff_t tap0[1]
    tap0[0] = 0
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef fc_tile_f32_fn whole32 = tiles.pw32  # (the three-vector tile of one tap at offset 0)
    cdef fc_tile_f64_fn whole64 = tiles.pw64
    cdef fc_tile_f32_fn tile32
    cdef fc_tile_f64_fn tile64
    cdef Py_ssize_t span = 3 * (tiles.width_f32 if real_t is float else tiles.width_f64)
    cdef bint direct = (whole32 != NULL) if real_t is float else (whole64 != NULL)
    # the tail tile, where the level has one, for a last panel of at most FC_TAIL_COLS pixels (copied:
    # the panel's row has `panel` items, FC_TAIL_COLS or more, for the reads past its pixels)
    cdef bint tail = ((tiles.tail32 != NULL) if real_t is float else (tiles.tail64 != NULL)) and panel >= FC_TAIL_COLS
    # and the tail tiles over several blocks (at the same levels)
    cdef bint tails = tail and (((tiles.tail1x8_32 != NULL and tiles.tail4x4_32 != NULL) if real_t is float
                                 else (tiles.tail1x8_64 != NULL and tiles.tail4x4_64 != NULL)))
    # panels read in place: each a whole tile of one image's one row, every block of filters run by the
    # three-vector tile (which reads exactly its columns), each channel's row a whole number of items apart
    # and the channels' rows not a multiple of IN_PLACE_ALIAS_BYTES apart (see conv2d_pointwise)
    cdef bint reads_in_place = direct and panel == span and _may_read_in_place(x, K, P, OW, sh, sw, in_place)
    cdef Py_ssize_t in_place_cs = x.strides[1] // <Py_ssize_t>sizeof(real_t)
    cdef bint skip, copies = True
    if reads_in_place:  # a strip of panels all read in place copies nothing: no walk over its channels
        copies = False
        q0 = 0
        while q0 < cols and not copies:
            q1 = min(cols, q0 + panel - (g0 + q0 + shift) % panel)
            n = (g0 + q0) // P
            copies = q1 - q0 < panel or not _panel_in_place(x, n, g0 + q0 - n * P, panel, P)
            q0 = q1
    for c in range(C if copies else 0):  # row c of panel q at xs + (q*C + c)*panel
        n = g0 // P
        oh = (g0 - n * P) // OW
        ow = g0 - n * P - oh * OW
        dst = xs + c * panel
        q0 = 0
        while q0 < cols:
            q1 = min(cols, q0 + panel - (g0 + q0 + shift) % panel)
            skip = reads_in_place and q1 - q0 == panel and _panel_in_place(x, n, ow, panel, P)  # (read below)
            i = 0
            while i < q1 - q0:  # runs of the panel's pixels within one output row
                run = min(q1 - q0 - i, OW - ow)
                if skip:
                    pass
                elif adjacent:
                    src = &x[n, c, oh * sh, ow]
                    for j in range(run):
                        dst[i + j] = src[j]
                else:
                    for j in range(run):
                        dst[i + j] = x[n, c, oh * sh, (ow + j) * sw]
                i = i + run
                ow = ow + run
                if ow == OW:
                    ow = 0
                    oh = oh + 1
                    if oh * OW == P:  # the next image's first row
                        oh = 0
                        n = n + 1
            dst += C * panel
            q0 = q1
    cdef bint split, ahead
    cdef Py_ssize_t r0 = r_lo, nk, ocs, panel_cs
    cdef const real_t* panel_x
    cdef Py_ssize_t rbase = 0
    cdef const real_t* wpass = w_packed
    cdef const real_t* bpass = bias_packed
    while r0 < r_hi:  # passes of pass_blocks blocks of filters over every panel
        if raw != NULL:  # this pass's blocks, packed where its panels will find them in cache
            rbase, wpass, bpass = r0, packed, packed + pass_blocks * C * 8
            _pack_pointwise_blocks(raw, source, raw_bias, packed, packed + pass_blocks * C * 8, r0,
                                   min(r_hi, r0 + pass_blocks), K, C)
        q0 = 0
        qi = 0  # the panel's index in the strip (its rows copied at xs + qi*C*panel)
        while q0 < cols:  # (tiles read up to a tile's width past a panel's columns: within xs, never stored)
            q1 = min(cols, q0 + panel - (g0 + q0 + shift) % panel)
            n = (g0 + q0) // P
            p = g0 + q0 - n * P
            split = p + (q1 - q0) > P  # the panel ends in the next image: its outputs go through ys
            ocs = panel if split else P
            # the next panel read in place too: the pass's first block asks for its rows (pwnext)
            ahead = False
            if reads_in_place and q1 - q0 == panel and _panel_in_place(x, n, p, panel, P):  # (the copies skipped it)
                panel_x, panel_cs = &x[n, 0, 0, p], in_place_cs
                ahead = q1 + panel <= cols and _panel_in_place(x, n, p + panel, panel, P)
            else:
                panel_x, panel_cs = xs + qi * C * panel, panel
            r = r0
            r_end = min(r_hi, r0 + pass_blocks)
            while r < r_end:
                nk = min(8, K - r * 8)
                dst = ys if split else &out[n, r * 8, p]
                # a few last pixels, several whole blocks at once (their chains side by side)
                many = 0
                if q1 - q0 <= FC_TAIL_COLS and tails and not split:
                    many = FC_TAIL1_BLOCKS if q1 - q0 == 1 else FC_TAIL4_BLOCKS
                    if r + many > r_end or (r + many) * 8 > K:
                        many = 0
                if many:
                    if real_t is float:
                        tails32 = tiles.tail1x8_32 if q1 - q0 == 1 else tiles.tail4x4_32
                        tails32(xs + qi * C * panel, panel, <int>C, wpass + (r - rbase) * C * 8, C * 8,
                                bpass + (r - rbase) * 8, dst, ocs, <int>(q1 - q0))
                    else:
                        tails64 = tiles.tail1x8_64 if q1 - q0 == 1 else tiles.tail4x4_64
                        tails64(xs + qi * C * panel, panel, <int>C, wpass + (r - rbase) * C * 8, C * 8,
                                bpass + (r - rbase) * 8, dst, ocs, <int>(q1 - q0))
                    r += many
                    continue
                if direct and q1 - q0 == span and nk > 4:  # one whole tile: what _tile_plane would run
                    if real_t is float:
                        tile32 = tiles.pwnext32 if ahead and r == r0 and tiles.pwnext32 != NULL else whole32
                        tile32(panel_x, panel_cs, tap0, 1, <int>C, wpass + (r - rbase) * C * 8,
                               bpass + (r - rbase) * 8, dst, ocs, <int>nk, <int>span)
                    else:
                        tile64 = tiles.pwnext64 if ahead and r == r0 and tiles.pwnext64 != NULL else whole64
                        tile64(panel_x, panel_cs, tap0, 1, <int>C, wpass + (r - rbase) * C * 8,
                               bpass + (r - rbase) * 8, dst, ocs, <int>nk, <int>span)
                elif q1 - q0 <= FC_TAIL_COLS and tail:  # a last panel of a few pixels: channels along the vector
                    if real_t is float:
                        tiles.tail32(xs + qi * C * panel, panel, tap0, 1, <int>C, wpass + (r - rbase) * C * 8,
                                     bpass + (r - rbase) * 8, dst, ocs, <int>nk, <int>(q1 - q0))
                    else:
                        tiles.tail64(xs + qi * C * panel, panel, tap0, 1, <int>C, wpass + (r - rbase) * C * 8,
                                     bpass + (r - rbase) * 8, dst, ocs, <int>nk, <int>(q1 - q0))
                else:
                    _tile_plane(tiles, False, xs + qi * C * panel, panel, panel, tap0, 1, C,
                                wpass + (r - rbase) * C * 8, bpass + (r - rbase) * 8, dst, 1, q1 - q0, ocs, nk, 0, 1, 0)
                if split:
                    _store_split_panel(ys, panel, q1 - q0, nk, n, p, r * 8, out)
                r += 1
            q0 = q1
            qi += 1
        r0 += pass_blocks


cdef bint _may_read_in_place(const real_t[:, :, :, :] x, Py_ssize_t K, Py_ssize_t P, Py_ssize_t OW,
                             Py_ssize_t sh, Py_ssize_t sw, bint in_place) noexcept nogil:
    """Whether :func:`conv2d_pointwise` may read panels of ``x`` in place (where :func:`_panel_in_place` holds).

    Asked for (``in_place``), at stride 1, each image one row of adjacent
    items, every block of filters more than 4 live (the three-vector tile's),
    the channels' rows a whole number of cache lines apart but not a
    multiple of ``IN_PLACE_ALIAS_BYTES``. (The caller checks the level has
    the three-vector tile and the panels are its width.)
    """
    return (in_place and sh == 1 and sw == 1 and x.strides[3] == sizeof(real_t) and x.shape[2] == 1 and OW == P
            and x.strides[1] % CACHE_LINE == 0 and x.strides[1] % IN_PLACE_ALIAS_BYTES != 0
            and (K % 8 == 0 or K % 8 > 4))


cdef Py_ssize_t _in_place_shift(const real_t[:, :, :, :] x, Py_ssize_t K, Py_ssize_t P, Py_ssize_t OW,
                                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t panel, bint in_place) noexcept nogil:
    """Pixels the panels of :func:`conv2d_pointwise` end before multiples of ``panel`` (0 to ``panel - 1``).

    Panels read in place must start a cache line (:func:`_panel_in_place`).
    Where ``x`` does not (NumPy's large arrays start 16 bytes past a page),
    the panels' ends move so that they start on image 0's first pixel that
    does, and on every image's where each image's rows, and each whole
    panel, are whole cache lines: a first short panel is copied, the others
    are read in place. 0 where no panel can be read in place.
    """
    if P == 0 or x.shape[0] == 0 or not _may_read_in_place(x, K, P, OW, sh, sw, in_place):
        return 0
    cdef Py_ssize_t item = sizeof(real_t)
    cdef uintptr_t start = <uintptr_t>&x[0, 0, 0, 0]
    if start % item or (panel * item) % CACHE_LINE or (P * item) % CACHE_LINE or x.strides[0] % CACHE_LINE:
        return 0
    cdef Py_ssize_t first = ((CACHE_LINE - start % CACHE_LINE) % CACHE_LINE) // item  # image 0's first aligned pixel
    return (panel - first % panel) % panel


def pointwise_shift(const real_t[:, :, :, :] x, Py_ssize_t K, Py_ssize_t P, Py_ssize_t OW, Py_ssize_t sh,
                    Py_ssize_t sw, Py_ssize_t panel, bint in_place=True):
    """The ``shift`` of :func:`conv2d_pointwise`'s panels over ``x`` for ``K`` filters and ``P`` pixels an image.

    (For tests: the kernel computes it itself, :func:`_in_place_shift`.)
    """
    if panel < 1:
        raise ValueError("pointwise_shift: panels of at least one pixel")
    return _in_place_shift(x, K, P, OW, sh, sw, panel, in_place)


cdef void _pack_pointwise_blocks(const real_t* raw, const PackSource* source, const real_t* bias, real_t* w_dst,
                                 real_t* b_dst, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t K,
                                 Py_ssize_t C) noexcept nogil:
    """Blocks ``r0 <= r < r1`` of a one-tap, one-group weight (``K`` filters, ``C`` channels), as :func:`_pack_block`'s.

    (For :func:`pack_weights` and :func:`_pointwise_strip`.) Block ``r``'s
    weights go to ``w_dst + (r - r0)*C*8``, its bias to ``b_dst + (r -
    r0)*8``. The whole blocks of the adjoint of a 1x1 kernel go row by row
    (:func:`_pack_adjoint_runs`), the others one at a time.
    """
    cdef Py_ssize_t r = r0
    if source.row_filters:  # (filters that are pixels: _pixel_source)
        while r < r1:
            _pack_pixel_block(raw, source, bias, w_dst + (r - r0) * C * 8, b_dst + (r - r0) * 8, r, K, C)
            r += 1
        return
    if source.taps != NULL and source.k_step == 1:
        r = max(r0, min(r1, K // 8))
        _pack_adjoint_runs(raw, source, bias, w_dst, b_dst, r0, r, C)
    while r < r1:
        _pack_block(raw, source, bias, w_dst + (r - r0) * C * 8, b_dst + (r - r0) * 8, r, (K + 7) // 8, K, C, 1, 8)
        r += 1


cdef void _pack_pixel_block(const real_t* raw, const PackSource* source, const real_t* bias, real_t* w_dst,
                            real_t* b_dst, Py_ssize_t r, Py_ssize_t K, Py_ssize_t C) noexcept nogil:
    """Block ``r`` of ``K`` filters that are pixels (``source`` from :func:`_pixel_source`), as :func:`_pack_block`'s.

    ``w_dst`` gets ``[c][filter in block]`` (8 a channel, zeros past the
    last filter), ``b_dst`` the block's bias (zeros without ``bias``). Each
    filter's row of ``C`` channels is found once (its image, output row and
    column), then the rows go as a convolution's own weight does:
    ``PACK_ROW_RUN`` channels at a time, 4 rows through a register transpose
    (2 in float64), each part asking for the next one's first.
    """
    cdef const real_t* rows[8]
    cdef Py_ssize_t k0 = r * 8, live = min(8, K - k0), j, jj, c, c0, c1, k, n, oh
    cdef Py_ssize_t per_image = source.rows * source.row_filters
    for j in range(live):
        k = k0 + j
        n = k // per_image
        oh = (k - n * per_image) // source.row_filters
        rows[j] = (raw + n * source.image_step + oh * source.row_step
                   + (k - n * per_image - oh * source.row_filters) * source.k_step)
    c0 = 0
    while c0 < C:
        c1 = min(C, c0 + PACK_ROW_RUN)
        if c1 < C:  # (the next part of each row, while this one is copied)
            for j in range(live):
                fc_prefetch_runs(rows[j] + c1, 1, 0, min(PACK_ROW_RUN, C - c1) * <Py_ssize_t>sizeof(real_t))
        j = 0
        if real_t is float:
            while j + 4 <= live:
                fc_interleave4_f32(w_dst + c0 * 8 + j, 8, rows[j] + c0, rows[j + 1] + c0, rows[j + 2] + c0,
                                   rows[j + 3] + c0, c1 - c0)
                j += 4
        else:
            while j + 2 <= live:
                fc_interleave2_f64(w_dst + c0 * 8 + j, 8, rows[j] + c0, rows[j + 1] + c0, c1 - c0)
                j += 2
        for c in range(c0, c1):
            for jj in range(j, live):
                w_dst[c * 8 + jj] = rows[jj][c]
            for jj in range(live, 8):
                w_dst[c * 8 + jj] = 0
        c0 = c1
    for j in range(8):
        b_dst[j] = bias[k0 + j] if bias != NULL and j < live else 0


cdef void _pack_adjoint_runs(const real_t* raw, const PackSource* source, const real_t* bias, real_t* w_dst,
                             real_t* b_dst, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C) noexcept nogil:
    """Whole blocks ``r0 <= r < r1`` of the adjoint of a 1x1 kernel, as :func:`_pack_block` packs them, at ``w_dst``.

    (For :func:`_pack_pointwise_blocks`.) Block ``r``'s weights of channel ``c`` are the run of 8 at ``raw + c*c_step +
    taps[0] + 8*r`` (8 adjacent input channels of the forward weight), so
    the blocks are packed ``ADJOINT_RUNS_AHEAD`` forward filters (rows of
    ``raw``) at a time, each block's runs of them in turn (a run of
    contiguous packed weights), the next rows asked for first, where
    :func:`_pack_block` reads 32 bytes of every row per block, each row a
    row of weights apart (no prefetcher follows). 512 to 2048 channels
    (4 MiB, one thread, Intel Xeon): :func:`pack_weights` 428 -> 172 us,
    as fast as a convolution's own weight (157 us). Block ``r``'s weights go
    to ``w_dst + (r - r0)*C*8``, its bias (zeros without ``bias``) to
    ``b_dst + (r - r0)*8``.
    """
    cdef Py_ssize_t c, c0, c1, b, j, nb = r1 - r0
    cdef const real_t* src
    cdef real_t* dst
    if nb <= 0:
        return
    for c in range(min(C, ADJOINT_RUNS_AHEAD)):  # (the rows a plane of weights apart: no prefetcher follows)
        fc_prefetch_runs(raw + c * source.c_step + source.taps[0] + r0 * 8, 1, 0, nb * 8 * sizeof(real_t))
    c0 = 0
    while c0 < C:  # rows in groups, each block's run of the group in turn
        c1 = min(C, c0 + ADJOINT_RUNS_AHEAD)
        for c in range(c1, min(C, c1 + ADJOINT_RUNS_AHEAD)):
            fc_prefetch_runs(raw + c * source.c_step + source.taps[0] + r0 * 8, 1, 0, nb * 8 * sizeof(real_t))
        for b in range(nb):
            for c in range(c0, c1):
                src = raw + c * source.c_step + source.taps[0] + (r0 + b) * 8
                dst = w_dst + (b * C + c) * 8
                for j in range(8):
                    dst[j] = src[j]
        c0 = c1
    for b in range(nb):
        for j in range(8):
            b_dst[b * 8 + j] = bias[(r0 + b) * 8 + j] if bias != NULL else 0


cdef inline bint _panel_in_place(const real_t[:, :, :, :] x, Py_ssize_t n, Py_ssize_t p,
                                 Py_ssize_t panel, Py_ssize_t P) noexcept nogil:
    """Whether pixels ``p .. p + panel`` of image ``n`` (``P`` pixels, one row) start a cache line.

    (:func:`_pointwise_strip`, whose caller checked the rest: stride 1, the image one row,
    channel rows a whole number of cache lines apart.)
    """
    return p + panel <= P and (<uintptr_t>&x[n, 0, 0, p]) % CACHE_LINE == 0


cdef void _store_split_panel(const real_t* ys, Py_ssize_t panel, Py_ssize_t count, Py_ssize_t nk, Py_ssize_t n,
                             Py_ssize_t p, Py_ssize_t k0, real_t[:, :, ::1] out) noexcept nogil:
    """Copy ``count`` pixels' outputs of ``nk`` channels (``ys[j*panel + i]``) to the batch's pixels from ``(n, p)``."""
    cdef Py_ssize_t P = out.shape[2], i = 0, j, e, run
    while i < count:
        run = min(count - i, P - p)
        for j in range(nk):
            for e in range(run):
                out[n, k0 + j, p + e] = ys[j * panel + i + e]
        i = i + run
        n = n + 1
        p = 0


def grad_input_by_columns(const real_t[:, :, :, ::1] grad, const real_t[:, ::1] weight_t,
                          real_t[:, :, :, ::1] dx, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t DH, Py_ssize_t DW,
                          Py_ssize_t top, Py_ssize_t left, int num_threads):
    """dL/dx of a stride-1, ungrouped NCHW convolution, image by image through its columns.

    ``grad`` is ``(N, K, OH, OW)``, ``weight_t`` ``(C*KH*KW, K)`` (the weight
    ``(K, C, KH, KW)`` transposed), ``dx`` ``(N, C, H, W)``, zeroed by the
    caller. Per image the column tiles compute the columns ``weight_t @
    grad[n]`` (a 1x1 convolution of the grad, ``C*KH*KW`` planes of
    ``OH*OW``, read in place as one row) into a per-thread scratch buffer in
    cache, and each column plane is added into ``dx[n, c]`` at its tap's
    offset ``(ki*DH - top, kj*DW - left)``, dropping what falls in the
    padding. Each image is one task and adds its taps in the same order, so
    results do not depend on the thread count. ``OH*OW`` must be at least
    ``MAX_TILE_WIDTH``: the tiles then read only inside the grad (checked).
    Raises MemoryError if a buffer cannot be allocated.
    """
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t T = C * KH * KW, P = OH * OW, blocks = (T + 7) // 8
    if dx.shape[0] != N or weight_t.shape[0] != T or weight_t.shape[1] != K:
        raise ValueError("grad_input_by_columns: weight_t must be (C*KH*KW, K) for grad (N, K, ...) and dx (N, C, ...)")
    if P < TILE_SLACK or min(KH, KW, DH, DW) < 1 or top < 0 or left < 0:
        raise ValueError("grad_input_by_columns: bad geometry, or fewer output pixels than a tile's width")
    cdef PackSource source = _pack_source(T, K, 1, T, K, 1, 1, None, "grad_input_by_columns")
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef real_t* w_packed = <real_t*>_calloc_aligned(blocks * K * 8, sizeof(real_t))
    cdef real_t* zero_bias = <real_t*>calloc(blocks * 8, sizeof(real_t))
    if w_packed == NULL or zero_bias == NULL:
        _free_aligned(w_packed)
        free(zero_bias)
        raise MemoryError("conv2d_grad_input: cannot allocate the packed weights")
    cdef Py_ssize_t r, n
    cdef real_t* cols
    cdef int failed[1]
    failed[0] = 0
    with nogil:
        for r in range(blocks):
            _pack_block(&weight_t[0, 0], &source, NULL, w_packed + r * K * 8, zero_bias + r * 8, r, blocks, T,
                        K, 1, 8)
    if num_threads == 1:  # no OpenMP team for one thread (see the module docstring)
        with nogil:
            cols = <real_t*>_calloc_aligned(blocks * 8 * P, sizeof(real_t))
            if cols == NULL:
                failed[0] = 1
            else:
                for n in range(N):
                    _grad_input_image_by_columns(tiles, grad, n, w_packed, zero_bias, cols, dx, KH, KW, DH, DW,
                                                 top, left)
            _free_aligned(cols)
    else:
        with nogil, parallel(num_threads=num_threads):
            cols = <real_t*>_calloc_aligned(blocks * 8 * P, sizeof(real_t))
            for n in prange(N, schedule="static"):
                if cols == NULL:
                    failed[0] = 1
                    continue
                _grad_input_image_by_columns(tiles, grad, n, w_packed, zero_bias, cols, dx, KH, KW, DH, DW,
                                             top, left)
            _free_aligned(cols)
    _free_aligned(w_packed)
    free(zero_bias)
    if failed[0]:
        raise MemoryError("conv2d_grad_input: cannot allocate the columns' scratch buffer")


cdef void _grad_input_image_by_columns(const fc_tiles* tiles, const real_t[:, :, :, ::1] grad, Py_ssize_t n,
                                       const real_t* w_packed, const real_t* zero_bias, real_t* cols,
                                       real_t[:, :, :, ::1] dx, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t DH,
                                       Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left) noexcept nogil:
    """Image ``n`` of :func:`grad_input_by_columns`: its columns into ``cols``, then added into ``dx[n]``."""
    cdef Py_ssize_t K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t T = C * KH * KW, P = OH * OW, blocks = (T + 7) // 8
    cdef Py_ssize_t r, c, ki, kj, oh, i, j0, lo, hi
    cdef ptrdiff_t tap0[1]
    tap0[0] = 0
    cdef const real_t* src
    cdef real_t* dst
    for r in range(blocks):  # the grad's planes as one row of P pixels: no row tails
        _tile_plane(tiles, False, &grad[n, 0, 0, 0], P, P, tap0, 1, K, w_packed + r * K * 8, zero_bias + r * 8,
                    cols + r * 8 * P, 1, P, P, min(8, T - r * 8), 0, 1, 0)
    for c in range(C):
        for ki in range(KH):
            for kj in range(KW):
                j0 = kj * DW - left  # column of dx that output column 0 of this tap adds into
                lo = max(0, -j0)
                hi = min(OW, W - j0)
                for oh in range(OH):
                    i = oh + ki * DH - top
                    if i < 0 or i >= H or lo >= hi:
                        continue
                    src = cols + ((c * KH + ki) * KW + kj) * P + oh * OW
                    dst = &dx[n, c, i, 0] + j0
                    if real_t is float:
                        tiles.addrow32(dst + lo, src + lo, <int>(hi - lo))
                    else:
                        tiles.addrow64(dst + lo, src + lo, <int>(hi - lo))


def conv2d_depthwise_packed(const real_t[:, :, :, :] x, const real_t[::1] w_packed,
                            const real_t[::1] bias_packed, real_t[:, :, :, ::1] out, Py_ssize_t pad_top,
                            Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hq, Py_ssize_t wq,
                            const ptrdiff_t[::1] taps, int num_threads):
    """Depthwise NCHW convolution (``groups == C == K``) from the unpadded input, any strides.

    Parallel over (image, block of 8 channels): each task pads and splits its
    8 input planes by stride phase (:func:`phase_planes`, ``sh*sw*hq*wq``
    elements each) into a per-thread scratch buffer, which stays in cache,
    and runs the depthwise tiles on it; so the input is read from memory once
    and no padded copy of it is made. ``w_packed`` is ``(blocks, ntaps, 8)``
    and ``bias_packed`` ``(blocks, 8)``, zero past the last channel; ``taps``
    as :func:`fastconv._conv.stride_phases` gives them. Raises MemoryError if
    a scratch buffer cannot be allocated.
    """
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t chan = sh * sw * hq * wq
    cdef Py_ssize_t blocks = (K + 7) // 8
    cdef Py_ssize_t ntaps = taps.shape[0]
    if x.shape[0] != N or x.shape[1] != K:
        raise ValueError("conv2d_depthwise_packed: x and out must have the same images and channels")
    if w_packed.shape[0] != blocks * ntaps * 8 or bias_packed.shape[0] != blocks * 8:
        raise ValueError("conv2d_depthwise_packed: weights not packed in blocks of 8 channels")
    cdef Py_ssize_t t, n, kb, k0, nk, j
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef real_t* xs
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: the copies rewrite the same elements, so the padding stays zero; the
        # slack after the 8 planes takes the reads of tiles wider than a row
        xs = <real_t*>_calloc_aligned(8 * chan + TILE_SLACK, sizeof(real_t))
        for t in prange(N * blocks, schedule="static"):
            if xs == NULL:
                failed[0] = 1
                continue
            n = t // blocks
            kb = t - n * blocks
            k0 = kb * 8
            nk = min(8, K - k0)
            if ntaps == 9:  # 3x3: plane by plane, each plane's weights held in registers
                for j in range(nk):
                    _pack_phases(x, n, k0 + j, xs + j * chan, pad_top, pad_left, sh, sw, hq, wq)
                    if real_t is float:
                        tiles.dwplane32(xs + j * chan, wq, &taps[0], &w_packed[0] + kb * ntaps * 8 + j, 8,
                                        bias_packed[kb * 8 + j], &out[n, k0 + j, 0, 0], <int>OH, <int>OW)
                    else:
                        tiles.dwplane64(xs + j * chan, wq, &taps[0], &w_packed[0] + kb * ntaps * 8 + j, 8,
                                        bias_packed[kb * 8 + j], &out[n, k0 + j, 0, 0], <int>OH, <int>OW)
                continue
            for j in range(nk):  # planes past nk are never read: the tile repeats plane nk-1
                _pack_phases(x, n, k0 + j, xs + j * chan, pad_top, pad_left, sh, sw, hq, wq)
            _tile_plane(tiles, True, xs, chan, wq, &taps[0], ntaps, 1, &w_packed[0] + kb * ntaps * 8,
                        &bias_packed[0] + kb * 8, &out[n, k0, 0, 0], OH, OW, OH * OW, nk, 0, OH, 0)
        _free_aligned(xs)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the depthwise tiles' scratch buffer")


def depthwise_lanes(dtype_char, int level=-1):
    """Channels a depthwise group of :func:`conv2d_depthwise_lanes` takes at ``level`` (default: the current one).

    The level's vector lanes (``'f'`` float32, ``'d'`` float64); 0 where the
    level has no such kernel (a compiler without vector extensions).
    """
    return _level_lanes(fc_active_tiles() if level < 0 else fc_level_tiles(level), dtype_char == "f")


cdef Py_ssize_t _level_lanes(const fc_tiles* tiles, bint is_float) noexcept:
    """The lanes of a level's depthwise lanes kernels (0: it has none; its three kernels come together)."""
    if is_float:
        return tiles.width_f32 if tiles.dwlanes32 != NULL else 0
    return tiles.width_f64 if tiles.dwlanes64 != NULL else 0


cdef Py_ssize_t _lanes_level_checked(str name, bint is_float, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                                     Py_ssize_t dw, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t pad_top,
                                     Py_ssize_t pad_left) except -1:
    """The current level's lanes for a lanes kernel ``name``, its geometry checked (ValueError)."""
    cdef Py_ssize_t L = _level_lanes(fc_active_tiles(), is_float)
    if L == 0:
        raise ValueError(f"{name}: the SIMD level has no depthwise lanes kernel")
    if sh < 1 or sw < 1 or dh < 1 or dw < 1 or KH < 1 or KW < 1 or pad_top < 0 or pad_left < 0:
        raise ValueError(f"{name}: strides, dilations and kernel sizes of at least 1, padding of at least 0")
    return L


cdef ptrdiff_t* _lanes_taps(str name, Py_ssize_t L, Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW,
                            Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh,
                            Py_ssize_t dw, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t* HP, Py_ssize_t* WP) except NULL:
    """The padded plane of vectors a lanes kernel lays its planes out in, and its taps (malloc'd: free them).

    ``HP`` x ``WP`` vectors: every row and column an output reads, and every
    one of the ``H`` x ``W`` planes copied into it from row ``pad_top`` and
    column ``pad_left``; tap ``(i, j)`` is ``(i*dh*WP + j*dw) * L`` items
    from an output pixel's first. ValueError where an extent passes the
    kernels' ``int``.
    """
    HP[0] = max((OH - 1) * sh + (KH - 1) * dh + 1, pad_top + H)
    WP[0] = max((OW - 1) * sw + (KW - 1) * dw + 1, pad_left + W)
    if HP[0] > INT_MAX or WP[0] > INT_MAX or OH * OW > INT_MAX or H * W > INT_MAX or KH * KW > INT_MAX:
        raise ValueError(f"{name}: planes too large")
    cdef ptrdiff_t* taps = <ptrdiff_t*>malloc(KH * KW * sizeof(ptrdiff_t))
    if taps == NULL:
        raise MemoryError("conv2d: cannot allocate the depthwise lanes' taps")
    cdef Py_ssize_t i, j
    for i in range(KH):
        for j in range(KW):
            taps[i * KW + j] = (i * dh * WP[0] + j * dw) * L
    return taps


cdef bint _whole_items(const real_t[:, :, :, :] a) noexcept:
    """Whether ``a``'s strides are whole items (the lanes kernels step by items)."""
    cdef int d
    for d in range(4):
        if a.strides[d] % <Py_ssize_t>sizeof(real_t):
            return False
    return True


cdef bint _pixel_vectors(const real_t[:, :, :, :] a) noexcept:
    """Whether an NHWC ``a``'s channels lie side by side, its strides whole items (the NHWC kernels' loads)."""
    return _whole_items(a) and (a.shape[3] < 2 or a.strides[3] == <Py_ssize_t>sizeof(real_t))


def conv2d_depthwise_lanes(const real_t[:, :, :, :] x, const real_t[::1] w_packed, const real_t[::1] bias_packed,
                           real_t[:, :, :, ::1] out, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t KH, Py_ssize_t KW,
                           int num_threads):
    """Depthwise NCHW convolution (``groups == C == K``) with channels in the vector lanes.

    Parallel over (image, group of ``L`` channels), ``L`` the level's lanes
    (:func:`depthwise_lanes`): each task lays its planes out pixel by pixel
    in a per-thread padded plane of vectors, computes each output pixel as
    one vector (the bias, then each tap's product in tap order: the plane
    tiles' sums, the same bits) and copies the vectors back plane by plane
    (``dw_lanes_impl.h``). For planes too small to fill the plane tiles'
    vectors. ``x`` is ``(N, K, H, W)`` unpadded (any strides; where its
    channels lie side by side, an NHWC array's view, each pixel's channels
    are copied as a vector, no transpose), ``out`` ``(N, K, OH, OW)``
    C-contiguous; the output reads rows ``oh*sh + kh*dh - pad_top`` of
    ``x`` (those outside it are zero), columns likewise. ``w_packed`` is
    :func:`pack_weights`' in blocks of ``L`` channels (``(groups, KH*KW,
    L)``) and ``bias_packed`` ``(groups, L)``. Raises MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t L = _lanes_level_checked("conv2d_depthwise_lanes", real_t is float, sh, sw, dh, dw, KH, KW,
                                             pad_top, pad_left)
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], groups = (K + L - 1) // L, ntaps = KH * KW
    if x.shape[0] != N or x.shape[1] != K:
        raise ValueError("conv2d_depthwise_lanes: x and out must have the same images and channels")
    if w_packed.shape[0] != groups * ntaps * L or bias_packed.shape[0] != groups * L:
        raise ValueError("conv2d_depthwise_lanes: weights not packed in blocks of the level's lanes")
    if H == 0 or W == 0:
        raise ValueError("conv2d_depthwise_lanes: x must have pixels")
    cdef Py_ssize_t item = sizeof(real_t)
    if N == 0 or K == 0 or OH == 0 or OW == 0:
        return
    if not _whole_items(x):
        raise ValueError("conv2d_depthwise_lanes: x's strides must be whole items")
    cdef Py_ssize_t cs = x.strides[1] // item, rs = x.strides[2] // item, ws = x.strides[3] // item
    cdef Py_ssize_t HP, WP, t, n, g, k0
    cdef ptrdiff_t* taps = _lanes_taps("conv2d_depthwise_lanes", L, H, W, OH, OW, pad_top, pad_left, sh, sw, dh, dw,
                                       KH, KW, &HP, &WP)
    cdef Py_ssize_t plane = HP * WP * L
    cdef real_t* xs
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: each task writes the same elements, so the padding stays zero
        xs = <real_t*>_calloc_aligned(plane, sizeof(real_t))
        for t in prange(N * groups, schedule="static"):
            if xs == NULL:
                failed[0] = 1
                continue
            n = t // groups
            g = t - n * groups
            k0 = g * L
            if real_t is float:
                tiles.dwlanes32(&x[n, k0, 0, 0], cs, rs, ws, <int>min(L, K - k0), <int>H, <int>W, xs, WP,
                                <int>pad_top, <int>pad_left, taps, <int>ntaps, <int>sh, <int>sw,
                                &w_packed[0] + g * ntaps * L, &bias_packed[0] + g * L,
                                &out[n, k0, 0, 0], OH * OW, <int>OH, <int>OW)
            else:
                tiles.dwlanes64(&x[n, k0, 0, 0], cs, rs, ws, <int>min(L, K - k0), <int>H, <int>W, xs, WP,
                                <int>pad_top, <int>pad_left, taps, <int>ntaps, <int>sh, <int>sw,
                                &w_packed[0] + g * ntaps * L, &bias_packed[0] + g * L,
                                &out[n, k0, 0, 0], OH * OW, <int>OH, <int>OW)
        _free_aligned(xs)
    free(taps)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the depthwise lanes' scratch buffer")


def conv2d_depthwise_nhwc(const real_t[:, :, :, :] x, const real_t[:, ::1] w, const real_t[::1] bias,
                          real_t[:, :, :, :] out, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh,
                          Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t KH, Py_ssize_t KW,
                          Py_ssize_t chunks, int num_threads, bint ahead=False):
    """Depthwise NHWC convolution (``groups == C == K``) on the pixels' vectors of channels.

    ``x`` is ``(N, H, W, K)`` unpadded and ``out`` ``(N, OH, OW, K)``, each
    with its channels side by side (any other strides, whole items; ``out``
    may be a view of every ``s``-th pixel, as a stride phase of an input
    gradient writes);
    the output reads rows ``oh*sh + kh*dh - pad_top`` of ``x`` (those
    outside it are zero), columns likewise. ``w`` is the HWIO weight as
    ``(KH*KW, K)`` (tap ``kh*KW + kw`` of channel ``k`` at ``w[t, k]``) and
    ``bias`` ``(K,)`` or None (zeros). Parallel over (image, output row, part
    of the channels): each row's channels are cut into ``chunks`` parts of
    whole groups of the level's lanes ``L`` (:func:`depthwise_lanes`; more
    tasks where there are few rows). A row's pixels go eight at a time, each
    group of ``L`` channels a vector of sums per pixel (the bias, then each
    tap's product in tap order: the bits of the NCHW kernels), read and
    stored in place (``dw_nhwc_impl.h``). With ``ahead``, each row asks for
    the input lines the next row reads first (``FC_DWN_AHEAD``: for calls
    whose arrays stream from memory; a hint, the same results).
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t L = _lanes_level_checked("conv2d_depthwise_nhwc", real_t is float, sh, sw, dh, dw, KH, KW,
                                             pad_top, pad_left)
    cdef Py_ssize_t N = out.shape[0], OH = out.shape[1], OW = out.shape[2], K = out.shape[3]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], groups = (K + L - 1) // L, ntaps = KH * KW
    if x.shape[0] != N or x.shape[3] != K:
        raise ValueError("conv2d_depthwise_nhwc: x and out must have the same images and channels")
    if w.shape[0] != ntaps or w.shape[1] != K or (bias is not None and bias.shape[0] != K):
        raise ValueError("conv2d_depthwise_nhwc: w must be (KH*KW, K) and bias (K,)")
    if H == 0 or W == 0:
        raise ValueError("conv2d_depthwise_nhwc: x must have pixels")
    if N == 0 or K == 0 or OH == 0 or OW == 0:
        return
    cdef Py_ssize_t item = sizeof(real_t)
    if not (_pixel_vectors(x) and _pixel_vectors(out)):
        raise ValueError("conv2d_depthwise_nhwc: channels must be side by side, strides whole items")
    if max(H, W, K, OW, KH, KW, sh, sw, dh, dw, pad_top, pad_left, (OH - 1) * sh + (KH - 1) * dh,
           (OW - 1) * sw + (KW - 1) * dw) > INT_MAX:
        raise ValueError("conv2d_depthwise_nhwc: extents too large")
    chunks = max(1, min(chunks, groups))
    cdef Py_ssize_t per = (groups + chunks - 1) // chunks * L  # channels a part takes
    cdef Py_ssize_t rs = x.strides[1] // item, ws = x.strides[2] // item, ows = out.strides[2] // item
    cdef const real_t* b = NULL
    if bias is not None:
        b = &bias[0]
    cdef Py_ssize_t t, n, r, oh, k0
    with nogil:
        for t in prange(N * OH * chunks, schedule="static", num_threads=num_threads):
            n = t // (OH * chunks)
            r = t - n * OH * chunks
            oh = r // chunks
            k0 = (r - oh * chunks) * per
            if k0 >= K:
                continue
            if real_t is float:
                tiles.dwnhwc32(&x[n, 0, 0, 0], rs, ws, <int>H, <int>W, <int>k0, <int>min(K, k0 + per), <int>KH,
                               <int>KW, <int>dh, <int>dw, <int>sh, <int>sw, <int>pad_top, <int>pad_left, &w[0, 0],
                               K, b, &out[n, oh, 0, 0], ows, <int>oh, <int>OW, ahead)
            else:
                tiles.dwnhwc64(&x[n, 0, 0, 0], rs, ws, <int>H, <int>W, <int>k0, <int>min(K, k0 + per), <int>KH,
                               <int>KW, <int>dh, <int>dw, <int>sh, <int>sw, <int>pad_top, <int>pad_left, &w[0, 0],
                               K, b, &out[n, oh, 0, 0], ows, <int>oh, <int>OW, ahead)


def conv2d_grad_weight_depthwise_nhwc(const real_t[:, :, :, :] x, const real_t[:, :, :, :] grad,
                                      real_t[:, ::1] dw, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh,
                                      Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dwd, Py_ssize_t KH, Py_ssize_t KW,
                                      Py_ssize_t band, int num_threads):
    """dL/dw of a depthwise NHWC convolution (``groups == C == K``) on the pixels' vectors of channels.

    The weight gradient of :func:`conv2d_depthwise_nhwc`'s convolution (its
    geometry: ``pad_top``, ``pad_left``, strides ``sh``, ``sw``, dilations
    ``dh``, ``dwd``, a ``KH`` x ``KW`` kernel), into ``dw`` ``(KH*KW, K)``
    (the HWIO weight's layout; written, not added to). ``x`` ``(N, H, W,
    K)`` unpadded and ``grad`` ``(N, OH, OW, K)``, each with its channels
    side by side (any other strides, whole items). Parallel over parts of
    the channels (whole groups of the level's lanes ``L``, one part per
    thread): each task goes image after image, band of ``band`` output rows
    after band and, within a band (in cache), group after group, adding
    each tap's products pixel after pixel into the group's vector of sums
    for the tap, reading the pixels in place
    (``dw_nhwc_impl.h``); the results do not depend on the thread count and
    are the lanes kernel's bits
    (:func:`conv2d_grad_weight_depthwise_lanes`). Raises MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t L = _lanes_level_checked("conv2d_grad_weight_depthwise_nhwc", real_t is float, sh, sw, dh,
                                             dwd, KH, KW, pad_top, pad_left)
    cdef Py_ssize_t N = grad.shape[0], OH = grad.shape[1], OW = grad.shape[2], K = grad.shape[3]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], groups = (K + L - 1) // L, ntaps = KH * KW
    if x.shape[0] != N or x.shape[3] != K:
        raise ValueError("conv2d_grad_weight_depthwise_nhwc: x and grad must have the same images and channels")
    if dw.shape[0] != ntaps or dw.shape[1] != K:
        raise ValueError("conv2d_grad_weight_depthwise_nhwc: dw must be (KH*KW, K)")
    if H == 0 or W == 0:
        raise ValueError("conv2d_grad_weight_depthwise_nhwc: x must have pixels")
    if K == 0:
        return
    if N == 0 or OH == 0 or OW == 0:
        dw[:, :] = 0
        return
    cdef Py_ssize_t item = sizeof(real_t)
    if not (_pixel_vectors(x) and _pixel_vectors(grad)):
        raise ValueError("conv2d_grad_weight_depthwise_nhwc: channels must be side by side, strides whole items")
    if max(N, H, W, K, OH, OW, KH, KW, sh, sw, dh, dwd, pad_top, pad_left, (OH - 1) * sh + (KH - 1) * dh,
           (OW - 1) * sw + (KW - 1) * dwd) > INT_MAX:
        raise ValueError("conv2d_grad_weight_depthwise_nhwc: extents too large")
    band = max(1, min(band, OH))
    cdef Py_ssize_t xns = x.strides[0] // item, xrs = x.strides[1] // item, xws = x.strides[2] // item
    cdef Py_ssize_t gns = grad.strides[0] // item, grs = grad.strides[1] // item, gws = grad.strides[2] // item
    cdef Py_ssize_t parts = max(1, min(num_threads, groups)), part, k0, k1, t, k
    cdef Py_ssize_t per = (groups + parts - 1) // parts * L  # channels a part takes: whole groups
    cdef real_t* sums
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=parts):
        # a vector of sums per group and tap, and as many for an image's
        sums = <real_t*>_calloc_aligned(2 * ntaps * per, sizeof(real_t))
        for part in prange(parts, schedule="static"):
            k0 = part * per
            k1 = min(K, k0 + per)
            if k0 >= K:
                continue
            if sums == NULL:
                failed[0] = 1
                continue
            memset(sums, 0, ntaps * per * sizeof(real_t))
            if real_t is float:
                tiles.dwnhwc_wgrad32(&x[0, 0, 0, 0], xns, xrs, xws, &grad[0, 0, 0, 0], gns, grs, gws, <int>N,
                                     <int>H, <int>W, <int>OH, <int>OW, <int>k0, <int>k1, <int>KH, <int>KW,
                                     <int>dh, <int>dwd, <int>sh, <int>sw, <int>pad_top, <int>pad_left, <int>band,
                                     sums)
            else:
                tiles.dwnhwc_wgrad64(&x[0, 0, 0, 0], xns, xrs, xws, &grad[0, 0, 0, 0], gns, grs, gws, <int>N,
                                     <int>H, <int>W, <int>OH, <int>OW, <int>k0, <int>k1, <int>KH, <int>KW,
                                     <int>dh, <int>dwd, <int>sh, <int>sw, <int>pad_top, <int>pad_left, <int>band,
                                     sums)
            for k in range(k0, k1):  # group (k - k0) // L, lane k % L
                for t in range(ntaps):
                    dw[t, k] = sums[((k - k0) // L * ntaps + t) * L + k % L]
        _free_aligned(sums)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the depthwise NHWC weight gradient's sums")


def has_pointwise_nhwc_kernels(int level=-1):
    """Whether SIMD level ``level`` (default: the current one) has ``pw_nhwc_impl.h``'s kernels.

    They run :func:`pointwise_nhwc_direct` and :func:`pointwise_grad_weight_nhwc`
    (none where the compiler has no vector extensions).
    """
    return (fc_active_tiles() if level < 0 else fc_level_tiles(level)).pwgw32 != NULL


def pointwise_grad_weight_nhwc(const real_t[:, ::1] b, const real_t[:, ::1] v, real_t[:, ::1] out,
                               int num_threads, Py_ssize_t segments=1):
    """``out = b.T @ v``: the products of two arrays' rows summed over their rows, both read in place.

    ``b`` ``(P, NB)`` and ``v`` ``(P, NV)`` C-contiguous (a 1x1 NHWC
    convolution's input and grad as their pixels' rows, in either order:
    ``v`` the one with fewer channels), ``out`` ``(NB, NV)`` C-contiguous,
    written (not added to). ``pw_nhwc_impl.h``: tiles of rows of ``out`` x
    vectors of its columns, the pixels in chunks whose ``v`` rows stay in
    L1. The pixels are cut into ``segments`` runs (as even as can be, at
    most ``P``); each output is the sum over each run's pixels in order from
    0, the runs' sums then added in order: the results depend on
    ``segments`` but neither on the chunks nor on the thread count. Parallel
    over the runs and, where threads outnumber them, over parts of
    ``out``'s rows (whole tiles' rows; each part reads the whole of its
    run of ``v``). Raises NotImplementedError where the SIMD level has no
    such kernel (:func:`has_pointwise_nhwc_kernels`: a compiler without
    vector extensions).
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    if tiles.pwgw32 == NULL:
        raise NotImplementedError("pointwise_grad_weight_nhwc: the SIMD level has no such kernel")
    cdef Py_ssize_t P = b.shape[0], NB = b.shape[1], NV = v.shape[1]
    if v.shape[0] != P:
        raise ValueError("pointwise_grad_weight_nhwc: b and v must have the same rows")
    if out.shape[0] != NB or out.shape[1] != NV:
        raise ValueError("pointwise_grad_weight_nhwc: out must be (b's columns, v's columns)")
    if NB > INT_MAX - 64 or NV > INT_MAX - 64:  # (the kernel's int rows and columns, a tile or block past)
        raise ValueError("pointwise_grad_weight_nhwc: extents too large")
    if segments < 1:
        raise ValueError("pointwise_grad_weight_nhwc: segments must be at least 1")
    if NB == 0 or NV == 0:
        return
    if P == 0:
        out[:, :] = 0
        return
    segments = min(segments, P)
    cdef real_t* partials = NULL  # (the sums of runs 1, 2, ...: run 0's go to out)
    if segments > 1:
        partials = <real_t*>_calloc_aligned((segments - 1) * NB * NV, sizeof(real_t), False)
        if partials == NULL:
            raise MemoryError("pointwise_grad_weight_nhwc: cannot allocate the runs' sums")
    cdef Py_ssize_t rows = tiles.pwgw_rows, blocks = (NB + rows - 1) // rows
    cdef Py_ssize_t parts = max(1, min((num_threads + segments - 1) // segments, blocks))
    cdef Py_ssize_t per = (blocks + parts - 1) // parts * rows  # rows a part takes: whole tiles
    cdef Py_ssize_t task, seg, p0, p1, b0, b1, r
    cdef real_t* target
    cdef int threads = <int>max(1, min(num_threads, segments * parts))
    with nogil, parallel(num_threads=threads):
        for task in prange(segments * parts, schedule="static"):
            seg = task // parts
            b0 = task % parts * per
            b1 = min(NB, b0 + per)
            if b0 >= NB:
                continue
            p0 = P * seg // segments
            p1 = P * (seg + 1) // segments
            target = &out[0, 0] if seg == 0 else partials + (seg - 1) * NB * NV
            if real_t is float:
                tiles.pwgw32(&b[p0, 0], NB, 1, <int>b0, <int>b1, &v[p0, 0], NV, <int>NV, p1 - p0, NULL, target,
                             NV, 1)
            else:
                tiles.pwgw64(&b[p0, 0], NB, 1, <int>b0, <int>b1, &v[p0, 0], NV, <int>NV, p1 - p0, NULL, target,
                             NV, 1)
    if segments > 1:
        with nogil, parallel(num_threads=<int>max(1, min(num_threads, NB))):
            for r in prange(NB, schedule="static"):
                for seg in range(segments - 1):  # (in order: the same sums for any thread count)
                    if real_t is float:
                        tiles.addrow32(&out[r, 0], partials + (seg * NB + r) * NV, <int>NV)
                    else:
                        tiles.addrow64(&out[r, 0], partials + (seg * NB + r) * NV, <int>NV)
        _free_aligned(partials)


#: Pixels a task of :func:`pointwise_nhwc_direct` takes (a multiple of the tiles' 4 and 6 rows).
POINTWISE_NHWC_PIXELS = 96
#: Filters of a group :func:`pointwise_nhwc_direct`'s tasks may split the filters into (a multiple
#: of every level's block of columns: 4 x 16, 3 x 8 and 3 x 4 float32, half as many float64).
POINTWISE_NHWC_FILTERS = 192
#: Tasks per thread :func:`pointwise_nhwc_direct` makes at least, where filter groups allow.
POINTWISE_NHWC_TASKS = 4


def pointwise_nhwc_direct(const real_t[:, ::1] x, const real_t[:, ::1] w, const real_t[::1] bias,
                          real_t[:, ::1] out, int num_threads):
    """``out = x @ w + bias``: a 1x1 NHWC convolution's pixels times its weight, both read in place.

    ``x`` ``(P, C)`` (the pixels' rows of channels), ``w`` ``(C, K)`` (the
    HWIO weight's rows), ``out`` ``(P, K)``, C-contiguous; ``bias`` ``(K,)``
    or None (zeros). The kernel of :func:`pointwise_grad_weight_nhwc`
    (``pw_nhwc_impl.h``) with the pixels as its rows (``C`` items apart) and
    the channels as the sum's steps: tiles of pixels x vectors of filters,
    the weight's rows a chunk at a time in L1; each output sums its
    channels in order from its bias (as the NCHW tiles do), whatever the
    thread count. Parallel over runs of ``POINTWISE_NHWC_PIXELS`` pixels,
    and where they are fewer than ``POINTWISE_NHWC_TASKS`` a thread, over
    groups of ``POINTWISE_NHWC_FILTERS`` filters too (the same sums; one
    image of 7x7, 64 to 1024 channels, two threads: 1.20x against runs
    alone; one of 14x14 or 28x28 0.98-1.05x).
    Raises NotImplementedError where the SIMD level has no such kernel.
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    if tiles.pwgw32 == NULL:
        raise NotImplementedError("pointwise_nhwc_direct: the SIMD level has no such kernel")
    cdef Py_ssize_t P = x.shape[0], C = x.shape[1], K = w.shape[1]
    if w.shape[0] != C or out.shape[0] != P or out.shape[1] != K:
        raise ValueError("pointwise_nhwc_direct: w must be (C, K) and out (P, K) for x (P, C)")
    if bias is not None and bias.shape[0] != K:
        raise ValueError("pointwise_nhwc_direct: bias must be (K,)")
    if K > INT_MAX - 64:  # (the kernel's int columns, a block past)
        raise ValueError("pointwise_nhwc_direct: extents too large")
    if C == 0:
        raise ValueError("pointwise_nhwc_direct: x must have channels")
    if P == 0 or K == 0:
        return
    cdef const real_t* b_ptr = NULL
    if bias is not None:
        b_ptr = &bias[0]
    cdef Py_ssize_t per = POINTWISE_NHWC_PIXELS, runs = (P + per - 1) // per, run, p0, n
    # few runs of pixels (a small image): the threads share groups of filters too (the same sums)
    cdef Py_ssize_t width = POINTWISE_NHWC_FILTERS, groups = (K + width - 1) // width
    cdef Py_ssize_t parts = max(1, min(groups, (POINTWISE_NHWC_TASKS * num_threads + runs - 1) // runs))
    cdef Py_ssize_t task, part, k0, k1
    with nogil, parallel(num_threads=<int>max(1, min(num_threads, runs * parts))):
        for task in prange(runs * parts, schedule="static"):
            run = task // parts
            part = task - run * parts
            p0 = run * per
            n = min(P - p0, per)
            k0 = part * groups // parts * width  # filters k0 .. k1 (whole groups)
            k1 = min(K, (part + 1) * groups // parts * width)
            if real_t is float:
                tiles.pwgw32(&x[p0, 0], 1, C, 0, <int>n, &w[0, k0], K, <int>(k1 - k0), C,
                             b_ptr + k0 if b_ptr != NULL else NULL, &out[p0, k0], K, 0)
            else:
                tiles.pwgw64(&x[p0, 0], 1, C, 0, <int>n, &w[0, k0], K, <int>(k1 - k0), C,
                             b_ptr + k0 if b_ptr != NULL else NULL, &out[p0, k0], K, 0)


def conv2d_grad_weight_depthwise_lanes(const real_t[:, :, :, :] x, const real_t[:, :, :, :] grad,
                                       real_t[::1] dw, Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh,
                                       Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dwd, Py_ssize_t KH, Py_ssize_t KW,
                                       int num_threads):
    """dL/dw of a depthwise convolution (``groups == C == K``) with channels in the vector lanes.

    The weight gradient of :func:`conv2d_depthwise_lanes`' convolution (its
    geometry: ``pad_top``, ``pad_left``, strides ``sh``, ``sw``, dilations
    ``dh``, ``dwd``, a ``KH`` x ``KW`` kernel), into ``dw`` ``(K, 1, KH, KW)``
    flat (written, not added to). ``x`` ``(N, C, H, W)`` unpadded and
    ``grad`` ``(N, K, OH, OW)``, any strides. Parallel over groups of ``L``
    channels: each task lays out each image's input planes (padded) and grad
    planes pixel by pixel, then adds each tap's products, image after image
    and pixel after pixel, to a vector of sums per tap (so the results do not
    depend on the thread count). Raises MemoryError if a scratch buffer
    cannot be allocated.
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t L = _lanes_level_checked("conv2d_grad_weight_depthwise_lanes", real_t is float, sh, sw, dh, dwd,
                                             KH, KW, pad_top, pad_left)
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], groups = (K + L - 1) // L, ntaps = KH * KW
    if x.shape[0] != N or x.shape[1] != K:
        raise ValueError("conv2d_grad_weight_depthwise_lanes: x and grad must have the same images and channels")
    if dw.shape[0] != K * ntaps:
        raise ValueError("conv2d_grad_weight_depthwise_lanes: dw must hold K * KH * KW items")
    if H == 0 or W == 0:
        raise ValueError("conv2d_grad_weight_depthwise_lanes: x must have pixels")
    if K == 0:
        return
    if N == 0 or OH == 0 or OW == 0:
        dw[:] = 0
        return
    if not (_whole_items(x) and _whole_items(grad)):
        raise ValueError("conv2d_grad_weight_depthwise_lanes: strides must be whole items")
    if N > INT_MAX:
        raise ValueError("conv2d_grad_weight_depthwise_lanes: too many images")
    cdef Py_ssize_t item = sizeof(real_t)
    cdef Py_ssize_t xns = x.strides[0] // item, cs = x.strides[1] // item, rs = x.strides[2] // item
    cdef Py_ssize_t ws = x.strides[3] // item
    cdef Py_ssize_t gns = grad.strides[0] // item, gcs = grad.strides[1] // item, grs = grad.strides[2] // item
    cdef Py_ssize_t gws = grad.strides[3] // item
    cdef Py_ssize_t HP, WP, t, g, k0, l, nc
    cdef ptrdiff_t* taps = _lanes_taps("conv2d_grad_weight_depthwise_lanes", L, H, W, OH, OW, pad_top, pad_left,
                                       sh, sw, dh, dwd, KH, KW, &HP, &WP)
    cdef Py_ssize_t plane = HP * WP * L, outputs = OH * OW * L
    cdef real_t* xs
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: each image writes the same elements, so the padding stays zero; then the
        # grad's planes, then a vector of sums per tap
        xs = <real_t*>_calloc_aligned(plane + outputs + ntaps * L, sizeof(real_t))
        for g in prange(groups, schedule="static"):
            if xs == NULL:
                failed[0] = 1
                continue
            k0 = g * L
            nc = min(L, K - k0)
            memset(xs + plane + outputs, 0, ntaps * L * sizeof(real_t))
            if real_t is float:
                tiles.dwlanes_wgrad32(&x[0, k0, 0, 0], xns, cs, rs, ws, &grad[0, k0, 0, 0], gns, gcs, grs, gws,
                                      <int>N, <int>nc, <int>H, <int>W, xs, xs + plane, WP, <int>pad_top,
                                      <int>pad_left, taps, <int>ntaps, <int>sh, <int>sw, xs + plane + outputs,
                                      <int>OH, <int>OW)
            else:
                tiles.dwlanes_wgrad64(&x[0, k0, 0, 0], xns, cs, rs, ws, &grad[0, k0, 0, 0], gns, gcs, grs, gws,
                                      <int>N, <int>nc, <int>H, <int>W, xs, xs + plane, WP, <int>pad_top,
                                      <int>pad_left, taps, <int>ntaps, <int>sh, <int>sw, xs + plane + outputs,
                                      <int>OH, <int>OW)
            for l in range(nc):
                for t in range(ntaps):
                    dw[(k0 + l) * ntaps + t] = xs[plane + outputs + t * L + l]
        _free_aligned(xs)
    free(taps)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the depthwise lanes' scratch buffer")


def conv2d_grad_input_depthwise_lanes(const real_t[:, :, :, :] grad, const real_t[::1] w_packed,
                                      real_t[:, :, :, ::1] out, Py_ssize_t pad_top, Py_ssize_t pad_left,
                                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dwd, Py_ssize_t KH,
                                      Py_ssize_t KW, int num_threads):
    """dL/dx of a depthwise convolution (``groups == C == K``) with channels in the vector lanes.

    The input gradient of :func:`conv2d_depthwise_lanes`' convolution (its
    geometry: ``pad_top``, ``pad_left``, strides ``sh``, ``sw``, dilations
    ``dh``, ``dwd``, a ``KH`` x ``KW`` kernel) into ``out`` ``(N, C, H, W)``
    (C-contiguous, written). ``grad`` ``(N, C, OH, OW)``, any strides;
    ``w_packed`` the forward weights as :func:`conv2d_depthwise_lanes` takes
    them. Parallel over (image, group of ``L`` channels): each task lays the
    grad planes out pixel by pixel, adds each grad pixel's products with the
    taps' weights to the (padded, zeroed) input pixels they read, grad
    pixels and taps in order (so the sums do not depend on the thread
    count), and copies the input planes back. Raises MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t L = _lanes_level_checked("conv2d_grad_input_depthwise_lanes", real_t is float, sh, sw, dh, dwd,
                                             KH, KW, pad_top, pad_left)
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t H = out.shape[2], W = out.shape[3], groups = (K + L - 1) // L, ntaps = KH * KW
    if out.shape[0] != N or out.shape[1] != K:
        raise ValueError("conv2d_grad_input_depthwise_lanes: grad and out must have the same images and channels")
    if w_packed.shape[0] != groups * ntaps * L:
        raise ValueError("conv2d_grad_input_depthwise_lanes: weights not packed in blocks of the level's lanes")
    if not out.is_c_contig():
        raise ValueError("conv2d_grad_input_depthwise_lanes: out must be C-contiguous")
    if N == 0 or K == 0 or H == 0 or W == 0:
        return
    if OH == 0 or OW == 0:
        out[...] = 0
        return
    if not _whole_items(grad):
        raise ValueError("conv2d_grad_input_depthwise_lanes: grad's strides must be whole items")
    cdef Py_ssize_t item = sizeof(real_t)
    cdef Py_ssize_t gcs = grad.strides[1] // item, grs = grad.strides[2] // item, gws = grad.strides[3] // item
    cdef Py_ssize_t HP, WP, t, n, g, k0
    cdef ptrdiff_t* taps = _lanes_taps("conv2d_grad_input_depthwise_lanes", L, H, W, OH, OW, pad_top, pad_left,
                                       sh, sw, dh, dwd, KH, KW, &HP, &WP)
    cdef Py_ssize_t plane = HP * WP * L
    cdef real_t* xs
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # the input gradient's padded planes (zeroed by each task), then the grad's
        xs = <real_t*>_calloc_aligned(plane + OH * OW * L, sizeof(real_t))
        for t in prange(N * groups, schedule="static"):
            if xs == NULL:
                failed[0] = 1
                continue
            n = t // groups
            g = t - n * groups
            k0 = g * L
            if real_t is float:
                tiles.dwlanes_gradin32(&grad[n, k0, 0, 0], gcs, grs, gws, <int>min(L, K - k0), <int>OH, <int>OW,
                                       xs, xs + plane, HP, WP, <int>pad_top, <int>pad_left, taps, <int>ntaps,
                                       <int>sh, <int>sw, &w_packed[0] + g * ntaps * L, &out[n, k0, 0, 0], H * W,
                                       <int>H, <int>W)
            else:
                tiles.dwlanes_gradin64(&grad[n, k0, 0, 0], gcs, grs, gws, <int>min(L, K - k0), <int>OH, <int>OW,
                                       xs, xs + plane, HP, WP, <int>pad_top, <int>pad_left, taps, <int>ntaps,
                                       <int>sh, <int>sw, &w_packed[0] + g * ntaps * L, &out[n, k0, 0, 0], H * W,
                                       <int>H, <int>W)
        _free_aligned(xs)
    free(taps)
    if failed[0]:
        raise MemoryError("conv2d: cannot allocate the depthwise lanes' scratch buffer")


cdef void _pack_phases(const real_t[:, :, :, :] x, Py_ssize_t n, Py_ssize_t c, real_t* dst,
                       Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw,
                       Py_ssize_t hq, Py_ssize_t wq) noexcept nogil:
    """Copy ``x[n, c]`` into its ``sh*sw`` stride-phase planes ``(sh, sw, hq, wq)`` at ``dst``.

    ``dst[a, b, i, j] = x[n, c, i*sh + a - pad_top, j*sw + b - pad_left]`` where that
    pixel exists; the padding is left as it is (the caller zeroes it once).
    """
    _pack_phase_rows(x, n, c, dst, pad_top, pad_left, sh, sw, 0, hq, wq, False)


cdef void _pack_phase_rows(const real_t[:, :, :, :] x, Py_ssize_t n, Py_ssize_t c, real_t* dst,
                           Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t wq, bint zero_rows,
                           Py_ssize_t ahead=0, bint zero_columns=False) noexcept nogil:
    """Copy phase rows ``r0 <= i < r0 + rows`` of ``x[n, c]`` to planes ``(sh, sw, rows, wq)`` at ``dst``.

    ``dst[a, b, i - r0, j] = x[n, c, i*sh + a - pad_top, j*sw + b - pad_left]``
    where that pixel exists. Padding columns are left as they are (zero
    once, they stay zero: every row writes the same columns); rows outside
    the image are zeroed with ``zero_rows``, else left as they are; with
    ``zero_columns`` each row's padding columns are zeroed as it is copied
    (planes in memory that were not zeroed before). ``ahead`` (elements, or
    0) is where the row the loop copies next begins relative to the one it
    copies: it asks for that row while this one is copied.
    Contiguous rows copy whole (one column phase) or split in one pass into
    their even and odd columns (two phases: ``fc_deinterleave``); other
    strides copy item by item.
    """
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], plane = rows * wq
    cdef Py_ssize_t step = x.strides[3] // <Py_ssize_t>sizeof(real_t)  # elements between columns
    cdef Py_ssize_t a, i, h, b, w0, j0, m, count
    cdef const real_t* src
    cdef real_t* out
    cdef real_t* evens
    cdef real_t* odds
    if W == 0:
        if zero_rows and zero_columns:
            memset(dst, 0, sh * sw * plane * sizeof(real_t))
        return
    if sw == 1 and step == 1:  # whole rows, no column phases: no divisions per row
        for a in range(sh):
            for i in range(rows):
                h = (r0 + i) * sh + a - pad_top
                out = dst + a * plane + i * wq
                if h < 0 or h >= H:
                    if zero_rows:
                        memset(out, 0, wq * sizeof(real_t))
                    continue
                src = &x[n, c, h, 0]
                if ahead:
                    fc_prefetch_runs(src + ahead, 1, 0, W * sizeof(real_t))
                if zero_columns:
                    _zero_outside(out, pad_left, pad_left + W, wq)
                out = out + pad_left
                if W >= 64:
                    memcpy(out, src, W * sizeof(real_t))
                else:  # short rows: a loop, not a call to memcpy
                    for m in range(W):
                        out[m] = src[m]
        return
    if sw == 2 and step == 1:  # both column phases of a row in one pass (fc_deinterleave)
        b = pad_left % 2  # the phase of even columns: column 2m lands in phase b at (2m + pad_left) // 2
        for a in range(sh):
            for i in range(rows):
                h = (r0 + i) * sh + a - pad_top
                evens = dst + (a * 2 + b) * plane + i * wq
                odds = dst + (a * 2 + 1 - b) * plane + i * wq
                if h < 0 or h >= H:
                    if zero_rows:
                        memset(evens, 0, wq * sizeof(real_t))
                        memset(odds, 0, wq * sizeof(real_t))
                    continue
                src = &x[n, c, h, 0]
                if ahead:
                    fc_prefetch_runs(src + ahead, 1, 0, W * sizeof(real_t))
                if zero_columns:
                    _zero_outside(evens, pad_left // 2, pad_left // 2 + (W + 1) // 2, wq)
                    _zero_outside(odds, (pad_left + 1) // 2, (pad_left + 1) // 2 + W // 2, wq)
                evens = evens + pad_left // 2
                odds = odds + (pad_left + 1) // 2
                if real_t is float:
                    fc_deinterleave_f32(evens, odds, src, W // 2)
                else:
                    fc_deinterleave_f64(evens, odds, src, W // 2)
                if W % 2:
                    evens[W // 2] = src[W - 1]
        return
    for a in range(sh):
        for i in range(rows):
            h = (r0 + i) * sh + a - pad_top
            if h < 0 or h >= H:
                if zero_rows:
                    for b in range(sw):
                        memset(dst + (a * sw + b) * plane + i * wq, 0, wq * sizeof(real_t))
                continue
            src = &x[n, c, h, 0]
            for b in range(sw):
                w0 = (b - pad_left % sw + sw) % sw  # first column of phase b
                if w0 >= W:
                    if zero_columns:
                        memset(dst + (a * sw + b) * plane + i * wq, 0, wq * sizeof(real_t))
                    continue
                j0 = (w0 + pad_left) // sw
                count = (W - w0 + sw - 1) // sw
                if zero_columns:
                    _zero_outside(dst + (a * sw + b) * plane + i * wq, j0, j0 + count, wq)
                out = dst + (a * sw + b) * plane + i * wq + j0
                for m in range(count):
                    out[m] = src[(w0 + m * sw) * step]


cdef void _pack_column_copies(const real_t[:, :, :, :] x, Py_ssize_t n, Py_ssize_t c, real_t* dst,
                              Py_ssize_t pad_top, Py_ssize_t pad_left, Py_ssize_t r0, Py_ssize_t rows,
                              Py_ssize_t wq, Py_ssize_t copies, Py_ssize_t copy_step,
                              Py_ssize_t ahead=0) noexcept nogil:
    """Copy rows ``r0 <= i < r0 + rows`` of the padded ``x[n, c]`` to ``copies`` shifted planes ``(rows, wq)``.

    ``dst[j, i - r0, m] = x[n, c, i - pad_top, m + j*copy_step - pad_left]``
    where that pixel exists. Rows outside the image are zeroed; padding
    columns are left as they are: they are the same columns in every row of
    a plane, so zeroed once they stay zero. ``ahead`` as for
    :func:`_pack_phase_rows`. Only pixels of the image are read, and only
    ``copies * rows * wq`` elements from ``dst`` written.
    """
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], plane = rows * wq
    cdef Py_ssize_t step = x.strides[3] // <Py_ssize_t>sizeof(real_t)
    cdef Py_ssize_t pitch = x.strides[2] // <Py_ssize_t>sizeof(real_t)
    # the image's rows among the band's: i0 <= i < i1 (the others are zero)
    cdef Py_ssize_t i0 = min(rows, max(0, pad_top - r0)), i1 = max(i0, min(rows, H + pad_top - r0))
    cdef Py_ssize_t i, j, shift, m0, m1
    cdef const real_t* src
    cdef real_t* out
    for j in range(copies if i0 > 0 or i1 < rows else 0):  # (no calls where the band is all image rows)
        memset(dst + j * plane, 0, i0 * wq * sizeof(real_t))
        memset(dst + j * plane + i1 * wq, 0, (rows - i1) * wq * sizeof(real_t))
    if i0 == i1 or W == 0:
        return
    if ahead:
        fc_prefetch_runs(&x[n, c, r0 + i0 - pad_top, 0] + ahead, i1 - i0, pitch * sizeof(real_t),
                         W * sizeof(real_t))
    for j in range(copies):
        shift = j * copy_step - pad_left  # the input column of column 0
        m0 = max(0, -shift)
        m1 = min(wq, W - shift)
        if m1 <= m0:
            continue
        src = &x[n, c, r0 + i0 - pad_top, 0] + (m0 + shift) * step
        out = dst + j * plane + i0 * wq + m0
        m1 = m1 - m0  # (columns from m0 on)
        for i in range(i1 - i0):
            _copy_run(out, src, m1, step)
            src = src + pitch
            out = out + wq


cdef void _pack_column_copies_pixels(const real_t[:, :, :, :] x, Py_ssize_t n, real_t* dst, Py_ssize_t pad_top,
                                     Py_ssize_t pad_left, Py_ssize_t r0, Py_ssize_t rows, Py_ssize_t wq,
                                     Py_ssize_t copies, Py_ssize_t copy_step) noexcept nogil:
    """:func:`_pack_column_copies` of every channel of ``x[n]``, whose channels lie side by side (an NHWC view).

    Channel ``c``'s ``copies`` planes start at ``dst + c * copies * plane``
    (``plane = rows * wq``), each as :func:`_pack_column_copies` writes it;
    ``x.strides[1]`` is one item (the caller's check). The band's input rows
    are transposed first (``fc_transpose_block``: each row's pixels by ``C``
    channels) into planes on the stack (up to ``COPY_PIXELS_BAND`` items),
    from which every copy's rows are copied as :func:`_pack_column_copies`
    copies them; larger bands transpose each copy's pixels into its planes'
    rows. So the input is read where it lies: no NCHW copy of the whole
    batch first. Only pixels of the image are read, only the planes'
    ``copies * C * rows * wq`` elements written.
    """
    cdef Py_ssize_t C = x.shape[1], H = x.shape[2], W = x.shape[3], plane = rows * wq
    cdef Py_ssize_t step = x.strides[3] // <Py_ssize_t>sizeof(real_t)  # items from a pixel to the next
    cdef Py_ssize_t i0 = min(rows, max(0, pad_top - r0)), i1 = max(i0, min(rows, H + pad_top - r0))
    cdef Py_ssize_t i, j, c, p, shift, m0, m1, count, staged_plane = (i1 - i0) * W
    cdef real_t stage[COPY_PIXELS_BAND]
    cdef const real_t* src
    cdef real_t* out
    for p in range(C * copies if i0 > 0 or i1 < rows else 0):  # rows outside the image: zero
        memset(dst + p * plane, 0, i0 * wq * sizeof(real_t))
        memset(dst + p * plane + i1 * wq, 0, (rows - i1) * wq * sizeof(real_t))
    if i0 == i1 or W == 0:
        return
    if C * staged_plane > COPY_PIXELS_BAND:  # each copy's pixels straight into its planes' rows
        for i in range(i0, i1):
            for j in range(copies):
                shift = j * copy_step - pad_left  # the input column of column 0
                m0 = max(0, -shift)
                m1 = min(wq, W - shift)  # pixels m0 + shift .. m1 + shift of the row: in [0, W)
                if m1 > m0:
                    _transpose_items(&x[n, 0, r0 + i - pad_top, m0 + shift], step, dst + j * plane + i * wq + m0,
                                     copies * plane, m1 - m0, C)
        return
    for i in range(i0, i1):  # stage[c * staged_plane + (i - i0) * W + w] = x[n, c, r0 + i - pad_top, w]
        _transpose_items(&x[n, 0, r0 + i - pad_top, 0], step, stage + (i - i0) * W, staged_plane, W, C)
    for j in range(copies):
        shift = j * copy_step - pad_left
        m0 = max(0, -shift)
        count = min(wq, W - shift) - m0
        for c in range(C if count > 0 else 0):
            src = stage + c * staged_plane + m0 + shift
            out = dst + (c * copies + j) * plane + i0 * wq + m0
            for i in range(i1 - i0):
                _copy_run(out, src, count, 1)
                src = src + W
                out = out + wq


cdef inline void _copy_run(real_t* out, const real_t* src, Py_ssize_t count, Py_ssize_t step) noexcept nogil:
    """``out[m] = src[m * step]`` for ``m < count``: 16 bytes at a time where ``step`` is 1 (the last copy
    overlapping the one before), else item by item."""
    cdef Py_ssize_t vec = 16 // sizeof(real_t), m = 0  # (items a 16-byte copy moves: one SSE2 register)
    if step == 1 and count >= vec:
        while m < count - vec:
            memcpy(out + m, src + m, 16)
            m = m + vec
        memcpy(out + count - vec, src + count - vec, 16)
    else:
        for m in range(count):
            out[m] = src[m * step]


cdef inline void _transpose_items(const real_t* src, Py_ssize_t src_row, real_t* dst, Py_ssize_t dst_row,
                                  Py_ssize_t rows, Py_ssize_t cols) noexcept nogil:
    """``dst[s * dst_row + r] = src[r * src_row + s]`` for ``r < rows``, ``s < cols`` (``fc_transpose_block``)."""
    if real_t is float:
        fc_transpose_block_u32(<const uint32_t*>src, src_row, <uint32_t*>dst, dst_row, rows, cols)
    else:
        fc_transpose_block_u64(<const uint64_t*>src, src_row, <uint64_t*>dst, dst_row, rows, cols)


cdef inline void _zero_outside(real_t* row, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t wq) noexcept nogil:
    """Zero ``row[j]`` for ``j < j0`` and ``j1 <= j < wq``: a phase row's padding columns."""
    _zero_few(row, j0)
    if j1 < wq:
        _zero_few(row + j1, wq - j1)


cdef inline void _zero_few(real_t* p, Py_ssize_t n) noexcept nogil:
    """Zero ``p[:n]``: up to 4 items in single stores (the compiler makes a loop a call to memset,
    two per row of a plane: resnet-deep's weight gradient read 0.97-0.99x instead of 0.98-1.01x)."""
    if n > 4:
        memset(p, 0, n * sizeof(real_t))
        return
    if n > 0:
        p[0] = 0
    if n > 1:
        p[1] = 0
    if n > 2:
        p[2] = 0
    if n > 3:
        p[3] = 0


cdef void _pack_grad_rows(const real_t[:, :, :, :] grad, Py_ssize_t n, Py_ssize_t k, real_t* dst,
                          Py_ssize_t row) noexcept nogil:
    """Copy the plane ``grad[n, k]`` to ``dst`` with row pitch ``row`` (columns past OW left as they are)."""
    cdef Py_ssize_t OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t step = grad.strides[3] // <Py_ssize_t>sizeof(real_t)
    cdef Py_ssize_t oh, ow
    cdef const real_t* src
    if OW == 0:
        return
    for oh in range(OH):
        src = &grad[n, k, oh, 0]
        if step == 1 and OW >= 64:
            memcpy(dst + oh * row, src, OW * sizeof(real_t))
        elif step == 1:  # short rows: a loop, not a call to memcpy
            for ow in range(OW):
                dst[oh * row + ow] = src[ow]
        else:
            for ow in range(OW):
                dst[oh * row + ow] = src[ow * step]


def phase_planes(const real_t[:, :, :, :] x, real_t[::1] out, Py_ssize_t pad_top, Py_ssize_t pad_left,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hq, Py_ssize_t wq, bint channel_major,
                 int num_threads):
    """Copy ``x`` ``(N, C, H, W)`` (any strides) into zero-padded stride-phase planes.

    ``out`` is ``(N, C, sh, sw, hq, wq)`` flattened, or ``(C, N, ...)`` with
    ``channel_major``:
    ``out[n, c, a, b, i, j] = x[n, c, i*sh + a - pad_top, j*sw + b - pad_left]``
    wherever that pixel exists, zero elsewhere (the padding). ``out`` need
    not be zeroed: each row's padding columns are zeroed as the row is
    copied, and the rows outside the image as they come (a zeroing pass over
    the whole of ``out`` first wrote it to memory twice; zeroing each plane
    in cache just before its copy cost ``strided``'s weight gradient 6 %);
    elements past the last plane are left as they are. The
    caller guarantees ``hq*sh >= pad_top + H``, ``wq*sw >= pad_left + W``
    and the size of ``out``. Parallel over (image, channel) planes.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t chan = sh * sw * hq * wq
    cdef Py_ssize_t t, n, c
    for t in prange(N * C, nogil=True, num_threads=num_threads, schedule="static"):
        if channel_major:  # t = c*N + n
            n = t % N
            c = t // N
        else:  # t = n*C + c
            n = t // C
            c = t % C
        _pack_phase_rows(x, n, c, &out[0] + t * chan, pad_top, pad_left, sh, sw, 0, hq, wq, True, 0, True)


def scatter_phase(const acc_t[:, :, :, ::1] phase, acc_t[:, :, :, ::1] result, Py_ssize_t first_h,
                  Py_ssize_t first_w, Py_ssize_t sh, Py_ssize_t sw, int num_threads):
    """``result[:, :, first_h::sh, first_w::sw] = phase``: one stride phase of an image put in place.

    The input gradient of a strided convolution is computed phase by phase
    (each a stride-1 convolution); this puts a phase's pixels back among the
    others. ``phase`` must have ``result``'s images and channels and exactly
    the phase's rows and columns (checked); the other pixels of ``result``
    are left as they are. Parallel over (image, channel, phase row).
    """
    cdef Py_ssize_t N = result.shape[0], C = result.shape[1], H = result.shape[2], W = result.shape[3]
    if sh < 1 or sw < 1 or first_h < 0 or first_w < 0:
        raise ValueError("scatter_phase: strides of at least 1, first row and column at least 0")
    cdef Py_ssize_t rows = (H - first_h + sh - 1) // sh if first_h < H else 0
    cdef Py_ssize_t cols = (W - first_w + sw - 1) // sw if first_w < W else 0
    if phase.shape[0] != N or phase.shape[1] != C or phase.shape[2] != rows or phase.shape[3] != cols:
        raise ValueError("scatter_phase: phase must have result's images and channels and the phase's pixels")
    cdef Py_ssize_t t, p, n, c, u, m
    cdef const acc_t* src
    cdef acc_t* dst
    if N * C * rows == 0 or cols == 0:
        return
    for t in prange(N * C * rows, nogil=True, num_threads=num_threads, schedule="static"):
        p = t // rows  # (image, channel) plane n*C + c
        u = t - p * rows
        n = p // C
        c = p - n * C
        src = &phase[n, c, u, 0]
        dst = &result[n, c, first_h + u * sh, first_w]  # its last column: first_w + (cols-1)*sw < W
        if sw == 1:
            memcpy(dst, src, cols * sizeof(acc_t))
        else:
            for m in range(cols):
                dst[m * sw] = src[m]


def scatter_phase_pair(const acc_t[:, :, :, ::1] evens, const acc_t[:, :, :, ::1] odds,
                       acc_t[:, :, :, ::1] result, Py_ssize_t first_h, Py_ssize_t sh, int num_threads,
                       bint stream=False):
    """Two phases of column stride 2 put in place at once: ``result[:, :, first_h::sh, 0::2] = evens``
    and ``result[:, :, first_h::sh, 1::2] = odds``.

    Each row of ``result`` the two fill is written once, whole, from the two
    phase rows (``fc_interleave_f32``, ``fc_interleave2_f64`` with a step of
    2: four or two pairs at a time), where :func:`scatter_phase` twice would
    read and write it twice.
    The shapes must be those of the phases (checked): ``evens`` has
    ``ceil(W / 2)`` columns, ``odds`` ``W // 2``. Parallel over (image,
    channel, phase row). ``stream``: float32 rows are written with
    non-temporal stores (``result`` is large and its pages mapped: no read of
    its lines before they are written).
    """
    cdef Py_ssize_t N = result.shape[0], C = result.shape[1], H = result.shape[2], W = result.shape[3]
    if sh < 1 or first_h < 0:
        raise ValueError("scatter_phase_pair: a stride of at least 1, a first row of at least 0")
    cdef Py_ssize_t rows = (H - first_h + sh - 1) // sh if first_h < H else 0, pairs = W // 2
    if (evens.shape[0] != N or evens.shape[1] != C or evens.shape[2] != rows or evens.shape[3] != W - pairs
            or odds.shape[0] != N or odds.shape[1] != C or odds.shape[2] != rows or odds.shape[3] != pairs):
        raise ValueError("scatter_phase_pair: evens and odds must be the even and odd columns of result's rows")
    cdef Py_ssize_t t, p, n, c, u
    cdef acc_t* dst
    if N * C * rows == 0 or W == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        for t in prange(N * C * rows, schedule="static"):
            p = t // rows  # (image, channel) plane n*C + c
            u = t - p * rows
            n = p // C
            c = p - n * C
            dst = &result[n, c, first_h + u * sh, 0]
            _interleave_row(dst, &evens[n, c, u, 0], &odds[n, c, u, 0] if pairs else NULL, pairs, W, stream)
        if stream:
            fc_store_fence()


cdef inline void _interleave_row(acc_t* dst, const acc_t* evens, const acc_t* odds, Py_ssize_t pairs, Py_ssize_t W,
                                 bint stream) noexcept nogil:
    """``dst[2m] = evens[m]``, ``dst[2m + 1] = odds[m]`` for ``m < pairs``, and ``dst[W - 1]`` for an odd ``W``."""
    cdef Py_ssize_t m
    if pairs == 0:
        pass
    elif acc_t is float:
        fc_interleave_f32(dst, evens, odds, pairs, stream)
    elif acc_t is double:
        fc_interleave2_f64(dst, 2, evens, odds, pairs)
    else:
        for m in range(pairs):
            dst[2 * m] = evens[m]
            dst[2 * m + 1] = odds[m]
    if W % 2:  # (an odd width: one more even column)
        dst[W - 1] = evens[pairs]


cdef struct WeightTask:
    Py_ssize_t g  # group
    Py_ssize_t k0  # first output channel of the block
    Py_ssize_t nk  # output channels in the block
    Py_ssize_t p_lo  # (input channel, tap) pairs [p_lo, p_hi) of the group
    Py_ssize_t p_hi


cdef inline WeightTask _weight_task(Py_ssize_t task, Py_ssize_t blocks, Py_ssize_t c_parts, Py_ssize_t kg,
                                    Py_ssize_t block, Py_ssize_t pairs) noexcept nogil:
    """Task ``task`` of a weight-gradient split over (group, block of ``block`` channels, slice of pairs).

    ``c_parts`` slices of a group's ``pairs`` (input channel, tap) pairs, as
    even as they can be (:func:`_pair_cut`).
    """
    cdef WeightTask w
    cdef Py_ssize_t kb = (task // c_parts) % blocks, part = task % c_parts
    w.g = task // (blocks * c_parts)
    w.k0 = w.g * kg + kb * block
    w.nk = min(block, kg - kb * block)
    w.p_lo = _pair_cut(part, c_parts, pairs)
    w.p_hi = _pair_cut(part + 1, c_parts, pairs)
    return w


cdef inline Py_ssize_t _run_start(Py_ssize_t run, Py_ssize_t runs, Py_ssize_t images,
                                  Py_ssize_t chunk_images) noexcept nogil:
    """The first image of run ``run`` of ``runs``: whole chunks of ``chunk_images``, as even as can be."""
    cdef Py_ssize_t chunks = (images + chunk_images - 1) // chunk_images
    return min(images, (run * chunks // runs) * chunk_images)


cdef inline Py_ssize_t _pair_cut(Py_ssize_t part, Py_ssize_t parts, Py_ssize_t pairs) noexcept nogil:
    """Where slice ``part`` of ``parts`` starts among ``pairs`` (input channel, tap) pairs."""
    return part * pairs // parts


def conv2d_grad_weight_tiled(const real_t[:, :, :, :] x, Py_ssize_t pad_top, Py_ssize_t pad_left,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hq, Py_ssize_t wq,
                             const ptrdiff_t[::1] taps, Py_ssize_t merged, const real_t[:, :, :, :] grad,
                             Py_ssize_t plane, real_t[:, ::1] partials, Py_ssize_t groups,
                             Py_ssize_t chunks, Py_ssize_t x_scratch, Py_ssize_t unit_parts,
                             Py_ssize_t c_parts, int num_threads):
    """dL/dw of an NCHW convolution by register tiles, one sum per run of chunks; True if ``x`` is finite.

    ``x`` ``(N, C, H, W)`` unpadded and ``grad`` ``(N, K, OH, OW)``, any
    strides. The images go in ``chunks`` chunks and the chunks in
    ``len(partials)`` runs, both as even as they can be (chunk ``q`` holds
    images ``q*N // chunks`` to ``(q+1)*N // chunks``, at most
    ``chunk_images = ceil(N / chunks)``): run ``r`` adds its weight
    gradient (OIHW, flat) into ``partials[r]``, which must be zeroed; the
    caller sums the runs in order. Each task takes one run, a range of the
    (group, 8-channel block) units (``unit_parts`` ranges) and a slice of the
    input channels (``c_parts`` slices); chunk by chunk, it copies the input
    planes, image-major, into zero-padded stride-phase planes of
    ``sh*sw*hq*wq`` elements (as :func:`phase_planes`) in a scratch buffer of
    ``x_scratch`` elements, and each block's grad planes with row pitch
    ``wq`` (``plane`` elements each, a multiple of ``MAX_TILE_WIDTH``, at
    least ``OH*wq``) into another, then runs the tiles over its input channels
    and taps. Both copies stay in cache, and the input is read from memory
    once (a pass laying out every plane first wrote them to memory and read
    them back). Tap ``t`` of output pixel ``(oh, ow)`` reads element
    ``c*chan + taps[t] + oh*wq + ow`` of an image's planes; with ``merged``
    above 1 (a 1x1 kernel) ``merged`` consecutive channels pass as the taps of
    one (``taps`` then gives their offsets). The caller sizes ``x_scratch``
    for every such read: ``(chunk_images*C - 1)*chan + max(taps) + plane``
    at least.

    The tiles multiply zero grad columns with inputs next to the windows: each
    input plane is checked for an inf or nan just after its copy, and the
    result is False (``partials`` then meaningless) if one holds any. Every
    entry of ``partials`` is summed by one task, images in order, so results
    do not depend on the thread count or the parts. Raises MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t chan = sh * sw * hq * wq, x_img = C * chan
    cdef Py_ssize_t kg = K // groups, cg = C // groups, cm = cg // merged
    cdef Py_ssize_t blocks = (kg + 7) // 8, units = groups * blocks
    cdef Py_ssize_t chunk_images = (N + chunks - 1) // chunks if chunks > 0 else 0, runs = partials.shape[0]
    cdef Py_ssize_t ntaps = taps.shape[0], ldw = cm * ntaps
    cdef Py_ssize_t task, q, r, part, u, u_lo, u_hi, c_lo, c_hi, g, packed, kb, k0, nk, c, n0, nn, t0, t1, i, j, p
    cdef Py_ssize_t reach = 0
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef Py_ssize_t passes = (ntaps + tiles.wt_taps - 1) // tiles.wt_taps  # tile calls per input channel
    cdef fc_wtile_f32_fn f32 = tiles.wt32
    cdef fc_wtile_f64_fn f64 = tiles.wt64
    cdef const real_t* xc
    cdef real_t* dwc
    cdef real_t* xs
    cdef real_t* gs
    cdef int failed[1]
    cdef int nonfinite[1]
    for t0 in range(ntaps):
        if taps[t0] < 0:
            raise ValueError("conv2d_grad_weight_tiled: taps must not be negative")
        reach = max(reach, taps[t0] + plane)
    if (chunks < 1 or chunks > max(N, 1) or unit_parts < 1 or c_parts < 1 or merged < 1 or cg % merged
            or (merged > 1 and ntaps != merged)
            or runs < 1 or runs > chunks or partials.shape[1] != K * cg * (ntaps if merged == 1 else 1)):
        raise ValueError("conv2d_grad_weight_tiled: inconsistent chunks, parts or partial sums")
    if (hq * sh < pad_top + H or wq * sw < pad_left + W or pad_top < 0 or pad_left < 0
            or plane < grad.shape[2] * wq or plane % TILE_SLACK or grad.shape[3] > wq or x.shape[0] != N
            or x_scratch < chunk_images * x_img or x_scratch < (chunk_images * C - 1) * chan + reach):
        raise ValueError("conv2d_grad_weight_tiled: planes, grad rows or scratch too small")
    failed[0] = 0
    nonfinite[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: the copies rewrite the same elements, so the padding and zero columns stay zero
        xs = <real_t*>_calloc_aligned(x_scratch, sizeof(real_t))
        gs = <real_t*>_calloc_aligned(chunk_images * 8 * plane, sizeof(real_t))
        for task in prange(runs * unit_parts * c_parts, schedule="dynamic"):
            if xs == NULL or gs == NULL:
                failed[0] = 1
                continue
            r = task // (unit_parts * c_parts)
            part = (task // c_parts) % unit_parts
            u_lo = part * units // unit_parts
            u_hi = (part + 1) * units // unit_parts
            part = task % c_parts
            c_lo = part * cm // c_parts
            c_hi = (part + 1) * cm // c_parts
            for q in range(r * chunks // runs, (r + 1) * chunks // runs):
                n0 = q * N // chunks
                nn = (q + 1) * N // chunks - n0
                packed = -1  # the group whose input planes xs holds
                for u in range(u_lo, u_hi):
                    g = u // blocks
                    kb = u - g * blocks
                    k0 = g * kg + kb * 8
                    nk = min(8, kg - kb * 8)
                    if g != packed:
                        for i in range(nn):
                            for c in range(g * cg + c_lo * merged, g * cg + c_hi * merged):
                                _pack_phases(x, n0 + i, c, xs + i * x_img + c * chan, pad_top, pad_left,
                                             sh, sw, hq, wq)
                                if not _plane_finite(x, n0 + i, c):
                                    nonfinite[0] = 1
                        packed = g
                    for i in range(nn):
                        for j in range(nk):
                            _pack_grad_rows(grad, n0 + i, k0 + j, gs + (i * 8 + j) * plane, wq)
                    for c in range(c_lo, c_hi):
                        xc = xs + (g * cg + c * merged) * chan
                        for p in range(passes):  # the taps in passes of at most wt_taps, as even as they can be
                            t0 = p * ntaps // passes
                            t1 = (p + 1) * ntaps // passes
                            dwc = &partials[r, 0] + (k0 * cm + c) * ntaps + t0
                            if real_t is float:
                                f32(xc, x_img, 0, &taps[t0], <int>(t1 - t0), gs, 8 * plane, plane, plane, 0, nn,
                                    <int>nk, dwc, ldw)
                            else:
                                f64(xc, x_img, 0, &taps[t0], <int>(t1 - t0), gs, 8 * plane, plane, plane, 0, nn,
                                    <int>nk, dwc, ldw)
        _free_aligned(xs)
        _free_aligned(gs)
    if failed[0]:
        raise MemoryError("conv2d_grad_weight: cannot allocate the tiles' scratch buffers")
    return nonfinite[0] == 0


cdef void _pack_grad_pixels(const real_t[:, :, :, :] grad, Py_ssize_t n, Py_ssize_t k0, Py_ssize_t nk,
                            real_t* dst, Py_ssize_t step, Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Copy rows ``r0 <= oh < r1`` of the planes ``grad[n, k0 + j]`` (``j < nk``) pixel-major:
    ``dst[((oh - r0)*OW + ow)*step + j]``.

    Row by row; rows with contiguous columns go 4 float32 (2 float64) planes
    at a time through a register transpose (``pack_shuffle.h``), the others,
    and the planes past the last whole group, item by item. Measured on the
    dilated shape's grad: 0.3 ns per item against 1-2 ns plane by plane.
    Where a pixel's channels are adjacent (the view of an NHWC grad), each
    pixel's ``nk`` are one run, copied as such.
    """
    cdef Py_ssize_t OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t column = grad.strides[3] // <Py_ssize_t>sizeof(real_t)  # elements between columns
    cdef Py_ssize_t group = 4 if real_t is float else 2
    cdef Py_ssize_t oh, ow, j, whole
    cdef const real_t* src
    cdef real_t* out
    if OW == 0 or nk <= 0:
        return
    if grad.strides[1] == sizeof(real_t):  # (channels side by side: a run of nk a pixel)
        for oh in range(r0, r1):
            out = dst + (oh - r0) * OW * step
            for ow in range(OW):
                memcpy(out + ow * step, &grad[n, k0, oh, ow], nk * sizeof(real_t))
        return
    whole = nk - nk % group if column == 1 else 0  # planes that go through the transpose
    for oh in range(r0, r1):
        out = dst + (oh - r0) * OW * step
        j = 0
        while j < whole:
            if real_t is float:
                fc_interleave4_f32(out + j, step, &grad[n, k0 + j, oh, 0], &grad[n, k0 + j + 1, oh, 0],
                                   &grad[n, k0 + j + 2, oh, 0], &grad[n, k0 + j + 3, oh, 0], OW)
            else:
                fc_interleave2_f64(out + j, step, &grad[n, k0 + j, oh, 0], &grad[n, k0 + j + 1, oh, 0], OW)
            j = j + group
        for j in range(whole, nk):
            src = &grad[n, k0 + j, oh, 0]
            for ow in range(OW):
                out[ow * step + j] = src[ow * column]


cdef Py_ssize_t _weight_oc_tiles(int level, bint one_vector, bint is_float, fc_ocwtile_f32_fn* t32,
                                 fc_ocwtile_f64_fn* t64, Py_ssize_t* most) except -1:
    """The weight-gradient output-channel tiles of SIMD level ``level``: their block of channels.

    Sets ``t32``, ``t64`` and ``most`` (pairs per call); with ``one_vector``
    the tiles of one vector of channels (half the block), which the level
    must have (else ValueError).
    """
    cdef const fc_tiles* tiles = fc_level_tiles(level)
    cdef Py_ssize_t block = tiles.oc_block_f32 if is_float else tiles.oc_block_f64
    most[0] = tiles.oc_cols
    t32[0] = tiles.ocwt32
    t64[0] = tiles.ocwt64
    if one_vector:
        if tiles.ocw1t32 == NULL:
            raise ValueError("conv2d_grad_weight: this level has no one-vector weight-gradient tiles")
        block = block // 2
        t32[0] = tiles.ocw1t32
        t64[0] = tiles.ocw1t64
    return block


cdef void _octile_pairs(fc_ocwtile_f32_fn t32, fc_ocwtile_f64_fn t64, const real_t* xbase, Py_ssize_t first,
                        Py_ssize_t channel_stride, Py_ssize_t image_stride, Py_ssize_t row, const ptrdiff_t* taps,
                        Py_ssize_t ntaps, Py_ssize_t p_lo, Py_ssize_t p_hi, Py_ssize_t most, int run_rows,
                        int run_cols, const real_t* gt, int run_images, real_t* sums, ptrdiff_t* offs,
                        real_t* dw, Py_ssize_t dw_row, Py_ssize_t nk, Py_ssize_t block) noexcept nogil:
    """Add one chunk's sums of the (input channel, tap) pairs ``p_lo <= p < p_hi`` to ``dw``.

    Pair ``p`` is channel ``p // ntaps`` of the group and tap ``p % ntaps``.
    The planes of pair ``p_lo``'s channel start ``first`` elements from
    ``xbase``, the next channel's ``channel_stride`` on; the tiles (``t32``
    or ``t64``) take up to ``most`` pairs per call over the chunk's pixels
    (``gt``, packed by :func:`_pack_grad_pixels`). Pair ``p`` of output
    channel ``j < nk`` of the block adds into ``dw[j*dw_row + p]``.
    """
    cdef Py_ssize_t p = p_lo, c = 0, t = p_lo % ntaps, m, i, j
    cdef real_t* dwj
    while p < p_hi:
        m = min(most, p_hi - p)
        for i in range(m):  # (counted, not divided: a division per pair cost a quarter of the time)
            offs[i] = first + c * channel_stride + taps[t]
            t = t + 1
            if t == ntaps:
                t = 0
                c = c + 1
        if real_t is float:
            t32(xbase, offs, <int>m, image_stride, row, run_rows, run_cols, gt, run_images, sums)
        else:
            t64(xbase, offs, <int>m, image_stride, row, run_rows, run_cols, gt, run_images, sums)
        for j in range(nk):  # row by row: dw's rows are cg*ntaps items apart, often a power of
            dwj = dw + j * dw_row + p  # two, so across rows they share cache sets
            for i in range(m):
                dwj[i] += sums[i * block + j]
        p = p + m


def conv2d_grad_weight_octile(const real_t[::1] x, Py_ssize_t image_stride, Py_ssize_t channel_stride,
                              const ptrdiff_t[::1] taps, const real_t[:, :, :, :] grad, Py_ssize_t row,
                              real_t[::1] dw, Py_ssize_t groups, Py_ssize_t cg, Py_ssize_t chunk_images,
                              Py_ssize_t c_parts, int level, int num_threads, bint one_vector=False,
                              Py_ssize_t chunk_rows=0, Py_ssize_t runs=1):
    """dL/dw of an NCHW convolution by output-channel tiles; ``dw`` (OIHW, flat) must be zeroed.

    ``x`` as for :func:`conv2d_grad_weight_tiled` (tap ``t`` of output pixel
    ``(oh, ow)`` of image ``n`` in input channel ``c`` reads
    ``x[n*image_stride + c*channel_stride + taps[t] + oh*row + ow]``, every such
    read in bounds); ``grad`` is ``(N, K, OH, OW)``, any strides.

    Work is split over (group, block of output channels, slice of the
    group's (input channel, tap) pairs), blocks of ``oc_tile_shape(level)[0]``
    channels, or of half as many with ``one_vector`` (the tiles of one vector
    of channels, which the level must have: :func:`has_one_vector_weight_tiles`),
    ``c_parts`` slices as even as they can be (:func:`_weight_task`). Each task copies
    its block of the grad, ``chunk_images`` images at a time, pixel-major into a
    scratch buffer, then runs the tiles of SIMD level ``level`` over the
    pairs of its slice, up to ``oc_cols`` pairs per call.
    With ``chunk_images`` 1, ``chunk_rows`` (0 < rows < OH) cuts each image
    into chunks of that many output rows, for images whose block of the grad
    would not fit the cache. Where ``x``'s rows are ``OW`` apart and its
    images ``OH`` rows apart (a 1x1 kernel's planes), a chunk's pixels go to
    the tiles as one row (the same sums in the same order, without a loop
    per row of 7 or 14 pixels). Every entry of ``dw`` is one task's, summed
    over the chunks in the same order whatever the thread count.

    With ``runs`` > 1 the chunks of images go in that many runs, as even
    as they can be (:func:`_run_start`), and ``dw`` holds one weight
    gradient per run, one after the other: run ``r``'s tasks add into the
    ``r``-th, which the caller sums in order.
    Each run copies its own images' grad, where slices of the pairs would
    each copy every image's. Raises ValueError if ``dw`` is too short for
    the runs, MemoryError if a scratch buffer cannot be allocated.
    """
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef fc_ocwtile_f32_fn t32
    cdef fc_ocwtile_f64_fn t64
    cdef Py_ssize_t most
    cdef Py_ssize_t block = _weight_oc_tiles(level, one_vector, real_t is float, &t32, &t64, &most)
    cdef Py_ssize_t kg = K // groups, blocks = (kg + block - 1) // block
    cdef Py_ssize_t ntaps = taps.shape[0], size = K * cg * ntaps
    if runs < 1 or runs > max(N, 1) or dw.shape[0] < runs * size or c_parts < 1 or chunk_images < 1:
        raise ValueError("conv2d_grad_weight_octile: dw must hold K * cg * taps sums per run, "
                         "runs 1 to N, at least one slice and one image a chunk")
    if chunk_rows <= 0 or chunk_rows > OH or chunk_images != 1:
        chunk_rows = OH
    cdef Py_ssize_t per_image = chunk_rows * OW * block
    # rows of x OW apart and images OH rows apart: a chunk's pixels are one run (the same sums in the same order)
    cdef bint one_run = (row == OW and image_stride == OH * OW and chunk_rows == OH
                         and chunk_images * OH * OW <= INT_MAX)
    cdef int run_rows, run_cols, run_images
    cdef Py_ssize_t task, g, k0, nk, n0, n1, i, r0, r1, run, n_end
    cdef Py_ssize_t units = groups * blocks * c_parts  # tasks per run
    cdef WeightTask w
    cdef real_t* gt
    cdef real_t* sums
    cdef ptrdiff_t* offs
    cdef int failed[1]
    failed[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: channels past nk are never written, so they stay zero
        gt = <real_t*>_calloc_aligned(chunk_images * per_image, sizeof(real_t))
        sums = <real_t*>calloc(most * block, sizeof(real_t))
        offs = <ptrdiff_t*>calloc(most, sizeof(ptrdiff_t))
        for task in prange(runs * units, schedule="dynamic"):
            if gt == NULL or sums == NULL or offs == NULL:
                failed[0] = 1
                continue
            run = task // units
            w = _weight_task(task - run * units, blocks, c_parts, kg, block, cg * ntaps)
            g, k0, nk = w.g, w.k0, w.nk
            n0 = _run_start(run, runs, N, chunk_images)
            n_end = _run_start(run + 1, runs, N, chunk_images)
            r0 = 0
            while n0 < n_end:  # chunks of images, or of the rows of one image
                n1 = min(n_end, n0 + chunk_images)
                r1 = min(OH, r0 + chunk_rows)
                for i in range(n1 - n0):
                    _pack_grad_pixels(grad, n0 + i, k0, nk, gt + i * per_image, block, r0, r1)
                if one_run:
                    run_rows, run_cols, run_images = 1, <int>((n1 - n0) * OH * OW), 1
                else:
                    run_rows, run_cols, run_images = <int>(r1 - r0), <int>OW, <int>(n1 - n0)
                _octile_pairs(t32, t64, &x[0] + n0 * image_stride + r0 * row,
                              (g * cg + w.p_lo // ntaps) * channel_stride, channel_stride, image_stride, row,
                              &taps[0], ntaps, w.p_lo, w.p_hi, most, run_rows,
                              run_cols, gt, run_images, sums, offs, &dw[0] + run * size + k0 * cg * ntaps,
                              cg * ntaps, nk, block)
                r0 = r1
                if r0 == OH:
                    r0 = 0
                    n0 = n1
        _free_aligned(gt)
        free(sums)
        free(offs)
    if failed[0]:
        raise MemoryError("conv2d_grad_weight: cannot allocate the tiles' scratch buffers")


def conv2d_grad_weight_octile_bands(const real_t[:, :, :, :] x, Py_ssize_t pad_top, Py_ssize_t pad_left,
                                    Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hb, Py_ssize_t wq,
                                    const ptrdiff_t[::1] taps, const real_t[:, :, :, :] grad, real_t[::1] dw,
                                    Py_ssize_t groups, Py_ssize_t cg, Py_ssize_t chunk_images, Py_ssize_t chunk_rows,
                                    Py_ssize_t sub_channels, Py_ssize_t c_parts, Py_ssize_t b_parts, int level,
                                    int num_threads, bint one_vector=False, Py_ssize_t runs=1):
    """dL/dw of an NCHW convolution by output-channel tiles that lay out the input themselves, in cache.

    As :func:`conv2d_grad_weight_octile`, but ``x`` is the unpadded NCHW
    input (any strides): no laid-out copy of it in memory. A task is a group,
    a slice of its (input channel, tap) pairs (``c_parts`` slices, as
    :func:`_weight_task` cuts them) and a range of its
    blocks of output channels (``b_parts`` ranges); for each chunk of
    ``chunk_images`` images (or, with one image, of ``chunk_rows`` output
    rows) it copies the grad of its blocks pixel-major
    (:func:`_pack_grad_pixels`), then, ``sub_channels`` input channels at a
    time (those of its pairs), the stride-phase planes of the rows the chunk
    reads (``hb`` phase rows of ``wq`` columns each, :func:`_pack_phase_rows`)
    into its thread's scratch, and runs its blocks' tiles on them while they
    are in cache. ``taps`` are :func:`fastconv._conv.stride_phases`' for planes
    of ``hb`` rows. Every entry of ``dw`` (OIHW flat, zeroed) is one task's,
    summed over the chunks in the same order whatever the thread count;
    with ``runs`` > 1, one per run of images, as in
    :func:`conv2d_grad_weight_octile` (``dw`` holds a weight gradient per
    run). Raises ValueError for inconsistent arguments, MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef Py_ssize_t N = grad.shape[0], K = grad.shape[1], OH = grad.shape[2], OW = grad.shape[3]
    cdef Py_ssize_t C = x.shape[1], W = x.shape[3]
    cdef fc_ocwtile_f32_fn t32
    cdef fc_ocwtile_f64_fn t64
    cdef Py_ssize_t most
    cdef Py_ssize_t block = _weight_oc_tiles(level, one_vector, real_t is float, &t32, &t64, &most)
    cdef Py_ssize_t ntaps = taps.shape[0], t
    if groups < 1 or K % groups or cg < 1 or C != groups * cg or x.shape[0] != N:
        raise ValueError("conv2d_grad_weight_octile_bands: x must be (N, groups * cg, H, W) with grad's N")
    if runs < 1 or runs > max(N, 1) or dw.shape[0] != runs * K * cg * ntaps:
        raise ValueError("conv2d_grad_weight_octile_bands: dw must hold K * cg * taps sums per run, runs 1 to N")
    if sh < 1 or sw < 1 or pad_top < 0 or pad_left < 0 or wq < 1 or pad_left + W > wq * sw:
        raise ValueError("conv2d_grad_weight_octile_bands: the phase rows must hold the padded input's columns")
    if chunk_images < 1 or chunk_rows < 1 or chunk_rows > OH or (chunk_rows < OH and chunk_images != 1):
        raise ValueError("conv2d_grad_weight_octile_bands: chunks of whole images, or of rows of one image")
    if sub_channels < 1 or c_parts < 1 or c_parts > cg * ntaps or b_parts < 1:
        raise ValueError("conv2d_grad_weight_octile_bands: slices of pairs need pairs")
    for t in range(ntaps):  # each tap's pixels inside its phase plane, for every row of a chunk
        if taps[t] < 0 or taps[t] >= sh * sw * hb * wq or (taps[t] // wq) % hb + chunk_rows > hb \
                or taps[t] % wq + OW > wq:
            raise ValueError("conv2d_grad_weight_octile_bands: the chunk's phase planes do not hold every tap")
    cdef Py_ssize_t kg = K // groups, blocks = (kg + block - 1) // block
    if b_parts > blocks:
        raise ValueError("conv2d_grad_weight_octile_bands: block ranges need blocks")
    cdef Py_ssize_t most_blocks = (blocks + b_parts - 1) // b_parts  # in the longest range
    cdef Py_ssize_t chan = sh * sw * hb * wq  # a channel's planes of one image
    cdef Py_ssize_t sub = min(sub_channels, cg)
    cdef Py_ssize_t x_chan = chunk_images * chan  # the scratch holds [channel][image][planes]
    cdef Py_ssize_t per_image = chunk_rows * OW * block  # a block's grad of one image
    cdef Py_ssize_t g_block = chunk_images * per_image
    cdef Py_ssize_t task, g, part, c_lo, c_hi, p_lo, p_hi, b_lo, b_hi, s0, s1, kb, k0, nk, n0, n1, i, j, r0, r1
    cdef Py_ssize_t pairs = cg * ntaps, size = K * cg * ntaps, run, n_end, unit
    cdef Py_ssize_t per_run = groups * c_parts * b_parts  # tasks per run
    cdef int run_rows
    cdef Py_ssize_t ahead = x.strides[1] // <Py_ssize_t>sizeof(real_t)
    cdef real_t* xs
    cdef real_t* gt
    cdef real_t* sums
    cdef ptrdiff_t* offs
    cdef int failed[1]
    failed[0] = 0
    if N == 0 or OH == 0 or OW == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: the padding columns and the channels past a block's last are never written
        xs = <real_t*>_calloc_aligned(sub * x_chan, sizeof(real_t))
        gt = <real_t*>_calloc_aligned(most_blocks * g_block, sizeof(real_t))
        sums = <real_t*>calloc(most * block, sizeof(real_t))
        offs = <ptrdiff_t*>calloc(most, sizeof(ptrdiff_t))
        for task in prange(runs * per_run, schedule="dynamic"):
            if xs == NULL or gt == NULL or sums == NULL or offs == NULL:
                failed[0] = 1
                continue
            run = task // per_run
            unit = task - run * per_run
            g = unit // (c_parts * b_parts)
            part = (unit // b_parts) % c_parts
            b_lo = (unit % b_parts) * blocks // b_parts
            b_hi = (unit % b_parts + 1) * blocks // b_parts
            p_lo = _pair_cut(part, c_parts, pairs)
            p_hi = _pair_cut(part + 1, c_parts, pairs)
            c_lo = p_lo // ntaps  # the channels of those pairs
            c_hi = (p_hi + ntaps - 1) // ntaps
            n0 = _run_start(run, runs, N, chunk_images)
            n_end = _run_start(run + 1, runs, N, chunk_images)
            r0 = 0
            while n0 < n_end:  # chunks of images, or of the rows of one image
                n1 = min(n_end, n0 + chunk_images)
                r1 = min(OH, r0 + chunk_rows)
                run_rows = <int>(r1 - r0)
                for kb in range(b_lo, b_hi):
                    k0 = g * kg + kb * block
                    nk = min(block, kg - kb * block)
                    for i in range(n1 - n0):
                        _pack_grad_pixels(grad, n0 + i, k0, nk, gt + (kb - b_lo) * g_block + i * per_image, block,
                                          r0, r1)
                s0 = c_lo
                while s0 < c_hi:
                    s1 = min(c_hi, s0 + sub)
                    for j in range(s1 - s0):  # output row r0 + i reads phase rows r0 + i .. r0 + i + hb - chunk_rows
                        for i in range(n1 - n0):  # (asking for the next channel's rows as it goes)
                            _pack_phase_rows(x, n0 + i, g * cg + s0 + j, xs + j * x_chan + i * chan, pad_top,
                                             pad_left, sh, sw, r0, hb, wq, True, ahead if s0 + j + 1 < s1 else 0)
                    for kb in range(b_lo, b_hi):
                        k0 = g * kg + kb * block
                        nk = min(block, kg - kb * block)
                        _octile_pairs(t32, t64, xs, 0, x_chan, chan, wq, &taps[0], ntaps, max(p_lo, s0 * ntaps),
                                      min(p_hi, s1 * ntaps), most,
                                      run_rows, <int>OW, gt + (kb - b_lo) * g_block, <int>(n1 - n0), sums, offs,
                                      &dw[0] + run * size + k0 * cg * ntaps, cg * ntaps, nk, block)
                    s0 = s1
                r0 = r1
                if r0 == OH:
                    r0 = 0
                    n0 = n1
        _free_aligned(xs)
        _free_aligned(gt)
        free(sums)
        free(offs)
    if failed[0]:
        raise MemoryError("conv2d_grad_weight: cannot allocate the tiles' scratch buffers")


def conv2d_grad_weight_depthwise(const real_t[:, :, :, :] x, const real_t[:, :, :, :] grad,
                                 const ptrdiff_t[::1] taps, real_t[::1] dw, Py_ssize_t pad_top,
                                 Py_ssize_t pad_left, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t hq,
                                 Py_ssize_t wq, Py_ssize_t plane, Py_ssize_t x_scratch,
                                 Py_ssize_t chunk_images, Py_ssize_t channel_block, int num_threads):
    """dL/dw of a depthwise convolution (``groups == C == K``); ``dw`` ``(K, 1, KH, KW)`` flat, zeroed.

    Returns whether ``x`` is finite: the tile multiplies zero grad columns
    with inputs next to the windows, so each input plane is checked for an
    inf or nan just after its copy (``dw`` is meaningless if one holds any).

    ``x`` ``(N, C, H, W)`` unpadded and ``grad`` ``(N, K, OH, OW)``, any strides.
    Parallel over blocks of ``channel_block`` channels: each task copies a
    chunk of ``chunk_images`` images of its channels, image by image (so the
    planes of one image are read one after another), into scratch buffers (the
    input as padded stride-phase planes of ``sh*sw*hq*wq`` elements per image,
    :func:`phase_planes`; the grad with row pitch ``wq``, ``plane`` elements
    per image) and runs the depthwise tile on each channel, so every input and
    grad element is read from memory once. The caller sizes ``x_scratch``
    (elements per channel) to hold every tile read: ``(chunk_images - 1) *
    sh*sw*hq*wq + max(taps) + plane`` at least. Raises MemoryError if a
    scratch buffer cannot be allocated.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1]
    cdef Py_ssize_t chan = sh * sw * hq * wq
    cdef Py_ssize_t ntaps = taps.shape[0]
    cdef Py_ssize_t cb, c0, nc, j, n0, n1, t0, i
    cdef Py_ssize_t blocks
    cdef const fc_tiles* tiles = fc_active_tiles()
    cdef fc_wtile_f32_fn f32 = tiles.dwwt32
    cdef fc_wtile_f64_fn f64 = tiles.dwwt64
    cdef real_t* xs
    cdef real_t* gs
    cdef int failed[1]
    cdef int nonfinite[1]
    if channel_block < 1:
        raise ValueError("conv2d_grad_weight_depthwise: channel_block must be positive")
    blocks = (C + channel_block - 1) // channel_block
    failed[0] = 0
    nonfinite[0] = 0
    with nogil, parallel(num_threads=num_threads):
        # zeroed once: the copies rewrite the same elements, so padding stays zero
        xs = <real_t*>_calloc_aligned(channel_block * x_scratch, sizeof(real_t))
        gs = <real_t*>_calloc_aligned(channel_block * chunk_images * plane, sizeof(real_t))
        for cb in prange(blocks, schedule="dynamic"):
            if xs == NULL or gs == NULL:
                failed[0] = 1
                continue
            c0 = cb * channel_block
            nc = min(channel_block, C - c0)
            n0 = 0
            while n0 < N:
                n1 = min(N, n0 + chunk_images)
                for i in range(n1 - n0):
                    for j in range(nc):
                        _pack_phases(x, n0 + i, c0 + j, xs + j * x_scratch + i * chan, pad_top, pad_left,
                                     sh, sw, hq, wq)
                        if not _plane_finite(x, n0 + i, c0 + j):
                            nonfinite[0] = 1
                        _pack_grad_rows(grad, n0 + i, c0 + j, gs + (j * chunk_images + i) * plane, wq)
                for j in range(nc):
                    t0 = 0
                    while t0 < ntaps:
                        if real_t is float:
                            f32(xs + j * x_scratch, chan, 0, &taps[t0], <int>min(FC_DWWTILE_TAPS, ntaps - t0),
                                gs + j * chunk_images * plane, plane, 0, plane, 0, n1 - n0, 1,
                                &dw[0] + (c0 + j) * ntaps + t0, ntaps)
                        else:
                            f64(xs + j * x_scratch, chan, 0, &taps[t0], <int>min(FC_DWWTILE_TAPS, ntaps - t0),
                                gs + j * chunk_images * plane, plane, 0, plane, 0, n1 - n0, 1,
                                &dw[0] + (c0 + j) * ntaps + t0, ntaps)
                        t0 = t0 + FC_DWWTILE_TAPS
                n0 = n1
        _free_aligned(xs)
        _free_aligned(gs)
    if failed[0]:
        raise MemoryError("conv2d_grad_weight: cannot allocate the tiles' scratch buffers")
    return nonfinite[0] == 0
