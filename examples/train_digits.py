#!/usr/bin/env python
"""Train a small convolutional network on scikit-learn's 8x8 digits, in NumPy, with fastconv.

The network is

    conv 3x3 (1 -> 16, pad 1) -> ReLU -> max-pool 2
    conv 3x3 (16 -> 32, pad 1) -> ReLU -> max-pool 2 -> dense (128 -> 10) -> softmax

written out by hand: the forward pass and the backward pass use fastconv's
``conv2d``, ``conv2d_grad_input``, ``conv2d_grad_weight``,
``max_pool2d(..., return_indices=True)`` and ``max_pool2d_backward``; the
rest (ReLU, dense layer, softmax cross-entropy, Adam) is a few lines of
NumPy. Everything is float32.

The data set is ``sklearn.datasets.load_digits`` (1797 images, shipped with
scikit-learn, no download), split once into 1437 training and 360 test images
(the split does not depend on ``--seed``; the initial weights and the batch
order do).

    python examples/train_digits.py                        # fastconv's kernels
    python examples/train_digits.py --backend reference    # the same training on fastconv.reference
    python examples/train_digits.py --epochs 5 --seed 1 --batch-size 64 --threads 0

Needs scikit-learn (``pip install fastconv[examples]``). The last line
printed is ``test accuracy: 0.xxxx``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

DTYPE = np.float32


def load_backend(name):
    """The module providing conv2d & co.: ``fastconv`` or ``fastconv.reference`` (same names)."""
    import fastconv

    if name == "reference":
        from fastconv import reference

        return reference
    return fastconv


def load_data(test_size=360, split_seed=0):
    """Digits as float32 ``(N, 1, 8, 8)`` images in [0, 1] and int labels, split into train and test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install 'scikit-learn>=1.0' (or fastconv[examples])")
    digits = load_digits()
    images = (digits.images / 16.0).astype(DTYPE)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(labels))
    test, train = order[:test_size], order[test_size:]
    return (images[train], labels[train]), (images[test], labels[test])


def init_params(rng):
    """He-initialised weights (OIHW for the convolutions), zero biases, all float32."""

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(DTYPE)

    return {
        "w1": he((16, 1, 3, 3), 1 * 9), "b1": np.zeros(16, DTYPE),
        "w2": he((32, 16, 3, 3), 16 * 9), "b2": np.zeros(32, DTYPE),
        "w3": he((32 * 2 * 2, 10), 32 * 2 * 2), "b3": np.zeros(10, DTYPE),
    }


def forward(ops, params, x):
    """Logits ``(N, 10)`` and what the backward pass needs."""
    a1 = ops.conv2d(x, params["w1"], params["b1"], padding=1)             # (N, 16, 8, 8)
    r1 = np.maximum(a1, 0)
    p1, i1 = ops.max_pool2d(r1, 2, return_indices=True)                   # (N, 16, 4, 4)
    a2 = ops.conv2d(p1, params["w2"], params["b2"], padding=1)            # (N, 32, 4, 4)
    r2 = np.maximum(a2, 0)
    p2, i2 = ops.max_pool2d(r2, 2, return_indices=True)                   # (N, 32, 2, 2)
    flat = p2.reshape(len(x), -1)                                          # (N, 128)
    logits = flat @ params["w3"] + params["b3"]
    return logits, (x, a1, r1, i1, p1, a2, r2, i2, p2, flat)


