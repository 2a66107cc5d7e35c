/* A block of im2col rows for 4-byte items, transposed 4 x 4 in registers.
 *
 * Row i (output pixel ow0 + i) of the block, column j (tap j) is
 * src[j][start + i*sw]: each tap reads bw items of its source row (stride 1 or 2),
 * and each row of the block takes J consecutive items. Loading four taps'
 * runs of four pixels and transposing them turns 16 scattered 4-byte stores
 * into four 16-byte stores; when J is not a multiple of 4, the last four taps
 * take one more quad, overlapping the one before (cifar's 27 taps: 1.10x at
 * one thread, against copying the last three item by item). x86-64 always has
 * SSE2; other targets (and the pixels past the last whole quad) copy item by
 * item.
 *
 * A column matrix far larger than the caches goes to memory with non-temporal stores,
 * which do not first read each line into the cache: that nearly halves the memory traffic
 * of a write. Rows of whole cache lines are written so straight from the registers of the
 * transposes (fc_im2col_stream_u32); other rows are assembled a block at a time in cache
 * and copied out with fc_stream_put.
 */
#ifndef FASTCONV_IM2COL_BLOCK_H
#define FASTCONV_IM2COL_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gather4x4.h"

#ifdef FC_HAVE_SSE2_TRANSPOSE
#define FC_STREAMS_ROWS 1 /* fc_im2col_stream_u32 writes rows (elsewhere it returns 0) */
#else
#define FC_STREAMS_ROWS 0
#endif

#define FC_LINE 64 /* bytes in a cache line */
#ifndef FC_STREAM_TAP_CHUNK
#define FC_STREAM_TAP_CHUNK 512 /* taps of a chunk of fc_im2col_stream_u32's lines (a multiple of 16) */
#endif

/* Block of bw rows: dst[i*J + j] = src[j][start + i*sw], for sw 1 or 2. `more`: the source
 * runs go on past the block's last pixel (another pixel of the row follows it). */
static void fc_im2col_block_u32(uint32_t *dst, ptrdiff_t J, const uint32_t *const *src, ptrdiff_t start,
                                ptrdiff_t bw, ptrdiff_t sw, int more)
{
    ptrdiff_t j0 = 0;
#ifdef FC_HAVE_SSE2_TRANSPOSE
    /* with stride 2 a quad needs a pixel after it (see fc_load4) */
    ptrdiff_t quads_end = sw == 1 || more ? bw : bw - 1;
    for (; j0 < J && J >= 4; j0 += 4) {
        if (j0 + 4 > J) j0 = J - 4; /* the last taps: a quad overlapping the one before it */
        const uint32_t *s0 = src[j0] + start, *s1 = src[j0 + 1] + start;
        const uint32_t *s2 = src[j0 + 2] + start, *s3 = src[j0 + 3] + start;
        ptrdiff_t i = 0;
        for (; i + 4 <= quads_end; i += 4) {
            __m128i o[4];
            fc_gather4x4(s0, s1, s2, s3, i, sw, o);
            uint32_t *d = dst + i * J + j0;
            for (int p = 0; p < 4; p++) _mm_storeu_si128((__m128i *)(d + p * J), o[p]);
        }
        for (; i < bw; i++) {
            uint32_t *d = dst + i * J + j0;
            d[0] = s0[i * sw], d[1] = s1[i * sw], d[2] = s2[i * sw], d[3] = s3[i * sw];
        }
    }
#endif
    for (; j0 < J; j0++) {
        const uint32_t *s = src[j0] + start;
        for (ptrdiff_t i = 0; i < bw; i++) dst[i * J + j0] = s[i * sw];
    }
}

#ifdef FC_HAVE_SSE2_TRANSPOSE
/* Taps [j0, j1) of the four rows d, d + J, d + 2J, d + 3J (pixels i..i+3), ordinary stores:
 * 4 x 4 transposes, then item by item. */
static void fc_quad_taps_u32(uint32_t *d, ptrdiff_t J, const uint32_t *const *src, ptrdiff_t start,
                             ptrdiff_t i, ptrdiff_t sw, ptrdiff_t j0, ptrdiff_t j1)
{
    for (; j0 + 4 <= j1; j0 += 4) {
        __m128i o[4];
        fc_gather4x4(src[j0] + start, src[j0 + 1] + start, src[j0 + 2] + start, src[j0 + 3] + start, i, sw, o);
        for (int p = 0; p < 4; p++) _mm_storeu_si128((__m128i *)(d + p * J + j0), o[p]);
    }
    for (; j0 < j1; j0++) {
        const uint32_t *s = src[j0] + start;
        for (ptrdiff_t p = 0; p < 4; p++) d[p * J + j0] = s[(i + p) * sw];
    }
}
#endif

