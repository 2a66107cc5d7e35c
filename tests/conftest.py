"""Shared fixtures and hypothesis profiles.

Profiles: ``ci`` (default, a few hundred examples per property) and ``long``
(``pytest --hypothesis-profile=long``) for a thorough search.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng():
    """A seeded generator, fresh per test."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def torch():
    """PyTorch when importable; tests that need it are skipped otherwise."""
    return pytest.importorskip("torch")
