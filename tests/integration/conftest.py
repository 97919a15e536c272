"""Shared fixtures of the integration tests: the binary under test and the
default model, both from the environment that build.sh test sets."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def lp_bin():
    path = os.environ.get("LP_BIN", os.path.join(ROOT, "build", "loraplex"))
    if not os.access(path, os.X_OK):
        pytest.skip(f"skipped: no loraplex binary at {path} (run ./build.sh)")
    return path


@pytest.fixture(scope="session")
def default_model():
    path = os.environ.get("LP_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not os.path.exists(path):
        pytest.skip(f"skipped: default model missing at {path} (run ./build.sh)")
    return path
