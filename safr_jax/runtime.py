"""A command's process, set before its work: malloc, XLA's cache, library logs.

``tune_malloc`` (glibc's settings for XLA's per-step temporaries),
``use_compilation_cache`` (XLA's persistent compilation cache) and
``quiet_library_logs`` (which third-party log lines reach the user). None
changes a result. ``train.py``, ``evaluate`` and ``explain`` call them
(``safr_jax.cli``); the benchmarks call ``tune_malloc``.
"""

from __future__ import annotations

import logging as std_logging
import pathlib
import sys

from absl import logging

__all__ = ["tune_malloc", "use_compilation_cache", "quiet_library_logs"]


def tune_malloc() -> bool:
  """glibc's malloc settings for XLA on CPU, applied before the work allocates.

  XLA allocates ~100 MB of temporaries per step; by default glibc hands them
  back to the OS after each step (mmap/trim), costing ~22,000 page faults a
  step. One arena, no mmap for large blocks and a 2 GiB trim threshold keep
  them (as GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:
  glibc.malloc.trim_threshold=4294967296 does). No effect on results.

  Returns:
    Whether glibc accepted all three settings (False off glibc/Linux).
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  import ctypes.util  # pylint: disable=g-import-not-at-top
  name = ctypes.util.find_library("c")
  if not name or not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # glibc's malloc.h
    # mallopt returns 1 on success; its value is a C int, hence 2 GiB - 1
    # rather than the tunable's 4 GiB (both exceed any step's temporaries).
    return all(libc.mallopt(option, value) == 1
               for option, value in ((m_arena_max, 1), (m_mmap_max, 0),
                                     (m_trim_threshold, 2**31 - 1)))
  except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
    return False


def use_compilation_cache(directory: str | None, *, off_hint: str,
                          min_compile_time_s: float | None = None) -> str | None:
  """Turns on XLA's persistent compilation cache in ``directory`` (``~``
  expanded; empty or None: off), before the first compilation: a later
  process of the same shapes loads its programs instead of compiling them.

  Args:
    directory: the cache folder.
    off_hint: how the user turns it off, for the log line.
    min_compile_time_s: cache only programs that took at least this long to
      compile (None: JAX's default, 1 s, which skips most of evaluate's).

  Returns:
    The folder used, or None.
  """
  if not directory:
    return None
  import jax  # pylint: disable=g-import-not-at-top
  cache = str(pathlib.Path(directory).expanduser())
  jax.config.update("jax_compilation_cache_dir", cache)
  if min_compile_time_s is not None:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_s)
  logging.info("XLA compilation cache: %s (off: %s)", cache, off_hint)
  return cache


class _QuietLibraries(std_logging.Filter):
  """Drops INFO lines of orbax/grain/tfds (they bury the training log) and the
  expected third-party messages every run prints, which say nothing wrong."""
  _NOISY = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/etils/")
  _EXPECTED = (
      "Unable to initialize backend 'tpu'",  # jax probing for a TPU on a CPU/GPU VM
      "Requested `tracked_metric`; did not provide metrics",  # orbax, mid-epoch saves
      "Variant folder %s has no %s",  # tfds looking for an unprepared dataset folder
  )

  def filter(self, record) -> bool:
    if any(text in str(record.msg) for text in self._EXPECTED):
      return False
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


class _PlainFormatter(std_logging.Formatter):
  """``message``, or ``warning: message`` from WARNING up (a message that opens
  with a line break, such as a box, is shown from its own first line)."""

  def format(self, record) -> str:
    text = record.getMessage()
    if record.levelno < std_logging.WARNING:
      return text
    return text.lstrip("\n") if text.startswith("\n") else f"{record.levelname.lower()}: {text}"


def quiet_library_logs() -> None:
  """Only the log lines a user needs; call once the flags are parsed."""
  logging.get_absl_handler().addFilter(_QuietLibraries())
  std_logging.getLogger("absl").addFilter(_QuietLibraries())
  sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
  # A person at a terminal reads messages, not absl's date/thread/file prefix;
  # log files (and --verbosity=1) keep it.
  if sys.stderr.isatty() and logging.get_verbosity() <= 0:
    logging.get_absl_handler().setFormatter(_PlainFormatter())


def _quiet_unraisable(previous):
  """After orbax gives up on an unreadable checkpoint, TensorStore's reads
  still in flight call back into the closed asyncio loop, and each callback's
  ``RuntimeError: Event loop is closed`` is reported as "unraisable" (hundreds
  of tracebacks). Expected and harmless: shown only at --verbosity=1."""
  def hook(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      logging.vlog(1, "ignored after a failed checkpoint read: %r", value)
      return
    previous(unraisable)
  return hook
