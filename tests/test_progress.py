"""What a person watching training sees on a terminal."""

import io
import re
import sys

from safr_jax import progress as progress_lib


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_the_bar_shows_loss_first_and_the_runs_eta(monkeypatch):
  terminal = _Terminal()
  monkeypatch.setattr(sys, "stderr", terminal)
  bar = progress_lib.Progress(enabled_bar=True, steps_per_epoch=10, num_epochs=5,
                              early_stopping=True, batch_size=32, initial_step=0)
  bar.update(3, {"loss": 0.6931, "accuracy": 0.5, "keep_rate": 1.0})
  bar.close()
  line = terminal.getvalue().replace("\r", "\n").strip().splitlines()[-1]
  # tqdm sorts a dict postfix (acc, ex_s, loss): loss first needs an ordered one.
  assert re.search(r"epoch 1/≤5.*loss 0\.6931, acc 0\.500, \d+ ex/s, run ≤ \d+:\d\d:\d\d", line), line


def test_a_terminals_warning_box_starts_on_its_own_first_line():
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from safr_jax import runtime  # pylint: disable=g-import-not-at-top
  record = lambda level, msg: std_logging.LogRecord("x", level, "p", 1, msg, None, None)
  plain = runtime._PlainFormatter()  # pylint: disable=protected-access
  assert plain.format(record(std_logging.WARNING, "\n!!!\n!! DATA")) == "!!!\n!! DATA"
  assert plain.format(record(std_logging.WARNING, "disk low")) == "warning: disk low"
  assert plain.format(record(std_logging.INFO, "data: sst")) == "data: sst"
