"""The one place that talks to orbax: save, find and restore training checkpoints.

A checkpoint at step s holds two items:

* ``state``: the train state pytree (params, optimizer state, step, RNG key
  data -- typed keys do not checkpoint);
* ``meta``: JSON -- the data iterator's state, the early-stopping record, the
  model config it was trained with, the dev metrics (if any).

The latest checkpoint and the best one by dev accuracy are both kept: orbax's
``max_to_keep`` together with ``best_fn`` would evict the latest, so we use a
``preservation_policy`` (and still set ``best_fn`` so best-k survives a
restart). Checkpoints saved between epochs carry no dev metrics; they are kept
only while they are the latest.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import json
import logging as std_logging
import os
import pathlib
import re
import shutil
import time
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from safr_jax import errors
from safr_jax.errors import CheckpointError

__all__ = ["Checkpoints", "CheckpointError", "Restored"]

_METRIC = "dev_accuracy"


@dataclasses.dataclass
class Restored:
  step: int
  state: Any
  meta: dict[str, Any]


class Checkpoints:
  """Latest + best checkpoints of one run in ``directory``.

  Call ``save``/``restore`` on every process of a multi-host job: orbax
  coordinates who writes.
  """

  def __init__(self, directory: str | pathlib.Path, *, keep_best: int = 1,
               async_save: bool = False, cleanup_tmp: bool = False):
    """``cleanup_tmp``: delete half-written saves (``N.orbax-checkpoint-tmp``,
    left by a kill during a save) on opening. Only the run's own trainer may
    ask: a reader (explain, evaluate) could delete a save in progress."""
    self.directory = pathlib.Path(directory).absolute()
    # Ties go to the earlier step, as early stopping counts only strict
    # improvements as new bests.
    best = lambda metrics: (metrics[_METRIC], -metrics.get("step", 0))
    options = ocp.CheckpointManagerOptions(
        best_fn=best,
        best_mode="max",
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=1),
            policies.BestN(get_metric_fn=best, reverse=False, n=keep_best,
                           keep_checkpoints_without_metrics=False),
        ]),
        enable_async_checkpointing=async_save,
        create=True,
        cleanup_tmp_directories=cleanup_tmp,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=("state", "meta"))
    _hide_save_failure_logs()

  # -- queries ---------------------------------------------------------------

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step()

  def has(self, step: int) -> bool:
    """Whether ``step`` is saved (a save returns only once it is complete)."""
    return step in self._manager.all_steps()

  # -- save / restore --------------------------------------------------------

  def save(self, step: int, *, state: Any, meta: dict[str, Any],
           dev_accuracy: float | None = None) -> None:
    """Saves ``step``; returns when it is on disk.

    Raises:
      WorkdirError: the disk is full (the message gives the space a
        checkpoint needs) or cannot be written; the half-written save is
        removed, and the previous checkpoints are untouched, so the same
        command resumes once there is room.
    """
    metrics = (None if dev_accuracy is None
               else {_METRIC: float(dev_accuracy), "step": int(step)})
    try:
      self._manager.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta)),
          metrics=metrics, force=True)
      return
    except Exception as e:  # pylint: disable=broad-except
      code = _unwritable_errno(e)
      if code is None:
        raise
      logging.vlog(1, "Saving %s/%d failed:", self.directory, step, exc_info=True)
    # Outside the `except` block, so the failed save's frames are released:
    # orbax's write coroutines that were still pending close now, while
    # imports work, instead of at interpreter exit (where each printed a
    # "sys.meta_path is None" traceback).
    gc.collect()
    self._remove_partial(step)
    if code in (errno.ENOSPC, errno.EDQUOT):
      # Orbax's files take ~1.2x the arrays' bytes plus ~50 KB of metadata; the
      # last checkpoint on disk, where there is one, is the measure itself.
      need = max(int(1.2 * _tree_bytes(state)) + len(json.dumps(meta, default=str))
                 + 64_000, self._disk_bytes(self.latest_step()))
      latest = self.latest_step()
      then = ("resume from step {latest}" if latest is not None
              else "start again (no checkpoint was saved yet)").format(latest=latest)
      raise errors.WorkdirError(
          f"no space left in {self.directory} for checkpoint {step}: it needs about "
          f"{_megabytes(need)}, {_megabytes(shutil.disk_usage(self.directory).free)} "
          f"are free. Free some space there and run the same command to {then}.") from None
    raise errors.WorkdirError(f"cannot write checkpoint {step} in {self.directory}: "
                              f"{os.strerror(code)}") from None

  def _remove_partial(self, step: int) -> None:
    """Deletes what a failed save of ``step`` left (orbax's temporary folder):
    on a full disk it holds the space the next try needs."""
    if jax.process_index() != 0:
      return
    for path in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
      shutil.rmtree(path, ignore_errors=True)

  def _disk_bytes(self, step: int | None) -> int:
    if step is None:
      return 0
    return sum(f.stat().st_blocks * 512 for f in (self.directory / str(step)).rglob("*")
               if f.is_file())

  def read_meta(self, step: int) -> dict[str, Any]:
    restored = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"])

  def restore(self, step: int, abstract_state: Any = None) -> Restored:
    """Restores ``step`` into the structure/shardings of ``abstract_state``.

    Without ``abstract_state`` the state comes back as saved (nested dicts of
    arrays on this process' first device), e.g. for reading a run's params --
    whatever device count or process count it was saved from.
    """
    try:
      if abstract_state is None:
        abstract_state = self._local_target(step)
      restored = self._manager.restore(
          step, args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state),
              meta=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      logging.vlog(1, "Restoring %s/%d failed:", self.directory, step, exc_info=True)
      raise CheckpointError(
          f"checkpoint {self.directory / str(step)} cannot be read ({_short(e)}); "
          "move it aside to use the others") from e
    return Restored(step=step, state=restored["state"], meta=dict(restored["meta"]))

  def _local_target(self, step: int) -> Any:
    """The saved tree's shapes and dtypes, placed on this process' first device.

    Orbax restores a checkpoint without a target only onto the topology it was
    saved from ("Topology mismatch" after data-parallel training otherwise).
    """
    handler = ocp.StandardCheckpointHandler()
    try:
      saved = handler.metadata(self.directory / str(step) / "state")
    finally:
      handler.close()
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved.tree)

  def restore_newest_readable(self, abstract_state: Any,
                              check_meta=None) -> Restored | None:
    """The newest checkpoint that restores; older ones are tried if it fails.

    Args:
      abstract_state: target structure (``jax.ShapeDtypeStruct`` leaves).
      check_meta: optional ``meta -> None`` that raises ``CheckpointError``
        when the checkpoint cannot be used at all (e.g. another model shape);
        that error is not swallowed.

    Returns:
      None if there is no checkpoint.

    Raises:
      CheckpointError: when checkpoints exist but none can be read.
    """
    failures, broken = [], []
    for step in reversed(self.steps()):
      try:
        meta = self.read_meta(step)
      except Exception as e:  # pylint: disable=broad-except
        logging.vlog(1, "Reading %s/%d failed:", self.directory, step, exc_info=True)
        failures.append(f"step {step}: {_short(e)}")
        broken.append(step)
        continue
      if check_meta is not None:
        check_meta(meta)  # a CheckpointError here is final
      try:
        restored = self.restore(step, abstract_state)
      except CheckpointError as e:
        failures.append(f"step {step}: {_short(e.__cause__ or e)}")
        broken.append(step)
        continue
      if failures:
        # One line: orbax's own tracebacks are only shown at --verbosity=1.
        moved = self._set_aside(broken)
        logging.warning("Unreadable checkpoint(s) %s moved aside to %s; resumed from "
                        "step %d.", "; ".join(failures), ", ".join(moved), step)
      return restored
    if failures:
      raise CheckpointError(
          f"no checkpoint in {self.directory} could be read: " + "; ".join(failures))
    return None

  def _set_aside(self, steps: list[int]) -> list[str]:
    """Renames unreadable step folders (kept for inspection, ignored by orbax)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    if jax.process_index() == 0:
      for step in steps:
        target = self.directory / f"unreadable-{step}-{stamp}"
        (self.directory / str(step)).rename(target)
        moved.append(str(target))
    multihost_sync("safr_jax_set_aside")
    self._manager.reload()
    return moved

  def close(self) -> None:
    """Waits for a save in flight, then releases the manager (idempotent).

    Every exit path calls it: orbax's threads must not outlive the run into
    interpreter shutdown."""
    if self._manager is not None:
      manager, self._manager = self._manager, None
      try:
        manager.wait_until_finished()
      finally:
        manager.close()


def multihost_sync(name: str) -> None:
  """Barrier across processes (no-op in a single-process job)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _unwritable_errno(e: BaseException) -> int | None:
  """The errno of a full / read-only / forbidden disk behind a failed save.

  Orbax raises the ``OSError`` of its own files, or TensorStore's
  ``ValueError("RESOURCE_EXHAUSTED: ... [os_error_code='28']")``."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in errors.UNWRITABLE_ERRNOS:
      return e.errno
    code = re.search(r"os_error_code='?(\d+)", str(e))
    if code and int(code.group(1)) in errors.UNWRITABLE_ERRNOS:
      return int(code.group(1))
    e = e.__cause__ or e.__context__
  return None


class _SaveFailureLogs(std_logging.Filter):
  """The tracebacks a failed save logs besides raising it -- orbax's writer
  threads', asyncio's futures nobody awaited -- some after the save has raised:
  the caller reports the failure in one line; they show at --verbosity=1."""

  def filter(self, record) -> bool:
    text = str(record.msg)
    logged = (("/orbax/" in record.pathname and "raised an exception" in text)
              or "exception was never retrieved" in text)
    return not logged or logging.get_verbosity() >= 1


_SAVE_FAILURE_LOGS = _SaveFailureLogs()


def _hide_save_failure_logs() -> None:
  for name in ("absl", "asyncio"):  # orbax logs through absl
    logger = std_logging.getLogger(name)
    if _SAVE_FAILURE_LOGS not in logger.filters:
      logger.addFilter(_SAVE_FAILURE_LOGS)


def _tree_bytes(tree: Any) -> int:
  return sum(int(getattr(leaf, "nbytes", 0)) for leaf in jax.tree.leaves(tree))


def _megabytes(n: int) -> str:
  return f"{n / 1e6:.1f} MB"


def _short(e: BaseException, limit: int = 120) -> str:
  """``Type: first line of the message``, cut to ``limit`` characters."""
  text = str(e).strip()
  text = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
  return text if len(text) <= limit else text[:limit - 1] + "…"
