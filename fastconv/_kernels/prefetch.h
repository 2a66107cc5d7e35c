/* Software prefetch shared by the kernels' packing and adding loops. */
#ifndef FASTCONV_PREFETCH_H
#define FASTCONV_PREFETCH_H

#include <stddef.h>

/* Ask for `runs` runs of nbytes bytes, `stride` bytes apart from p on, into the L2 cache (col2im: the
 * columns of a channel's taps for an output row to come; the packing loops: the row they copy next). */
static inline void fc_prefetch_runs(const void *p, ptrdiff_t runs, ptrdiff_t stride, ptrdiff_t nbytes)
{
#if defined(__GNUC__) || defined(__clang__)
    const char *run = (const char *)p;
    for (ptrdiff_t r = 0; r < runs; r++, run += stride)
        for (ptrdiff_t i = 0; i < nbytes; i += 64) __builtin_prefetch(run + i, 0, 2);
#else /* (no prefetch: the same results, only later) */
    (void)p, (void)runs, (void)stride, (void)nbytes;
#endif
}

#endif /* FASTCONV_PREFETCH_H */
