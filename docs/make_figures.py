"""Draw the figures of the fastconv documentation.

Run by ``docs/conf.py`` at the start of every Sphinx build (so no figure is
ever drawn by hand), or by hand::

    python docs/make_figures.py [OUTPUT_DIR]

which writes ``im2col_layout.png`` into ``OUTPUT_DIR`` (default
``docs/_static``). The column matrix in the figure is computed by
:func:`fastconv.im2col` itself, so the picture shows what the library does.
"""

from __future__ import annotations

import os
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import fastconv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "_static")

#: Fill colours: one family per input channel, a lighter and a darker shade
#: alternating over kernel rows ``kh`` in the column matrix.
CHANNEL_COLOURS = (("#cfe2f3", "#9fc5e8"), ("#fde3c8", "#f9c08c"))
HIGHLIGHT = "#c0392b"
#: The window highlighted in the input and its row in the matrix: (oh, ow).
HIGHLIGHT_WINDOW = (0, 1)


def _cell(ax, x, y, value, colour, size=1.0, fontsize=10, weight="normal"):
    """One square cell with its lower-left corner at ``(x, y)`` and a number in it."""
    ax.add_patch(Rectangle((x, y), size, size, facecolor=colour, edgecolor="#555555", linewidth=0.6))
    ax.text(x + size / 2, y + size / 2, str(value), ha="center", va="center", fontsize=fontsize,
            weight=weight)


def _outline(ax, x, y, width, height, colour=HIGHLIGHT, linewidth=2.6, style="-"):
    ax.add_patch(Rectangle((x, y), width, height, fill=False, edgecolor=colour, linewidth=linewidth,
                           linestyle=style, zorder=5))


