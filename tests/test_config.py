"""show_config and the package's identity."""

import importlib.metadata
import io
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

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


def test_show_config_lists_the_environment_set(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert not any(entry.startswith(("OMP_WAIT_POLICY=", "OPENBLAS_THREAD_TIMEOUT=")) for entry in config_dict()["environment"])
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    monkeypatch.setenv("FASTCONV_UNRELATED", "1")  # (not one that changes how fastconv runs)
    info = config_dict()
    assert "OMP_WAIT_POLICY=PASSIVE" in info["environment"] and "OPENBLAS_THREAD_TIMEOUT=4" in info["environment"]
    assert not any(entry.startswith("FASTCONV_UNRELATED") for entry in info["environment"])
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    line = next(line for line in buf.getvalue().splitlines() if line.startswith("environment:"))
    assert "OMP_WAIT_POLICY=PASSIVE" in line and "OPENBLAS_THREAD_TIMEOUT=4" in line
    for name in config_dict()["environment"]:
        monkeypatch.delenv(name.split("=")[0])
    buf = io.StringIO()
    fastconv.show_config(file=buf)
    assert re.search(r"^environment:\s+\(none\)$", buf.getvalue(), re.MULTILINE)


def test_version_has_one_source():
    """fastconv/_version.py feeds __version__ and, through pyproject's dynamic version, the metadata."""
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", fastconv.__version__)
    assert importlib.metadata.version("fastconv") == fastconv.__version__


def test_console_script_reports_the_version(tmp_path):
    """The installed ``fastconv`` command (not only ``python -m fastconv``) prints the same version."""
    scripts = Path(sysconfig.get_path("scripts"))
    command = next((p for p in (scripts / "fastconv", scripts / "fastconv.exe") if p.exists()), None)
    if command is None:
        pytest.skip(f"no fastconv console script in {scripts} (not a pip-installed fastconv)")
    out = subprocess.run([str(command), "--version"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == f"fastconv {fastconv.__version__}"
