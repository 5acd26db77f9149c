"""Shared test fixtures: golden files and float64 switching."""

import os
import pathlib

import jax
import numpy as np
import pytest

# Golden values of the authors' PyTorch code live beside the checkout (and in CI).
GOLDEN_DIR = pathlib.Path(
    os.environ.get("SAFR_GOLDEN_DIR",
                   pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"))


def load_golden(name: str) -> dict[str, np.ndarray]:
  path = GOLDEN_DIR / name
  if not path.exists():
    raise FileNotFoundError(
        f"golden file {path} is missing; set SAFR_GOLDEN_DIR to the folder "
        "holding regularizers.npz and model.npz")
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture
def x64():
  """Runs a test in float64, as the golden values were computed."""
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", False)