def draw_im2col_layout(path):
    """Draw how :func:`fastconv.im2col` lays out the 3x3 windows of a (1, 2, 4, 4) input.

    Parameters
    ----------
    path : str
        PNG file to write.
    """
    n, c, h, w, k = 1, 2, 4, 4, 3
    x = np.arange(n * c * h * w).reshape(n, c, h, w)
    cols = fastconv.im2col(x, k)  # (N*OH*OW, C*KH*KW) = (4, 18)
    oh, ow = h - k + 1, w - k + 1
    assert cols.shape == (n * oh * ow, c * k * k)
    hi_row = HIGHLIGHT_WINDOW[0] * ow + HIGHLIGHT_WINDOW[1]

    fig, ax = plt.subplots(figsize=(12.0, 8.0))
    ax.set_aspect("equal")
    ax.axis("off")

    # ---- top: the two input channels and the window -------------------------------
    top = 13.4  # y of the upper edge of the input grids
    left = 3.0
    grid_x = (left, left + w + 2.5)
    for ch in range(c):
        gx = grid_x[ch]
        ax.text(gx + w / 2, top + 0.25, f"channel c = {ch}\nx[0, {ch}]", ha="center", va="bottom",
                fontsize=12, weight="bold", linespacing=1.3)
        for i in range(h):
            for j in range(w):
                _cell(ax, gx + j, top - 1 - i, x[0, ch, i, j], CHANNEL_COLOURS[ch][0], fontsize=12)
        for i in range(h):
            ax.text(gx - 0.25, top - 0.5 - i, str(i), ha="right", va="center", fontsize=8, color="#777777")
        for j in range(w):
            ax.text(gx + j + 0.5, top - h - 0.15, str(j), ha="center", va="top", fontsize=8, color="#777777")
        # the highlighted 3x3 window
        wi, wj = HIGHLIGHT_WINDOW
        _outline(ax, gx + wj, top - wi - k, k, k)
    ax.text(grid_x[0] - 0.9, top - h / 2, "row i", rotation=90, ha="center", va="center", fontsize=8,
            color="#777777")
    ax.text(grid_x[0] + w / 2, top - h - 0.6, "column j", ha="center", va="top", fontsize=8,
            color="#777777")

    # the 3x3 window with its taps (kh, kw)
    kx = grid_x[1] + w + 2.2
    ax.text(kx + k / 2, top + 0.25, f"{k}x{k} window\ntaps (kh, kw)", ha="center", va="bottom",
            fontsize=12, weight="bold", linespacing=1.3)
    for i in range(k):
        for j in range(k):
            _cell(ax, kx + j, top - 1 - i, f"{i},{j}", "#eeeeee", fontsize=10)
    _outline(ax, kx, top - k, k, k)
    ax.text(kx + k / 2, top - k - 0.35,
            f"stride 1, no padding:\n{oh}x{ow} = {oh * ow} windows,\nslid left to right, top to bottom",
            ha="center", va="top", fontsize=11, color="#333333")

    # ---- bottom: the column matrix --------------------------------------------------
    mx, my = 3.0, 0.0  # lower-left corner of the matrix
    rows, width = cols.shape
    for r in range(rows):
        for q in range(width):
            ch, rest = divmod(q, k * k)
            kh = rest // k
            _cell(ax, mx + q, my + rows - 1 - r, cols[r, q], CHANNEL_COLOURS[ch][kh % 2], fontsize=12.5,
                  weight="bold" if r == hi_row else "normal")
    _outline(ax, mx, my + rows - 1 - hi_row, width, 1)
    # heavier separators between channel blocks
    for ch in range(1, c):
        ax.plot([mx + ch * k * k] * 2, [my, my + rows], color="black", linewidth=1.8, zorder=4)

    # column headers: c, then kh, then kw (kw varies fastest)
    hy = my + rows + 0.15
    ax.text(mx - 0.3, hy + 0.25, "kw", ha="right", va="center", fontsize=11)
    ax.text(mx - 0.3, hy + 0.85, "kh", ha="right", va="center", fontsize=11)
    ax.text(mx - 0.3, hy + 1.5, "c", ha="right", va="center", fontsize=11)
    for q in range(width):
        ax.text(mx + q + 0.5, hy + 0.25, str(q % k), ha="center", va="center", fontsize=11)
    for b in range(c * k):
        ax.text(mx + b * k + k / 2, hy + 0.85, f"kh={b % k}", ha="center", va="center", fontsize=11)
        ax.plot([mx + b * k + 0.1, mx + (b + 1) * k - 0.1], [hy + 0.6] * 2, color="#777777", linewidth=0.8)
    for ch in range(c):
        ax.text(mx + ch * k * k + k * k / 2, hy + 1.5, f"c = {ch}", ha="center", va="center", fontsize=12,
                weight="bold")
        ax.plot([mx + ch * k * k + 0.1, mx + (ch + 1) * k * k - 0.1], [hy + 1.22] * 2, color="black",
                linewidth=1.0)
    ax.text(mx + width / 2, hy + 2.35,
            f"cols = fastconv.im2col(x, {k}):  shape (N*OH*OW, C*KH*KW) = {cols.shape}\n"
            "row r = (n*OH + oh)*OW + ow,   column q = (c*KH + kh)*KW + kw",
            ha="center", va="bottom", fontsize=12, family="monospace", linespacing=1.5)

    # row labels: (n, oh, ow), ow varies fastest
    ax.text(mx - 1.3, my + rows + 0.25, "row: (n, oh, ow)", ha="right", va="center", fontsize=11)
    for r in range(rows):
        i, j = divmod(r, ow)
        ax.text(mx - 0.3, my + rows - 0.5 - r, f"row {r}:  (0, {i}, {j})", ha="right", va="center",
                fontsize=11.5, color=HIGHLIGHT if r == hi_row else "black",
                weight="bold" if r == hi_row else "normal")

    # the highlighted window is the highlighted row
    ax.text(mx + width + 0.3, my + rows - 0.5 - hi_row,
            f"\u25c0 the red window\n    (oh, ow) = {HIGHLIGHT_WINDOW}", ha="left", va="center",
            fontsize=12, color=HIGHLIGHT, weight="bold")

    ax.set_xlim(-1.6, mx + width + 4.6)
    ax.set_ylim(my - 0.3, top + 1.7)
    fig.savefig(path, dpi=130, bbox_inches="tight", pad_inches=0.1, facecolor="white")
    plt.close(fig)


def main(output_dir=DEFAULT_OUTPUT):
    """Write every figure into ``output_dir``; return the paths written."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "im2col_layout.png")
    draw_im2col_layout(path)
    return [path]


if __name__ == "__main__":
    for written in main(*sys.argv[1:2]):
        print(written)
