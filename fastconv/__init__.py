"""fastconv: im2col, col2im and convolution kernels for NumPy, in typed Cython with OpenMP.

The public API follows ``torch.nn.functional`` naming and NumPy conventions:

* :func:`im2col`, :func:`col2im` -- unfold windows into columns and back;
* :func:`conv2d` -- 2-D convolution (direct loops or im2col + GEMM);
* :func:`conv2d_grad_input`, :func:`conv2d_grad_weight`, :func:`conv_transpose2d`
  -- its gradients and its adjoint;
* :func:`max_pool2d`, :func:`avg_pool2d` and their backward functions;
* :func:`conv_output_shape` -- output size and resolved padding;
* :func:`get_num_threads`, :func:`set_num_threads`, :func:`num_threads` -- threads;
* :func:`get_buffer_cache_limit`, :func:`set_buffer_cache_limit` -- released memory kept for reuse;
* :func:`show_config` -- how this build was made and what it runs on.

:mod:`fastconv.reference` holds pure-NumPy versions of the same functions.
"""

from ._version import __version__

try:
    from ._kernels import _openmp_helpers as _compiled_kernels  # noqa: F401
except ImportError as exc:  # pragma: no cover - only in an unbuilt source tree
    import os as _os

    raise ImportError(
        "fastconv's compiled kernels are missing from "
        f"{_os.path.dirname(__file__)!r}. This is a source checkout that was not "
        "built in place: run from another directory (or use the `fastconv` command) "
        "to import the installed fastconv, or build here with `pip install -e .`."
    ) from exc

from ._geometry import OutputShape, conv_output_shape
from ._threads import get_num_threads, num_threads, set_num_threads
from ._memory import get_buffer_cache_limit, set_buffer_cache_limit
from ._im2col import col2im, im2col
from ._conv import conv2d
from ._conv_grad import conv2d_grad_input, conv2d_grad_weight, conv_transpose2d
from ._pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from ._config import show_config
from ._simd import available_levels as simd_levels
from ._simd import set_simd_level, simd_level

__all__ = [
    "__version__",
    "im2col",
    "col2im",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "conv_output_shape",
    "OutputShape",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "get_buffer_cache_limit",
    "set_buffer_cache_limit",
    "show_config",
    "simd_level",
    "simd_levels",
    "set_simd_level",
]
