"""im2col loops (their adjoint, col2im, is in :mod:`fastconv._kernels._col2im`).

:func:`im2col_planar` reads unpadded planar images and pads as it reads;
:func:`im2col_2d` loops over a padded 5-D view ``(N, G, Hp, Wp, V)``. Both
layouts map onto that loop nest:

* NCHW: ``G = C`` channel planes, ``V = 1`` (or the words of one wide item);
* NHWC: ``G = 1``, ``V = C`` contiguous channels per pixel.

Columns are ``(N*OH*OW, G*KH*KW*V)``, column index ``(g, kh, kw, v)``, which is
the DLFS layout for NCHW and ``(kh, kw, c)`` for NHWC. The caller pads the
input where a kernel needs it, checks every shape and allocates ``cols``.
"""

from cython.parallel cimport parallel, prange
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

cimport numpy as cnp

from fastconv._kernels._openmp cimport omp_get_thread_num

# im2col only copies: one specialization per item size.
ctypedef fused word_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t

cdef extern from "im2col_block.h" nogil:
    void fc_im2col_block_u32(uint32_t* dst, ptrdiff_t J, const uint32_t* const* src, ptrdiff_t start,
                             ptrdiff_t bw, ptrdiff_t sw, int more) noexcept
    ptrdiff_t fc_im2col_stream_u32(uint32_t* dst, ptrdiff_t J, const uint32_t* const* src, ptrdiff_t start,
                                   ptrdiff_t bw, ptrdiff_t sw, int more) noexcept
    void fc_window_runs_u32(uint32_t* dst, const uint32_t* const* src, ptrdiff_t count, ptrdiff_t offset,
                            ptrdiff_t kw, int spill) noexcept
    ctypedef struct fc_stream_writer:
        pass
    void fc_stream_begin(fc_stream_writer* w) noexcept
    void fc_stream_put(fc_stream_writer* w, void* dst, const void* src, size_t n) noexcept
    void fc_stream_flush(fc_stream_writer* w) noexcept
    void fc_stream_fence() noexcept
    bint FC_STREAMS_ROWS


cnp.import_array()


cdef struct _Planar:  # the image and geometry of one im2col_planar call
    Py_ssize_t N, G, H, W  # the image's shape
    Py_ssize_t xs0, xs1, xs2  # its strides, in bytes (its rows are contiguous)
    Py_ssize_t KH, KW, SH, SW, DH, DW, top, left, OH, OW, J
    Py_ssize_t lo, hi  # the interior output columns: every tap reads inside the row
    # edge pixels gathered like the interior, reading up to `left` items before a row and `over`
    # past it, then their taps outside the row zeroed (only for C-contiguous images: `items`)
    bint gather_edges
    Py_ssize_t over, items
    bint runs  # 4-byte items whose window rows are copied as runs (:func:`_copies_runs`)


cdef enum:
    PLANAR_KW_MAX = 8  # the widest kernel row im2col_planar takes
    _BLOCK = 16  # output pixels a row task writes at a time
    _LINE = 64  # bytes in a cache line
    _STREAM_RUN_BYTES = 128  # streamed window rows this long go straight from the image (im2col_2d)

cdef enum:
    _WRITER_WORDS = (sizeof(fc_stream_writer) + 7) // 8  # scratch words of a thread's writer

#: Output pixels a row task writes at a time (the rows of ``cols`` a streamed block assembles).
BLOCK = _BLOCK


cdef inline Py_ssize_t _assembly_offset(Py_ssize_t G, Py_ssize_t KH, Py_ssize_t KW) noexcept nogil:
    """Where a thread's assembled rows of ``cols`` start in its scratch: past its tables, on a
    cache line (8 words), so that the transposes' 16-byte stores and the copies' loads do not
    straddle lines."""
    return (1 + G * KH * (KW + 1) + 7) // 8 * 8