#ifdef FC_HAVE_SSE2_TRANSPOSE
/* Pixels [0, quads) of fc_im2col_stream_u32 (quads a multiple of 4), straight to memory. The
 * whole lines go in chunks of FC_STREAM_TAP_CHUNK taps, each chunk for every quad of pixels
 * before the next, so that the chunk's source lines stay in the L1 cache: resnet-deep's 2304
 * taps of one pixel read 768 rows of 14 items (48 KiB of lines). Chunks of 512 against none,
 * one thread, AMD EPYC Zen 1: depthwise 1.07x, resnet-deep 1.06x, resnet-mid 1.03x, strided
 * 0.98x (two threads: 1.06x, 1.03x, 1.01x, 0.99x); 256 read the same as 512, 1024 less.
 *
 * Where dst starts inside a line (a NumPy-allocated out starts 16 bytes past one), each row's
 * last `tail` taps and the next row's first `head` share a line. When both are whole quads of
 * taps (dst 16-byte aligned), that line is streamed too, from the last pass's transposes of
 * the one row's tail and the other's head: only pixel 0's head (`lead`; 0 where the caller
 * wrote it already) and the last pixel's tail, unless pixel `quads` follows it (`next`: its
 * quad [quads - 3, quads] may be gathered), take ordinary stores. */
static void fc_stream_quads_u32(uint32_t *dst, ptrdiff_t J, const uint32_t *const *src, ptrdiff_t start,
                                ptrdiff_t quads, ptrdiff_t sw, int lead, int next)
{
    ptrdiff_t head = (ptrdiff_t)((FC_LINE - (uintptr_t)dst % FC_LINE) % FC_LINE / sizeof(uint32_t));
    if (head > J) head = J;
    ptrdiff_t lines_end = head + (J - head) / 16 * 16; /* taps [head, lines_end): whole lines */
    /* the lines across the rows' ends streamed from whole quads of taps */
    int fused = head > 0 && head % 4 == 0 && J - lines_end + head == 16;
    ptrdiff_t c0 = head, c1;
    if (fused) {
        /* the partial lines left to ordinary stores: ask for them now, so that the stores find them */
        uint32_t *last = dst + (quads - 1) * J;
        if (lead) {
            _mm_prefetch((const char *)dst, _MM_HINT_T0);
            for (ptrdiff_t j = 0; j < head; j++) dst[j] = src[j][start];
        }
        if (!next) _mm_prefetch((const char *)(last + lines_end), _MM_HINT_T0);
    }
    do {
        c1 = c0 + FC_STREAM_TAP_CHUNK < lines_end ? c0 + FC_STREAM_TAP_CHUNK : lines_end;
        for (ptrdiff_t i = 0; i < quads; i += 4) {
            uint32_t *d = dst + i * J;
            if (!fused && c0 == head && (head > 0 || lines_end < J)) {
                /* the partial lines at the rows' ends take ordinary stores: ask for those of this
                 * quad's rows' ends and the next quad's starts now, so that the stores find them */
                for (int p = 0; p < 4; p++) _mm_prefetch((const char *)(d + p * J + J - 1), _MM_HINT_T0);
                if (i + 4 < quads) _mm_prefetch((const char *)(d + 4 * J), _MM_HINT_T0);
                fc_quad_taps_u32(d, J, src, start, i, sw, 0, head);
            }
            for (ptrdiff_t j0 = c0; j0 < c1; j0 += 16) {
                __m128i o[4][4]; /* [quad of taps][pixel] */
                for (int q = 0; q < 4; q++) {
                    const uint32_t *const *s = src + j0 + 4 * q;
                    fc_gather4x4(s[0] + start, s[1] + start, s[2] + start, s[3] + start, i, sw, o[q]);
                }
                for (int p = 0; p < 4; p++)
                    for (int q = 0; q < 4; q++) _mm_stream_si128((__m128i *)(d + p * J + j0 + 4 * q), o[q][p]);
            }
            if (c1 != lines_end)
                continue;
            if (!fused) {
                fc_quad_taps_u32(d, J, src, start, i, sw, lines_end, J);
                continue;
            }
            /* line p: pixel i + p's tail, then pixel i + p + 1's head (the last pixel's own
             * tail, with no pixel after it, is left to ordinary stores) */
            int whole = i + 4 < quads || next; /* pixel i + 4 follows: its head too */
            ptrdiff_t nt = (16 - head) / 4, nh = head / 4;
            __m128i t[4][4], h[4][4]; /* [quad of taps][pixel] */
            for (ptrdiff_t q = 0; q < nt; q++) {
                const uint32_t *const *s = src + lines_end + 4 * q;
                fc_gather4x4(s[0] + start, s[1] + start, s[2] + start, s[3] + start, i, sw, t[q]);
            }
            for (ptrdiff_t q = 0; q < nh; q++) {
                const uint32_t *const *s = src + 4 * q; /* pixels i + 1 .. i + 4, or i .. i + 3 */
                fc_gather4x4(s[0] + start, s[1] + start, s[2] + start, s[3] + start, i + whole, sw, h[q]);
            }
            for (int p = 0; p < (whole ? 4 : 3); p++) {
                uint32_t *line = d + p * J + lines_end;
                for (ptrdiff_t q = 0; q < nt; q++) _mm_stream_si128((__m128i *)(line + 4 * q), t[q][p]);
                for (ptrdiff_t q = 0; q < nh; q++) _mm_stream_si128((__m128i *)(line + 4 * (nt + q)), h[q][p + !whole]);
            }
            if (!whole)
                for (ptrdiff_t q = 0; q < nt; q++) _mm_storeu_si128((__m128i *)(d + 3 * J + lines_end + 4 * q), t[q][3]);
        }
        c0 = c1;
    } while (c0 < lines_end);
}
#endif

