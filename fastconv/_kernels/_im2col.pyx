"""im2col / col2im loops.

:func:`im2col_planar` reads unpadded planar images and pads as it reads;
:func:`im2col_2d` and :func:`col2im_2d` loop over a padded 5-D view
``(N, G, Hp, Wp, V)``. Both layouts map onto that loop nest:

* NCHW: ``G = C`` channel planes, ``V = 1`` (or the words of one wide item);
* NHWC: ``G = 1``, ``V = C`` contiguous channels per pixel.

Columns are ``(N*OH*OW, G*KH*KW*V)``, column index ``(g, kh, kw, v)``, which is
the DLFS layout for NCHW and ``(kh, kw, c)`` for NHWC. The caller pads the
input where a kernel needs it, checks every shape and allocates ``cols``.
"""

from cython.parallel cimport prange
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from fastconv._kernels._openmp cimport omp_get_thread_num

# im2col only copies: one specialization per item size.
ctypedef fused word_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

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


cdef extern from "im2col_block.h" nogil:
    void fc_im2col_block_u32(uint32_t* dst, ptrdiff_t J, const uint32_t* const* src, ptrdiff_t start,
                             ptrdiff_t bw, ptrdiff_t sw, int more, int stream) noexcept
    void fc_stream_copy(void* dst, const void* src, size_t n) noexcept


cdef enum:
    PLANAR_KW_MAX = 8  # the widest kernel row im2col_planar takes
    TAP_MAJOR_KW_MAX = 4  # the widest kernel row col2im adds tap by tap (_tap_major)
    _BLOCK = 16  # output pixels a row task writes at a time

#: Output pixels a row task writes at a time (the rows of ``cols`` a streamed block assembles).
BLOCK = _BLOCK


def planar_scratch(Py_ssize_t G, Py_ssize_t KH, Py_ssize_t KW, bint stream=False):
    """Scratch words (8 bytes) each thread of :func:`im2col_planar` needs for ``G`` planes.

    ``stream``: with room for the ``BLOCK`` rows of ``cols`` a streamed block assembles.
    """
    return G * KH * (KW + 1) + (_BLOCK * G * KH * KW if stream else 0)


