"""A deliberate out-of-bounds read in a fastconv kernel: proof that a memory checker is awake.

tools/sanitize.sh and tools/valgrind.sh run this first and require their tool to report it
(and to stop the process or flag it), so a build without instrumentation or a suppression
that hides fastconv's own errors cannot pass silently. It calls the raw im2col kernel, which
trusts its caller, with an output size one window too large for the 4x4 image: the last
windows read one row past the end of the image's heap buffer.
"""

import numpy as np

from fastconv._kernels import _im2col

image = np.arange(16, dtype=np.uint64).reshape(1, 1, 4, 4, 1)  # (N, G, H, W, V): 128 bytes
cols = np.zeros((3 * 3, 3 * 3), np.uint64)  # room for OH = OW = 3 windows of 3x3 (only 2x2 fit)
_im2col.im2col_2d(image, cols, 3, 3, 1, 1, 1, 1, 3, 3, np.zeros((0, 0), np.uint64), 1)
print("canary: the out-of-bounds read went unnoticed; checksum", int(cols.sum()))
