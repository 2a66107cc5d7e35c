/* What the per-level kernels (conv_tile.h, pool_rows.h) share: the levels, the CPU's
 * highest one, the target switches that compile a header once per level, and whole-vector
 * loads and stores for GCC/Clang vector extensions.
 *
 * x86-64 with GCC or Clang has three levels: the baseline (SSE2), AVX2+FMA and AVX-512F.
 * Elsewhere (aarch64, MSVC, or FASTCONV_NO_SIMD_DISPATCH defined) only the baseline: the
 * compiler's default target.
 */
#ifndef FASTCONV_SIMD_H
#define FASTCONV_SIMD_H

#include <string.h> /* (FC_LOAD_FIRST's memcpy) */

enum { FC_LEVEL_BASELINE = 0, FC_LEVEL_AVX2 = 1, FC_LEVEL_AVX512 = 2 };

/* A static function a build may leave unused (no warning; the same code). */
#if defined(__GNUC__) || defined(__clang__)
#define FC_UNUSED __attribute__((unused))
#else
#define FC_UNUSED
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(FASTCONV_NO_SIMD_DISPATCH)
#define FC_HAVE_X86_LEVELS 1
#endif

/* Highest level this CPU (and this build) supports. */
static FC_UNUSED int fc_cpu_level(void)
{
#ifdef FC_HAVE_X86_LEVELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return FC_LEVEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FC_LEVEL_AVX2;
#endif
    return FC_LEVEL_BASELINE;
}

/* FC_TARGET_AVX2 ... FC_TARGET_END (and FC_TARGET_AVX512 ... FC_TARGET_END) compile the
 * functions between them for that level. */
#ifdef FC_HAVE_X86_LEVELS
#if defined(__clang__)
#define FC_TARGET_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define FC_TARGET_AVX512                                                                                \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx2,fma\"))), apply_to = function)")
#define FC_TARGET_END _Pragma("clang attribute pop")
#else
#define FC_TARGET_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define FC_TARGET_AVX512 _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx2,fma\")")
#define FC_TARGET_END _Pragma("GCC pop_options")
#endif
#endif

#define FC_CAT2(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT2(a, b)

#if defined(__GNUC__) || defined(__clang__)
/* A vector load through a type of the vector's size aligned as one item: one unaligned load
 * whatever the tuning. (A memcpy of the vector's size became, with -march=native on an Intel
 * Xeon whose tuning moves memory 256 bits at a time, two 32-byte stores to the stack and one
 * 64-byte load back, which waits for both: the weight-gradient tiles ran 5x slower.) Every
 * whole-vector load of the tiles goes through it; FC_STORE is the same for stores. */
#define FC_LOAD(VT, dst, src)                                                         \
    do {                                                                              \
        typedef VT fc_unaligned_ __attribute__((aligned(1), may_alias));              \
        (dst) = *(const fc_unaligned_ *)(src);                                        \
    } while (0)
#define FC_STORE(VT, dst, value)                                                      \
    do {                                                                              \
        typedef VT fc_unaligned_ __attribute__((aligned(1), may_alias));              \
        *(fc_unaligned_ *)(dst) = (value);                                            \
    } while (0)

/* dst = the first n items at src, zeros past them where PARTIAL (a row's last vector of fewer
 * items: nothing past them is read), else one whole-vector load (FC_LOAD). */
#define FC_LOAD_FIRST(T, VT, dst, src, n, PARTIAL)                                    \
    do {                                                                              \
        if (PARTIAL) {                                                                \
            (dst) = (VT){0};                                                          \
            memcpy(&(dst), (src), (size_t)(n) * sizeof(T));                           \
        } else {                                                                      \
            FC_LOAD(VT, dst, src);                                                    \
        }                                                                             \
    } while (0)

/* Lane lists of the two-vector shuffles: even and odd items, and 0, 1, 2, ... */
#define FC_EVENS_2 0, 2
#define FC_ODDS_2 1, 3
#define FC_IOTA_2 0, 1
#define FC_EVENS_4 0, 2, 4, 6
#define FC_ODDS_4 1, 3, 5, 7
#define FC_IOTA_4 0, 1, 2, 3
#define FC_EVENS_8 0, 2, 4, 6, 8, 10, 12, 14
#define FC_ODDS_8 1, 3, 5, 7, 9, 11, 13, 15
#define FC_IOTA_8 0, 1, 2, 3, 4, 5, 6, 7
#define FC_EVENS_16 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define FC_ODDS_16 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define FC_IOTA_16 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define FC_LIST2(prefix, n) prefix##n
#define FC_LIST(prefix, n) FC_LIST2(prefix, n)

/* Lanes of a and b (together 2n items) picked by a list: GCC before 12 lacks
 * __builtin_shufflevector and takes the list as a mask vector of type M. */
#if defined(__clang__) || __GNUC__ >= 12
#define FC_SHUFFLE(M, a, b, list) __builtin_shufflevector(a, b, list)
#else
#define FC_SHUFFLE(M, a, b, list) __builtin_shuffle(a, b, (M){list})
#endif
#endif

#endif /* FASTCONV_SIMD_H */
