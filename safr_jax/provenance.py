"""Where a result came from: package versions, the git commit, ``results.json``."""

from __future__ import annotations

import json
import pathlib
import platform
import subprocess
import time
from typing import Any

__all__ = ["versions", "git_commit", "write_json", "results_record"]

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


def results_record(trainer: Any, history: dict[str, Any], *, test: dict[str, float],
                   test_last_epoch: dict[str, float], last_step: int, start_time: float,
                   workdir: pathlib.Path) -> dict[str, Any]:
  """The contents of ``results.json`` for a finished run of ``trainer``."""
  import jax  # pylint: disable=g-import-not-at-top
  config, bundle = trainer.config, trainer.bundle
  seconds = history["train_seconds"]
  return {
      "dataset": bundle.info,
      "source": bundle.source,
      "test": test,
      "test_last_epoch": test_last_epoch,
      "last_step": last_step,
      "best_dev_accuracy": history["best_dev_accuracy"],
      "best_epoch": history["best_epoch"],
      "best_step": history["best_step"],
      "epochs_run": len(history["dev_history"]),
      "dev_history": history["dev_history"],
      "vmask_kl_history": history.get("vmask_kl_history"),
      "stopped_early": bool(history.get("stopped_early", False)),
      "wall_time_s": time.time() - start_time,
      "train_seconds": seconds,
      # Training steps only (no evaluation), first-step compilation included.
      "train_examples_per_s": (history["train_steps"] * config.train.batch_size
                               / seconds) if seconds else None,
      "devices": {"count": jax.device_count(), "processes": jax.process_count(),
                  "kind": jax.devices()[0].device_kind},
      "versions": versions(),
      "git_commit": git_commit(),
      "config": config.to_dict(),
      "workdir": str(workdir),
  }