/* The rows of fc_im2col_block_u32's block written straight to memory with non-temporal
 * stores, four pixels at a time; returns how many pixels it wrote (the caller assembles the
 * rest: none, or with stride 2 and not `more`, the last). Rows must hold whole cache lines (J a
 * multiple of 16): then every row starts at the same offset in its line, the `head` taps up to
 * the first line boundary and the taps after the last whole line go with ordinary stores, and
 * each whole line of each of the four rows is four 16-byte non-temporal stores in a row, from
 * sixteen taps transposed in registers. Against assembling blocks in cache and copying them
 * out, on resnet-mid's rows: 1.3-1.6x (a C copy of both, one thread, AMD EPYC Zen 1), as the
 * copy's loads and second pass go. Pixels past the last whole quad go in one more quad that
 * overlaps the one before (writing some rows twice, the same items), instead of item by item
 * in the caller's blocks: resnet-mid (54 such pixels a row) 1.04x, depthwise (26) 1.06x,
 * strided (55) 1.03-1.05x. */
static ptrdiff_t fc_im2col_stream_u32(uint32_t *dst, ptrdiff_t J, const uint32_t *const *src, ptrdiff_t start,
                                      ptrdiff_t bw, ptrdiff_t sw, int more)
{
#ifdef FC_HAVE_SSE2_TRANSPOSE
    ptrdiff_t quads_end = sw == 1 || more ? bw : bw - 1; /* (see fc_load4) */
    if (quads_end < 4) return 0;
    ptrdiff_t quads = quads_end / 4 * 4;
    fc_stream_quads_u32(dst, J, src, start, quads, sw, 1, quads < quads_end);
    if (quads_end % 4) { /* the last four pixels, overlapping (their first head written above) */
        ptrdiff_t i = quads_end - 4;
        fc_stream_quads_u32(dst + i * J, J, src, start + i * sw, 4, sw, 0, 0);
    }
    return quads_end;
#else
    (void)dst, (void)J, (void)src, (void)start, (void)bw, (void)sw, (void)more;
    return 0;
#endif
}

/* The row of cols of one window whose taps are runs of kw <= 8 consecutive items (dilation 1):
 * run k is src[k][offset .. offset + kw), copied four items at a time. A 16-byte store may write
 * up to 4 - kw items (kw < 4) or 8 - kw (kw < 8) past its run, which the next run's stores
 * overwrite. The last run goes item by item, so nothing is written past the row, unless `spill`:
 * then it too is copied four items at a time, writing up to 3 items past the row (the caller
 * writes them afterwards: the next window's row). Single-item runs, whose spill would reach past
 * the next run, go item by item. Reads up to 4 (kw <= 4) or 8 items from each src[k] + offset:
 * the caller checks that they lie inside the image. */
static void fc_window_runs_u32(uint32_t *dst, const uint32_t *const *src, ptrdiff_t count, ptrdiff_t offset,
                               ptrdiff_t kw, int spill)
{
    ptrdiff_t k = 0;
#ifdef FC_HAVE_SSE2_TRANSPOSE
    for (; kw >= 2 && k < (spill ? count : count - 1); k++) {
        const uint32_t *s = src[k] + offset;
        uint32_t *d = dst + k * kw;
        _mm_storeu_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)s));
        if (kw > 4) _mm_storeu_si128((__m128i *)(d + 4), _mm_loadu_si128((const __m128i *)(s + 4)));
    }
