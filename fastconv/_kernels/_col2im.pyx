"""col2im loops: the adjoint of :mod:`fastconv._kernels._im2col`.

:func:`col2im_planar` (tap by tap) and :func:`col2im_blocks` (in blocks of
output pixels, ``col2im_block.h``) add into unpadded planar images, dropping
the taps that fall in the padding; :func:`col2im_2d` adds into a padded 5-D view
``(N, G, Hp, Wp, V)`` (NCHW: ``G = C``, ``V = 1`` or the words of one wide
item; NHWC: ``G = 1``, ``V = C``). Columns are ``(N*OH*OW, G*KH*KW*V)``,
column index ``(g, kh, kw, v)``. The caller zeroes the image, pads it where
a kernel needs that, and checks every shape.

A module of its own: GCC compiles a module as a whole, and a change to the
im2col loops once made these, unchanged, 8-13 % slower.
"""

from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fastconv._kernels._openmp cimport omp_get_thread_num

# col2im adds: unsigned words wrap like NumPy's signed and unsigned ints;
# complex values arrive as (re, im) pairs of their real type.
ctypedef fused sum_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t
    float
    double
    long double


cdef extern from "prefetch.h" nogil:
    void fc_prefetch_runs(const void* p, ptrdiff_t runs, ptrdiff_t stride, ptrdiff_t nbytes) noexcept

cdef extern from "col2im_block.h" nogil:
    enum: FC_COL2IM_BLOCK
    void fc_col2im_block_f32(const float* src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, float* const* rows,
                             const ptrdiff_t* cols, ptrdiff_t first, ptrdiff_t sw, float* buf,
                             ptrdiff_t chunk) noexcept
    void fc_col2im_block_f64(const double* src, ptrdiff_t ld, ptrdiff_t J, ptrdiff_t KW, double* const* rows,
                             const ptrdiff_t* cols, ptrdiff_t first, ptrdiff_t sw, double* buf,
                             ptrdiff_t chunk) noexcept


cdef enum:
    TAP_MAJOR_KW_MAX = 4  # kernel rows col2im adds tap by tap at any width (_tap_major)
    TAP_MAJOR_WIDE_KW_MAX = 7  # and those it adds tap by tap on rows of TAP_MAJOR_WIDE_OW output columns or more
    TAP_MAJOR_WIDE_OW = 12
    ZERO_BYTES = 4096  # col2im_planar zeroes image rows at least this many bytes at a time
    PREFETCH_OW_MIN = 16  # and asks for the next output row's columns on rows of this many pixels or more


