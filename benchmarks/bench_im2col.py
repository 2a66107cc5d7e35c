"""asv benchmarks of fastconv.im2col and fastconv.col2im (see ``benchmarks/__init__.py``)."""

from . import _Fastconv, _VsReference, _VsTorch


class Im2col(_Fastconv):
    op = "im2col"


class Im2colVsReference(_VsReference):
    op = "im2col"


class Im2colVsTorch(_VsTorch):
    """Against ``F.unfold`` + transpose + ``contiguous`` to fastconv's layout."""

    op = "im2col"


class Im2colOut(_Fastconv):
    """Into an ``out`` allocated once."""

    op = "im2col_out"


class Im2colOutVsTorch(_VsTorch):
    """Against aten's ``im2col.out`` into a buffer allocated once, then copied into fastconv's layout."""

    op = "im2col_out"


class Col2im(_Fastconv):
    op = "col2im"


class Col2imVsReference(_VsReference):
    op = "col2im"


class Col2imVsTorch(_VsTorch):
    """Against ``F.fold`` of fastconv's columns."""

    op = "col2im"


class Col2imOut(_Fastconv):
    """Into an ``out`` allocated once."""

    op = "col2im_out"


class Col2imOutVsTorch(_VsTorch):
    """Against aten's ``col2im.out`` of fastconv's columns into a buffer allocated once."""

    op = "col2im_out"
