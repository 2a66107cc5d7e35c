"""What the OpenMP runtime of this build reports."""

from fastconv._kernels._openmp cimport FASTCONV_OPENMP, omp_get_max_threads, omp_get_thread_num
from cython.parallel cimport prange


def openmp_enabled():
    """True when the extensions were compiled with OpenMP."""
    return bool(FASTCONV_OPENMP)


def max_threads():
    """``omp_get_max_threads()``: honours OMP_NUM_THREADS and threadpoolctl limits (1 if serial)."""
    return omp_get_max_threads()


def threads_used(int num_threads):
    """Run a parallel loop on ``num_threads`` threads and count how many really ran."""
    cdef int i
    cdef int seen[256]
    cdef int n = min(max(num_threads, 1), 256)
    cdef int count = 0
    for i in range(n):
        seen[i] = 0
    for i in prange(n, nogil=True, num_threads=n, schedule="static", chunksize=1):
        seen[omp_get_thread_num()] = 1
    for i in range(n):
        count += seen[i]
    return count
