"""Batched 2-D transposes in cache-sized tiles: ``dst[b, s, r] = src[b, r, s]``.

NHWC calls that run the NCHW kernels move arrays between layouts: an
HWIO weight to OIHW and back, and images between ``(N, C, H, W)`` and
``(N, H, W, C)``. Each such move is a batch of 2-D transposes, one per
item of an axis that keeps its place. NumPy copies a transposed view
element by element in the destination's order, reading the source a row
apart each step; where rows are a power of two apart (512 channels of 512
filters: 2 KiB) every read of a column lands in the same cache sets, and a
3x3 kernel of 512 to 512 channels took NumPy 16.5 ms (a copy of it 0.65).
Here the tasks copy tiles of ``TILE`` rows by ``TILE`` columns, whose
source lines stay in L1 while their destination rows are written (a strip
of tiles down a plane's rows, or a block of its rows across all columns:
see :func:`_transpose`).

Items are moved as bits (4- or 8-byte words), so float32/int32 and
float64/int64 arrays share a kernel. The Python side (fastconv._layouts)
checks every shape and stride; the loops index unchecked.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "transpose_tile.h" nogil:
    enum: FC_TRANSPOSE_TILE
    void fc_transpose_block_u32(const uint32_t* src, Py_ssize_t src_row, uint32_t* dst, Py_ssize_t dst_row,
                                Py_ssize_t rows, Py_ssize_t cols)
    void fc_transpose_block_u64(const uint64_t* src, Py_ssize_t src_row, uint64_t* dst, Py_ssize_t dst_row,
                                Py_ssize_t rows, Py_ssize_t cols)

cdef enum:
    TILE = FC_TRANSPOSE_TILE  # rows and columns of a tile (fc_transpose_block's)
    ROW_BLOCK = 256  # rows of a task where planes have more rows than columns (see _transpose)


def transpose_planes(cnp.ndarray src not None, cnp.ndarray dst not None, int num_threads):
    """``dst[b, s, r] = src[b, r, s]`` for every ``b``, ``r < R``, ``s < S``; no validation.

    ``src`` is ``(B, R, S)`` and ``dst`` ``(B, S, R)``, each of 4- or 8-byte
    items (the same size), aligned, with its last axis contiguous (the
    other strides are free, multiples of the item size), not overlapping.
    Tasks are strips of ``TILE`` columns of a plane, or (planes of more rows
    than columns) blocks of ``ROW_BLOCK`` rows, split over ``num_threads``
    threads (see :func:`_transpose`).
    """
    if src.itemsize == 4:
        _transpose[uint32_t](<uint32_t*>cnp.PyArray_DATA(src), <uint32_t*>cnp.PyArray_DATA(dst), src.shape[0],
                             src.shape[1], src.shape[2], src.strides[0] // 4, src.strides[1] // 4,
                             dst.strides[0] // 4, dst.strides[1] // 4, num_threads)
    else:
        _transpose[uint64_t](<uint64_t*>cnp.PyArray_DATA(src), <uint64_t*>cnp.PyArray_DATA(dst), src.shape[0],
                             src.shape[1], src.shape[2], src.strides[0] // 8, src.strides[1] // 8,
                             dst.strides[0] // 8, dst.strides[1] // 8, num_threads)


ctypedef fused word_t:
    uint32_t
    uint64_t


cdef void _transpose(const word_t* src, word_t* dst, Py_ssize_t B, Py_ssize_t R, Py_ssize_t S,
                     Py_ssize_t src_plane, Py_ssize_t src_row, Py_ssize_t dst_plane, Py_ssize_t dst_row,
                     int num_threads) noexcept nogil:
    """The loops of :func:`transpose_planes`; strides in items."""
    cdef Py_ssize_t col_blocks = (S + TILE - 1) // TILE, row_blocks = (R + ROW_BLOCK - 1) // ROW_BLOCK
    cdef Py_ssize_t task, b, s0, s1, rb0, rb1
    if B == 0 or R == 0 or S == 0:
        return
    # where planes continue each other's destination rows (HWIO to OIHW: a filter's channels), a task's
    # planes are neighbours (their rows written one after another)
    cdef bint planes_inner = dst_plane == R
    # planes of more rows than columns (NHWC to NCHW: pixels of a few channels each): a task takes
    # ROW_BLOCK whole rows, read in order; a strip of TILE columns down every row (the other tasks)
    # read one line of each row, a row apart. Intel Xeon, 4-byte items, one / two threads: 56 x 56
    # pixels of 128 or 256 channels 1.43-1.94x, 112 x 112 of 64 or 128 1.84-2.33x, 224 x 224 of 64
    # 1.42-1.62x; 32 x 32 of 32 and 56 x 56 of 64 0.98-1.10x; more columns than rows 0.93-1.02x
    cdef bint row_tasks = not planes_inner and R > S
    cdef Py_ssize_t tasks = B * (row_blocks if row_tasks else col_blocks)
    for task in prange(tasks, num_threads=max(1, num_threads), schedule="static"):
        if row_tasks:  # rows rb0 .. rb1 of plane b, every column
            b = task // row_blocks
            rb0 = (task - b * row_blocks) * ROW_BLOCK
            rb1 = min(rb0 + ROW_BLOCK, R)
            _block(src + b * src_plane + rb0 * src_row, src_row, dst + b * dst_plane + rb0, dst_row, rb1 - rb0, S)
        else:  # columns s0 .. s1 of plane b, every row
            b = task % B if planes_inner else task // col_blocks
            s0 = (task // B if planes_inner else task % col_blocks) * TILE
            s1 = min(s0 + TILE, S)
            _block(src + b * src_plane + s0, src_row, dst + b * dst_plane + s0 * dst_row, dst_row, R, s1 - s0)


cdef inline void _block(const word_t* a, Py_ssize_t src_row, word_t* d, Py_ssize_t dst_row, Py_ssize_t rows,
                        Py_ssize_t cols) noexcept nogil:
    if word_t is uint32_t:
        fc_transpose_block_u32(a, src_row, d, dst_row, rows, cols)
    else:
        fc_transpose_block_u64(a, src_row, d, dst_row, rows, cols)
