"""What a person watching training sees: a per-epoch progress bar or log lines.

On a terminal a tqdm bar counts the steps of the current epoch (so its ETA is
the epoch's; the run's, to its epoch bound, follows loss, accuracy and
examples/s), titled ``epoch E/N`` (``≤N`` with early stopping); epoch
summaries and warnings print on their own lines above it. Elsewhere (a log
file, a batch job) a log line every ``train.log_every_steps``.
"""

from __future__ import annotations

import datetime
import sys
import time

from absl import logging

__all__ = ["Progress"]


class Progress:
  """Progress of one training invocation.

  Args:
    enabled_bar: draw a tqdm bar (only when stderr is a terminal).
    steps_per_epoch, num_epochs: the run's shape.
    early_stopping: whether the run may end before ``num_epochs``.
    batch_size: global batch, for examples/s.
    initial_step: the step this invocation starts (or resumes) at.
  """

  def __init__(self, *, enabled_bar: bool, steps_per_epoch: int, num_epochs: int,
               early_stopping: bool, batch_size: int, initial_step: int):
    self._spe, self._epochs, self._batch = steps_per_epoch, num_epochs, batch_size
    self._epochs_text = f"{'≤' if early_stopping else ''}{num_epochs}"
    self._use_bar = enabled_bar and sys.stderr.isatty()
    self._bar = None
    self._start_step, self._start = initial_step, time.monotonic()
    self._total = steps_per_epoch * num_epochs

  def _epoch_bar(self, step: int):
    """The bar of the epoch that ``step`` (1-based, just finished) is in."""
    import tqdm  # pylint: disable=g-import-not-at-top
    epoch = (step - 1) // self._spe + 1
    if self._bar is None or self._bar_epoch != epoch:
      self.close()
      self._bar = tqdm.tqdm(total=self._spe, initial=step - 1 - (epoch - 1) * self._spe,
                            unit="step", dynamic_ncols=True, leave=False,
                            desc=f"epoch {epoch}/{self._epochs_text}")
      self._bar_epoch = epoch
    return self._bar

  def update(self, step: int, scalars: dict[str, float] | None) -> None:
    """After ``step`` (1-based); ``scalars``: the last window's means, if any."""
    if self._use_bar:
      bar = self._epoch_bar(step)
      bar.update(step - (self._bar_epoch - 1) * self._spe - bar.n)
      if scalars:
        # An ordered postfix (tqdm sorts a dict's keys): loss first, so a
        # narrow terminal cuts the least useful field; the run's ETA to its
        # epoch bound beside the bar's own (the epoch's).
        bar.set_postfix_str(f"loss {scalars['loss']:.4f}, acc {scalars['accuracy']:.3f}, "
                            f"{self.rate(step):.0f} ex/s, run ≤ {self.eta(step)}")
    elif scalars:
      epoch = (step - 1) // self._spe + 1
      logging.info("epoch %d/%s step %d/%d  loss %.4f  acc %.3f  keep %.3f  "
                   "%.0f ex/s  ETA %s (to epoch %d)", epoch, self._epochs_text,
                   step - (epoch - 1) * self._spe, self._spe, scalars["loss"],
                   scalars["accuracy"], scalars["keep_rate"], self.rate(step),
                   self.eta(step), self._epochs)

  def say(self, text: str) -> None:
    """A line of its own (above the bar on a terminal) and in the log."""
    if self._use_bar and self._bar is not None:
      import tqdm  # pylint: disable=g-import-not-at-top
      tqdm.tqdm.write(text, file=sys.stderr)
    else:
      logging.info("%s", text)

  def eta(self, step: int) -> datetime.timedelta:
    """Time left to the last epoch at this invocation's pace (an early stop
    ends sooner)."""
    done = step - self._start_step
    left = (self._total - step) * (time.monotonic() - self._start) / max(done, 1)
    return datetime.timedelta(seconds=int(left))

  def rate(self, step: int) -> float:
    """Examples/s of this invocation so far."""
    return (step - self._start_step) * self._batch / max(time.monotonic() - self._start, 1e-9)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
