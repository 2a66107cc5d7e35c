"""The example scripts run end to end against the installed fastconv and do what they claim."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(tmp_path, script, *args, timeout=300):
    """Run ``examples/<script>`` in a fresh interpreter from ``tmp_path``.

    The working directory is not the repository root, so ``import fastconv``
    finds the installed (built) package and not the source tree.
    """
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def last_accuracy(stdout):
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"test accuracy: (\d\.\d+)", last)
    assert match, f"last line is not 'test accuracy: ...': {last!r}"
    return float(match.group(1))


def test_train_digits_learns_with_both_backends(tmp_path):
    """Three epochs: far better than chance, and fastconv.reference trains the same network to the same place."""
    pytest.importorskip("sklearn")
    accuracies = {}
    for backend in ("fastconv", "reference"):
        out = run_example(tmp_path, "train_digits.py", "--epochs", "3", "--seed", "0", "--backend", backend)
        assert f"backend {backend}" in out
        assert out.count("s/epoch") == 3 and "time per epoch" in out
        accuracies[backend] = last_accuracy(out)
    assert accuracies["fastconv"] >= 0.80  # chance is 0.10; three epochs reach ~0.93
    assert abs(accuracies["fastconv"] - accuracies["reference"]) <= 0.02


def test_train_digits_rejects_bad_arguments(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "train_digits.py"), "--epochs", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--epochs" in proc.stderr
