"""Batched 2-D transposes in cache-sized tiles: ``dst[b, s, r] = src[b, r, s]``.

NHWC calls that run the NCHW kernels move arrays between layouts: an
HWIO weight to OIHW and back, and images between ``(N, C, H, W)`` and
``(N, H, W, C)``. Each such move is a batch of 2-D transposes, one per
item of an axis that keeps its place. NumPy copies a transposed view
element by element in the destination's order, reading the source a row
apart each step; where rows are a power of two apart (512 channels of 512
filters: 2 KiB) every read of a column lands in the same cache sets, and a
3x3 kernel of 512 to 512 channels took NumPy 16.5 ms (a copy of it 0.65).
Here each task copies a tile of ``TILE`` rows by ``TILE`` columns, whose
source lines stay in L1 while its destination rows are written in order.

Items are moved as bits (4- or 8-byte words), so float32/int32 and
float64/int64 arrays share a kernel. The Python side (fastconv._layouts)
checks every shape and stride; the loops index unchecked.
"""

from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "transpose_tile.h" nogil:
    void fc_transpose_tile_u32(const uint32_t* src, Py_ssize_t src_row, uint32_t* dst, Py_ssize_t dst_row,
                               Py_ssize_t rows, Py_ssize_t cols)
    void fc_transpose_tile_u64(const uint64_t* src, Py_ssize_t src_row, uint64_t* dst, Py_ssize_t dst_row,
                               Py_ssize_t rows, Py_ssize_t cols)

cdef enum:
    TILE = 16  # rows and columns of a tile


def transpose_planes(cnp.ndarray src not None, cnp.ndarray dst not None, int num_threads):
    """``dst[b, s, r] = src[b, r, s]`` for every ``b``, ``r < R``, ``s < S``; no validation.

    ``src`` is ``(B, R, S)`` and ``dst`` ``(B, S, R)``, each of 4- or 8-byte
    items (the same size), aligned, with its last axis contiguous (the
    other strides are free, multiples of the item size), not overlapping.
    Tasks are tiles' rows of one plane (``TILE`` source rows), split over
    ``num_threads`` threads.
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
    cdef Py_ssize_t col_blocks = (S + TILE - 1) // TILE
    cdef Py_ssize_t task, b, r0, r1, s0, s1
    cdef const word_t* a
    cdef word_t* d
    if B == 0 or R == 0 or S == 0:
        return
    # where planes continue each other's destination rows (HWIO to OIHW: a filter's channels), a task's
    # planes are neighbours (their rows written one after another); else a task's columns are
    cdef bint planes_inner = dst_plane == R
    for task in prange(col_blocks * B, num_threads=max(1, num_threads), schedule="static"):
        b = task % B if planes_inner else task // col_blocks
        s0 = (task // B if planes_inner else task % col_blocks) * TILE
        s1 = min(s0 + TILE, S)
        r0 = 0
        while r0 < R:
            r1 = min(r0 + TILE, R)
            a = src + b * src_plane + r0 * src_row + s0
            d = dst + b * dst_plane + s0 * dst_row + r0
            if word_t is uint32_t:
                fc_transpose_tile_u32(a, src_row, d, dst_row, r1 - r0, s1 - s0)
            else:
                fc_transpose_tile_u64(a, src_row, d, dst_row, r1 - r0, s1 - s0)
            r0 = r1
