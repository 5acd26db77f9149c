"""Shared test fixtures: golden files, float64 switching, no orphan processes."""

import ctypes
import os
import pathlib
import shutil
import signal
import tempfile
import time

import jax
import numpy as np
import pytest

# Golden values of the authors' PyTorch code live beside the checkout (and in CI).
GOLDEN_DIR = pathlib.Path(
    os.environ.get("SAFR_GOLDEN_DIR",
                   pathlib.Path(__file__).resolve().parents[2] / "shared" / "golden"))


def pytest_configure(config):
  """One XLA compilation cache for the session, this process and its
  subprocesses: tests compile the same small programs again and again (every
  ``train_and_evaluate`` jits anew, every subprocess starts cold), and reusing
  them halves the suite on 2 cores. Fresh per session: no test sees leftovers.
  (``train.py`` subprocesses use their config's cache, ~/.cache/safr_jax/xla.)"""
  # No test reaches the network: `auto` decides "offline" without probing
  # (tests of the probe and of downloads use a server on 127.0.0.1 and unset
  # this), here and in every train.py subprocess.
  os.environ["SAFR_JAX_OFFLINE"] = "1"
  cache = tempfile.mkdtemp(prefix="safr_jax_test_xla_")
  config.safr_xla_cache = cache
  os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  # A SIGTERM (a CI cancel, `timeout`, `kill`) interrupts the run as Ctrl-C
  # does, so finally blocks and fixture teardowns (``_no_orphans``) run; by
  # default it would end pytest at once and leave its children running.
  if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, signal.default_int_handler)
  if not os.environ.get("PYTEST_XDIST_WORKER"):
    config.safr_subreaper = _become_subreaper()


def _descendants(pid: int) -> list[int]:
  """Every process below ``pid`` (Linux /proc; [] elsewhere), parents first."""
  children: dict[int, list[int]] = {}
  for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
    try:
      fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
      continue  # gone meanwhile
    if fields[0] != "Z":  # a zombie is dead already
      children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
  found, todo = [], [pid]
  while todo:
    for child in children.get(todo.pop(0), ()):
      found.append(child)
      todo.append(child)
  return found


def end_descendants(grace_s: float = 3.0) -> list[int]:
  """SIGTERM to every process this one started (children of children too,
  found before any dies), SIGKILL to those alive after ``grace_s``; returns
  their pids."""
  pids = _descendants(os.getpid())
  for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in pids:
      try:
        os.kill(pid, sig)
      except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and set(pids) & set(_descendants(os.getpid())):
      time.sleep(0.05)
  return pids


@pytest.fixture(scope="session", autouse=True)
def _no_orphans():
  """A subprocess a test starts (train.py, evaluate, a grid) never outlives the
  run: at the session's end -- also when it is interrupted (Ctrl-C, a SIGTERM,
  xdist stopping its workers) -- whatever is still running below this process
  is ended. Session fixtures run where tests run: here or in each xdist worker."""
  try:
    yield
  finally:
    left = end_descendants()
    if left:
      print(f"\nconftest: ended {len(left)} process(es) the tests left running: {left}")


def _become_subreaper() -> bool:
  """Linux: orphaned descendants (a killed xdist worker's children) are
  re-parented to this process instead of init, so ``end_descendants`` still
  finds them."""
  try:
    return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
  except (OSError, AttributeError):
    return False


def pytest_unconfigure(config):
  # The controller of an xdist run (or a plain run) ends whatever is still below
  # it, also what a worker killed before its teardown left behind.
  if not os.environ.get("PYTEST_XDIST_WORKER") and getattr(config, "safr_subreaper", False):
    left = end_descendants()
    if left:
      print(f"\nconftest: ended {len(left)} process(es) left after the workers: {left}")
  cache = getattr(config, "safr_xla_cache", None)
  if cache:
    shutil.rmtree(cache, ignore_errors=True)


def load_golden(name: str) -> dict[str, np.ndarray]:
  path = GOLDEN_DIR / name
  if not path.exists():
    raise FileNotFoundError(
        f"golden file {path} is missing; set SAFR_GOLDEN_DIR to the folder "
        "holding regularizers.npz and model.npz")
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


@pytest.fixture
def x64():
  """Runs a test in float64, as the golden values were computed."""
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", False)


def split_with_lengths(lengths, rng, max_len: int):
  """An ``EncodedSplit`` of random ids with these lengths; row i's first id is
  i + 2, so a batch row names its example."""
  from safr_jax import data  # pylint: disable=g-import-not-at-top
  n = len(lengths)
  ids = np.zeros((n, max_len), np.int32)
  for i, n_tok in enumerate(lengths):
    ids[i, :n_tok] = rng.integers(2, 50, size=n_tok)
    ids[i, 0] = i + 2
  return data.EncodedSplit(ids=ids, lengths=np.asarray(lengths, np.int32),
                           labels=(np.arange(n) % 2).astype(np.int32),
                           texts=[f"t{i}" for i in range(n)],
                           example_ids=np.arange(n, dtype=np.int64))
