"""Max and average pooling, forward and backward, on the unpadded input.

Padding is never materialized. The caller computes, once per output row and
once per output column, where a window's taps land in the real image, and
passes them as one ``(4, L)`` *window table* (``L >= OH, OW``) whose rows are

* ``h0[oh]``: the input row of the first tap that is not in the top padding,
  ``hn[oh]``: how many taps from there on fall inside the image (0 or more);
* ``w0[ow]``, ``wn[ow]``: the same for columns.

Taps are ``h0 + t*DH`` (t < hn) by ``w0 + u*DW`` (u < wn), so the loops below
have no bounds tests, and padding pixels are simply never visited. That is
exactly "pad with -inf" for max pooling and "pad with zeros" for average
pooling, with no padded copy of the input (which would cost one more pass
over memory than the pool itself). Average pooling divides by
``dh[oh] * dw[ow]``, separable factors the caller derives from
``count_include_pad``/``divisor_override`` (PyTorch's divisor rules).

The forward kernels, which small calls reach, run their loop in plain C
when called for one thread: an OpenMP team, even of one thread, costs about
0.6 µs (two barriers, each a futex system call in libgomp), more than a
small call's pooling. Their loop bodies are functions of the output row,
called from a serial loop or from ``prange``. For the same reason the
forward kernels take the arrays themselves, not typed buffers (each cost a
small call 0.2-0.3 µs to acquire), no index array when none is wanted, and
allocate their scratch here.

Max pooling's float32/float64 inner loops (NCHW: the interior of 2x2 windows
at stride 2 and of 3-tap window rows at strides 1 and 2; NHWC: each window
over 4 channels or more) run pool_rows.h's functions, compiled once per SIMD
level and selected with the convolution tiles (fastconv._simd); the loops
here take every other call, and every call where the build has no vector
extensions.

Layouts: forward NCHW arrays arrive as ``(N, C, H, W)``, backward ones as
``(P, H, W)`` planes (``P = N*C``), NHWC ones as ``(N, H, W, C)``.
fastconv._pool checks every shape. The forward kernels read their arrays'
memory directly (acquiring typed buffers cost a small call half its time)
and check the arrays and window tables themselves; the backward kernels take
typed buffers and trust the caller.
Forward outputs are independent of each other, so any split is race-free;
the backward kernels give each thread whole planes (NCHW) or whole
images (NHWC), and every input pixel sums its
contributions in ``(oh, ow, kh, kw)`` order whatever the thread count.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport (INT8_MIN, INT16_MIN, INT32_MAX, INT32_MIN, INT64_MIN, int8_t, int16_t, int32_t,
                          int64_t, uint8_t, uint16_t, uint32_t, uint64_t)
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp

from fastconv._kernels._openmp cimport omp_get_thread_num

cnp.import_array()

cdef extern from "pool_rows.h" nogil:
    ctypedef void (*fc_max2x2_f32_fn)(const float*, Py_ssize_t, Py_ssize_t, float*) noexcept nogil
    ctypedef void (*fc_max2x2_f64_fn)(const double*, Py_ssize_t, Py_ssize_t, double*) noexcept nogil
    ctypedef void (*fc_max2x2_idx_f32_fn)(const float*, Py_ssize_t, int32_t, Py_ssize_t, float*,
                                          int32_t*) noexcept nogil
    ctypedef void (*fc_max3_f32_fn)(const float*, Py_ssize_t, float*) noexcept nogil
    ctypedef void (*fc_max3_f64_fn)(const double*, Py_ssize_t, double*) noexcept nogil
    ctypedef void (*fc_max3_idx_f32_fn)(const float*, int32_t, Py_ssize_t, float*, int32_t*) noexcept nogil
    ctypedef void (*fc_max_pixel_f32_fn)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                         Py_ssize_t, Py_ssize_t, Py_ssize_t, float*, int32_t*) noexcept nogil
    ctypedef void (*fc_max_pixel_f64_fn)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                         Py_ssize_t, Py_ssize_t, Py_ssize_t, double*, int64_t*) noexcept nogil
    ctypedef void (*fc_avg_pixel_f32_fn)(const float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                         Py_ssize_t, float*, float) noexcept nogil
    ctypedef void (*fc_avg_pixel_f64_fn)(const double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                         Py_ssize_t, double*, double) noexcept nogil
    ctypedef void (*fc_avg_spread_f32_fn)(float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                          Py_ssize_t, const float*, float, Py_ssize_t) noexcept nogil
    ctypedef void (*fc_avg_spread_f64_fn)(double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                                          Py_ssize_t, const double*, double, Py_ssize_t) noexcept nogil
    ctypedef struct fc_pool_rows:  # a level's functions; any may be NULL (then the loops here run)
        fc_max2x2_f32_fn max2x2_f32
        fc_max2x2_f64_fn max2x2_f64
        fc_max2x2_idx_f32_fn max2x2_idx_f32
        fc_max3_f32_fn max3s1_f32
        fc_max3_f32_fn max3s2_f32
        fc_max3_f64_fn max3s1_f64
        fc_max3_f64_fn max3s2_f64
        fc_max3_idx_f32_fn max3s1_idx_f32
        fc_max3_idx_f32_fn max3s2_idx_f32
        fc_max_pixel_f32_fn max_pixel_f32
        fc_max_pixel_f64_fn max_pixel_f64
        fc_avg_pixel_f32_fn avg_pixel_f32
        fc_avg_pixel_f64_fn avg_pixel_f64
        fc_avg_spread_f32_fn avg_spread_f32
        fc_avg_spread_f64_fn avg_spread_f64
        int level
    enum: FC_PIXEL_MIN_CHANNELS
    void fc_pool_select_level(int level) noexcept nogil
    const fc_pool_rows* fc_pool_active_rows() noexcept nogil


def select_level(int level):
    """Run max pooling's interior rows at SIMD level ``level`` (clamped to the CPU's; see fastconv._simd)."""
    fc_pool_select_level(level)


def current_level():
    """The SIMD level of max pooling's interior rows, or -1 where the build has none (no vector extensions)."""
    cdef const fc_pool_rows* rows = fc_pool_active_rows()
    return -1 if rows == NULL else rows.level


cdef struct _Pool:  # one forward pool call: shapes, geometry and tables (checked)
    Py_ssize_t N, C, H, W, OH, OW
    const Py_ssize_t* windows  # (4, L): h0, hn, w0, wn
    Py_ssize_t L, SW, DH, DW
    const int64_t* divisors  # average pooling: (2, LD): dh, dw
    Py_ssize_t LD
    Py_ssize_t a, b, KW  # max pooling, NCHW: the interior columns and their taps
    bint narrow  # max pooling, NHWC: indices fit in int32
    const fc_pool_rows* rows  # the SIMD level's row functions (NULL: the loops here)
    bint pixels  # NHWC: rows go through the level's pixel function (_max_row_pixels, _avg_row_pixels)


# Max pooling compares: every ordered type (bool travels as uint8, float16 as float).
ctypedef fused real_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t
    uint32_t
    int64_t
    uint64_t
    float
    double
    long double

# Averages and gradients accumulate in a float type.
ctypedef fused float_t:
    float
    double
    long double


cdef inline real_t _lowest(real_t like) noexcept nogil:
    """What a max starts from and padding never beats: -inf for floats, else the type's minimum."""
    if real_t is int8_t:
        return INT8_MIN
    elif real_t is int16_t:
        return INT16_MIN
    elif real_t is int32_t:
        return INT32_MIN
    elif real_t is int64_t:
        return INT64_MIN
    elif real_t is uint8_t or real_t is uint16_t or real_t is uint32_t or real_t is uint64_t:
        return 0
    else:
        return -INFINITY


cdef inline Py_ssize_t _index_row_step(Py_ssize_t width) noexcept nogil:
    """Entries from one thread's index row to the next: ``width`` and at least a cache line more.

    Each thread writes its row once per output row; rows of a few entries
    sharing a cache line made two threads slower than one (resnet-deep's 2x2
    max pooling, 7 columns: 3.1 ms at two threads against 2.5 at one), the
    line going back and forth between the cores.
    """
    return (width + 15) // 16 * 16 + 16


