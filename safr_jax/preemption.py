"""Preemption as a normal event: SIGTERM/SIGINT stop training at a step boundary.

TPU VMs, SLURM and Kubernetes send SIGTERM before they take a machine; a
person presses Ctrl-C (SIGINT). ``StopRequests`` turns the first such signal
into a request that the training loop honours after the current step: it
saves a checkpoint, flushes the metrics and raises ``Stopped``, which the
command line reports in one line and exits with 128 + the signal (143 / 130).
A second signal while saving is noted and waits for the save; a third exits at
once.

Multi-process jobs must agree on the step they stop at: there the SIGTERM
handler stays JAX's own (the coordination service's preemption notifier), and
``multihost_utils.reached_preemption_sync_point`` says when every process has
reached the agreed step; a SIGINT on any process is shared with the others by
an all-gather every ``sync_every`` steps.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import jax
import numpy as np

__all__ = ["Stopped", "StopRequests"]

_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class Stopped(Exception):
  """Training stopped on a signal after saving a checkpoint at ``step``."""

  def __init__(self, signum: int, step: int):
    super().__init__(f"stopped at step {step} (checkpoint saved); run the same "
                     "command to resume")
    self.signum, self.step = signum, step

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class StopRequests:
  """Installs SIGTERM/SIGINT handlers for its ``with`` block (main thread only)."""

  def __init__(self, sync_every: int = 10):
    self.signum: int | None = None
    self._count = 0
    self._previous: dict[int, object] = {}
    self._sync_every = max(1, sync_every)
    self._multi = jax.process_count() > 1

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      wanted = [signal.SIGINT] if self._multi else [signal.SIGTERM, signal.SIGINT]
      for signum in wanted:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    del frame
    self._count += 1
    if self._count == 1:
      self.signum = signum
      print(f"\n{_NAMES.get(signum, signum)} received: stopping after this step "
            "and saving a checkpoint...", file=sys.stderr, flush=True)
    elif self._count == 2:
      print("still saving the checkpoint; a third signal exits at once and may "
            "lose it", file=sys.stderr, flush=True)
    else:
      os._exit(128 + signum)

  def should_stop(self, step: int) -> bool:
    """Whether to stop after ``step``; every process gets the same answer."""
    if not self._multi:
      return self.signum is not None
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    try:
      preempted = multihost_utils.reached_preemption_sync_point(step)
    except RuntimeError:  # no preemption service in this job
      preempted = False
    if preempted and self.signum is None:
      self.signum = signal.SIGTERM
    if step % self._sync_every == 0:
      local = np.int32(self.signum or 0)
      agreed = int(np.max(multihost_utils.process_allgather(local)))
      if agreed and self.signum is None:
        self.signum = agreed
      return bool(agreed) or preempted
    return preempted
