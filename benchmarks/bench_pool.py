"""asv benchmarks of fastconv.max_pool2d and avg_pool2d (see ``benchmarks/__init__.py``).

Every shape's input is pooled with the 2x2, stride-2 window of
:data:`fastconv._bench.POOL_GEOMETRY`.
"""

from . import _Fastconv, _VsReference, _VsTorch


class MaxPool2d(_Fastconv):
    op = "max_pool2d"


class MaxPool2dVsReference(_VsReference):
    op = "max_pool2d"


class MaxPool2dVsTorch(_VsTorch):
    """Against ``F.max_pool2d``."""

    op = "max_pool2d"


class AvgPool2d(_Fastconv):
    op = "avg_pool2d"


class AvgPool2dVsReference(_VsReference):
    op = "avg_pool2d"


class AvgPool2dVsTorch(_VsTorch):
    """Against ``F.avg_pool2d``."""

    op = "avg_pool2d"
