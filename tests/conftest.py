"""Shared fixtures and hypothesis profiles.

Profiles: ``ci`` (default, a few hundred examples per property), ``long``
for a thorough search and ``dev`` for quick iterations. Select one with the
environment variable (``HYPOTHESIS_PROFILE=long pytest``) or with hypothesis'
pytest option (``pytest --hypothesis-profile=long``); the option wins, since
hypothesis' plugin loads it after this file has loaded the variable's profile.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastconv

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=fastconv.simd_levels())
def level(request):
    """Each SIMD level this machine runs, set for the test (and the previous one restored)."""
    previous = fastconv.set_simd_level(request.param)
    yield request.param
    fastconv.set_simd_level(previous)


@pytest.fixture
def rng():
    """A seeded generator, fresh per test."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def torch():
    """PyTorch when importable; tests that need it are skipped otherwise."""
    return pytest.importorskip("torch")


@pytest.fixture
def every_call_parallel(monkeypatch):
    """Small test arrays would run on one thread (threads_for's grain): make every call parallel."""
    import fastconv._threads

    monkeypatch.setattr(fastconv._threads, "GRAIN", 1)