cdef inline Py_ssize_t _planar_scratch(Py_ssize_t G, Py_ssize_t KH, Py_ssize_t KW,
                                       bint stream) noexcept nogil:
    """Scratch words (8 bytes) each thread of :func:`im2col_planar` needs for ``G`` planes.

    The output row the tables below were built for, the source row of each
    ``(g, kh)``, where each tap's run starts and, when streaming, the ``BLOCK``
    rows of ``cols`` a block assembles (:func:`_assembly_offset`) and the
    thread's ``fc_stream_writer`` (:func:`_writer`). Whole cache lines, with
    one to spare: the threads' scratch, from a line boundary on, shares no
    line (a writer at the end of one thread's, written at every block while
    the next thread read its tables from the words after it, made two
    threads 0.93x as fast on cifar and the stem).
    """
    cdef Py_ssize_t words = _assembly_offset(G, KH, KW) + (_BLOCK * G * KH * KW + _WRITER_WORDS if stream else 0)
    return (words + 15) // 8 * 8


cdef inline fc_stream_writer* _writer(Py_ssize_t* scratch, Py_ssize_t G, Py_ssize_t KH, Py_ssize_t KW) noexcept nogil:
    """The ``fc_stream_writer`` after the assembled rows in a thread's streaming ``scratch`` (:func:`_planar_scratch`)."""
    return <fc_stream_writer*>(scratch + _assembly_offset(G, KH, KW) + _BLOCK * G * KH * KW)


def im2col_planar(cnp.ndarray x not None, cnp.ndarray cols not None,
                  Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                  Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t top, Py_ssize_t left,
                  Py_ssize_t OH, Py_ssize_t OW, int num_threads, bint stream=False):
    """Gather every window of the unpadded planar ``x`` ``(N, C, H, W)`` into a row of ``cols``.

    ``x`` and ``cols`` are arrays of one bool or numeric dtype of 1, 2, 4 or
    8 bytes (their items are copied as words of that size): ``x`` aligned,
    its rows contiguous (unless it is empty); ``cols`` ``(N * OH * OW, C * KH * KW)``, C-contiguous,
    aligned and writeable. The kernel reads the arrays' memory itself (no
    buffer views to build, which cost a tiny call a third of its time), so it
    checks all of this here.

    Zero padding (``top`` rows above, ``left`` columns to the left, and
    whatever the output extent needs below and to the right) is read, not
    copied: a window row above or below the image reads a row of zeros. The
    output pixels go in blocks of ``BLOCK``: each column ``(c, kh, kw)``
    copies a (strided) run of its source row down the block's rows of
    ``cols``, which stay in the L1 cache. 4-byte items at stride 1 or 2 copy
    four taps of four pixels at a time through a register transpose
    (``im2col_block.h``). The pixels whose windows cross the left or right
    edge of the image go in those blocks too, their taps outside the row
    then zeroed, where ``x`` is C-contiguous: their reads before or past a
    row then land in the row before or after it, inside ``x`` (checked row by
    row; not before its first row or after its last). In rows streamed
    straight from registers they go apart, their taps copied as runs where
    those reads stay inside ``x`` (:func:`_edge_pixel`); elsewhere tap by
    tap with bounds tests. At stride 2 with kernel rows of 6 taps or more,
    and at strides of 3 or more, every window row of 4-byte items is copied
    as a run instead of transposed (:func:`_copies_runs`), with the same
    reads.

    ``stream``: write ``cols`` with non-temporal stores (for a ``cols`` far
    larger than the caches). Rows of whole cache lines of 4-byte items at
    stride 1 or 2 go straight from the transposes' registers, four pixels at
    a time (:func:`streams_rows_directly`); other blocks, the last few pixels
    of those rows and each edge pixel's row are assembled in scratch and
    copied out whole cache lines at a time.

    Rows of ``cols`` are split across threads; with one thread they run in a
    plain loop (an OpenMP team, even of one thread, costs a small call about
    0.6 µs). The row of zeros and each thread's scratch
    (:func:`_planar_scratch`) are allocated here. The caller checks the
    geometry (``OH``, ``OW`` from ``conv_output_shape``); the arrays, the
    shapes and the ranges read are checked here as well.
    """
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(x)
    if cnp.PyArray_NDIM(x) != 4 or cnp.PyArray_NDIM(cols) != 2:
        raise ValueError("im2col_planar: x must be 4-D and cols 2-D")
    if (not (cnp.PyArray_ISNUMBER(x) or cnp.PyArray_ISBOOL(x))
            or not (cnp.PyArray_ISNUMBER(cols) or cnp.PyArray_ISBOOL(cols))
            or cnp.PyArray_ITEMSIZE(cols) != size or size not in (1, 2, 4, 8)):
        raise TypeError("im2col_planar: x and cols must hold numbers or bools of one size of 1, 2, 4 or 8 bytes")
    cdef cnp.npy_intp* shape = cnp.PyArray_DIMS(x)
    cdef cnp.npy_intp* strides = cnp.PyArray_STRIDES(x)
    # (an empty image is never read, and NumPy gives it zero strides)
    if (not cnp.PyArray_ISALIGNED(x) or (cnp.PyArray_SIZE(x) > 0 and shape[3] > 1 and strides[3] != size)
            or not cnp.PyArray_IS_C_CONTIGUOUS(cols) or not cnp.PyArray_ISALIGNED(cols)
            or not cnp.PyArray_ISWRITEABLE(cols)):
        raise ValueError("im2col_planar: x must be aligned with contiguous rows, "
                         "cols C-contiguous, aligned and writeable")
    cdef _Planar p
    p.N, p.G, p.H, p.W = shape[0], shape[1], shape[2], shape[3]
    p.xs0, p.xs1, p.xs2 = strides[0], strides[1], strides[2]
    p.KH, p.KW, p.SH, p.SW, p.DH, p.DW, p.top, p.left, p.OH, p.OW = KH, KW, SH, SW, DH, DW, top, left, OH, OW
    p.J = p.G * KH * KW
    p.gather_edges = cnp.PyArray_IS_C_CONTIGUOUS(x)
    p.items = cnp.PyArray_SIZE(x)
    p.runs = (p.gather_edges and size == 4 and DW == 1 and _copies_runs(KW, SW)
              and not (stream and _streams_rows_directly(size, KH * KW * shape[1], SW)))
    if cnp.PyArray_DIMS(cols)[0] != p.N * OH * OW or cnp.PyArray_DIMS(cols)[1] != p.J:
        raise ValueError("im2col_planar: cols does not match the image and geometry")
    if (min(KH, KW, SH, SW, DH, DW) < 1 or KW > PLANAR_KW_MAX or top < 0 or left < 0 or OH < 0 or OW < 0
            or num_threads < 1):
        raise ValueError("im2col_planar: bad geometry")
    cdef const char* xd = <const char*>cnp.PyArray_DATA(x)
    cdef void* cd = cnp.PyArray_DATA(cols)
    if size == 4:
        _planar(<const uint32_t*>xd, <uint32_t*>cd, &p, num_threads, stream)
    elif size == 8:
        _planar(<const uint64_t*>xd, <uint64_t*>cd, &p, num_threads, stream)
    elif size == 2:
        _planar(<const uint16_t*>xd, <uint16_t*>cd, &p, num_threads, stream)
    else:
        _planar(<const uint8_t*>xd, <uint8_t*>cd, &p, num_threads, stream)