def col2im_planar(const sum_t[:, ::1] cols, sum_t[:, :, :, ::1] x,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                  Py_ssize_t OH, Py_ssize_t OW, bint by_image, int num_threads, bint zero=False):
    """Add every column entry back into the unpadded planar ``x`` ``(N, C, H, W)``.

    ``x`` is zeroed by the caller, or, with ``zero``, by this kernel as it goes: each task zeroes
    the image rows of its planes that output row ``oh`` is the first to reach (and, after its
    last output row, those none reached), just before adding into them, so they are still in
    cache for the adds and no separate pass over the image is made. The same sums either way.

    Entries of taps that fall in the zero padding (``top`` rows above,
    ``left`` columns to the left, and what the output extent reaches below
    and to the right) are dropped, so no padded image is made and cropped.
    Tap by tap with the output columns innermost (:func:`_col2im_row_planar`;
    for kernels where ``_tap_major`` holds): each pixel sums its
    contributions in the order :func:`col2im_2d` uses. ``by_image``: one task
    per image, else one per ``(image, channel)`` plane; either way each task
    owns its pixels. The caller checks the shapes and geometry; the ranges
    written are checked here.
    """
    cdef Py_ssize_t N = x.shape[0], G = x.shape[1], H = x.shape[2], W = x.shape[3]
    if cols.shape[0] != N * OH * OW or cols.shape[1] != G * KH * KW:
        raise ValueError("col2im_planar: cols does not match the image and geometry")
    if min(KH, KW, SH, SW, DH, DW) < 1 or top < 0 or left < 0 or OH < 0 or OW < 0:
        raise ValueError("col2im_planar: bad geometry")
    if N * G * H * W == 0:
        return
    # rows zeroed at a time: at least ZERO_BYTES of them (a call per row cost resnet-mid 4 %)
    cdef Py_ssize_t ahead = max(1, ZERO_BYTES // (W * <Py_ssize_t>sizeof(sum_t)))
    cdef bint prefetch = OW >= PREFETCH_OW_MIN
    cdef Py_ssize_t t, n, g, oh, done, upto
    if by_image:
        for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
            done = 0  # the image rows zeroed so far: [0, done)
            for oh in range(OH):
                upto = _rows_to_zero(oh, KH, SH, DH, top, H, done, ahead) if zero else 0
                for g in range(G):
                    if upto > done:
                        _zero_rows(x, n, g, done, upto)
                    if prefetch and oh + 1 < OH:
                        _prefetch_next_row(cols, n, g, oh + 1, KH * KW, OH, OW)
                    _col2im_row_inside(cols, x, n, g, oh, KH, KW, SH, SW, DH, DW, top, left, OH, OW)
                done = max(done, upto)
            if zero and done < H:
                for g in range(G):
                    _zero_rows(x, n, g, done, H)
    else:
        for t in prange(N * G, nogil=True, num_threads=num_threads, schedule="static"):
            n = t // G
            g = t - n * G
            done = 0
            for oh in range(OH):
                upto = _rows_to_zero(oh, KH, SH, DH, top, H, done, ahead) if zero else 0
                if upto > done:
                    _zero_rows(x, n, g, done, upto)
                    done = upto
                if prefetch and oh + 1 < OH:
                    _prefetch_next_row(cols, n, g, oh + 1, KH * KW, OH, OW)
                _col2im_row_inside(cols, x, n, g, oh, KH, KW, SH, SW, DH, DW, top, left, OH, OW)
            if zero and done < H:
                _zero_rows(x, n, g, done, H)


cdef inline Py_ssize_t _rows_to_zero(Py_ssize_t oh, Py_ssize_t KH, Py_ssize_t SH, Py_ssize_t DH,
                                     Py_ssize_t top, Py_ssize_t H, Py_ssize_t done,
                                     Py_ssize_t ahead) noexcept nogil:
    """One past the image rows to have zeroed before output row ``oh`` adds (``done`` zeroed).

    Output rows ``0..oh`` add into rows before ``oh*SH + (KH-1)*DH - top + 1``, the rows past
    ``done`` none of them (output rows only move down); when that passes ``done``, ``ahead``
    rows or more are zeroed, within ``[0, H]``.
    """
    cdef Py_ssize_t reach = oh * SH + (KH - 1) * DH - top + 1
    if reach <= done:
        return done
    return min(H, max(reach, done + ahead))


cdef inline void _prefetch_next_row(const sum_t[:, ::1] cols, Py_ssize_t n, Py_ssize_t g, Py_ssize_t oh,
                                    Py_ssize_t taps, Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Ask (into L2) for channel ``g``'s columns of output row ``oh`` (``< OH``) of image ``n``.

    Tap by tap, a channel reads its ``taps`` items of every pixel of an output row: ``OW`` short
    runs ``cols.shape[1]`` items apart, more than the hardware prefetchers follow. Asked for
    one output row ahead, channel by channel, they arrive while the row before is added. On
    the Intel Xeon, one thread, caches flushed between calls: 3x3 kernels on rows of 16 to 56
    output pixels 1.12-1.64x faster (the canonical shapes 1.14-1.16x), the stem 1.20x, 5x5
    kernels on 28 1.58x; rows of 14 and 7 pixels (resnet-deep, 512 channels of 7x7), whose
    columns are a few long runs, 0.95x and 0.98x: they are not asked for (``PREFETCH_OW_MIN``).
    Columns in cache (the same call repeated): 0.90x (cifar) to 1.21x (the stem).
    """
    fc_prefetch_runs(&cols[(n * OH + oh) * OW, g * taps], OW, cols.shape[1] * sizeof(sum_t), taps * sizeof(sum_t))


cdef inline void _zero_rows(sum_t[:, :, :, ::1] x, Py_ssize_t n, Py_ssize_t g, Py_ssize_t r0,
                            Py_ssize_t r1) noexcept nogil:
    """Zero image rows ``[r0, r1)`` of plane ``(n, g)`` (``0 <= r0 < r1 <= H``, ``W > 0``).

    ``x`` is C-contiguous (the memoryview's type says so), so the rows are next to each other.
    """
    memset(&x[n, g, r0, 0], 0, (r1 - r0) * x.shape[3] * sizeof(sum_t))


cdef inline void _col2im_row_inside(const sum_t[:, ::1] cols, sum_t[:, :, :, ::1] x, Py_ssize_t n,
                                    Py_ssize_t g, Py_ssize_t oh, Py_ssize_t KH, Py_ssize_t KW,
                                    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                                    Py_ssize_t top, Py_ssize_t left, Py_ssize_t OH,
                                    Py_ssize_t OW) noexcept nogil:
    """:func:`_col2im_row_planar` into an unpadded plane: taps outside it are skipped."""
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], ckk = cols.shape[1]
    cdef Py_ssize_t kh, kw, ow, ih, c0, a, b
    cdef const sum_t* src
    cdef sum_t* dst
    for kh in range(KH):
        ih = oh * SH + kh * DH - top
        if ih < 0 or ih >= H:
            continue
        for kw in range(KW):
            c0 = kw * DW - left  # the column of output column 0's tap
            a = 0 if c0 >= 0 else (-c0 + SW - 1) // SW  # the first output column inside
            b = 0 if c0 > W - 1 else min(OW, (W - 1 - c0) // SW + 1)  # one past the last
            if a >= b:
                continue
            src = &cols[(n * OH + oh) * OW, (g * KH + kh) * KW + kw]
            dst = &x[n, g, ih, 0]
            for ow in range(a, b):
                dst[c0 + ow * SW] += src[ow * ckk]


def col2im_2d(const sum_t[:, ::1] cols, sum_t[:, :, :, :, ::1] xp,
              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
              Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW,
              Py_ssize_t v_chunk, bint by_image, int num_threads):
    """Add every column entry back into ``xp`` (zeroed by the caller).

    ``by_image``: one task per image, reading ``cols`` row after row (for
    batches with enough images to share). Otherwise the work is split over
    ``(n, g, v-chunk)`` blocks. Either way each task owns disjoint pixels of
    ``xp`` (no write races), and every pixel sums its contributions in one
    order fixed by the shape (planar layouts tap by tap or pixel by pixel, as
    :func:`_tap_major` decides from the shape), so results do not depend on
    the split or the thread count.
    """
    if by_image:
        _col2im_by_image(cols, xp, KH, KW, SH, SW, DH, DW, OH, OW, num_threads)
        return
    cdef Py_ssize_t N = xp.shape[0], G = xp.shape[1], V = xp.shape[4]
    cdef Py_ssize_t n_chunks = (V + v_chunk - 1) // v_chunk
    cdef Py_ssize_t t, n, g, c, v0, v1, oh, ow, kh, kw, v, base
    cdef const sum_t* row
    cdef sum_t* dst
    cdef bint by_taps = V == 1 and _tap_major(KW, DW, OW)
    for t in prange(N * G * n_chunks, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // (G * n_chunks)
        g = (t // n_chunks) % G
        c = t % n_chunks
        v0 = c * v_chunk
        v1 = min(V, v0 + v_chunk)
        for oh in range(OH):
            if by_taps:
                _col2im_row_planar(cols, xp, n, g, oh, KH, KW, SH, SW, DH, DW, OH, OW)
                continue
            for ow in range(OW):
                row = &cols[(n * OH + oh) * OW + ow, 0]
                for kh in range(KH):
                    dst = &xp[n, g, oh * SH + kh * DH, ow * SW, 0]
                    base = (g * KH + kh) * KW * V
                    if V == 1:
                        for kw in range(KW):
                            dst[kw * DW] += row[base + kw]
                    else:
                        for kw in range(KW):
                            for v in range(v0, v1):
                                dst[kw * DW * V + v] += row[base + kw * V + v]


cdef void _col2im_by_image(const sum_t[:, ::1] cols, sum_t[:, :, :, :, ::1] xp,
                           Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                           Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW,
                           int num_threads) noexcept:
    cdef Py_ssize_t N = xp.shape[0], G = xp.shape[1], V = xp.shape[4]
    cdef Py_ssize_t n, oh, ow, g, kh, kw, v, j
    cdef const sum_t* row
    cdef sum_t* dst
    cdef bint by_taps = V == 1 and _tap_major(KW, DW, OW)
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for oh in range(OH):
            if by_taps:
                for g in range(G):
                    _col2im_row_planar(cols, xp, n, g, oh, KH, KW, SH, SW, DH, DW, OH, OW)
                continue
            for ow in range(OW):
                row = &cols[(n * OH + oh) * OW + ow, 0]
                j = 0
                for g in range(G):
                    for kh in range(KH):
                        dst = &xp[n, g, oh * SH + kh * DH, ow * SW, 0]
                        if V == 1:
                            for kw in range(KW):
                                dst[kw * DW] += row[j + kw]
                            j = j + KW
                        else:
                            for kw in range(KW):
                                for v in range(V):
                                    dst[kw * DW * V + v] += row[j + v]
                                j = j + V


def tap_major(KW, DW, OW):
    """Whether planar col2im runs tap by tap for kernel rows of ``KW`` taps ``DW`` apart and ``OW``
    output columns (:func:`_tap_major`)."""
    return _tap_major(KW, DW, OW)


cdef inline bint _tap_major(Py_ssize_t KW, Py_ssize_t DW, Py_ssize_t OW) noexcept nogil:
    """Whether planar col2im runs tap by tap (:func:`_col2im_row_planar`) or pixel by pixel.

    Measured (CPU time, canonical shapes, AMD EPYC): tap by tap is 1.1-2.9x
    faster for undilated kernels up to 4 wide (3x3 at stride 1 and 2); pixel
    by pixel for dilation 2, where the adds that hit one pixel are far enough
    apart not to wait on each other. Kernels 5 to 7 wide run tap by tap on
    rows of at least ``TAP_MAJOR_WIDE_OW`` output columns: on the Intel Xeon
    (AVX-512), alternating processes, pixel by pixel / tap by tap, medians
    of 3-5, one / two threads: the stem 1.27-1.32x / 1.36-1.45x, 64 channels
    of 56x56 with 7x7 kernels 1.49x / 1.45x, one channel of 28x28 with 5x5
    kernels (the textbook's) 1.71-1.73x / 1.74x, 5x5 at stride 2 on 28x28
    1.17x / 1.21x, one 224x224 image at stride 2 1.01x / 1.11x. Rows of 10
    columns (6 channels of 14x14, 5x5) read 0.87x / 0.92x, but in a build
    that tested this inside the row loop, which slowed the pixel-by-pixel
    loop too (hoisted, that layer's unchanged route reads 1.03x): they stay
    pixel by pixel until measured again. On the AMD EPYC pixel by pixel had
    measured faster for the stem (before this rule; not measured there
    since).
    """
    if DW != 1:
        return False
    return KW <= TAP_MAJOR_KW_MAX or (KW <= TAP_MAJOR_WIDE_KW_MAX and OW >= TAP_MAJOR_WIDE_OW)


cdef inline void _col2im_row_planar(const sum_t[:, ::1] cols, sum_t[:, :, :, :, ::1] xp, Py_ssize_t n,
                                    Py_ssize_t g, Py_ssize_t oh, Py_ssize_t KH, Py_ssize_t KW,
                                    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                                    Py_ssize_t OH, Py_ssize_t OW) noexcept nogil:
    """Add output row ``oh`` of channel ``g`` (planar layout, V == 1) back into ``xp``, tap by tap.

    The output columns run innermost, so consecutive adds go to distinct
    pixels and do not wait on each other's stores (pixel after pixel, each
    tap's add rereads what the previous pixel just wrote). Each pixel sums
    its contributions in a fixed order: by output row, tap, output column.
    """
    cdef Py_ssize_t ckk = cols.shape[1]
    cdef Py_ssize_t kh, kw, ow
    cdef const sum_t* src
    cdef sum_t* dst
    for kh in range(KH):
        for kw in range(KW):
            src = &cols[(n * OH + oh) * OW, (g * KH + kh) * KW + kw]
            dst = &xp[n, g, oh * SH + kh * DH, kw * DW, 0]
            for ow in range(OW):
                dst[ow * SW] += src[ow * ckk]


def col2im_blocks(const sum_t[:, ::1] cols, sum_t[:, :, :, ::1] x,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                  Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t parts, Py_ssize_t chunk, int num_threads):
    """:func:`col2im_planar` in blocks of output pixels (``col2im_block.h``), for dilated kernels.

    Adds every column entry back into the unpadded planar ``x`` ``(N, C, H,
    W)``, zeroed by the caller; the taps that fall in the padding are
    dropped. Each output row's pixels are taken in blocks of
    ``FC_COL2IM_BLOCK`` where every tap of the block lands inside the image
    (else one pixel at a time), their columns read row after row and
    transposed in registers, in chunks of ``chunk`` kernel rows. Each pixel
    sums its contributions in an order fixed by the shape alone (output row,
    block, kernel column, kernel row), whatever ``parts`` and ``chunk``.
    Tasks are (image, slice of the channels), ``parts`` slices per image, so
    each owns its pixels. The caller checks the shapes and geometry; the
    ranges written are checked here.
    """
    cdef Py_ssize_t N = x.shape[0], G = x.shape[1], H = x.shape[2], W = x.shape[3]
    if cols.shape[0] != N * OH * OW or cols.shape[1] != G * KH * KW:
        raise ValueError("col2im_blocks: cols does not match the image and geometry")
    if min(KH, KW, SH, SW, DH, DW) < 1 or top < 0 or left < 0 or OH < 0 or OW < 0:
        raise ValueError("col2im_blocks: bad geometry")
    if not 1 <= parts <= max(1, G) or chunk < 1:
        raise ValueError("col2im_blocks: bad parts or chunk")
    if N * G * OH * OW == 0 or H * W == 0:
        return
    # the interior output columns [lo, hi): every tap of the row reads a column inside [0, W)
    cdef Py_ssize_t lo = min(OW, (left + SW - 1) // SW)
    cdef Py_ssize_t last = W - 1 + left - (KW - 1) * DW  # the largest ow*SW an interior pixel may have
    cdef Py_ssize_t hi = lo if last < 0 else max(lo, min(OW, last // SW + 1))
    # the most taps a task's row adds (C division here: no -(-a // b)), and those of a chunk
    cdef Py_ssize_t J = (G + parts - 1) // parts * KH * KW
    cdef Py_ssize_t taps = min(J, chunk * KW)
    # per thread: the tables of J image rows and columns, and the block's buffer (64-byte aligned)
    cdef Py_ssize_t width = J * (sizeof(sum_t*) + sizeof(ptrdiff_t)) + FC_COL2IM_BLOCK * taps * sizeof(sum_t) + 64
    cdef char* scratch = <char*>malloc(max(1, num_threads) * width)
    cdef Py_ssize_t t, n, p, oh
    cdef char* mine
    if scratch == NULL:
        raise MemoryError("col2im_blocks: cannot allocate its scratch")
    try:
        for t in prange(N * parts, nogil=True, num_threads=num_threads, schedule="static"):
            mine = scratch + omp_get_thread_num() * width
            n = t // parts
            p = t - n * parts
            for oh in range(OH):
                _col2im_row_blocks(cols, x, n, p * G // parts, (p + 1) * G // parts, oh, KH, KW, SH, SW, DH, DW,
                                   top, left, OH, OW, lo, hi, taps, <sum_t**>mine,
                                   <ptrdiff_t*>(mine + J * sizeof(sum_t*)),
                                   <sum_t*>((<size_t>(mine + J * (sizeof(sum_t*) + sizeof(ptrdiff_t))) + 63)
                                            & ~(<size_t>63)))
    finally:
        free(scratch)


cdef void _col2im_row_blocks(const sum_t[:, ::1] cols, sum_t[:, :, :, ::1] x, Py_ssize_t n, Py_ssize_t g0,
                             Py_ssize_t g1, Py_ssize_t oh, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH,
                             Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                             Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t chunk,
                             sum_t** rows, ptrdiff_t* starts, sum_t* buf) noexcept nogil:
    """Output row ``oh`` of image ``n``, channels ``[g0, g1)``: :func:`col2im_blocks`' work.

    ``rows[j]``: the image row tap ``j`` adds into (NULL in the padding);
    ``starts[j]``: the column output pixel 0 reaches in it.
    """
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3], ckk = cols.shape[1], J = (g1 - g0) * KH * KW
    cdef Py_ssize_t g, kh, kw, gk, ih, j = 0, ow = 0, i, c
    cdef const sum_t* src = &cols[(n * OH + oh) * OW, g0 * KH * KW]
    cdef const sum_t* pixel
    cdef sum_t* dst
    for g in range(g0, g1):
        for kh in range(KH):
            ih = oh * SH + kh * DH - top
            for kw in range(KW):
                rows[j] = &x[n, g, ih, 0] if 0 <= ih < H else NULL
                starts[j] = kw * DW - left
                j = j + 1
    while ow < OW:
        pixel = src + ow * ckk
        if lo <= ow and ow + FC_COL2IM_BLOCK <= hi:  # every tap of the block lands inside its row
            if sum_t is float:
                fc_col2im_block_f32(pixel, ckk, J, KW, rows, starts, ow * SW, SW, buf, chunk)
            elif sum_t is double:
                fc_col2im_block_f64(pixel, ckk, J, KW, rows, starts, ow * SW, SW, buf, chunk)
            else:  # the same order: kernel column by kernel column
                for kw in range(KW):
                    for gk in range(J // KW):
                        j = gk * KW + kw
                        if rows[j] != NULL:
                            dst = rows[j] + starts[j] + ow * SW
                            for i in range(FC_COL2IM_BLOCK):
                                dst[i * SW] += pixel[i * ckk + j]
            ow = ow + FC_COL2IM_BLOCK
        else:  # one pixel, tap by tap; taps outside the row dropped
            for j in range(J):
                c = starts[j] + ow * SW
                if rows[j] != NULL and 0 <= c < W:
                    rows[j][c] += pixel[j]
            ow = ow + 1
