"""asv benchmarks of layers outside the canonical shapes (see ``benchmarks/__init__.py``).

The textbook's first layer (30 5x5 filters on 28x28 digits: its input
gradient runs through its columns), three pointwise (1x1) layers (a
product per image, merged rows, a strided shortcut; the weight gradient
read in place), ResNet's last-stage 3x3 layer (9.4 MB of float32
weights: several images per task), two of MobileNet's depthwise layers
on small planes (the depthwise lanes kernels) and, in NHWC (torch's
tensors ``channels_last``), one of them and the canonical ``depthwise``
shape (the NHWC depthwise kernels), a bottleneck 1x1 layer (pixels and
weight read in place: ``pw_nhwc_impl.h``), ResNet's last-stage 3x3 layer and the
textbook's first layer (the NCHW tiles, transposed in and out), as
``tools/layers_vs_torch.py`` measures them; batch sizes divided as for the
canonical shapes.
"""

from fastconv import _bench

from . import _Fastconv, _VsTorch

#: name -> dimensions, as :data:`fastconv._bench.SHAPES` holds them.
LAYERS = {
    "textbook": _bench._dims(100, 1, 28, 28, 30, 5, 1, 0, 1),
    "bottleneck-1x1": _bench._dims(8, 256, 56, 56, 64, 1, 1, 0, 1),
    "mobilenet-1x1": _bench._dims(4, 32, 112, 112, 64, 1, 1, 0, 1),
    "shortcut-1x1": _bench._dims(8, 256, 56, 56, 512, 1, 2, 0, 1),
    "resnet-last-3x3": _bench._dims(32, 512, 7, 7, 512, 3, 1, 1, 1),
    "mobilenet-dw-7x7": _bench._dims(8, 1024, 7, 7, 1024, 3, 1, 1, 1, groups=1024),
    "mobilenet-dw-14x14-s2": _bench._dims(8, 512, 14, 14, 512, 3, 2, 1, 1, groups=512),
    "mobilenet-dw-7x7-nhwc": _bench._dims(8, 1024, 7, 7, 1024, 3, 1, 1, 1, groups=1024, layout="NHWC"),
    "depthwise-nhwc": _bench._dims(32, 128, 28, 28, 128, 3, 1, 1, 1, groups=128, layout="NHWC"),
    "bottleneck-1x1-nhwc": _bench._dims(8, 256, 56, 56, 64, 1, 1, 0, 1, layout="NHWC"),
    "resnet-last-3x3-nhwc": _bench._dims(32, 512, 7, 7, 512, 3, 1, 1, 1, layout="NHWC"),
    "textbook-nhwc": _bench._dims(100, 1, 28, 28, 30, 5, 1, 0, 1, layout="NHWC"),
}


class _Layers:
    """Parameterized over :data:`LAYERS` instead of the canonical shapes."""

    params = (list(LAYERS), ["float32", "float64"], [1, 2])

    def setup(self, shape, dtype, threads):
        super().setup(LAYERS[shape], dtype, threads)


class LayerConv2d(_Layers, _Fastconv):
    op = "conv2d"


class LayerConv2dVsTorch(_Layers, _VsTorch):
    op = "conv2d"


class LayerGradInput(_Layers, _Fastconv):
    op = "grad_input"


class LayerGradInputVsTorch(_Layers, _VsTorch):
    op = "grad_input"


class LayerGradWeight(_Layers, _Fastconv):
    op = "grad_weight"


class LayerGradWeightVsTorch(_Layers, _VsTorch):
    op = "grad_weight"