cdef int _planar(const word_t* x, word_t* cols, _Planar* p, int num_threads, bint stream) except -1:
    """:func:`im2col_planar` on checked arrays: ``x`` its image's first item, ``cols`` its columns."""
    cdef Py_ssize_t W = p.W, width, r
    if p.N * p.OH * p.OW * p.J == 0:
        return 0
    if W == 0:  # every tap is padding (and no column can be clamped into an empty row)
        memset(cols, 0, p.N * p.OH * p.OW * p.J * sizeof(word_t))
        return 0
    # the interior output columns [lo, hi): every tap reads a column inside [0, W)
    cdef Py_ssize_t last = W - 1 + p.left - (p.KW - 1) * p.DW  # the largest ow*SW an interior pixel may have
    p.lo = min(p.OW, (p.left + p.SW - 1) // p.SW)
    p.hi = p.lo if last < 0 else max(p.lo, min(p.OW, last // p.SW + 1))
    # the items the edge pixels read past a row (up to 7 past the last pixel's last tap:
    # fc_window_runs_u32); before it, `left` (pixel 0's first tap)
    p.over = max(0, (p.OW - 1) * p.SW - p.left + (p.KW - 1) * p.DW + 8 - W)
    width = _planar_scratch(p.G, p.KH, p.KW, stream)
    # (on a cache line: see _planar_scratch)
    cdef void* scratch_mem = malloc(max(1, num_threads * width) * sizeof(Py_ssize_t) + _LINE)
    cdef Py_ssize_t* scratch = <Py_ssize_t*>((<uintptr_t>scratch_mem + _LINE - 1) // _LINE * _LINE)
    cdef word_t* zeros_mem = <word_t*>calloc(p.left + W + p.over, sizeof(word_t))
    cdef word_t* zeros = zeros_mem + p.left  # a row of zeros, as far on either side as an edge tap reads
    try:
        if scratch_mem == NULL or zeros_mem == NULL:
            raise MemoryError("im2col_planar: cannot allocate its scratch")
        for r in range(num_threads):
            scratch[r * width] = -1  # no tables built yet
            if stream:
                fc_stream_begin(_writer(scratch + r * width, p.G, p.KH, p.KW))
        # (the non-temporal stores are fenced once per thread, after its rows: see fc_stream_fence;
        # a thread's rows of cols are consecutive, its copies streamed through one writer)
        if num_threads == 1:
            with nogil:
                for r in range(p.N * p.OH):
                    _im2col_row_planar(x, cols, zeros, scratch, p, stream, r)
                if stream:
                    fc_stream_flush(_writer(scratch, p.G, p.KH, p.KW))
                    fc_stream_fence()
        else:
            with nogil, parallel(num_threads=num_threads):
                for r in prange(p.N * p.OH, schedule="static"):
                    _im2col_row_planar(x, cols, zeros, scratch + omp_get_thread_num() * width, p, stream, r)
                if stream:
                    fc_stream_flush(_writer(scratch + omp_get_thread_num() * width, p.G, p.KH, p.KW))
                    fc_stream_fence()
    finally:
        free(scratch_mem)
        free(zeros_mem)
    return 0


cdef inline bint _streams_rows_directly(size_t itemsize, Py_ssize_t J, Py_ssize_t SW) noexcept nogil:
    """Whether a streamed :func:`im2col_planar` writes its interior pixels straight to memory.

    4-byte items at stride 1 or 2 in rows of whole cache lines, on x86-64
    (``fc_im2col_stream_u32``); the others assemble blocks of ``BLOCK`` rows
    in scratch and copy them out.
    """
    return FC_STREAMS_ROWS and itemsize == 4 and SW <= 2 and J % 16 == 0


def streams_rows_directly(Py_ssize_t itemsize, Py_ssize_t J, Py_ssize_t SW):
    """Whether a streamed :func:`im2col_planar` of ``itemsize``-byte items, ``J`` columns and
    horizontal stride ``SW`` writes rows straight to memory, assembling no blocks of ``BLOCK``
    rows but the last few pixels of each output row."""
    return _streams_rows_directly(itemsize, J, SW)


cdef inline bint _streams_runs_directly(Py_ssize_t run_bytes, Py_ssize_t DW) noexcept nogil:
    return DW == 1 and run_bytes >= _STREAM_RUN_BYTES


def streams_runs_directly(Py_ssize_t run_bytes, Py_ssize_t DW):
    """Whether a streamed :func:`im2col_2d` puts each window row, ``run_bytes`` long at column
    dilation ``DW``, straight from the image to ``cols`` (then it needs no ``scratch``).

    Dilation 1 and runs of ``STREAM_RUN_BYTES`` or more: on 56x56 3x3 layers of
    4 to 48 float32 channels (AMD EPYC Zen 1, one thread, channels-last, into
    an ``out`` 16 bytes past a line), old/new through 16-row blocks / direct:
    96-byte runs 1.24x / 1.15x, 192 bytes 1.15x / 1.53x, 384 bytes 1.06x /
    2.18x (the blocks outgrow the L1 cache).
    """
    return _streams_runs_directly(run_bytes, DW)


#: Streamed window rows of im2col_2d this long (bytes) go straight from the image (:func:`streams_runs_directly`).
STREAM_RUN_BYTES = _STREAM_RUN_BYTES


cdef inline bint _copies_runs(Py_ssize_t KW, Py_ssize_t SW) noexcept nogil:
    """Whether rows of cols of 4-byte items (dilation 1) are copied as runs rather than transposed.

    Each window row is a run of ``KW`` items of its source row, copied with
    one or two 16-byte loads and stores (``fc_window_runs_u32``); the
    transposes load a stride-2 run of four pixels with two loads and a
    shuffle. Blocks of 16 rows assembled in cache and streamed out, C copies
    of both routes, one thread, AMD EPYC Zen 1: at stride 2 runs of 6, 7
    and 8 taps read 1.08x, 1.13-1.15x and 1.32x, runs of 3 to 5 taps
    0.82-0.94x; at stride 1 runs of 7 taps 0.96x. Rows the transposes
    stream straight from registers stay with them (0.87-1.00x). At strides
    of 3 or more the alternative is a copy item by item.
    """
    return (SW == 2 and KW >= 6) or (SW >= 3 and KW >= 2)


cdef void _im2col_row_planar(const word_t* x, word_t* cols, const word_t* zeros, Py_ssize_t* scratch,
                             const _Planar* p, bint assemble, Py_ssize_t r) noexcept nogil:
    """Row ``r`` of the ``(N * OH)`` output rows of :func:`im2col_planar`, ``scratch`` the thread's.

    ``p.lo, p.hi``: the interior output columns; ``assemble``: blocks and edge
    rows are assembled in scratch, then streamed.

    A row whose window rows all lie inside the image reuses the tables of the
    last such row of the same image this thread built (``scratch[0]``): its
    source rows are those rows' moved down by ``shift`` items.

    The edge pixels go in blocks with the interior where their taps' reads
    past either end of a row stay inside the image (:func:`_edges_in_bounds`);
    the taps outside the row are then zeroed. Elsewhere each edge pixel is
    assembled tap by tap (:func:`_edge_pixel`).
    """
    cdef Py_ssize_t G = p.G, H = p.H, W = p.W, KH = p.KH, KW = p.KW, SH = p.SH, SW = p.SW
    cdef Py_ssize_t DH = p.DH, DW = p.DW, top = p.top, left = p.left, OH = p.OH, OW = p.OW
    cdef Py_ssize_t lo = p.lo, hi = p.hi
    cdef Py_ssize_t GK = G * KH, J = p.J
    cdef Py_ssize_t n = r // OH, oh = r - n * OH, ow, ow0, end, i, k, kw, ih
    cdef const word_t** rows = <const word_t**>(scratch + 1)  # the source row of each (c, kh)
    cdef const word_t** tab = rows + GK  # where each tap's run starts, for output pixel lo
    # rows of cols assembled to be streamed (room only if assembling)
    cdef word_t* edge = <word_t*>(scratch + _assembly_offset(G, KH, KW))
    cdef word_t* out_row = cols + r * OW * J  # the first row of cols of this output row
    cdef fc_stream_writer* w = _writer(scratch, G, KH, KW) if assemble else NULL  # (its copies)
    cdef Py_ssize_t pitch = p.xs2 // <Py_ssize_t>sizeof(word_t)  # items from one image row to the next
    cdef bint inside = (oh * SH - top >= 0 and oh * SH + (KH - 1) * DH - top < H
                        and p.xs2 % <Py_ssize_t>sizeof(word_t) == 0)
    cdef bint direct = word_t is uint32_t and assemble and _streams_rows_directly(sizeof(word_t), J, SW)
    cdef bint in_bounds = p.gather_edges and (lo > 0 or hi < OW or p.runs) and _edges_in_bounds(p, n, oh)
    cdef bint gathered = in_bounds and not direct
    cdef bint runs = word_t is uint32_t and p.runs and in_bounds
    cdef Py_ssize_t built = scratch[0], shift = 0
    if inside and built >= 0 and built // OH == n:  # (scratch[0] only names rows inside the image)
        shift = (oh - (built - n * OH)) * SH * pitch
    else:
        for k in range(G):
            for i in range(KH):
                ih = oh * SH + i * DH - top
                rows[k * KH + i] = (<const word_t*>(<const char*>x + n * p.xs0 + k * p.xs1 + ih * p.xs2)
                                    if 0 <= ih < H else zeros)
        if lo < hi or p.gather_edges:
            for k in range(GK):
                for kw in range(KW):
                    tab[k * KW + kw] = rows[k] + (lo * SW + kw * DW - left)
        scratch[0] = r if inside else -1
    if runs:  # every pixel, a window row at a time
        ow0 = 0
        while ow0 < OW:
            ow0 = _runs_block(rows, shift, out_row, edge, w, p, ow0, min(ow0 + _BLOCK, OW))
        return
    # the pixels the blocks gather: the whole row, or its interior
    ow0 = 0 if gathered else lo
    end = OW if gathered else hi
    # (a stride-2 quad of pixels reads one item past its last pixel's: past pixel `end`'s row only
    # where the edge pixels' reads are in bounds)
    if word_t is uint32_t and direct:  # quads straight to memory, the last pixel or so in blocks below
        ow0 = ow0 + fc_im2col_stream_u32(<uint32_t*>(out_row + ow0 * J), J, <const uint32_t* const*>tab,
                                         shift, hi - ow0, SW, in_bounds)
    while ow0 < end:
        ow0 = _gather_block(tab, shift, out_row, edge, w, p, ow0, min(ow0 + _BLOCK, end), end, in_bounds)
    if not gathered:
        for ow in range(lo):
            _edge_pixel(rows, shift, out_row + ow * J, edge, w, p, ow * SW - left, in_bounds)
        for ow in range(hi, OW):
            _edge_pixel(rows, shift, out_row + ow * J, edge, w, p, ow * SW - left, in_bounds)


cdef inline bint _edges_in_bounds(const _Planar* p, Py_ssize_t n, Py_ssize_t oh) noexcept nogil:
    """Whether output row ``oh`` of image ``n`` may gather its edge pixels like the interior.

    Their taps read up to ``p.left`` items before each source row and
    ``p.over`` past it: in a C-contiguous image (``p.gather_edges``) that is
    the end of the row before or the start of the row after, inside the
    image's ``p.items`` items, except before its very first row and after its
    last. (Rows outside the image read the row of zeros, which has that much
    room on either side.)
    """
    cdef Py_ssize_t kh, ih, first = -1, last = -1
    for kh in range(p.KH):
        ih = oh * p.SH + kh * p.DH - p.top
        if 0 <= ih < p.H:
            last = ih
            if first < 0:
                first = ih
    if first < 0:  # rows of zeros only
        return True
    cdef Py_ssize_t plane = p.H * p.W, image = n * p.G * plane  # items, in C order
    return (image + first * p.W >= p.left
            and image + (p.G - 1) * plane + (last + 1) * p.W + p.over <= p.items)


cdef inline Py_ssize_t _gather_block(const word_t** tab, Py_ssize_t shift, word_t* out_row, word_t* scratch,
                                     fc_stream_writer* w, const _Planar* p, Py_ssize_t ow0, Py_ssize_t ow1,
                                     Py_ssize_t end, bint in_bounds) noexcept nogil:
    """Output pixels ``[ow0, ow1)`` of a row (at most ``BLOCK``), gathered through ``tab``; returns ``ow1``.

    ``tab`` holds where each tap's run starts for pixel ``p.lo`` (less
    ``shift``); ``end``: the runs go on to pixel ``end`` (see
    :func:`_im2col_row_planar`), or their reads may go ``p.over`` items past
    the row (``in_bounds``). The taps of edge pixels outside the row are
    zeroed. ``w``: the block is assembled in ``scratch``, then streamed to
    ``out_row`` through the thread's writer (NULL: written in place).
    """
    cdef Py_ssize_t J = p.J, SW = p.SW, bw = ow1 - ow0, start = (ow0 - p.lo) * SW + shift, i, j, ow
    cdef bint assemble = w != NULL
    cdef word_t* dst = scratch if assemble else out_row + ow0 * J
    cdef const word_t* row
    if word_t is uint32_t and SW <= 2:  # 4 x 4 register transposes
        fc_im2col_block_u32(<uint32_t*>dst, J, <const uint32_t* const*>tab, start, bw, SW, ow1 < end or in_bounds)
    else:
        for j in range(J):
            row = tab[j] + start
            if SW == 1:  # contiguous reads the compiler vectorizes
                for i in range(bw):
                    dst[i * J + j] = row[i]
            else:
                for i in range(bw):
                    dst[i * J + j] = row[i * SW]
    for ow in range(ow0, min(ow1, p.lo)):
        _zero_outside(dst + (ow - ow0) * J, p, ow * SW - p.left)
    for ow in range(max(ow0, p.hi), ow1):
        _zero_outside(dst + (ow - ow0) * J, p, ow * SW - p.left)
    if assemble:
        fc_stream_put(w, out_row + ow0 * J, scratch, bw * J * sizeof(word_t))
    return ow1


cdef inline Py_ssize_t _runs_block(const word_t** rows, Py_ssize_t shift, word_t* out_row, word_t* scratch,
                                   fc_stream_writer* w, const _Planar* p, Py_ssize_t ow0, Py_ssize_t ow1) noexcept nogil:
    """Output pixels ``[ow0, ow1)`` of a row (at most ``BLOCK``), their window rows copied as runs; returns ``ow1``.

    Reads up to ``p.left`` items before each source row and ``p.over`` past
    it (the caller checked :func:`_edges_in_bounds`); the taps of edge
    pixels outside the row are then zeroed. ``w``: the block is assembled
    in ``scratch``, then streamed to ``out_row`` through the thread's writer
    (NULL: written in place).
    """
    cdef Py_ssize_t J = p.J, GK = p.G * p.KH, ow, iw0
    cdef bint assemble = w != NULL
    cdef word_t* dst = scratch if assemble else out_row + ow0 * J
    for ow in range(ow0, ow1):
        iw0 = ow * p.SW - p.left
        if word_t is uint32_t:
            # (a window's last run may spill into the next window's row, written after it)
            fc_window_runs_u32(<uint32_t*>(dst + (ow - ow0) * J), <const uint32_t* const*>rows, GK, shift + iw0,
                               p.KW, ow + 1 < ow1)
        if ow < p.lo or ow >= p.hi:
            _zero_outside(dst + (ow - ow0) * J, p, iw0)
    if assemble:
        fc_stream_put(w, out_row + ow0 * J, scratch, (ow1 - ow0) * J * sizeof(word_t))
    return ow1


cdef inline void _zero_outside(word_t* dst, const _Planar* p, Py_ssize_t iw0) noexcept nogil:
    """Zero the taps of the window at column ``iw0`` that fall outside its rows (``dst``: its row of cols)."""
    cdef Py_ssize_t kw, k, c, KW = p.KW, GK = p.G * p.KH
    for kw in range(KW):
        c = iw0 + kw * p.DW
        if c < 0 or c >= p.W:
            for k in range(GK):
                dst[k * KW + kw] = 0


cdef inline void _edge_pixel(const word_t** rows, Py_ssize_t shift, word_t* dst, word_t* scratch,
                             fc_stream_writer* w, const _Planar* p, Py_ssize_t iw0, bint in_bounds) noexcept nogil:
    """The row of cols ``dst`` of the window at column ``iw0``.

    ``in_bounds``: the row's reads may go ``p.left`` items before each
    source row and ``p.over`` past it (:func:`_edges_in_bounds`); then
    4-byte taps in runs (dilation 1) are copied as runs, reading past the
    edge, and the taps outside the row zeroed (streamed into an ``out``, AMD
    EPYC Zen 1: resnet-deep and resnet-mid 1.02-1.03x at one thread, even at
    two: an edge pixel there is one more pass over its source rows, which
    outgrow the L1 cache). Otherwise each tap is read from a clamped column
    and masked (:func:`_edge_taps`). ``w``: assembled in ``scratch``, then
    streamed through the thread's writer (NULL: written in place).
    """
    cdef bint stream = w != NULL
    cdef word_t* row = scratch if stream else dst
    cdef Py_ssize_t GK = p.G * p.KH
    if word_t is uint32_t and in_bounds and p.DW == 1:
        fc_window_runs_u32(<uint32_t*>row, <const uint32_t* const*>rows, GK, shift + iw0, p.KW, 0)
        _zero_outside(row, p, iw0)
    else:
        _edge_taps(rows, shift, row, GK, iw0, p.W, p.KW, p.DW)
    if stream:
        fc_stream_put(w, dst, scratch, GK * p.KW * sizeof(word_t))


cdef inline void _edge_taps(const word_t** rows, Py_ssize_t shift, word_t* dst, Py_ssize_t count,
                            Py_ssize_t iw0, Py_ssize_t W, Py_ssize_t KW, Py_ssize_t DW) noexcept nogil:
    """Taps of the window at column ``iw0`` in ``count`` source rows (``W`` items each, starting
    ``shift`` items past ``rows[k]``), into ``dst``.

    Taps outside a row are zero: each reads a clamped column, masked to zero
    (no branch per tap; ``KW <= PLANAR_KW_MAX``). Rows hold ``W >= 1`` items
    (:func:`im2col_planar` answers ``W == 0`` itself).
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
        src = rows[k] + shift
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
    split across threads. ``stream``: write ``cols`` with non-temporal
    stores (for a ``cols`` far larger than the caches), each window row
    straight from the image where :func:`streams_runs_directly`, otherwise
    the rows of up to ``BLOCK`` windows assembled in ``scratch`` (that many
    rows of ``cols`` per thread) first.
    """
    cdef Py_ssize_t N = xp.shape[0], V = xp.shape[4]
    cdef Py_ssize_t J = cols.shape[1]
    cdef bint blocks = stream and not _streams_runs_directly(KW * V * sizeof(word_t), DW)
    if cols.shape[0] != N * OH * OW or (blocks and (scratch.shape[0] < max(1, num_threads)
                                                   or scratch.shape[1] < _BLOCK * J)):
        raise ValueError("im2col_2d: cols or scratch does not match the image")
    cdef Py_ssize_t r
    # each thread's copies through its writer (a thread's rows of cols are consecutive), the
    # writers a cache line apart
    cdef Py_ssize_t spacing = (sizeof(fc_stream_writer) + _LINE - 1) // _LINE * _LINE + _LINE
    cdef char* writers = <char*>malloc(max(1, num_threads) * spacing) if stream else NULL
    if stream and writers == NULL:
        raise MemoryError("im2col_2d: cannot allocate its writers")
    for r in range(max(1, num_threads) if stream else 0):
        fc_stream_begin(<fc_stream_writer*>(writers + r * spacing))
    try:
        _im2col_2d_rows(xp, cols, KH, KW, SH, SW, DH, DW, OH, OW, scratch, num_threads, writers, spacing, blocks)
    finally:
        free(writers)


cdef void _im2col_2d_rows(const word_t[:, :, :, :, ::1] xp, word_t[:, ::1] cols,
                          Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                          Py_ssize_t DH, Py_ssize_t DW, Py_ssize_t OH, Py_ssize_t OW, word_t[:, ::1] scratch,
                          int num_threads, char* writers, Py_ssize_t spacing, bint blocks) noexcept:
    """The rows of :func:`im2col_2d`; ``writers``: each thread's ``fc_stream_writer``, ``spacing``
    bytes apart, or NULL to write in place; ``blocks``: streamed through blocks assembled in
    ``scratch``, not window row by window row."""
    cdef Py_ssize_t N = xp.shape[0], G = xp.shape[1], V = xp.shape[4]
    cdef Py_ssize_t J = cols.shape[1]
    cdef Py_ssize_t r, n, oh, ow, ow0, bw, g, kh, kw, v, j
    cdef const word_t* src
    cdef word_t* dst
    cdef word_t* rows
    cdef bint stream = writers != NULL
    cdef bint runs = DW == 1  # each window row one run of KW * V items
    cdef fc_stream_writer* w = NULL  # (each thread's, set below)
    with nogil, parallel(num_threads=num_threads):
        w = <fc_stream_writer*>(writers + omp_get_thread_num() * spacing) if stream else NULL
        for r in prange(N * OH, schedule="static"):
            n = r // OH
            oh = r - n * OH
            ow0 = 0
            while ow0 < OW:
                bw = min(_BLOCK, OW - ow0)
                rows = &scratch[omp_get_thread_num(), 0] if blocks else &cols[r * OW + ow0, 0]
                for ow in range(ow0, ow0 + bw):
                    dst = rows + (ow - ow0) * J
                    j = 0
                    for g in range(G):
                        for kh in range(KH):
                            src = &xp[n, g, oh * SH + kh * DH, ow * SW, 0]
                            if runs:  # the window row is one run of KW * V items
                                if stream and not blocks:
                                    fc_stream_put(w, dst + j, src, KW * V * sizeof(word_t))
                                else:
                                    memcpy(dst + j, src, KW * V * sizeof(word_t))
                                j = j + KW * V
                            elif V == 1:
                                for kw in range(KW):
                                    dst[j + kw] = src[kw * DW]
                                j = j + KW
                            else:
                                for kw in range(KW):
                                    for v in range(V):
                                        dst[j + v] = src[kw * DW * V + v]
                                    j = j + V
                if blocks:
                    fc_stream_put(w, &cols[r * OW + ow0, 0], rows, bw * J * sizeof(word_t))
                ow0 = ow0 + bw
        if stream:  # once per thread, after its rows (see fc_stream_fence)
            fc_stream_flush(w)
            fc_stream_fence()