def im2col_planar(const word_t[:, :, :, ::1] x, word_t[:, ::1] cols, const word_t[::1] zeros,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                  Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t[:, ::1] scratch, int num_threads,
                  bint stream=False):
    """Gather every window of the unpadded planar ``x`` ``(N, C, H, W)`` into a row of ``cols``.

    Zero padding (``top`` rows above, ``left`` columns to the left, and
    whatever the output extent needs below and to the right) is read, not
    copied: a window row above or below the image reads ``zeros`` (at least
    ``W`` items), and the output pixels whose windows cross the left or right
    edge are assembled tap by tap with bounds tests. The others, the interior
    of each output row, go in blocks of ``BLOCK`` pixels: each column
    ``(c, kh, kw)`` copies a (strided) run of its source row down the block's
    rows of ``cols``, which stay in the L1 cache. 4-byte items at stride 1 or
    2 copy four taps of four pixels at a time through a register transpose
    (``im2col_block.h``).

    ``stream``: write ``cols`` with non-temporal stores (for a ``cols`` far
    larger than the caches): the register transposes store straight to memory
    when a row of ``cols`` holds whole vectors; other blocks, and the edge
    pixels' rows, are assembled in scratch and copied out.

    ``scratch`` holds, for each thread, :func:`planar_scratch` words: the
    source row of each ``(c, kh)``, where each tap's run starts, and (when
    streaming) the ``BLOCK`` rows of ``cols`` a block assembles. Rows of ``cols`` are split
    across threads. The caller checks
    the geometry (``OH``, ``OW`` from ``conv_output_shape``) and allocates
    ``cols``; the shapes and the ranges read are checked here as well.
    """
    cdef Py_ssize_t N = x.shape[0], G = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t GK = G * KH, J = G * KH * KW
    cdef Py_ssize_t lo, hi
    if cols.shape[0] != N * OH * OW or cols.shape[1] != J:
        raise ValueError("im2col_planar: cols does not match the image and geometry")
    if min(KH, KW, SH, SW, DH, DW) < 1 or KW > PLANAR_KW_MAX or top < 0 or left < 0 or OH < 0 or OW < 0:
        raise ValueError("im2col_planar: bad geometry")
    if (scratch.shape[0] < max(1, num_threads) or zeros.shape[0] < W
            or scratch.shape[1] < planar_scratch(G, KH, KW, stream)):
        raise ValueError("im2col_planar: scratch too small")
    # the interior output columns [lo, hi): every tap reads a column inside [0, W)
    cdef Py_ssize_t last = W - 1 + left - (KW - 1) * DW  # the largest ow*SW an interior pixel may have
    lo = min(OW, (left + SW - 1) // SW)
    hi = lo if last < 0 else max(lo, min(OW, last // SW + 1))
    cdef Py_ssize_t r, n, oh, ow, ow0, bw, i, k, kw, ih, j
    # streamed blocks: written by the register transposes straight to memory where rows of 4-byte
    # items hold whole vectors, else assembled in scratch, then streamed out (edge pixels too)
    cdef bint direct = False
    if word_t is uint32_t:
        direct = stream and SW <= 2 and J % 4 == 0
    cdef bint assemble = stream and not direct
    cdef const word_t* row
    cdef const word_t** rows
    cdef const word_t** tab
    cdef word_t* edge
    cdef word_t* dst
    for r in prange(N * OH, nogil=True, num_threads=num_threads, schedule="static"):
        n = r // OH
        oh = r - n * OH
        rows = <const word_t**>&scratch[omp_get_thread_num(), 0]  # the source row of each (c, kh)
        tab = rows + GK  # where each tap's run starts, for output pixel lo
        edge = <word_t*>(tab + J)  # rows of cols assembled to be streamed (room only if streaming)
        for k in range(G):
            for i in range(KH):
                ih = oh * SH + i * DH - top
                rows[k * KH + i] = &x[n, k, ih, 0] if 0 <= ih < H else &zeros[0]
        if lo < hi:
            for k in range(GK):
                for kw in range(KW):
                    tab[k * KW + kw] = rows[k] + (lo * SW + kw * DW - left)
        ow0 = lo
        while ow0 < hi:
            bw = min(_BLOCK, hi - ow0)
            dst = edge if assemble else &cols[r * OW + ow0, 0]
            if word_t is uint32_t and SW <= 2:  # 4 x 4 register transposes
                fc_im2col_block_u32(<uint32_t*>dst, J, <const uint32_t* const*>tab, (ow0 - lo) * SW, bw, SW,
                                    ow0 + bw < hi, direct)
            else:
                for j in range(J):
                    row = tab[j] + (ow0 - lo) * SW
                    if SW == 1:  # contiguous reads the compiler vectorizes
                        for i in range(bw):
                            dst[i * J + j] = row[i]
                    else:
                        for i in range(bw):
                            dst[i * J + j] = row[i * SW]
            if assemble:
                fc_stream_copy(&cols[r * OW + ow0, 0], edge, bw * J * sizeof(word_t))
            ow0 = ow0 + bw
        for ow in range(lo):
            _edge_pixel(rows, &cols[r * OW + ow, 0], edge, assemble, GK, ow * SW - left, W, KW, DW)
        for ow in range(hi, OW):
            _edge_pixel(rows, &cols[r * OW + ow, 0], edge, assemble, GK, ow * SW - left, W, KW, DW)


cdef inline void _edge_pixel(const word_t** rows, word_t* dst, word_t* scratch, bint stream, Py_ssize_t count,
                             Py_ssize_t iw0, Py_ssize_t W, Py_ssize_t KW, Py_ssize_t DW) noexcept nogil:
    """The row of ``cols`` of the window at column ``iw0`` (:func:`_edge_taps`).

    ``stream``: assembled in ``scratch``, then written with non-temporal stores.
    """
    if stream:
        _edge_taps(rows, scratch, count, iw0, W, KW, DW)
        fc_stream_copy(dst, scratch, count * KW * sizeof(word_t))
    else:
        _edge_taps(rows, dst, count, iw0, W, KW, DW)


cdef inline void _edge_taps(const word_t** rows, word_t* dst, Py_ssize_t count, Py_ssize_t iw0,
                            Py_ssize_t W, Py_ssize_t KW, Py_ssize_t DW) noexcept nogil:
    """Taps of the window at column ``iw0`` in ``count`` source rows (``W`` items), into ``dst``.

    Taps outside a row are zero: each reads a clamped column, masked to zero
    (no branch per tap; ``KW <= PLANAR_KW_MAX``).
    """
    cdef Py_ssize_t col[PLANAR_KW_MAX]
    cdef word_t keep[PLANAR_KW_MAX]
    cdef Py_ssize_t k, kw, c
    cdef const word_t* src
    for kw in range(KW):
        c = iw0 + kw * DW
        keep[kw] = <word_t>(-1) if 0 <= c < W else 0
        col[kw] = min(max(c, 0), W - 1)
    for k in range(count):
        src = rows[k]
        for kw in range(KW):
            dst[k * KW + kw] = src[col[kw]] & keep[kw]


def im2col_2d(const word_t[:, :, :, :, ::1] xp, word_t[:, ::1] cols,
              Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
              Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW, word_t[:, ::1] scratch,
              int num_threads, bint stream=False):
    """Gather every window of the padded ``xp`` into one row of ``cols``, pixel by pixel.

    For what :func:`im2col_planar` does not take: channels-last images,
    items of several words, kernel rows wider than ``PLANAR_KW_MAX``. Each
    window row is a run of ``KW * V`` items per tap. Rows of ``cols`` are
    split across threads. ``stream``: the rows of up to ``BLOCK`` windows are
    assembled in ``scratch`` (that many rows of ``cols`` per thread), then
    written with non-temporal stores (for a ``cols`` far larger than the
    caches).
    """
    cdef Py_ssize_t N = xp.shape[0], G = xp.shape[1], V = xp.shape[4]
    cdef Py_ssize_t J = cols.shape[1]
    if cols.shape[0] != N * OH * OW or (stream and (scratch.shape[0] < max(1, num_threads)
                                                   or scratch.shape[1] < _BLOCK * J)):
        raise ValueError("im2col_2d: cols or scratch does not match the image")
    cdef Py_ssize_t r, n, oh, ow, ow0, bw, g, kh, kw, v, j
    cdef const word_t* src
    cdef word_t* dst
    cdef word_t* rows
    for r in prange(N * OH, nogil=True, num_threads=num_threads, schedule="static"):
        n = r // OH
        oh = r - n * OH
        ow0 = 0
        while ow0 < OW:
            bw = min(_BLOCK, OW - ow0)
            rows = &scratch[omp_get_thread_num(), 0] if stream else &cols[r * OW + ow0, 0]
            for ow in range(ow0, ow0 + bw):
                dst = rows + (ow - ow0) * J
                j = 0
                for g in range(G):
                    for kh in range(KH):
                        src = &xp[n, g, oh * SH + kh * DH, ow * SW, 0]
                        if V == 1:
                            for kw in range(KW):
                                dst[j + kw] = src[kw * DW]
                            j = j + KW
                        else:
                            for kw in range(KW):
                                for v in range(V):
                                    dst[j + v] = src[kw * DW * V + v]
                                j = j + V
            if stream:
                fc_stream_copy(&cols[r * OW + ow0, 0], rows, bw * J * sizeof(word_t))
            ow0 = ow0 + bw


def col2im_planar(const sum_t[:, ::1] cols, sum_t[:, :, :, ::1] x,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                  Py_ssize_t OH, Py_ssize_t OW, bint by_image, int num_threads):
    """Add every column entry back into the unpadded planar ``x`` ``(N, C, H, W)`` (zeroed by the caller).

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
    cdef Py_ssize_t t, n, g, oh
    if by_image:
        for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
            for oh in range(OH):
                for g in range(G):
                    _col2im_row_inside(cols, x, n, g, oh, KH, KW, SH, SW, DH, DW, top, left, OH, OW)
    else:
        for t in prange(N * G, nogil=True, num_threads=num_threads, schedule="static"):
            n = t // G
            g = t - n * G
            for oh in range(OH):
                _col2im_row_inside(cols, x, n, g, oh, KH, KW, SH, SW, DH, DW, top, left, OH, OW)


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
    for t in prange(N * G * n_chunks, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // (G * n_chunks)
        g = (t // n_chunks) % G
        c = t % n_chunks
        v0 = c * v_chunk
        v1 = min(V, v0 + v_chunk)
        for oh in range(OH):
            if V == 1 and _tap_major(KW, DW):
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
    for n in prange(N, nogil=True, num_threads=num_threads, schedule="static"):
        for oh in range(OH):
            if V == 1 and _tap_major(KW, DW):
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


def tap_major(KW, DW):
    """Whether planar col2im runs tap by tap for kernel rows of ``KW`` taps ``DW`` apart (:func:`_tap_major`)."""
    return KW <= TAP_MAJOR_KW_MAX and DW == 1


cdef inline bint _tap_major(Py_ssize_t KW, Py_ssize_t DW) noexcept nogil:
    """Whether planar col2im runs tap by tap (:func:`_col2im_row_planar`) or pixel by pixel.

    Measured (CPU time, canonical shapes): tap by tap is 1.1-2.9x faster for
    undilated kernels up to 4 wide (3x3 at stride 1 and 2); pixel by pixel
    is faster for the 7x7 stem and for dilation 2, where the adds that hit
    one pixel are far enough apart not to wait on each other.
    """
    return KW <= TAP_MAJOR_KW_MAX and DW == 1


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
