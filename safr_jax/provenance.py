"""Where a result came from: package versions, the git commit, ``results.json``;
and the one way safr-jax writes a file (``write_file``, ``write_text``,
``write_json``: atomic, so a reader or a kill never leaves half a file).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import platform
import subprocess
import tempfile
import time
from typing import Any, Callable

from safr_jax import errors, startup

__all__ = ["versions", "git_commit", "host_cpu", "write_file", "write_text", "write_json",
           "results_record"]

# The process' umask, read once: mkstemp creates its file 0600, and a run's
# files get the mode an ordinary open() would give them.
_UMASK = os.umask(0o022)
os.umask(_UMASK)

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


def host_cpu() -> str | None:
  """The host's CPU model (/proc/cpuinfo): XLA:CPU's results are deterministic
  on one kind of CPU, not across kinds, so a run records which it trained on."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      return next((line.split(":", 1)[1].strip() for line in f
                   if line.startswith("model name")), None)
  except OSError:
    return None


def git_commit() -> str | None:
  """The commit of the safr-jax checkout this code runs from (None if not one)."""
  try:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
        capture_output=True, text=True, timeout=5, check=True).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None


def write_file(path: str | os.PathLike,
               content: str | bytes | Callable[[pathlib.Path], Any]) -> pathlib.Path:
  """Writes ``path`` whole or not at all: the one way safr-jax writes a file.

  The content goes to a temporary file of a unique name in the same folder
  (``.<stem>.<random>.tmp<suffix>``, so a writer choosing the format by the
  suffix, e.g. ``savefig``, still can), is synced to disk, then renamed over
  ``path``: a reader sees the old file or the new one, never half; writers of
  the same path at once never collide (the last rename wins); the temporary
  file is removed on any failure or stop (full disk, SIGINT).

  Args:
    path: the file to write; its folder must exist.
    content: text (UTF-8), bytes, or a function that writes the file it is
      given.

  Returns:
    ``path``.

  Raises:
    WorkdirError: the folder cannot take the file (full, read-only, no
      permission); one line naming ``path``.
  """
  path = pathlib.Path(path)
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                               suffix=f".tmp{path.suffix}")
    if callable(content):
      os.close(fd)
      content(pathlib.Path(tmp))
      fd = os.open(tmp, os.O_RDONLY)
      os.fsync(fd)
      os.close(fd)
    else:
      with os.fdopen(fd, "wb") as f:
        f.write(content.encode("utf-8") if isinstance(content, str) else content)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_UMASK)
    startup.check()  # a stop that could not be raised yet: not put in place
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None:
      with contextlib.suppress(OSError):
        os.unlink(tmp)
    if isinstance(e, OSError) and e.errno in errors.UNWRITABLE_ERRNOS:
      advice = ("; free some space and run again"
                if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
      raise errors.WorkdirError(f"cannot write {path}: {e.strerror}{advice}") from None
    raise
  return path


def write_text(path: str | os.PathLike, text: str) -> None:
  """Replaces ``path`` with ``text`` (UTF-8) atomically (``write_file``)."""
  write_file(path, text)


def write_json(path: str | os.PathLike, value: Any) -> None:
  """Writes ``value`` as indented JSON, atomically (``write_text``)."""
  write_text(path, json.dumps(value, indent=2, default=str) + "\n")


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
                  "kind": jax.devices()[0].device_kind, "host_cpu": host_cpu()},
      "versions": versions(),
      "git_commit": git_commit(),
      "config": config.to_dict(),
      "workdir": str(workdir),
  }
