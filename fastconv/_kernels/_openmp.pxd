# OpenMP entry points that also compile without OpenMP (serial stubs).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTCONV_OPENMP 1
    #else
    #define FASTCONV_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    /* Every thread of the team waits here for the others (an orphaned barrier: it binds to the
       parallel region the caller runs in). A prange inside a `with parallel()` block ends
       without one: Cython emits its loop as `omp for nowait`. */
    static inline void fc_omp_barrier(void) {
    #ifdef _OPENMP
    #pragma omp barrier
    #endif
    }
    """
    bint FASTCONV_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    void fc_omp_barrier() noexcept nogil
