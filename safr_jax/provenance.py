"""Where a result came from: package versions, the git commit, ``results.json``."""

from __future__ import annotations

import json
import pathlib
import platform
import subprocess
from typing import Any

__all__ = ["versions", "git_commit", "write_json"]

PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
            "tensorflow-datasets", "numpy", "safr-jax")


def versions() -> dict[str, str]:
  """Python's and the installed ``PACKAGES``' versions."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  out = {"python": platform.python_version()}
  for name in PACKAGES:
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return out


def git_commit() -> str | None:
  """The commit of the safr-jax checkout this code runs from (None if not one)."""
  try:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
        capture_output=True, text=True, timeout=5, check=True).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None


def write_json(path: pathlib.Path, value: Any) -> None:
  """Writes ``value`` as indented JSON atomically (a reader never sees half)."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
  tmp.replace(path)