#else
    (void)spill;
#endif
    for (; k < count; k++)
        for (ptrdiff_t i = 0; i < kw; i++) dst[k * kw + i] = src[k][offset + i];
}

/* A thread's non-temporal copies of consecutive pieces of one array (fc_stream_put): the
 * partial line a piece ends in waits here, and when the next piece starts where it ended the
 * line is completed from it and streamed whole. Only the first piece's head and the last one's
 * tail (fc_stream_flush), where other threads' pieces may share the line, take ordinary stores. */
typedef struct {
    unsigned char line[FC_LINE]; /* the first `have` bytes of the line at `at` */
    unsigned char *at;           /* the waiting line (NULL: none) */
    size_t have;
} fc_stream_writer;

static void fc_stream_begin(fc_stream_writer *w)
{
    w->at = NULL;
    w->have = 0;
}

/* Write the waiting bytes, if any, with ordinary stores. */
static void fc_stream_flush(fc_stream_writer *w)
{
    if (w->at != NULL) memcpy(w->at, w->line, w->have);
    fc_stream_begin(w);
}

/* Copy n bytes from src to dst (not overlapping): the whole cache lines of dst with
 * non-temporal stores, which do not read the line first, and the bytes before its first line
 * boundary, which share a line with others', with ordinary ones; but where the copy starts
 * where w's last one ended, its first bytes complete w's waiting line, streamed whole. The
 * copy's last partial line waits in w in turn. The non-temporal stores are weakly ordered: the
 * caller flushes w, then fences (fc_stream_fence), before other threads may read them. */
static void fc_stream_put(fc_stream_writer *w, void *dst, const void *src, size_t n)
{
#ifdef FC_HAVE_SSE2_TRANSPOSE
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (n == 0) return;
    if (w->at != NULL && w->at + w->have == d) { /* go on filling the waiting line */
        size_t m = FC_LINE - w->have < n ? FC_LINE - w->have : n;
        if (w->have + m == FC_LINE && w->have % 16 == 0) {
            /* (its new bytes loaded from src: a load from line[] spanning several of memcpy's
             * recent stores would wait for them) */
            for (size_t k = 0; k < FC_LINE; k += 16)
                _mm_stream_si128((__m128i *)(w->at + k),
                                 _mm_loadu_si128((const __m128i *)(k < w->have ? w->line + k : s + k - w->have)));
            d += m, s += m, n -= m;
            fc_stream_begin(w);
        } else {
            memcpy(w->line + w->have, s, m);
            w->have += m, d += m, s += m, n -= m;
            if (w->have < FC_LINE) return;
            for (int k = 0; k < FC_LINE; k += 16)
                _mm_stream_si128((__m128i *)(w->at + k), _mm_loadu_si128((const __m128i *)(w->line + k)));
            fc_stream_begin(w);
        }
    } else { /* elsewhere: the bytes up to the first line boundary share a line with others' */
        fc_stream_flush(w);
        size_t head = (FC_LINE - (uintptr_t)d % FC_LINE) % FC_LINE;
        if (head > n) head = n;
        memcpy(d, s, head);
        d += head, s += head, n -= head;
    }
    for (; n >= FC_LINE; d += FC_LINE, s += FC_LINE, n -= FC_LINE)
        for (int k = 0; k < FC_LINE; k += 16)
            _mm_stream_si128((__m128i *)(d + k), _mm_loadu_si128((const __m128i *)(s + k)));
    if (n > 0) { /* d is on a line boundary */
        memcpy(w->line, s, n);
        w->at = d, w->have = n;
    }
#else
    (void)w;
    memcpy(dst, src, n);
#endif
}

/* Order the non-temporal stores before those that follow: once per thread, after all its
 * rows, before the threads join (the fence waits for the write-combining buffers to drain).
 * Once per row of output pixels rather than once per block read dilated 1.06x, the others
 * 0.97-1.07x; once per thread rather than per row, into an out (AMD EPYC Zen 1, one thread):
 * cifar streamed 1.4x in a C copy. */
static void fc_stream_fence(void)
{
#ifdef FC_HAVE_SSE2_TRANSPOSE
    _mm_sfence();
#endif
}

#endif /* FASTCONV_IM2COL_BLOCK_H */
