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
import pathlib
import time
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

__all__ = ["Checkpoints", "CheckpointError", "Restored"]

_METRIC = "dev_accuracy"


class CheckpointError(RuntimeError):
  """A checkpoint could not be used; the message says which and why."""


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

  # -- queries ---------------------------------------------------------------

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def best_step(self) -> int | None:
    return self._manager.best_step()

  # -- save / restore --------------------------------------------------------

  def save(self, step: int, *, state: Any, meta: dict[str, Any],
           dev_accuracy: float | None = None) -> None:
    metrics = (None if dev_accuracy is None
               else {_METRIC: float(dev_accuracy), "step": int(step)})
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                meta=ocp.args.JsonSave(meta)),
        metrics=metrics, force=True)

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
    if abstract_state is None:
      abstract_state = self._local_target(step)
    restored = self._manager.restore(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            meta=ocp.args.JsonRestore()))
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
        if check_meta is not None:
          check_meta(meta)
        restored = self.restore(step, abstract_state)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        failures.append(f"step {step}: {type(e).__name__}: {_first_line(e)}")
        broken.append(step)
        logging.warning("Checkpoint %s/%d is unreadable (%s); trying the previous "
                        "one.", self.directory, step, _first_line(e))
        continue
      if failures:
        moved = self._set_aside(broken)
        logging.warning("Resumed from the older checkpoint at step %d because "
                        "newer ones failed (%s); moved them aside to %s.", step,
                        "; ".join(failures), ", ".join(moved))
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

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def multihost_sync(name: str) -> None:
  """Barrier across processes (no-op in a single-process job)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _first_line(e: BaseException) -> str:
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__
