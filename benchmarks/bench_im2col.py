"""asv benchmarks of fastconv.im2col and fastconv.col2im (see ``benchmarks/__init__.py``)."""

from . import _Fastconv, _VsReference, _VsTorch


class Im2col(_Fastconv):
    op = "im2col"


class Im2colVsReference(_VsReference):
    op = "im2col"


class Im2colVsTorch(_VsTorch):
    """Against ``F.unfold`` + transpose + ``contiguous`` to fastconv's layout."""

    op = "im2col"


class Col2im(_Fastconv):
    op = "col2im"


class Col2imVsReference(_VsReference):
    op = "col2im"


class Col2imVsTorch(_VsTorch):
    """Against ``F.fold`` of fastconv's columns."""

    op = "col2im"
