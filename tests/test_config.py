"""show_config and the package's identity."""

import io

import fastconv
from fastconv._config import config_dict


def test_show_config_prints_the_build():
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    text = buf.getvalue()
    for key in ("fastconv:", "cython:", "compile_args:", "openmp:", "num_threads:", "simd:", "numpy:", "blas:"):
        assert key in text
    assert fastconv.__version__ in text


def test_config_dict_is_consistent():
    info = config_dict()
    assert info["fastconv"] == fastconv.__version__
    assert isinstance(info["openmp"], bool)
    assert info["num_threads"] == fastconv.get_num_threads()
    if info["openmp"]:
        assert any("openmp" in flag for flag in info["compile_args"])
    else:
        assert not any("openmp" in flag for flag in info["compile_args"])
