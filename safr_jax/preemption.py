"""Preemption as a normal event: SIGTERM/SIGINT stop training at a step boundary.

TPU VMs, SLURM and Kubernetes send SIGTERM before they take a machine; a
person presses Ctrl-C (SIGINT). Whenever it comes, the process ends with one
line on stderr and exit status 128 + the signal (143 / 130):

* during start-up (imports, data loading, before the first step):
  ``startup`` (installed at process start) or the loop says "stopped during
  start-up; nothing was trained";
* during training: ``StopRequests`` turns the first signal into a request
  that the loop honours after the current step: it saves a checkpoint (or
  keeps the one just saved at that step), flushes the metrics and raises
  ``Stopped``, which the command line reports;
* during the final test evaluation: the evaluation is abandoned (training is
  finished and saved; the same command runs the test);
* after the results are written, the run is complete and says so.

A second signal while stopping is noted and waits for the save; a third exits
at once.

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

from safr_jax import startup

__all__ = ["Stopped", "StopRequests"]


class Stopped(Exception):
  """Training stopped on a signal; ``str()`` is the line to show the user."""

  def __init__(self, signum: int, step: int, message: str | None = None):
    super().__init__(message or f"stopped at step {step} (checkpoint saved); run the "
                     "same command to resume")
    self.signum, self.step = signum, step

  @classmethod
  def during_start_up(cls, signum: int) -> "Stopped":
    return cls(signum, 0, startup.TRAIN_MESSAGE)

  @classmethod
  def before_test(cls, signum: int, step: int) -> "Stopped":
    return cls(signum, step, f"stopped during the final test evaluation: training "
               f"finished at step {step} and is saved; run the same command to test it")

  @classmethod
  def after_results(cls, signum: int, results: os.PathLike | str) -> "Stopped":
    return cls(signum, -1, f"{signal.Signals(signum).name} came as the run finished; it is complete "
               f"({results})")

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class StopRequests:
  """Installs SIGTERM/SIGINT handlers for its ``with`` block (main thread only).

  ``stage`` ("start-up", "training", "testing"; set by the training loop) is
  what the first signal's notice says will happen.
  """

  _NOTICES = {
      "start-up": "stopping before training starts...",
      "training": "stopping after this step and saving a checkpoint...",
      "testing": "stopping the final test evaluation (training is finished and "
                 "saved)...",
  }

  def __init__(self, sync_every: int = 10):
    self.signum: int | None = None
    self.stage = "start-up"
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
    # startup's handling is back: a stop now comes after training.
    startup.say_on_stop("{signal} received while exiting; the run's files are closed")
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    del frame
    self._count += 1
    if self._count == 1:
      self.signum = signum
      print(f"\n{signal.Signals(signum).name} received: {self._NOTICES[self.stage]}",
            file=sys.stderr, flush=True)
    elif self._count == 2:
      print("still stopping; a third signal exits at once and may lose the "
            "checkpoint being saved", file=sys.stderr, flush=True)
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

  def stop_now(self) -> bool:
    """Whether to abandon an evaluation now (no step to agree on).

    Single-process only: agreeing across processes would cost a collective
    per batch, so a multi-process job finishes its evaluation.
    """
    return not self._multi and self.signum is not None
