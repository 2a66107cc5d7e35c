"""The L2 and L3 cache sizes read from sysfs, and what they size: the bands of rows, streamed outs."""

import io

import pytest

import fastconv
from fastconv import _conv, _im2col
from fastconv._cache import l2_cache_bytes, l3_cache_bytes, parse_cache_size


@pytest.mark.parametrize("text, size", [
    ("512K\n", 512 << 10), ("2048K", 2 << 20), ("1M", 1 << 20), ("32768K", 32 << 20), ("48K", 48 << 10),
    ("1024", 1024), ("1MiB", 1 << 20), ("640KB", 640 << 10),
    ("", None), ("K", None), ("0K", None), ("-1K", None), ("1.5M", None), ("lots", None),
])
def test_parse_cache_size(text, size):
    assert parse_cache_size(text) == size


def write_cache(root, index, level, kind, size):
    folder = root / f"index{index}"
    folder.mkdir(parents=True)
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (folder / name).write_text(f"{value}\n")


def test_l2_cache_from_sysfs(tmp_path):
    # Linux lists L1 data and instruction, L2 and L3; the L2 is the one of level 2
    write_cache(tmp_path, 0, 1, "Data", "32K")
    write_cache(tmp_path, 1, 1, "Instruction", "32K")
    write_cache(tmp_path, 2, 2, "Unified", "512K")
    write_cache(tmp_path, 3, 3, "Unified", "32768K")
    assert l2_cache_bytes(tmp_path) == 512 << 10
    assert l3_cache_bytes(tmp_path) == 32 << 20


def test_l2_cache_unknown(tmp_path):
    assert l2_cache_bytes(tmp_path / "missing") is None  # not Linux, or no sysfs in the container
    write_cache(tmp_path / "l1", 0, 1, "Data", "48K")
    assert l2_cache_bytes(tmp_path / "l1") is None
    assert l3_cache_bytes(tmp_path / "l1") is None and l3_cache_bytes(tmp_path / "missing") is None
    write_cache(tmp_path / "instruction", 0, 2, "Instruction", "1M")
    assert l2_cache_bytes(tmp_path / "instruction") is None
    write_cache(tmp_path / "garbled", 0, 2, "Data", "a lot")
    assert l2_cache_bytes(tmp_path / "garbled") is None
    (tmp_path / "unreadable" / "index0").mkdir(parents=True)  # no files in it
    assert l2_cache_bytes(tmp_path / "unreadable") is None


def test_band_budget():
    assert _conv.band_budget(None) == 2**19  # unknown: what the Xeon (2 MiB of L2) measured best
    assert _conv.band_budget(2 << 20) == 2**19
    assert _conv.band_budget(512 << 10) == 2**17  # AMD EPYC: a quarter of its L2
    assert _conv.band_budget(1 << 20) == 2**18
    assert _conv.band_budget(32 << 20) == 2**19 and _conv.band_budget(64 << 10) == 2**16
    assert _conv.BAND_BUDGET == _conv.band_budget(l2_cache_bytes())


def test_show_config_names_the_l2_cache():
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    line = next(line for line in buf.getvalue().splitlines() if line.startswith("l2_cache:"))
    assert f"bands of {_conv.BAND_BUDGET >> 10} KiB" in line
    size = l2_cache_bytes()
    assert ("unknown" if size is None else f"{size >> 10} KiB") in line


def test_stream_bytes():
    # an out from half the L3 on is streamed, from 16 MiB at most (and where the L3 is unknown)
    assert _im2col.stream_bytes(None) == 16 << 20
    assert _im2col.stream_bytes(8 << 20) == 4 << 20  # AMD EPYC Zen 1
    assert _im2col.stream_bytes(32 << 20) == 16 << 20
    assert _im2col.stream_bytes(260 << 20) == 16 << 20  # Intel Xeon
    assert _im2col.STREAM_BYTES == _im2col.stream_bytes(l3_cache_bytes())


def test_show_config_names_the_l3_cache():
    from fastconv._config import _size

    buf = io.StringIO()
    fastconv.show_config(file=buf)
    line = next(line for line in buf.getvalue().splitlines() if line.startswith("l3_cache:"))
    size = l3_cache_bytes()
    assert line.split(":", 1)[1].strip().startswith("unknown" if size is None else _size(size))
    assert line.endswith(f"(im2col streams an out from {_size(_im2col.STREAM_BYTES)})")
    assert _size(8 << 20) == "8 MiB" and _size(1536 << 10) == "1536 KiB"