cdef int32_t* _index_rows(Py_ssize_t rows, Py_ssize_t width) except NULL:
    """``rows`` int32 rows of ``width``, ``_index_row_step(width)`` entries apart.

    Freed by the caller; MemoryError if they cannot be allocated.
    """
    cdef int32_t* rows_ = <int32_t*>malloc(max(1, rows) * _index_row_step(width) * sizeof(int32_t))
    if rows_ == NULL:
        raise MemoryError(f"cannot allocate {rows} x {width} int32 index rows")
    return rows_


cdef inline bint _takes(real_t v, real_t m) noexcept nogil:
    """PyTorch's update rule: a strictly larger value, or any NaN (so the last NaN wins)."""
    return v > m or v != v

# _first_tap: PyTorch starts each window at (-inf or the minimum, index of the
# first real tap), and the first real tap then either replaces that or equals
# it (only -inf/the minimum does not win, and then the index is its own), so
# the kernels start from a plain copy of the first real tap instead.


def max_pool2d(cnp.ndarray x not None, cnp.ndarray out not None, cnp.ndarray indices,
               cnp.ndarray windows not None, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW, bint channels_last,
               int num_threads):
    """Max over each window of each plane; ``indices`` (None: not wanted) index the H*W plane.

    ``x`` and ``out``: 4-D, C-contiguous, aligned, of one ordered type
    (integers of 1 to 8 bytes, float32, float64, long double; bool travels
    as uint8, float16 as float32), ``out`` writeable; ``indices`` int64 of
    the shape of ``out``; ``windows`` the ``(4, L)`` intp table; ``SW``
    the stride and ``DH``, ``DW`` the dilation. The kernel reads the arrays'
    memory itself, so it checks them here, and that every tap of every
    window lies inside the image.

    A window starts from the lowest value (-inf, or the type's minimum) at the
    index of its first real tap, as PyTorch does, so ties keep the first
    maximum in row-major tap order. A window without any real tap (possible
    only with dilation) gets index -1, where PyTorch returns an index that
    its own backward then writes out of bounds with.
    """
    cdef _Pool p
    _check_pool(x, out, windows, channels_last, DH, DW, &p, "max_pool2d")
    if indices is not None and (not cnp.PyArray_ISSIGNED(indices) or cnp.PyArray_ITEMSIZE(indices) != 8
                                or not cnp.PyArray_ISNOTSWAPPED(indices) or cnp.PyArray_NDIM(indices) != 4
                                or not cnp.PyArray_IS_C_CONTIGUOUS(indices) or not cnp.PyArray_ISALIGNED(indices)
                                or not cnp.PyArray_ISWRITEABLE(indices)
                                or not cnp.PyArray_SAMESHAPE(indices, out)):
        raise ValueError("max_pool2d: indices must be a writeable C-contiguous int64 array shaped like out")
    if SW < 1 or num_threads < 1:
        raise ValueError("max_pool2d: the stride and num_threads must be at least 1")
    p.SW = SW
    cdef int64_t* idx = <int64_t*>cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef const void* xd = cnp.PyArray_DATA(x)
    cdef void* od = cnp.PyArray_DATA(out)
    cdef int kind = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(x)
    if kind == cnp.NPY_FLOAT:
        _max_pool(<const float*>xd, <float*>od, idx, &p, channels_last, num_threads)
    elif kind == cnp.NPY_DOUBLE:
        _max_pool(<const double*>xd, <double*>od, idx, &p, channels_last, num_threads)
    elif kind == cnp.NPY_LONGDOUBLE:
        _max_pool(<const long double*>xd, <long double*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISSIGNED(x) and size == 1:
        _max_pool(<const int8_t*>xd, <int8_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISSIGNED(x) and size == 2:
        _max_pool(<const int16_t*>xd, <int16_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISSIGNED(x) and size == 4:
        _max_pool(<const int32_t*>xd, <int32_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISSIGNED(x) and size == 8:
        _max_pool(<const int64_t*>xd, <int64_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISUNSIGNED(x) and size == 1:
        _max_pool(<const uint8_t*>xd, <uint8_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISUNSIGNED(x) and size == 2:
        _max_pool(<const uint16_t*>xd, <uint16_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISUNSIGNED(x) and size == 4:
        _max_pool(<const uint32_t*>xd, <uint32_t*>od, idx, &p, channels_last, num_threads)
    elif cnp.PyArray_ISUNSIGNED(x) and size == 8:
        _max_pool(<const uint64_t*>xd, <uint64_t*>od, idx, &p, channels_last, num_threads)
    else:
        raise TypeError(f"max_pool2d: no kernel for {x.dtype}")


cdef int _check_pool(cnp.ndarray x, cnp.ndarray out, cnp.ndarray windows, bint channels_last, Py_ssize_t DH,
                     Py_ssize_t DW, _Pool* p, str name) except -1:
    """Check a forward pool's arrays and window table (taps ``DH``, ``DW`` apart); fill ``p``."""
    cdef cnp.npy_intp* xs
    cdef cnp.npy_intp* os
    cdef Py_ssize_t i
    cdef const Py_ssize_t* w
    if not cnp.PyArray_EquivArrTypes(x, out) or not cnp.PyArray_ISNOTSWAPPED(x):
        raise TypeError(f"{name}: out must have the dtype of x, in native byte order")
    if cnp.PyArray_NDIM(x) != 4 or cnp.PyArray_NDIM(out) != 4:
        raise ValueError(f"{name}: x and out must be 4-D")
    if (not cnp.PyArray_IS_C_CONTIGUOUS(x) or not cnp.PyArray_ISALIGNED(x) or not cnp.PyArray_IS_C_CONTIGUOUS(out)
            or not cnp.PyArray_ISALIGNED(out) or not cnp.PyArray_ISWRITEABLE(out)):
        raise ValueError(f"{name}: x and out must be C-contiguous and aligned, out writeable")
    xs, os = cnp.PyArray_DIMS(x), cnp.PyArray_DIMS(out)
    if channels_last:
        p.N, p.H, p.W, p.C, p.OH, p.OW = xs[0], xs[1], xs[2], xs[3], os[1], os[2]
        same = os[0] == p.N and os[3] == p.C
    else:
        p.N, p.C, p.H, p.W, p.OH, p.OW = xs[0], xs[1], xs[2], xs[3], os[2], os[3]
        same = os[0] == p.N and os[1] == p.C
    if not same:
        raise ValueError(f"{name}: out does not match x")
    if DH < 1 or DW < 1:
        raise ValueError(f"{name}: the dilation must be at least 1")
    p.DH, p.DW = DH, DW
    p.windows = _table(windows, sizeof(Py_ssize_t), 4, max(p.OH, p.OW, 1), "windows")
    p.L = cnp.PyArray_DIMS(windows)[1]
    w = p.windows
    for i in range(p.OH):  # taps h0, h0 + DH, ... (hn of them) inside [0, H)
        if w[p.L + i] < 0 or (w[p.L + i] > 0 and (w[i] < 0 or w[i] + (w[p.L + i] - 1) * DH >= p.H)):
            raise ValueError(f"{name}: a window leaves the image")
    for i in range(p.OW):
        if w[3 * p.L + i] < 0 or (w[3 * p.L + i] > 0 and (w[2 * p.L + i] < 0
                                                        or w[2 * p.L + i] + (w[3 * p.L + i] - 1) * DW >= p.W)):
            raise ValueError(f"{name}: a window leaves the image")
    return 0


cdef void _find_interior(_Pool* p, const int64_t* same) noexcept:
    """Set ``p.a``, ``p.b``, ``p.KW``: the interior columns of an NCHW pool's output rows.

    ``[a, b)`` is the first run of output columns whose windows have the most
    real taps, ``KW``, each ``p.SW`` to the right of the one before (the
    unclipped interior), and, where ``same`` is given, whose ``same[ow]`` (the
    average's column divisors) are all equal. ``a == b == OW`` where no column
    has a tap. The kernels vectorize over the interior (2x2 windows at stride
    2 in one pass, others a tap at a time over the run); the window table
    (checked) keeps every tap of those windows inside the image.
    """
    cdef const Py_ssize_t* w0 = p.windows + 2 * p.L
    cdef const Py_ssize_t* wn = p.windows + 3 * p.L
    cdef Py_ssize_t KW = 0, a = p.OW, b = p.OW, ow
    for ow in range(p.OW):
        KW = wn[ow] if wn[ow] > KW else KW
    for ow in range(p.OW):
        if wn[ow] != KW:
            if a < p.OW:
                break
            continue
        if a == p.OW:
            a = ow
        elif w0[ow] != w0[ow - 1] + p.SW or (same != NULL and same[ow] != same[a]):
            break
        b = ow + 1
    if KW == 0:
        a = b = p.OW
    p.a, p.b, p.KW = a, b, KW


cdef int _max_pool(const real_t* x, real_t* out, int64_t* indices, _Pool* p, bint channels_last,
                   int num_threads) except -1:
    """:func:`max_pool2d` on checked arrays."""
    cdef Py_ssize_t r, rows, width
    cdef int32_t* taps
    p.rows = fc_pool_active_rows()
    if channels_last:
        rows, width = p.N * p.OH, p.C
        p.narrow = p.H * p.W <= INT32_MAX
        p.pixels = _has_pixels(<real_t>0, p, indices != NULL)
    else:
        rows = p.N * p.C * p.OH
        p.pixels = False
        _find_interior(p, NULL)
        if p.DW != 1 or (indices != NULL and p.H * p.W > INT32_MAX):
            p.a = p.b = p.OW
        width = p.b - p.a
    taps = _index_rows(num_threads, width)
    try:
        if num_threads == 1:  # (see the module docstring: no OpenMP team for one thread)
            with nogil:
                for r in range(rows):
                    _max_row(x, out, indices, taps, p, channels_last, r)
        else:
            for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
                _max_row(x, out, indices, taps + omp_get_thread_num() * _index_row_step(width), p,
                         channels_last, r)
    finally:
        free(taps)
    return 0


cdef inline void _max_row(const real_t* x, real_t* out, int64_t* indices, int32_t* taps, const _Pool* p,
                          bint channels_last, Py_ssize_t r) noexcept nogil:
    if channels_last and p.pixels:
        _max_row_pixels(x, out, indices, taps, p, r)
    elif channels_last:
        _max_row_nhwc(x, out, indices, taps, p, r)
    else:
        _max_row_nchw(x, out, indices, taps, p, r)


cdef void _max_row_nchw(const real_t* x, real_t* out, int64_t* indices, int32_t* taps, const _Pool* p,
                        Py_ssize_t r) noexcept nogil:
    """Row ``r`` of the ``(N * C * OH)`` output rows of :func:`max_pool2d` (NCHW).

    Interior columns ``[p.a, p.b)`` (every tap inside the image, unit dilation,
    ``p.KW`` taps wide) take a fast path: tap by tap, one vectorizable pass
    over the output row. Updates are written branch-free (select, then store)
    so the compiler can vectorize; indices are tracked there as int32 in the
    thread's ``(b - a,)`` row ``taps`` (int32 next to float32 vectorizes,
    int64 does not) and widened at the end of the row. Planes of 2**31 pixels
    or more skip the fast path when indices are wanted.
    """
    cdef Py_ssize_t W = p.W, OH = p.OH, OW = p.OW, L = p.L, SW = p.SW, DH = p.DH
    cdef Py_ssize_t a = p.a, b = p.b, KW = p.KW
    cdef bint with_indices = indices != NULL
    cdef Py_ssize_t plane_index = r // OH, oh = r - plane_index * OH, ow, t, u, ih, i
    cdef Py_ssize_t h0 = p.windows[oh], hn = p.windows[L + oh]
    cdef int32_t k32
    cdef bint take
    cdef real_t v, lowest = _lowest(<real_t>0)
    cdef const real_t* plane = x + plane_index * p.H * W
    cdef const real_t* src
    cdef real_t* orow = out + r * OW
    cdef int64_t* irow = indices + r * OW if with_indices else NULL
    for ow in range(a):
        _max_window(plane, p, h0, hn, ow, orow, irow)
    if a < b and KW == 2 and SW == 2 and hn == 2 and DH == 1:  # 2x2 windows at stride 2: one pass
        _two_by_two(&plane[h0 * W + p.windows[2 * L + a]], W, h0 * W + p.windows[2 * L + a], b - a,
                    orow + a, taps if with_indices else NULL, p.rows)
        if with_indices:
            for i in range(b - a):
                irow[a + i] = taps[i]
    elif a < b:  # the interior, vectorized over output columns
        if hn == 0:  # no real row (dilated windows only)
            for i in range(b - a):
                orow[a + i] = lowest
                taps[i] = -1
        else:  # the first real tap starts the running maximum (see _first_tap)
            src = &plane[h0 * W + p.windows[2 * L + a]]
            k32 = h0 * W + p.windows[2 * L + a]
            for i in range(b - a):
                orow[a + i] = src[i * SW]
                taps[i] = k32 + i * SW
        for t in range(hn):
            ih = h0 + t * DH
            src = &plane[ih * W + p.windows[2 * L + a]]
            if KW == 3:  # the row's three taps in one pass (tap 0 of row 0 again: no change)
                _three(src, SW, ih * W + p.windows[2 * L + a], b - a, orow + a,
                       taps if with_indices else NULL, p.rows)
                continue
            for u in range(KW):
                if t == 0 and u == 0:
                    continue
                if with_indices:
                    k32 = ih * W + p.windows[2 * L + a] + u
                    for i in range(b - a):
                        v = src[i * SW + u]
                        take = _takes(v, orow[a + i])
                        orow[a + i] = v if take else orow[a + i]
                        taps[i] = k32 + i * SW if take else taps[i]
                elif SW == 2:
                    for i in range(b - a):
                        v = src[2 * i + u]
                        orow[a + i] = v if _takes(v, orow[a + i]) else orow[a + i]
                else:
                    for i in range(b - a):
                        v = src[i * SW + u]
                        orow[a + i] = v if _takes(v, orow[a + i]) else orow[a + i]
        if with_indices:
            for i in range(b - a):
                irow[a + i] = taps[i]
    for ow in range(max(a, b), OW):
        _max_window(plane, p, h0, hn, ow, orow, irow)


cdef inline void _two_by_two(const real_t* src, Py_ssize_t W, int32_t k32, Py_ssize_t n, real_t* orow,
                             int32_t* taps, const fc_pool_rows* rows) noexcept nogil:
    """:func:`_max_two_by_two` through the SIMD level's row function where it has one."""
    if real_t is float and rows != NULL and taps != NULL and rows.max2x2_idx_f32 != NULL:
        rows.max2x2_idx_f32(src, W, k32, n, orow, taps)
    elif real_t is float and rows != NULL and taps == NULL and rows.max2x2_f32 != NULL:
        rows.max2x2_f32(src, W, n, orow)
    elif real_t is double and rows != NULL and taps == NULL and rows.max2x2_f64 != NULL:
        rows.max2x2_f64(src, W, n, orow)
    else:
        _max_two_by_two(src, W, k32, n, orow, taps)


cdef inline void _three(const real_t* src, Py_ssize_t SW, int32_t k32, Py_ssize_t n, real_t* orow,
                        int32_t* taps, const fc_pool_rows* rows) noexcept nogil:
    """:func:`_max_three` through the SIMD level's row function where it has one (strides 1 and 2)."""
    cdef fc_max3_f32_fn f32 = NULL
    cdef fc_max3_f64_fn f64 = NULL
    cdef fc_max3_idx_f32_fn idx32 = NULL
    if rows != NULL and SW <= 2:
        if real_t is float and taps != NULL:
            idx32 = rows.max3s1_idx_f32 if SW == 1 else rows.max3s2_idx_f32
        elif real_t is float:
            f32 = rows.max3s1_f32 if SW == 1 else rows.max3s2_f32
        elif real_t is double and taps == NULL:
            f64 = rows.max3s1_f64 if SW == 1 else rows.max3s2_f64
    if real_t is float and idx32 != NULL:
        idx32(src, k32, n, orow, taps)
    elif real_t is float and f32 != NULL:
        f32(src, n, orow)
    elif real_t is double and f64 != NULL:
        f64(src, n, orow)
    else:
        _max_three(src, SW, k32, n, orow, taps)


cdef void _max_two_by_two(const real_t* src, Py_ssize_t W, int32_t k32, Py_ssize_t n, real_t* orow,
                          int32_t* taps) noexcept nogil:
    """``n`` 2x2 windows at stride 2 from ``src`` (rows ``W`` apart; plane index ``k32`` there) into ``orow``.

    The taps in :func:`_max_row_nchw`'s order (row-major, the first starting
    the maximum), in one pass that keeps each maximum in a register; with
    ``taps`` (else NULL) the winners' plane indices go there. Alternating
    processes on the Intel Xeon, one thread, medians, the interior a tap at
    a time / in one pass (a new output each call): 112x112, 14x14 and 32x32
    planes 1.27x, 1.69x and 3.2x, with indices 1.61x, 1.52x and 2.1x.
    """
    cdef Py_ssize_t i
    cdef real_t m, v
    cdef int32_t k
    cdef bint take
    if taps == NULL:
        for i in range(n):
            m = src[2 * i]
            v = src[2 * i + 1]
            m = v if _takes(v, m) else m
            v = src[W + 2 * i]
            m = v if _takes(v, m) else m
            v = src[W + 2 * i + 1]
            orow[i] = v if _takes(v, m) else m
        return
    for i in range(n):
        m = src[2 * i]
        k = k32 + 2 * i
        v = src[2 * i + 1]
        take = _takes(v, m)
        m = v if take else m
        k = k32 + 2 * i + 1 if take else k
        v = src[W + 2 * i]
        take = _takes(v, m)
        m = v if take else m
        k = k32 + W + 2 * i if take else k
        v = src[W + 2 * i + 1]
        take = _takes(v, m)
        orow[i] = v if take else m
        taps[i] = k32 + W + 2 * i + 1 if take else k


cdef void _max_three(const real_t* src, Py_ssize_t SW, int32_t k32, Py_ssize_t n, real_t* orow,
                     int32_t* taps) noexcept nogil:
    """Fold one window row of 3 taps, ``src[i*SW + u]`` (plane index ``k32`` at ``src``), into ``n`` maxima.

    ``orow`` (and, unless NULL, ``taps``: the winners' plane indices) hold
    the running maxima of the windows, updated in tap order in one pass
    over the row: a maximum compared with its own tap again keeps its value
    and index (a NaN takes its own place). Alternating processes on the
    Intel Xeon, one thread, medians, a tap at a time / three at a time: 3x3
    windows at stride 2 on 112x112 planes (ResNet's first pooling) 1.12x,
    with indices 1.22x; at stride 1 on 56x56 1.18x / 1.41x, on 7x7 1.23x /
    1.13x. (This module is built for the baseline instruction set: SSE2
    selects a maximum in four instructions, where the loop spends its time.
    float32 and float64 rows at strides 1 and 2 go to pool_rows.h's
    functions of the SIMD level in force instead: :func:`_three`.)
    """
    cdef Py_ssize_t i
    cdef real_t m, v
    cdef int32_t k
    cdef bint take
    if taps == NULL and SW == 2:
        for i in range(n):
            m = orow[i]
            v = src[2 * i]
            m = v if _takes(v, m) else m
            v = src[2 * i + 1]
            m = v if _takes(v, m) else m
            v = src[2 * i + 2]
            orow[i] = v if _takes(v, m) else m
    elif taps == NULL and SW == 1:
        for i in range(n):
            m = orow[i]
            v = src[i]
            m = v if _takes(v, m) else m
            v = src[i + 1]
            m = v if _takes(v, m) else m
            v = src[i + 2]
            orow[i] = v if _takes(v, m) else m
    elif taps == NULL:
        for i in range(n):
            m = orow[i]
            v = src[i * SW]
            m = v if _takes(v, m) else m
            v = src[i * SW + 1]
            m = v if _takes(v, m) else m
            v = src[i * SW + 2]
            orow[i] = v if _takes(v, m) else m
    else:
        for i in range(n):
            m = orow[i]
            k = taps[i]
            v = src[i * SW]
            take = _takes(v, m)
            m = v if take else m
            k = k32 + i * SW if take else k
            v = src[i * SW + 1]
            take = _takes(v, m)
            m = v if take else m
            k = k32 + i * SW + 1 if take else k
            v = src[i * SW + 2]
            take = _takes(v, m)
            orow[i] = v if take else m
            taps[i] = k32 + i * SW + 2 if take else k


cdef inline void _max_window(const real_t* plane, const _Pool* p, Py_ssize_t h0, Py_ssize_t hn, Py_ssize_t ow,
                             real_t* orow, int64_t* irow) noexcept nogil:
    """Output column ``ow`` of a row of :func:`_max_row_nchw` outside its interior, tap by tap."""
    cdef Py_ssize_t W = p.W, DH = p.DH, DW = p.DW
    cdef Py_ssize_t w0 = p.windows[2 * p.L + ow], wn = p.windows[3 * p.L + ow], t, u, ih, iw
    cdef real_t m = _lowest(<real_t>0), v
    cdef bint take
    cdef Py_ssize_t best = h0 * W + w0 if hn > 0 and wn > 0 else -1
    cdef const real_t* src
    for t in range(hn):
        ih = h0 + t * DH
        src = &plane[ih * W]
        for u in range(wn):
            iw = w0 + u * DW
            v = src[iw]
            take = _takes(v, m)
            m = v if take else m
            best = ih * W + iw if take else best
    orow[ow] = m
    if irow != NULL:
        irow[ow] = best


cdef void _max_row_nhwc(const real_t* x, real_t* out, int64_t* indices, int32_t* taps, const _Pool* p,
                        Py_ssize_t r) noexcept nogil:
    """Row ``r`` of the ``(N * OH)`` output rows of :func:`max_pool2d` (NHWC): the innermost loop runs
    over contiguous channels.

    Indices are tracked as int32 in the thread's ``(C,)`` row ``taps`` so the
    channel loop vectorizes, then widened; planes of 2**31 pixels or more
    (not ``p.narrow``) track them in int64 directly.
    """
    cdef Py_ssize_t H = p.H, W = p.W, C = p.C, OH = p.OH, OW = p.OW, L = p.L, DH = p.DH, DW = p.DW
    cdef Py_ssize_t n = r // OH, oh = r - n * OH, ow, t, u, ih, iw, c, k
    cdef Py_ssize_t h0 = p.windows[oh], hn = p.windows[L + oh], w0, wn
    cdef bint with_indices = indices != NULL, narrow = p.narrow
    cdef bint take
    cdef int32_t k32
    cdef real_t v, lowest = _lowest(<real_t>0)
    cdef const real_t* image = x + n * H * W * C
    cdef const real_t* src
    cdef real_t* o = out + r * OW * C
    cdef int64_t* idx = indices + r * OW * C if with_indices else NULL
    for ow in range(OW):
        w0, wn = p.windows[2 * L + ow], p.windows[3 * L + ow]
        if hn == 0 or wn == 0:  # no real pixel (dilated windows only)
            for c in range(C):
                o[c] = lowest
            if with_indices:
                for c in range(C):
                    idx[c] = -1
        else:
            # the first real tap starts the running maximum (see _first_tap)
            src = image + (h0 * W + w0) * C
            k = h0 * W + w0
            for c in range(C):
                o[c] = src[c]
            if with_indices:
                for c in range(C):
                    if narrow:
                        taps[c] = <int32_t>k
                    else:
                        idx[c] = k
            for t in range(hn):
                ih = h0 + t * DH
                for u in range(wn):
                    if t == 0 and u == 0:
                        continue
                    iw = w0 + u * DW
                    src = image + (ih * W + iw) * C
                    if not with_indices:
                        for c in range(C):
                            v = src[c]
                            o[c] = v if _takes(v, o[c]) else o[c]
                    elif narrow:
                        k32 = <int32_t>(ih * W + iw)
                        for c in range(C):
                            v = src[c]
                            take = _takes(v, o[c])
                            o[c] = v if take else o[c]
                            taps[c] = k32 if take else taps[c]
                    else:
                        k = ih * W + iw
                        for c in range(C):
                            v = src[c]
                            take = _takes(v, o[c])
                            o[c] = v if take else o[c]
                            idx[c] = k if take else idx[c]
            if with_indices and narrow:
                for c in range(C):
                    idx[c] = taps[c]
        o += C
        if with_indices:
            idx += C


cdef bint _has_pixels(real_t like, const _Pool* p, bint with_indices) noexcept:
    """Whether the level's pixel function takes this NHWC call (float32; float64 without indices)."""
    if p.rows == NULL or p.C < FC_PIXEL_MIN_CHANNELS:  # (fewer channels: the loops here, pool_rows.h)
        return False
    return ((real_t is float and p.rows.max_pixel_f32 != NULL and (p.narrow or not with_indices))
            or (real_t is double and p.rows.max_pixel_f64 != NULL and not with_indices))


cdef void _max_row_pixels(const real_t* x, real_t* out, int64_t* indices, int32_t* taps, const _Pool* p,
                          Py_ssize_t r) noexcept nogil:
    """:func:`_max_row_nhwc` through the SIMD level's pixel function (where :func:`_has_pixels`)."""
    cdef Py_ssize_t H = p.H, W = p.W, C = p.C, OH = p.OH, L = p.L
    cdef Py_ssize_t n = r // OH, oh = r - n * OH, ow, c, w0, wn
    cdef Py_ssize_t h0 = p.windows[oh], hn = p.windows[L + oh]
    cdef const real_t* image = x + n * H * W * C
    cdef real_t* o = out + r * p.OW * C
    cdef int64_t* idx = indices + r * p.OW * C if indices != NULL else NULL
    cdef real_t lowest = _lowest(<real_t>0)
    for ow in range(p.OW):
        w0, wn = p.windows[2 * L + ow], p.windows[3 * L + ow]
        if hn == 0 or wn == 0:  # no real pixel (dilated windows only)
            for c in range(C):
                o[c] = lowest
            if idx != NULL:
                for c in range(C):
                    idx[c] = -1
        elif real_t is float:
            p.rows.max_pixel_f32(image, W, C, h0, hn, p.DH, w0, wn, p.DW, o, taps if idx != NULL else NULL)
            if idx != NULL:
                for c in range(C):
                    idx[c] = taps[c]
        elif real_t is double:
            p.rows.max_pixel_f64(image, W, C, h0, hn, p.DH, w0, wn, p.DW, o, NULL)
        o += C
        if idx != NULL:
            idx += C


def avg_pool2d(cnp.ndarray x not None, cnp.ndarray out not None, cnp.ndarray windows not None,
               cnp.ndarray divisors not None, Py_ssize_t SW, bint channels_last, int num_threads):
    """Sum of the real pixels of each window (row-major, from 0), divided by ``dh[oh] * dw[ow]``.

    ``x`` and ``out``: 4-D, C-contiguous, aligned, of one float dtype
    (float32, float64 or long double), ``out`` writeable; ``windows``
    ``(4, L)`` intp and ``divisors`` ``(2, L)`` int64, C-contiguous, ``L >=
    OH, OW``; ``SW`` the stride along rows. The kernel reads the arrays'
    memory itself (acquiring four buffers cost a small call half its time),
    so it checks them here, and that the windows lie inside the image.

    One task per output row: ``(n, c, oh)`` for NCHW, ``(n, oh)`` for NHWC
    (``channels_last``), whose channels are summed in the same order. NCHW
    rows add their interior (:func:`_find_interior`, columns of one divisor)
    a tap at a time over the whole run, each sum in the same order as a
    window at a time.
    """
    cdef int kind = cnp.PyArray_TYPE(x)
    cdef _Pool p
    if kind != cnp.NPY_FLOAT and kind != cnp.NPY_DOUBLE and kind != cnp.NPY_LONGDOUBLE:
        raise TypeError("avg_pool2d: x must be float32, float64 or long double")
    _check_pool(x, out, windows, channels_last, 1, 1, &p, "avg_pool2d")
    p.divisors = <const int64_t*>_table(divisors, sizeof(int64_t), 2, max(p.OH, p.OW, 1), "divisors")
    p.LD = cnp.PyArray_DIMS(divisors)[1]
    if SW < 1 or num_threads < 1:
        raise ValueError("avg_pool2d: the stride and num_threads must be at least 1")
    p.SW = SW
    p.a = p.b = p.OW  # (NHWC rows, and NCHW rows without an interior worth its own loop: see _avg_row_interior)
    if not channels_last:
        _find_interior(&p, p.divisors + p.LD)
        if p.b - p.a < AVG_RUN and not (p.KW == 2 and SW == 2):
            p.a = p.b = p.OW
    if kind == cnp.NPY_FLOAT:
        _avg_pool(<const float*>cnp.PyArray_DATA(x), <float*>cnp.PyArray_DATA(out), &p, channels_last,
                  num_threads)
    elif kind == cnp.NPY_DOUBLE:
        _avg_pool(<const double*>cnp.PyArray_DATA(x), <double*>cnp.PyArray_DATA(out), &p, channels_last,
                  num_threads)
    else:
        _avg_pool(<const long double*>cnp.PyArray_DATA(x), <long double*>cnp.PyArray_DATA(out), &p,
                  channels_last, num_threads)


cdef const Py_ssize_t* _table(cnp.ndarray a, Py_ssize_t size, Py_ssize_t rows, Py_ssize_t width,
                              str name) except NULL:
    """The data of an aligned C-contiguous ``(rows, >= width)`` table of ``size``-byte signed integers."""
    if (not cnp.PyArray_ISSIGNED(a) or cnp.PyArray_ITEMSIZE(a) != size or not cnp.PyArray_ISNOTSWAPPED(a)
            or cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIMS(a)[0] != rows or cnp.PyArray_DIMS(a)[1] < width
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
        raise ValueError(f"{name} must be a C-contiguous ({rows}, >= {width}) table of {8 * size}-bit integers")
    return <const Py_ssize_t*>cnp.PyArray_DATA(a)


cdef void _avg_pool(const float_t* x, float_t* out, _Pool* p, bint channels_last,
                    int num_threads) noexcept:
    """:func:`avg_pool2d` on checked arrays."""
    cdef Py_ssize_t r, rows = p.N * p.OH * (1 if channels_last else p.C)
    p.pixels = False
    if channels_last:
        p.rows = fc_pool_active_rows()
        p.pixels = p.rows != NULL and p.C >= FC_PIXEL_MIN_CHANNELS and (
            (float_t is float and p.rows.avg_pixel_f32 != NULL) or (float_t is double and p.rows.avg_pixel_f64 != NULL))
    if num_threads == 1:  # (see the module docstring: no OpenMP team for one thread)
        with nogil:
            for r in range(rows):
                _avg_row(x, out, p, channels_last, r)
    else:
        for r in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            _avg_row(x, out, p, channels_last, r)


cdef inline void _avg_row(const float_t* x, float_t* out, const _Pool* p, bint channels_last,
                          Py_ssize_t r) noexcept nogil:
    if p.pixels:
        _avg_row_pixels(x, out, p, r)
    elif channels_last:
        _avg_row_nhwc(x, out, p, r)
    elif p.a < p.b:
        _avg_row_interior(x, out, p, r)
    else:
        _avg_row_nchw(x, out, p, r)


cdef enum:
    AVG_RUN = 8  # fewest interior windows _avg_row_nchw sums a tap at a time


cdef void _avg_row_nchw(const float_t* x, float_t* out, const _Pool* p, Py_ssize_t r) noexcept nogil:
    """Row ``r`` of the ``(N * C * OH)`` output rows of :func:`avg_pool2d` (NCHW), a window at a time."""
    cdef Py_ssize_t W = p.W, OH = p.OH, OW = p.OW, L = p.L
    cdef Py_ssize_t plane_index = r // OH, oh = r - plane_index * OH, ow
    cdef const Py_ssize_t* w0 = p.windows + 2 * L
    cdef const Py_ssize_t* wn = p.windows + 3 * L
    cdef const int64_t* dw = p.divisors + p.LD
    cdef Py_ssize_t h_first = p.windows[oh], h_end = h_first + p.windows[L + oh]
    cdef int64_t dh = p.divisors[oh]
    cdef const float_t* plane = x + plane_index * p.H * W
    cdef float_t* orow = out + r * OW
    for ow in range(OW):
        orow[ow] = _window_mean(plane, W, h_first, h_end, w0[ow], wn[ow], <float_t>(dh * dw[ow]))


cdef inline float_t _window_mean(const float_t* plane, Py_ssize_t W, Py_ssize_t h_first, Py_ssize_t h_end,
                                 Py_ssize_t w0, Py_ssize_t wn, float_t divisor) noexcept nogil:
    """The sum of rows ``h_first <= ih < h_end``, columns ``w0 <= iw < w0 + wn`` of ``plane``, from 0, over ``divisor``."""
    cdef Py_ssize_t ih, iw
    cdef float_t s = 0
    cdef const float_t* src
    for ih in range(h_first, h_end):
        src = plane + ih * W
        for iw in range(w0, w0 + wn):
            s = s + src[iw]
    return s / divisor


cdef void _avg_row_interior(const float_t* x, float_t* out, const _Pool* p, Py_ssize_t r) noexcept nogil:
    """Row ``r`` of :func:`_avg_row_nchw` vectorized over its interior columns ``[p.a, p.b)``.

    For calls whose interior is 2x2 windows at stride 2, or at least
    ``AVG_RUN`` windows (:func:`avg_pool2d` leaves the others an empty
    interior: the row function without the interior's code runs faster, 12-15 %
    on 7x7 planes, than one with it). Each output sums its taps in row-major
    order from 0, as a window at a time does: the same bits. 2x2 windows at
    stride 2 in one pass, others a tap at a time over the run; the columns
    around the interior (and the rows of 2x2 windows that padding cuts) a
    window at a time. Alternating processes on the Intel Xeon, one thread,
    medians, into an ``out``, a window at a time / this: 2x2 at stride 2 on
    112x112, 56x56, 32x32, 14x14 and 7x7 planes 5.6x, 4.9x, 5.7x, 2.8-3.0x
    and 1.2x; 3x3 at stride 1 on 56x56 and 14x14 1.9x and 1.3-1.4x, at
    stride 2 on 56x56 1.7x; calls left a window at a time 0.95-1.02x.
    """
    cdef Py_ssize_t W = p.W, SW = p.SW, KW = p.KW, a = p.a, b = p.b, n = p.b - p.a, ow, ih, i, u
    cdef Py_ssize_t plane_index = r // p.OH, oh = r - plane_index * p.OH
    cdef Py_ssize_t h_first = p.windows[oh], h_end = h_first + p.windows[p.L + oh]
    cdef const Py_ssize_t* w0 = p.windows + 2 * p.L
    cdef const Py_ssize_t* wn = p.windows + 3 * p.L
    cdef const int64_t* dw = p.divisors + p.LD
    cdef int64_t dh = p.divisors[oh]
    cdef const float_t* plane = x + plane_index * p.H * W
    cdef float_t* orow = out + r * p.OW
    cdef const float_t* src = plane + h_first * W + w0[a]
    cdef float_t d = <float_t>(dh * dw[a])
    if n < AVG_RUN and h_end - h_first != 2:  # (2x2 windows cut by padding) every column a window at a time
        a = b = p.OW
    elif KW == 2 and SW == 2 and h_end - h_first == 2:
        for i in range(n):
            orow[a + i] = ((((<float_t>0 + src[2 * i]) + src[2 * i + 1]) + src[W + 2 * i]) + src[W + 2 * i + 1]) / d
    else:
        for i in range(n):
            orow[a + i] = 0
        for ih in range(h_end - h_first):
            for u in range(KW):
                if SW == 2:
                    for i in range(n):
                        orow[a + i] = orow[a + i] + src[ih * W + 2 * i + u]
                else:
                    for i in range(n):
                        orow[a + i] = orow[a + i] + src[ih * W + i * SW + u]
        for i in range(n):
            orow[a + i] = orow[a + i] / d
    ow = 0
    while ow < p.OW:  # the columns around the interior, a window at a time
        if ow == a:
            ow = b
            continue
        orow[ow] = _window_mean(plane, W, h_first, h_end, w0[ow], wn[ow], <float_t>(dh * dw[ow]))
        ow = ow + 1


cdef void _avg_row_pixels(const float_t* x, float_t* out, const _Pool* p, Py_ssize_t r) noexcept nogil:
    """:func:`_avg_row_nhwc` by the SIMD level's ``avg_pixel`` (pool_rows.h): the same sums, a vector at a time."""
    cdef Py_ssize_t C = p.C, W = p.W, OH = p.OH, OW = p.OW, L = p.L
    cdef Py_ssize_t n = r // OH, oh = r - n * OH, ow
    cdef const Py_ssize_t* w0 = p.windows + 2 * L
    cdef const Py_ssize_t* wn = p.windows + 3 * L
    cdef const int64_t* dw = p.divisors + p.LD
    cdef Py_ssize_t h0 = p.windows[oh], hn = p.windows[L + oh]
    cdef int64_t dh = p.divisors[oh]
    cdef const float_t* image = x + n * p.H * W * C
    for ow in range(OW):
        if float_t is float:
            p.rows.avg_pixel_f32(image, W, C, h0, hn, w0[ow], wn[ow], out + (r * OW + ow) * C, <float>(dh * dw[ow]))
        elif float_t is double:
            p.rows.avg_pixel_f64(image, W, C, h0, hn, w0[ow], wn[ow], out + (r * OW + ow) * C, <double>(dh * dw[ow]))


cdef void _avg_row_nhwc(const float_t* x, float_t* out, const _Pool* p, Py_ssize_t r) noexcept nogil:
    """Row ``r`` of the ``(N * OH)`` output rows of :func:`avg_pool2d` (NHWC)."""
    cdef Py_ssize_t C = p.C, W = p.W, OH = p.OH, OW = p.OW, L = p.L
    cdef Py_ssize_t n = r // OH, oh = r - n * OH, ow, ih, iw, c
    cdef const Py_ssize_t* w0 = p.windows + 2 * L
    cdef const Py_ssize_t* wn = p.windows + 3 * L
    cdef const int64_t* dw = p.divisors + p.LD
    cdef Py_ssize_t h_first = p.windows[oh], h_end = h_first + p.windows[L + oh]
    cdef int64_t dh = p.divisors[oh]
    cdef float_t d
    cdef const float_t* image = x + n * p.H * W * C
    cdef const float_t* src
    cdef float_t* o
    for ow in range(OW):
        o = out + (r * OW + ow) * C
        for c in range(C):
            o[c] = 0
        for ih in range(h_first, h_end):
            for iw in range(w0[ow], w0[ow] + wn[ow]):
                src = image + (ih * W + iw) * C
                for c in range(C):
                    o[c] = o[c] + src[c]
        d = <float_t>(dh * dw[ow])
        for c in range(C):
            o[c] = o[c] / d


def max_pool2d_backward_nchw(const float_t[:, :, ::1] grad, const int64_t[:, :, ::1] indices,
                             float_t[:, :, ::1] grad_in, bint zero, int num_threads):
    """``grad_in[p].flat[indices[p, o]] += grad[p, o]``.

    ``grad_in`` is zeroed by the caller, or, with ``zero``, here, plane by
    plane just before the adds into it (in cache: no pass over memory of its
    own). Its planes must be C-contiguous (the flat indices). Index -1 (a
    window without input pixels) adds nothing. Returns how many indices lie
    outside ``[-1, H*W)``; those are skipped (never written) and the caller
    raises.
    """
    cdef Py_ssize_t P = grad.shape[0], L = grad.shape[1] * grad.shape[2]
    cdef Py_ssize_t HW = grad_in.shape[1] * grad_in.shape[2]
    cdef Py_ssize_t p, o, bad = 0
    cdef int64_t k
    cdef const float_t* g
    cdef const int64_t* idx
    cdef float_t* dst
    if grad_in.shape[0] != P or (grad_in.shape[1] > 1
                                 and grad_in.strides[1] != grad_in.shape[2] * <Py_ssize_t>sizeof(float_t)):
        raise ValueError("max_pool2d_backward_nchw: grad_in must be C-contiguous planes, one per grad plane")
    for p in prange(P, nogil=True, num_threads=num_threads, schedule="static"):
        g = &grad[p, 0, 0]
        idx = &indices[p, 0, 0]
        dst = &grad_in[p, 0, 0]
        if zero:
            _zero_plane(dst, HW)
        for o in range(L):
            k = idx[o]
            if 0 <= k < HW:
                dst[k] = dst[k] + g[o]
            elif k != -1:
                bad += 1
    return bad


cdef inline void _zero_plane(float_t* p, Py_ssize_t n) noexcept nogil:
    """Zero ``n`` items from ``p`` (a plane of a gradient, or a row of one)."""
    if n > 0:
        memset(p, 0, n * sizeof(float_t))


cdef void _zero_image(float_t[:, :, :, ::1] a, Py_ssize_t n) noexcept nogil:
    """Zero image ``n`` of the NHWC ``a`` (one call where the image is in one piece)."""
    cdef Py_ssize_t H = a.shape[1], W = a.shape[2], C = a.shape[3], h, w
    if H * W * C == 0:
        return
    if a.strides[2] == C * <Py_ssize_t>sizeof(float_t) and a.strides[1] == W * a.strides[2]:
        memset(&a[n, 0, 0, 0], 0, H * W * C * sizeof(float_t))
        return
    for h in range(H):
        for w in range(W):
            memset(&a[n, h, w, 0], 0, C * sizeof(float_t))


def max_pool2d_backward_nhwc(const float_t[:, :, :, ::1] grad, const int64_t[:, :, :, ::1] indices,
                             float_t[:, :, :, ::1] grad_in, bint zero, int num_threads):
    """Channels-last twin of :func:`max_pool2d_backward_nchw`, an image a task.

    With ``zero`` each task zeroes its image first (:func:`_zero_image`).
    Each image of ``grad_in`` must be C-contiguous (the flat indices).
    (Not blocks of an image's channels, as before: two threads on blocks of
    the same image ran slower than one on the whole image, 0.3-0.9x on one
    image of 56x56x64 or 28x28x256 float32, whatever the block's width,
    Intel Xeon; they write lines a few apart in every pixel.)
    """
    cdef Py_ssize_t N = grad.shape[0], L = grad.shape[1] * grad.shape[2], C = grad.shape[3]
    cdef Py_ssize_t HW = grad_in.shape[1] * grad_in.shape[2]
    cdef Py_ssize_t n, o, c, bad = 0
    cdef int64_t k
    cdef const float_t* g
    cdef const int64_t* idx
    cdef float_t* dst
    if grad_in.shape[0] != N or grad_in.shape[3] != C or (HW > 1 and (
            grad_in.strides[2] != C * <Py_ssize_t>sizeof(float_t) or grad_in.strides[1] != grad_in.shape[2] * grad_in.strides[2])):
        raise ValueError("max_pool2d_backward_nhwc: grad_in must be C-contiguous images, one per grad image")
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        g = &grad[n, 0, 0, 0]
        idx = &indices[n, 0, 0, 0]
        dst = &grad_in[n, 0, 0, 0]
        if zero:
            _zero_image(grad_in, n)
        for o in range(L):
            for c in range(C):
                k = idx[o * C + c]
                if 0 <= k < HW:
                    dst[k * C + c] = dst[k * C + c] + g[o * C + c]
                elif k != -1:
                    bad += 1
    return bad


def avg_pool2d_backward_nchw(const float_t[:, :, ::1] grad, float_t[:, :, ::1] grad_in,
                             const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors,
                             Py_ssize_t SW, Py_ssize_t KW, Py_ssize_t PW, bint zero, int num_threads):
    """Spread ``grad / divisor`` over the real pixels of each window (``SW`` the stride along rows).

    ``grad_in`` is zeroed by the caller, or, with ``zero``, here, plane by
    plane just before the adds into it (in cache: no pass over memory of its
    own). Each pixel receives its adds in output order. The interior columns
    (:func:`_find_interior`) of 2x2 windows at stride 2, which do not
    overlap, go in one pass over the output row (:func:`_avg_grad_two_by_two`);
    rows of ``AVG_RUN`` or more outputs at stride 1 a tap column at a time
    (:func:`_avg_grad_row_taps`: ``KW`` the windows' width, ``PW`` the
    padding before each row); other rows a window at a time.
    The caller checks the shapes and tables.
    """
    if SW < 1 or KW < 1 or PW < 0:
        raise ValueError("avg_pool2d_backward_nchw: stride and kernel width at least 1, padding at least 0")
    cdef Py_ssize_t P = grad.shape[0], OH = grad.shape[1], OW = grad.shape[2], H = grad_in.shape[1]
    cdef Py_ssize_t W = grad_in.shape[2], p, oh, ih, a, b
    cdef bint whole = H < 2 or grad_in.strides[1] == W * <Py_ssize_t>sizeof(float_t)  # planes in one piece
    cdef bint taps = SW == 1 and OW >= AVG_RUN  # (see _avg_grad_row_taps)
    cdef _Pool pool
    pool.OW, pool.SW, pool.windows, pool.L = OW, SW, &windows[0, 0], windows.shape[1]
    _find_interior(&pool, &divisors[1, 0])
    if pool.KW != 2 or SW != 2:
        pool.a = pool.b = OW
    for p in prange(P, nogil=True, num_threads=num_threads, schedule="static"):
        if zero and whole:  # (one call a plane: a call a row cost 14x14 planes 9 %)
            _zero_plane(&grad_in[p, 0, 0], H * W)
        elif zero:
            for ih in range(H):
                _zero_plane(&grad_in[p, ih, 0], W)
        for oh in range(OH):
            a, b = pool.a, pool.b
            if a < b and windows[1, oh] == 2:
                _avg_grad_two_by_two(&grad[p, oh, a], &grad_in[p, windows[0, oh], windows[2, a]],
                                     &grad_in[p, windows[0, oh] + 1, windows[2, a]], b - a,
                                     <float_t>(divisors[0, oh] * divisors[1, a]))
                _avg_grad_windows(grad, grad_in, windows, divisors, p, oh, 0, a)
                _avg_grad_windows(grad, grad_in, windows, divisors, p, oh, b, OW)
            elif taps:
                _avg_grad_row_taps(grad, grad_in, windows, divisors, p, oh, KW, PW)
            else:
                _avg_grad_windows(grad, grad_in, windows, divisors, p, oh, 0, OW)


cdef enum:
    AVG_GRAD_RUN = 256  # outputs of a row whose quotients _avg_grad_row_taps keeps at a time


cdef void _avg_grad_row_taps(const float_t[:, :, ::1] grad, float_t[:, :, ::1] grad_in,
                             const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors, Py_ssize_t p,
                             Py_ssize_t oh, Py_ssize_t KW, Py_ssize_t PW) noexcept nogil:
    """Output row ``oh`` of plane ``p`` of :func:`avg_pool2d_backward_nchw` at stride 1, a tap column at a time.

    The row's quotients ``grad / divisor`` (``AVG_GRAD_RUN`` outputs at a
    time) go to each input row of its windows, a tap column ``kw`` at a
    time over all the outputs: output ``ow``'s quotient to column
    ``ow - PW + kw`` where that lies in the image (a window's real taps,
    dilation 1), one vectorized pass over the row. The columns go from the
    last tap to the first, so each pixel still takes its adds in output
    order (a later tap reaches it from an earlier output), the same sums as
    a window at a time, bit for bit. Old / new, one thread (Intel Xeon,
    float32): 3x3 windows 2.00-2.26x, 2x2 4.19x (two threads 2.07-4.11x);
    at stride 2 (stores a column apart) 0.94-1.09x, and a few outputs a
    row (global pooling) 0.13-0.24x: those keep :func:`_avg_grad_windows`.
    """
    cdef Py_ssize_t OW = grad.shape[2], W = grad_in.shape[2], a, b, kw, ih, ow, lo, hi, off
    cdef int64_t dh = divisors[0, oh]
    cdef float_t q[AVG_GRAD_RUN]
    cdef float_t* row
    a = 0
    while a < OW:
        b = min(OW, a + AVG_GRAD_RUN)
        for ow in range(a, b):
            q[ow - a] = grad[p, oh, ow] / <float_t>(dh * divisors[1, ow])
        for ih in range(windows[0, oh], windows[0, oh] + windows[1, oh]):
            row = &grad_in[p, ih, 0]
            for kw in range(KW - 1, -1, -1):
                off = kw - PW  # (output ow's tap kw: column ow + off; those in 0 .. W-1 here)
                lo = max(a, -off)
                hi = min(b, W - off)
                for ow in range(lo, hi):
                    row[ow + off] = row[ow + off] + q[ow - a]
        a = b


cdef void _avg_grad_windows(const float_t[:, :, ::1] grad, float_t[:, :, ::1] grad_in,
                            const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors, Py_ssize_t p,
                            Py_ssize_t oh, Py_ssize_t ow0, Py_ssize_t ow1) noexcept nogil:
    """Columns ``ow0 <= ow < ow1`` of output row ``oh`` of plane ``p`` of :func:`avg_pool2d_backward_nchw`."""
    cdef Py_ssize_t ow, ih, iw
    cdef float_t g
    cdef float_t* dst
    for ow in range(ow0, ow1):
        g = grad[p, oh, ow] / <float_t>(divisors[0, oh] * divisors[1, ow])
        for ih in range(windows[0, oh], windows[0, oh] + windows[1, oh]):
            dst = &grad_in[p, ih, 0]
            for iw in range(windows[2, ow], windows[2, ow] + windows[3, ow]):
                dst[iw] = dst[iw] + g


cdef void _avg_grad_two_by_two(const float_t* g, float_t* row0, float_t* row1, Py_ssize_t n,
                               float_t d) noexcept nogil:
    """``g[i] / d`` added to the 2x2 pixels at columns ``2i``, ``2i + 1`` of ``row0`` and ``row1``.

    The windows do not overlap: each pixel takes one add (before or after
    the window-at-a-time ones of other columns, the same bits). Alternating
    processes on the Intel Xeon, one thread, medians, a window at a time /
    this: 56x56, 14x14 and 112x112 planes 5.0x, 4.3x and 5.1x (two threads,
    56x56: 5.8x). (The columns
    around the interior, and all columns of other windows, went 6 % slower
    when tested column by column in the plane loop; they run in a function
    of their own over a range of columns: 3x3 windows 1.10-1.12x.)
    """
    cdef Py_ssize_t i
    cdef float_t v
    for i in range(n):
        v = g[i] / d
        row0[2 * i] = row0[2 * i] + v
        row0[2 * i + 1] = row0[2 * i + 1] + v
        row1[2 * i] = row1[2 * i] + v
        row1[2 * i + 1] = row1[2 * i + 1] + v


def avg_pool2d_backward_nhwc(const float_t[:, :, :, ::1] grad, float_t[:, :, :, ::1] grad_in,
                             const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors,
                             bint zero, int num_threads):
    """Channels-last twin of :func:`avg_pool2d_backward_nchw`, an image a task.

    With ``zero`` each task zeroes its image first (:func:`_zero_image`).
    Each output pixel's quotients ``grad / divisor`` are computed once, not
    once a tap (the same quotients, so the same bits), and added to every
    pixel of its window: by the SIMD level's ``avg_spread`` (pool_rows.h,
    :func:`_avg_spread_image_nhwc`) where it has one for the type and there
    are ``FC_PIXEL_MIN_CHANNELS`` channels or more, else by
    :func:`_avg_grad_image_nhwc`.
    """
    cdef Py_ssize_t N = grad.shape[0], C = grad.shape[3], n
    cdef const fc_pool_rows* rows = fc_pool_active_rows()
    cdef void* spread = NULL
    if rows != NULL and C >= FC_PIXEL_MIN_CHANNELS:
        if float_t is float:
            spread = <void*>rows.avg_spread_f32
        elif float_t is double:
            spread = <void*>rows.avg_spread_f64
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        if zero:
            _zero_image(grad_in, n)
        if spread != NULL:
            _avg_spread_image_nhwc(grad, grad_in, windows, divisors, n, spread)
        else:
            _avg_grad_image_nhwc(grad, grad_in, windows, divisors, n)


cdef enum:
    AVG_GRAD_CHANNELS = 256  # channels of an output pixel whose quotients _avg_grad_image_nhwc keeps at a time


cdef void _avg_spread_image_nhwc(const float_t[:, :, :, ::1] grad, float_t[:, :, :, ::1] grad_in,
                                 const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors, Py_ssize_t n,
                                 void* spread) noexcept nogil:
    """Image ``n`` for :func:`avg_pool2d_backward_nhwc`, an output pixel a call.

    ``spread`` is the SIMD level's ``avg_spread`` for ``float_t`` (float or double).
    """
    cdef Py_ssize_t OH = grad.shape[1], OW = grad.shape[2], C = grad.shape[3], oh, ow
    cdef Py_ssize_t row = grad_in.strides[1] // <Py_ssize_t>sizeof(float_t)
    cdef Py_ssize_t pixel = grad_in.strides[2] // <Py_ssize_t>sizeof(float_t)
    cdef float_t* image = &grad_in[n, 0, 0, 0]
    for oh in range(OH):
        for ow in range(OW):
            if float_t is float:
                (<fc_avg_spread_f32_fn>spread)(image, row, pixel, windows[0, oh], windows[1, oh], windows[2, ow],
                                               windows[3, ow], &grad[n, oh, ow, 0],
                                               <float>(divisors[0, oh] * divisors[1, ow]), C)
            elif float_t is double:
                (<fc_avg_spread_f64_fn>spread)(image, row, pixel, windows[0, oh], windows[1, oh], windows[2, ow],
                                               windows[3, ow], &grad[n, oh, ow, 0],
                                               <double>(divisors[0, oh] * divisors[1, ow]), C)


cdef void _avg_grad_image_nhwc(const float_t[:, :, :, ::1] grad, float_t[:, :, :, ::1] grad_in,
                               const Py_ssize_t[:, ::1] windows, const int64_t[:, ::1] divisors,
                               Py_ssize_t n) noexcept nogil:
    """Image ``n`` for :func:`avg_pool2d_backward_nhwc`, ``AVG_GRAD_CHANNELS`` channels at a time.

    (A function of its own: on 3 channels it ran 1.1-1.3x as fast as the same
    loop in a function that also called ``avg_spread``, which GCC compiled
    otherwise.)
    """
    cdef Py_ssize_t OH = grad.shape[1], OW = grad.shape[2], C = grad.shape[3], oh, ow, ih, iw, c, a, b
    cdef float_t d
    cdef float_t q[AVG_GRAD_CHANNELS]
    cdef const float_t* g
    cdef float_t* dst
    for oh in range(OH):
        for ow in range(OW):
            d = <float_t>(divisors[0, oh] * divisors[1, ow])
            g = &grad[n, oh, ow, 0]
            a = 0
            while a < C:
                b = min(C, a + AVG_GRAD_CHANNELS)
                for c in range(b - a):
                    q[c] = g[a + c] / d
                for ih in range(windows[0, oh], windows[0, oh] + windows[1, oh]):
                    for iw in range(windows[2, ow], windows[2, ow] + windows[3, ow]):
                        dst = &grad_in[n, ih, iw, a]
                        for c in range(b - a):
                            dst[c] = dst[c] + q[c]
                a = b
