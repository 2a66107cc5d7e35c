"""A cache of released large buffers, so results and workspaces land in warm memory.

A large NumPy array is fresh memory from the operating system: the first
write to each page faults, and the kernel zeroes the page. On the machines
fastconv is measured on that costs as much as a fast kernel's whole work
(a 25 MiB convolution output: 11.9 ms written into a reused buffer, 25.5 ms
into a fresh one at 2 threads). Calls with the same shapes come over and
over (a training loop, a layer called per batch), so the memory of a result
the program has dropped is kept here, up to a limit, and the next result of
that size is built on it.

:func:`empty` returns an ordinary C-contiguous, aligned, writeable ndarray
whose memory belongs to a :class:`_Block`. NumPy points every view of the
array (and every view of a view) at that block as its base, so the block is
deallocated only when no array can reach its memory any more; only then does
its memory go back to the cache. The cache holds raw memory, never an object
the program can see.

Buffers start on a 64-byte cache line. Everything here runs with the GIL
held and calls no Python code while it changes the cache, so Python threads
can share it.
"""

cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memmove, memset

cdef extern from "numpy/arrayobject.h":
    # (commented out in numpy/__init__.pxd) steals a reference to descr
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd, cnp.npy_intp* dims,
                                cnp.npy_intp* strides, void* data, int flags, object obj)
    object PyArray_Zeros(int nd, cnp.npy_intp* dims, cnp.dtype descr, int fortran)  # steals descr

cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    /* Ask for transparent huge pages for the whole pages of [p, p + n), as NumPy does for its
       large arrays: fewer TLB misses when a kernel streams through the buffer. */
    static void fc_advise_huge_pages(void *p, size_t n)
    {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        uintptr_t start = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, end = ((uintptr_t)p + n) & ~(uintptr_t)4095;
        if (end > start) madvise((void *)start, end - start, MADV_HUGEPAGE);
    #else
        (void)p;
        (void)n;
    #endif
    }
    """
    void fc_advise_huge_pages(void* p, size_t n) noexcept

cnp.import_array()

import numpy as np

cdef enum:
    _ALIGN = 64  # the start of every buffer: a cache line
    _PAGE = 4096  # sizes are rounded up to whole pages
    _SLOTS = 64  # idle buffers kept at most
    _HUGE_FROM = 1 << 22  # new buffers from 4 MiB on ask for huge pages (as NumPy's do)

#: Buffers smaller than this are left to NumPy (its allocator reuses small blocks itself).
MIN_BYTES = 1 << 18

#: The limit of idle bytes kept until :func:`set_limit` changes it.
DEFAULT_LIMIT = 256 << 20

cdef struct _Idle:
    void* raw  # what malloc returned
    char* data  # the aligned start
    size_t size  # usable bytes, a multiple of _PAGE

cdef _Idle _idle[_SLOTS]  # oldest first
cdef Py_ssize_t _count = 0
cdef size_t _idle_bytes = 0
cdef size_t _limit = DEFAULT_LIMIT


cdef void _drop_oldest() noexcept:
    """Free the idle buffer kept longest."""
    global _count, _idle_bytes
    free(_idle[0].raw)
    _idle_bytes -= _idle[0].size
    _count -= 1
    memmove(&_idle[0], &_idle[1], _count * sizeof(_Idle))


cdef void _release(void* raw, char* data, size_t size) noexcept:
    """Keep a buffer nothing refers to any more, or free it if it does not fit the limit."""
    global _count, _idle_bytes
    if raw == NULL:
        return
    if size > _limit:
        free(raw)
        return
    while _count > 0 and (_count == _SLOTS or _idle_bytes + size > _limit):
        _drop_oldest()
    _idle[_count].raw, _idle[_count].data, _idle[_count].size = raw, data, size
    _count += 1
    _idle_bytes += size


cdef class _Block:
    """The owner of one buffer: the base of the arrays built on it."""

    cdef void* raw
    cdef char* data
    cdef size_t size
    cdef bint reused  # taken from the cache: its pages are mapped, none faults on first write

    def __dealloc__(self):
        _release(self.raw, self.data, self.size)


cdef _Block _take(size_t size, bint zero):
    """A block of ``size`` bytes: the newest idle one of that size, or new memory."""
    global _count, _idle_bytes
    cdef Py_ssize_t i
    cdef _Block block = _Block.__new__(_Block)
    for i in range(_count - 1, -1, -1):
        if _idle[i].size == size:
            block.raw, block.data, block.size, block.reused = _idle[i].raw, _idle[i].data, size, True
            _count -= 1
            _idle_bytes -= size
            memmove(&_idle[i], &_idle[i + 1], (_count - i) * sizeof(_Idle))
            if zero:
                memset(block.data, 0, size)
            return block
    block.raw = malloc(size + _ALIGN)
    if block.raw == NULL:  # give the idle memory back and try once more
        while _count > 0:
            _drop_oldest()
        block.raw = malloc(size + _ALIGN)
        if block.raw == NULL:
            raise MemoryError(f"cannot allocate {size} bytes")
    block.data = <char*>block.raw + (-<uintptr_t>block.raw) % _ALIGN
    block.size = size
    if size >= _HUGE_FROM:
        fc_advise_huge_pages(block.raw, size + _ALIGN)
    if zero:
        memset(block.data, 0, size)
    return block


cdef object _array(object shape, object dtype, bint zero):
    """A C-contiguous array of ``shape`` and ``dtype``: on a cached or new block from MIN_BYTES on.

    Smaller arrays are made by NumPy's C API directly (a small call's result
    costs no more than with ``np.empty``); a shape NumPy would refuse goes to
    NumPy, which raises.
    """
    cdef cnp.dtype descr = dtype if isinstance(dtype, cnp.dtype) else np.dtype(dtype)
    cdef cnp.npy_intp dims[32]
    cdef Py_ssize_t nd, i, n, nbytes = descr.itemsize
    cdef bint valid = True
    if not isinstance(shape, tuple):
        shape = tuple(shape) if isinstance(shape, list) else (shape,)
    nd = len(<tuple>shape)
    valid = nd <= 32
    for i in range(nd if valid else 0):
        n = (<tuple>shape)[i]
        valid = valid and n >= 0 and (n == 0 or nbytes <= PY_SSIZE_T_MAX // n)
        dims[i] = n
        nbytes = nbytes * n if valid else 0
    if not valid:
        return np.zeros(shape, descr) if zero else np.empty(shape, descr)
    if nbytes < MIN_BYTES or descr.hasobject:
        Py_INCREF(descr)  # both steal a reference to the dtype
        if zero:
            return PyArray_Zeros(nd, dims, descr, 0)
        return PyArray_NewFromDescr(np.ndarray, descr, nd, dims, NULL, NULL, 0, None)
    cdef _Block block = _take((<size_t>nbytes + _PAGE - 1) // _PAGE * _PAGE, zero)
    Py_INCREF(descr)
    cdef cnp.ndarray a = PyArray_NewFromDescr(np.ndarray, descr, nd, dims, NULL, block.data,
                                              cnp.NPY_ARRAY_CARRAY, None)
    cnp.set_array_base(a, block)
    return a


def empty(shape, dtype):
    """``np.empty(shape, dtype)``, on a cached buffer from ``MIN_BYTES`` on (aligned to 64 bytes)."""
    return _array(shape, dtype, False)


def zeros(shape, dtype):
    """``np.zeros(shape, dtype)``, on a cached buffer from ``MIN_BYTES`` on (aligned to 64 bytes)."""
    return _array(shape, dtype, True)


def reused(cnp.ndarray a not None):
    """Whether ``a`` owns a buffer this cache handed out before (memory written before, not fresh).

    Fresh pages fault on first write and are zeroed into the cache; a kernel
    that streams its output past the cache suits only memory that is already
    mapped. False for every array not built by :func:`empty` or :func:`zeros`.
    """
    base = cnp.get_array_base(a)
    return type(base) is _Block and (<_Block>base).reused


def set_limit(Py_ssize_t nbytes):
    """Keep at most ``nbytes`` of idle buffers (0: none); free what is over. Returns the old limit."""
    global _limit
    if nbytes < 0:
        raise ValueError(f"the buffer cache limit must be at least 0 bytes, got {nbytes}")
    old = _limit
    _limit = nbytes
    while _count > 0 and _idle_bytes > _limit:
        _drop_oldest()
    return old


def limit():
    """The most bytes of idle buffers kept."""
    return _limit


def idle():
    """``(buffers, bytes)`` kept idle now."""
    return _count, _idle_bytes
