"""Direct 2-D convolution (cross-correlation) over a padded input, no column buffer.

The caller pads the input, resolves groups, checks every shape, fills
``bias`` (zeros when there is none) and allocates ``out``. Each output element
sums its taps in a fixed order, so results do not depend on the thread count.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t

ctypedef fused acc_t:
    float
    double
    int64_t


def conv2d_nchw(const acc_t[:, :, :, ::1] xp, const acc_t[:, :, :, ::1] w,
                const acc_t[::1] bias, acc_t[:, :, :, ::1] out,
                Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                Py_ssize_t groups, int num_threads):
    """``out[n, k] = bias[k] + sum_{c, kh, kw} w[k, c, kh, kw] * xp[n, g*Cg + c, ...]``.

    ``xp`` is ``(N, C, Hp, Wp)``, ``w`` is OIHW ``(K, C/groups, KH, KW)``.
    Parallel over ``(n, k)`` output planes; each plane is built row by row.
    """
    cdef Py_ssize_t N = out.shape[0], K = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t t, n, k, g, oh, ow, c, kh, kw
    cdef acc_t wv
    cdef acc_t* orow
    cdef const acc_t* xs
    for t in prange(N * K, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // K
        k = t - n * K
        g = k // Kg
        for oh in range(OH):
            orow = &out[n, k, oh, 0]
            for ow in range(OW):
                orow[ow] = bias[k]
            for c in range(Cg):
                for kh in range(KH):
                    for kw in range(KW):
                        wv = w[k, c, kh, kw]
                        xs = &xp[n, g * Cg + c, oh * SH + kh * DH, kw * DW]
                        if SW == 1:
                            for ow in range(OW):
                                orow[ow] += wv * xs[ow]
                        else:
                            for ow in range(OW):
                                orow[ow] += wv * xs[ow * SW]


def conv2d_nhwc(const acc_t[:, :, :, ::1] xp, const acc_t[:, :, :, ::1] w,
                const acc_t[::1] bias, acc_t[:, :, :, ::1] out,
                Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t DH, Py_ssize_t DW,
                Py_ssize_t groups, int num_threads):
    """Channels-last twin of :func:`conv2d_nchw`.

    ``xp`` is ``(N, Hp, Wp, C)``, ``w`` is HWIO ``(KH, KW, C/groups, K)``, ``out``
    is ``(N, OH, OW, K)``. Parallel over ``(n, oh)`` output rows; the innermost
    loop runs over contiguous output channels.
    """
    cdef Py_ssize_t N = out.shape[0], OH = out.shape[1], OW = out.shape[2], K = out.shape[3]
    cdef Py_ssize_t KH = w.shape[0], KW = w.shape[1], Cg = w.shape[2]
    cdef Py_ssize_t Kg = K // groups
    cdef Py_ssize_t t, n, oh, ow, kh, kw, g, c, k
    cdef acc_t xv
    cdef acc_t* opix
    cdef const acc_t* xpix
    cdef const acc_t* wrow
    for t in prange(N * OH, nogil=True, num_threads=num_threads, schedule="static"):
        n = t // OH
        oh = t - n * OH
        for ow in range(OW):
            opix = &out[n, oh, ow, 0]
            for k in range(K):
                opix[k] = bias[k]
            for kh in range(KH):
                for kw in range(KW):
                    xpix = &xp[n, oh * SH + kh * DH, ow * SW + kw * DW, 0]
                    for g in range(groups):
                        for c in range(Cg):
                            xv = xpix[g * Cg + c]
                            wrow = &w[kh, kw, c, g * Kg]
                            for k in range(Kg):
                                opix[g * Kg + k] += xv * wrow[k]
