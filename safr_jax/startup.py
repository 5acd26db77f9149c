"""A stop (SIGTERM / SIGINT) at any moment of a command: one line, exit 143 / 130.

Each entry point calls ``install`` first thing (this module imports only the
standard library, and ``import safr_jax`` loads nothing). From then on a
signal is recorded, never lost, and never raised where raising breaks things:

* inside ``run`` (the command's work) it raises ``Stopped`` at once, unless
  the main thread is importing a module: an exception in the middle of a C
  extension's initialisation can abort the process, one in a half-imported
  module breaks it. Then it is delivered again 50 ms later, until the import
  is over;
* one raised where Python cannot propagate it (a gc callback, ``__del__``, a
  weakref callback: "Exception ignored in ...") is delivered again too;
* ``run`` checks the record before it starts the work, and
  ``provenance.write_file`` before it puts a file in place (``check``).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time

__all__ = ["install", "run", "check", "say_on_stop", "Stopped", "TRAIN_MESSAGE",
           "COMMAND_MESSAGE", "DONE_MESSAGE"]

TRAIN_MESSAGE = ("stopped during start-up; nothing was trained; run the same "
                 "command to start")
COMMAND_MESSAGE = "stopped during start-up; nothing was written"
# For ``say_on_stop`` once a command's files are all written (what is left is
# printing): a stop then ends it at once.
DONE_MESSAGE = "stopped by {signal} while exiting; what was written is complete"

_message = COMMAND_MESSAGE  # for a stop before ``run`` starts the work
_run_message = ""  # for a stop during it (``run``, ``say_on_stop``)
_installed = False
_received: int | None = None  # the first signal
_inside = False   # in ``run``: a signal raises Stopped
_raised = False   # Stopped raised and not swallowed: propagating
_again = threading.Event()  # deliver the recorded signal again, soon


class Stopped(KeyboardInterrupt):
  """SIGINT or SIGTERM. A KeyboardInterrupt, so code that cleans up after
  Ctrl-C (``provenance.write_file``) also does after SIGTERM."""

  def __init__(self, signum: int):
    self.name = signal.Signals(signum).name
    super().__init__(self.name)
    self.signum, self.exit_code = signum, 128 + signum


def install(message: str = COMMAND_MESSAGE) -> None:
  """Records SIGTERM/SIGINT from now on; ``message`` is said for one that
  comes before ``run`` starts the work."""
  global _message, _installed
  _message = message
  for signum in (signal.SIGINT, signal.SIGTERM):  # SIGTERM last: then both are
    signal.signal(signum, _handle)
  if not _installed:
    _installed = True
    sys.unraisablehook = _unraisable(sys.unraisablehook)
    threading.Thread(target=_deliverer, name="safr-stop", daemon=True).start()


def _handle(signum, frame) -> None:
  global _received, _raised
  if _received is None:
    _received = signum
  if not _inside or _raised:
    return
  while frame is not None:
    if frame.f_code.co_filename.startswith("<frozen importlib"):
      _deliver_again()
      return
    frame = frame.f_back
  _raised = True
  raise Stopped(_received)


def _deliver_again() -> None:
  _again.set()  # an Event: no lock the interrupted main thread could hold


def _deliverer() -> None:
  while True:
    _again.wait()
    _again.clear()
    time.sleep(0.05)
    if _inside and not _raised and _received is not None:
      _thread.interrupt_main(_received)


def _unraisable(previous):
  def hook(unraisable):
    global _raised
    if isinstance(unraisable.exc_value, Stopped):  # swallowed: raise it again
      _deliver_again()
      _raised = False
      return
    previous(unraisable)
  return hook


def check() -> None:
  """Raises ``Stopped`` if a signal came during ``run``'s work (a safe point)."""
  global _raised
  if _inside and _received is not None:
    _raised = True
    raise Stopped(_received)


def say_on_stop(message: str) -> None:
  """What a stop during ``run`` says from now on (as ``run``'s ``message``)."""
  global _run_message
  _run_message = message


def _leave(text: str | None, code: int) -> None:
  """Ends the process now: no finalization, where Python restores the default
  handlers and a signal would kill it without a word."""
  if text:
    print(text, file=sys.stderr)
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(code)  # pylint: disable=protected-access


def _leave_stopped(signum: int) -> None:
  _leave(_run_message.replace("{signal}", signal.Signals(signum).name), 128 + signum)


def run(main, message: str, *, finalize: bool = True) -> None:
  """Runs ``main()``; a stop during it ends the process with ``message`` (its
  ``{signal}`` replaced by SIGTERM / SIGINT) and exit status 128 + signal.

  Args:
    main: the command's work.
    message: what a stop leaves, e.g. "... stopped by {signal}; nothing was
      written".
    finalize: False: the process ends as soon as ``main`` returns or exits,
      skipping Python's finalization (for commands whose files are all
      written and closed by then).
  """
  global _inside
  if not _installed:  # a console script (safr-evaluate): no entry module
    install(_message)
  if _received is not None:
    _leave(_message, 128 + _received)
  say_on_stop(message)
  _inside, code, exiting = True, 0, None
  try:
    main()
  except Stopped as e:
    _inside = False
    _leave_stopped(e.signum)
  except Exception:
    if _raised:  # a clean-up on the stop's way out failed: still a stop
      _leave_stopped(_received)
    raise
  except SystemExit as e:
    exiting, code = e, e.code if isinstance(e.code, int) else int(e.code is not None)
  finally:
    _inside = False
  if _received is not None and code == 0:  # recorded, never raised (and
    _leave_stopped(_received)  # write_file's check kept every file out)
  if finalize:
    if exiting is not None:
      raise exiting
    return
  if exiting is not None and isinstance(exiting.code, str):
    print(exiting.code, file=sys.stderr)
  import logging  # pylint: disable=g-import-not-at-top
  logging.shutdown()  # flushes the log handlers
  _leave(None, code)
