"""Speed against PyTorch on layers outside the canonical benchmark shapes.

The textbook networks (deep learning from scratch, LeNet-5, CS231n), the
pointwise (1x1) layers of ResNet and MobileNet and MobileNet's depthwise
layers on small planes, float64 and float32; with
``--layers inference``, the 3x3, pointwise and depthwise layers of ResNet-50
and MobileNet on one image (a network's inference). For each layer and
operation it alternates fastconv and PyTorch call by call and prints, as a
Markdown table, the median of the paired ratios ``torch time / fastconv
time`` (above 1: fastconv is faster). Needs torch.

With ``--layout NHWC`` fastconv takes NHWC arrays and HWIO weights and
PyTorch the same memory as ``channels_last`` tensors (oneDNN's NHWC kernels).

    python tools/layers_vs_torch.py [--threads N] [--repeat R] [--only TEXT] [--layers inference] [--layout NHWC]

Unset ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` for the run if they are set.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastconv

#: name, batch, input channels, filters, kernel, image side, padding, stride[, groups]
LAYERS = [
    ("textbook SimpleConvNet, 30 5x5 on 1x28x28", 100, 1, 30, 5, 28, 0, 1),
    ("textbook deep net conv1, 16 3x3 on 1x28x28", 100, 1, 16, 3, 28, 1, 1),
    ("LeNet-5 C1, 6 5x5 on 1x32x32", 100, 1, 6, 5, 32, 0, 1),
    ("LeNet-5 C3, 16 5x5 on 6x14x14", 100, 6, 16, 5, 14, 0, 1),
    ("CS231n three-layer net, 32 7x7 on 3x32x32", 50, 3, 32, 7, 32, 3, 1),
    ("ResNet bottleneck 1x1, 256 to 64 on 56x56", 8, 256, 64, 1, 56, 0, 1),
    ("ResNet bottleneck 1x1, 64 to 256 on 56x56", 8, 64, 256, 1, 56, 0, 1),
    ("ResNet shortcut 1x1 stride 2, 256 to 512 on 56x56", 8, 256, 512, 1, 56, 0, 2),
    ("MobileNet pointwise, 32 to 64 on 112x112", 4, 32, 64, 1, 112, 0, 1),
    ("pointwise 128 to 128 on 28x28", 16, 128, 128, 1, 28, 0, 1),
    ("ResNet last stage 3x3, 512 to 512 on 7x7", 32, 512, 512, 3, 7, 1, 1),
    ("MobileNet depthwise 3x3, 1024 on 7x7", 8, 1024, 1024, 3, 7, 1, 1, 1024),
    ("MobileNet depthwise 3x3 stride 2, 512 on 14x14", 8, 512, 512, 3, 14, 1, 2, 512),
    ("MobileNet depthwise 3x3 stride 2, 128 on 56x56", 8, 128, 128, 3, 56, 1, 2, 128),
    ("depthwise 3x3 stride 2, 256 on 8x8", 8, 256, 256, 3, 8, 1, 2, 256),
    ("depthwise 3x3, 128 on 28x28 (the canonical shape)", 32, 128, 128, 3, 28, 1, 1, 128),
]

#: ``--layers inference``: as LAYERS, one image each, and groups last (depthwise: groups = channels)
INFERENCE_LAYERS = [
    ("ResNet-50 3x3, 64 on 56x56", 1, 64, 64, 3, 56, 1, 1, 1),
    ("ResNet-50 3x3, 128 on 28x28", 1, 128, 128, 3, 28, 1, 1, 1),
    ("ResNet-50 3x3, 256 on 14x14", 1, 256, 256, 3, 14, 1, 1, 1),
    ("ResNet-50 3x3, 512 on 7x7", 1, 512, 512, 3, 7, 1, 1, 1),
    ("ResNet-50 1x1, 256 to 64 on 56x56", 1, 256, 64, 1, 56, 0, 1, 1),
    ("ResNet-50 1x1, 64 to 256 on 56x56", 1, 64, 256, 1, 56, 0, 1, 1),
    ("ResNet-50 1x1, 1024 to 256 on 14x14", 1, 1024, 256, 1, 14, 0, 1, 1),
    ("ResNet-50 1x1, 2048 to 512 on 7x7", 1, 2048, 512, 1, 7, 0, 1, 1),
    ("ResNet-50 1x1, 512 to 2048 on 7x7", 1, 512, 2048, 1, 7, 0, 1, 1),
    ("MobileNet first 3x3 stride 2, 3 to 32 on 224x224", 1, 3, 32, 3, 224, 1, 2, 1),
    ("MobileNet depthwise 3x3, 32 on 112x112", 1, 32, 32, 3, 112, 1, 1, 32),
    ("MobileNet depthwise 3x3 stride 2, 64 on 112x112", 1, 64, 64, 3, 112, 1, 2, 64),
    ("MobileNet depthwise 3x3, 256 on 28x28", 1, 256, 256, 3, 28, 1, 1, 256),
    ("MobileNet depthwise 3x3, 512 on 14x14", 1, 512, 512, 3, 14, 1, 1, 512),
    ("MobileNet depthwise 3x3, 1024 on 7x7", 1, 1024, 1024, 3, 7, 1, 1, 1024),
    ("MobileNet pointwise, 64 to 128 on 56x56", 1, 64, 128, 1, 56, 0, 1, 1),
    ("MobileNet pointwise, 256 to 256 on 28x28", 1, 256, 256, 1, 28, 0, 1, 1),
    ("MobileNet pointwise, 512 to 512 on 14x14", 1, 512, 512, 1, 14, 0, 1, 1),
    ("MobileNet pointwise, 1024 to 1024 on 7x7", 1, 1024, 1024, 1, 7, 0, 1, 1),
]


def paired_ratio(ours, theirs, repeat):
    """Median of ``theirs time / ours time`` over ``repeat`` alternating pairs (after one warm-up each)."""
    ours()
    theirs()
    ratios = []
    for _ in range(repeat):
        start = time.perf_counter()
        ours()
        mid = time.perf_counter()
        theirs()
        ratios.append((time.perf_counter() - mid) / (mid - start))
    return float(np.median(ratios))


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    parser.add_argument("--repeat", type=int, default=11, help="pairs per operation (default 11)")
    parser.add_argument("--only", default="", help="only the layers whose name contains TEXT")
    parser.add_argument("--dtype", choices=("both", "float32", "float64"), default="both",
                        help="the dtypes to run (default both)")
    parser.add_argument("--layers", choices=("training", "inference"), default="training",
                        help="the textbook and ResNet layers on their batches (default), or ResNet-50's and "
                             "MobileNet's on one image")
    parser.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW",
                        help="fastconv's layout; PyTorch's tensors are channels_last for NHWC (default NCHW)")
    args = parser.parse_args()
    fastconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"torch time / fastconv time, {args.threads} thread(s), {args.layout}, medians of {args.repeat} pairs")
    print("| layer (batch) | dtype | conv2d | grad_input | grad_weight |")
    print("| --- | --- | --- | --- | --- |")
    dtypes = (np.float64, np.float32) if args.dtype == "both" else (np.dtype(args.dtype).type,)
    layers = LAYERS if args.layers == "training" else INFERENCE_LAYERS
    for name, n, c, k, kernel, side, pad, stride, *groups in layers:
        if args.only not in name:
            continue
        groups = groups[0] if groups else 1
        kw = {"padding": pad, "stride": stride, "groups": groups}
        for dtype in dtypes:
            x = rng.standard_normal((n, c, side, side)).astype(dtype)
            w = rng.standard_normal((k, c // groups, kernel, kernel)).astype(dtype)
            grad = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape).astype(dtype)
            tx, tw, tg = (torch.from_numpy(a) for a in (x, w, grad))
            fw = w
            if args.layout == "NHWC":  # the same values, each pixel's channels side by side
                x, grad = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, grad))
                fw = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # HWIO
                tx, tg = (torch.from_numpy(a).permute(0, 3, 1, 2) for a in (x, grad))  # channels_last views
                tw = tw.contiguous(memory_format=torch.channels_last)
            fkw = dict(kw, layout=args.layout)
            ratios = [
                paired_ratio(lambda: fastconv.conv2d(x, fw, **fkw),
                             lambda: torch.nn.functional.conv2d(tx, tw, **kw), args.repeat),
                paired_ratio(lambda: fastconv.conv2d_grad_input(grad, fw, x.shape, **fkw),
                             lambda: torch.nn.grad.conv2d_input(tx.shape, tw, tg, **kw), args.repeat),
                paired_ratio(lambda: fastconv.conv2d_grad_weight(grad, x, fw.shape, **fkw),
                             lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg, **kw), args.repeat),
            ]
            print(f"| {name} ({n}) | {np.dtype(dtype).name} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
