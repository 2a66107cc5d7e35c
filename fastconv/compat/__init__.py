"""Drop-in replacements for the convolution helpers of two well-known NumPy courses.

Existing code switches to fastconv's kernels by changing one import:

* :mod:`fastconv.compat.dlfs` -- "deep learning from scratch" (``common/util.py``
  and ``common/layers.py``): ``im2col``, ``col2im``, ``Convolution``, ``Pooling``.
  Replace ``from common.util import im2col, col2im`` by
  ``from fastconv.compat.dlfs import im2col, col2im`` (and likewise for the layers).
* :mod:`fastconv.compat.cs231n` -- the CS231n assignment-2 fast layers
  (``im2col_cython``, ``col2im_cython``, ``col2im_6d_cython``,
  ``conv_forward_fast``, ``conv_backward_fast``, ``max_pool_forward_fast``,
  ``max_pool_backward_fast``).

Both keep the names, signatures, layouts and results of the originals; the
differences (mostly fixes: dtypes are kept, non-square kernels and every
stride work) are listed in each module's docstring.
"""

from . import cs231n, dlfs

__all__ = ["dlfs", "cs231n"]