def softmax_cross_entropy(logits, labels):
    """Mean loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(probs[np.arange(n), labels] + 1e-12).mean()
    grad = probs
    grad[np.arange(n), labels] -= 1
    return float(loss), grad / n


def backward(ops, params, cache, dlogits):
    """Gradients of every parameter, same keys as ``params``."""
    x, a1, r1, i1, p1, a2, r2, i2, p2, flat = cache
    grads = {"w3": flat.T @ dlogits, "b3": dlogits.sum(axis=0)}
    dp2 = (dlogits @ params["w3"].T).reshape(p2.shape)
    da2 = ops.max_pool2d_backward(dp2, i2, r2.shape) * (a2 > 0)
    grads["w2"] = ops.conv2d_grad_weight(da2, p1, params["w2"].shape, padding=1)
    grads["b2"] = da2.sum(axis=(0, 2, 3))
    dp1 = ops.conv2d_grad_input(da2, params["w2"], p1.shape, padding=1)
    da1 = ops.max_pool2d_backward(dp1, i1, r1.shape) * (a1 > 0)
    grads["w1"] = ops.conv2d_grad_weight(da1, x, params["w1"].shape, padding=1)
    grads["b1"] = da1.sum(axis=(0, 2, 3))
    return grads


class Adam:
    """Adam with bias correction; updates the parameter arrays in place."""

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params, grads, lr):
        self.t += 1
        c1, c2 = 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            params[k] -= (lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)).astype(DTYPE)


def accuracy(ops, params, x, y, batch_size=256):
    correct = 0
    for start in range(0, len(x), batch_size):
        logits, _ = forward(ops, params, x[start:start + batch_size])
        correct += int((logits.argmax(axis=1) == y[start:start + batch_size]).sum())
    return correct / len(x)


def progress_bar(epoch, epochs, done, total, loss, width=24):
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    sys.stdout.write(f"\repoch {epoch:>{len(str(epochs))}}/{epochs} [{bar}] {done:>{len(str(total))}}/{total}"
                     f"  loss {loss:.4f}")
    sys.stdout.flush()


def train(args):
    ops = load_backend(args.backend)
    (x_train, y_train), (x_test, y_test) = load_data()
    rng = np.random.default_rng(args.seed)
    params = init_params(rng)
    optimizer = Adam(params, args.lr)
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    print(f"backend {args.backend}: {len(x_train)} training and {len(x_test)} test images, "
          f"{args.epochs} epochs of {steps_per_epoch} batches of {args.batch_size}")
    epoch_times = []
    step = 0
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        running, seen = 0.0, 0
        start = time.perf_counter()
        for b in range(steps_per_epoch):
            batch = order[b * args.batch_size:(b + 1) * args.batch_size]
            xb, yb = x_train[batch], y_train[batch]
            logits, cache = forward(ops, params, xb)
            loss, dlogits = softmax_cross_entropy(logits, yb)
            grads = backward(ops, params, cache, dlogits)
            # cosine decay from lr to lr/20 over the whole run
            lr = args.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total_steps)))
            optimizer.step(params, grads, lr)
            step += 1
            running, seen = running + loss * len(batch), seen + len(batch)
            progress_bar(epoch, args.epochs, b + 1, steps_per_epoch, running / seen)
        elapsed = time.perf_counter() - start
        epoch_times.append(elapsed)
        test_acc = accuracy(ops, params, x_test, y_test)
        sys.stdout.write(f"  test acc {test_acc:.4f}  {elapsed:.3f} s/epoch\n")
        sys.stdout.flush()
    train_acc = accuracy(ops, params, x_train, y_train)
    print(f"train accuracy: {train_acc:.4f}")
    print(f"time per epoch: {np.mean(epoch_times):.3f} s (mean), {np.min(epoch_times):.3f} s (best), "
          f"{np.sum(epoch_times):.2f} s in all")
    return accuracy(ops, params, x_test, y_test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backend", choices=["fastconv", "reference"], default="fastconv",
                        help="fastconv's kernels, or the pure-NumPy fastconv.reference functions")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the 1437 training images")
    parser.add_argument("--batch-size", type=int, default=32, help="images per Adam step")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's initial learning rate")
    parser.add_argument("--seed", type=int, default=0, help="initial weights and batch order")
    parser.add_argument("--threads", type=int, default=1,
                        help="fastconv's OpenMP threads and NumPy's BLAS threads; 0 = all usable cores. "
                             "One is the default because 8x8 images give each call microseconds of work: "
                             "more threads gain nothing here and lose a lot on a machine busy with other jobs")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be >= 1")

    import fastconv
    from threadpoolctl import threadpool_limits

    if args.threads < 0:
        parser.error("--threads must be >= 0")
    if args.threads:
        with threadpool_limits(limits=args.threads), fastconv.num_threads(args.threads):
            test_acc = train(args)
    else:
        test_acc = train(args)
    print(f"test accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
