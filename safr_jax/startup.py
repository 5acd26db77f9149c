"""A stop while a command is still starting: one line and exit 130 / 143.

Importing JAX takes seconds, and until a command installs its own handling
(``preemption`` for training, ``cli`` for explain/evaluate/compare) SIGINT
would print a traceback and SIGTERM kill it silently. Each entry point calls
``install`` first thing; this module imports only the standard library (and
``import safr_jax`` loads nothing), so that is at once.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["install", "TRAIN_MESSAGE", "COMMAND_MESSAGE"]

TRAIN_MESSAGE = ("stopped during start-up; nothing was trained; run the same "
                 "command to start")
COMMAND_MESSAGE = "stopped during start-up; nothing was written"


def install(message: str) -> None:
  """Until replaced, SIGTERM/SIGINT print ``message`` and exit 128 + signal.

  At once (``os._exit``): nothing is written yet, and an exception raised in
  the middle of an import can be swallowed by the module being imported (a
  ``SystemExit`` here once let training go on).
  """
  def stop(signum, frame):
    del frame
    print(message, file=sys.stderr, flush=True)
    os._exit(128 + signum)  # pylint: disable=protected-access
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, stop)
