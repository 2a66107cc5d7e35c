"""asv benchmarks of fastconv.conv2d (see ``benchmarks/__init__.py``).

The conv2d of the ``depthwise`` shape uses its ``groups=128``.
"""

from . import _Fastconv, _ThreadScaling, _VsReference, _VsTorch


class Conv2d(_Fastconv):
    """``algorithm="auto"``, and each explicit algorithm: time and peak memory."""

    op = "conv2d"
    extra = ("fastconv_direct", "fastconv_im2col")

    def time_direct(self, shape, dtype, threads):
        self.case.run("fastconv_direct")

    def time_im2col(self, shape, dtype, threads):
        self.case.run("fastconv_im2col")

    def peakmem_direct(self, shape, dtype, threads):
        self.case.run("fastconv_direct")

    def peakmem_im2col(self, shape, dtype, threads):
        self.case.run("fastconv_im2col")


class Conv2dVsReference(_VsReference):
    op = "conv2d"


class Conv2dVsTorch(_VsTorch):
    """Against ``F.conv2d`` (oneDNN)."""

    op = "conv2d"


class Conv2dThreadScaling(_ThreadScaling):
    op = "conv2d"
