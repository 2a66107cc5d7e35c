"""asv benchmarks of fastconv.conv2d_grad_input and conv2d_grad_weight (see ``benchmarks/__init__.py``).

Same geometry as the conv2d benchmarks; the peer is ``torch.nn.grad``.
"""

from . import _Fastconv, _VsReference, _VsTorch


class Conv2dGradInput(_Fastconv):
    op = "grad_input"


class Conv2dGradInputVsReference(_VsReference):
    op = "grad_input"


class Conv2dGradInputVsTorch(_VsTorch):
    """Against ``torch.nn.grad.conv2d_input``."""

    op = "grad_input"


class Conv2dGradWeight(_Fastconv):
    op = "grad_weight"


class Conv2dGradWeightVsReference(_VsReference):
    op = "grad_weight"


class Conv2dGradWeightVsTorch(_VsTorch):
    """Against ``torch.nn.grad.conv2d_weight``."""

    op = "grad_weight"
