"""An interrupted pytest leaves no process behind (conftest's ``_no_orphans``).

An inner pytest, with this directory's conftest, runs a test that starts a
child ignoring SIGINT and SIGTERM (the worst case: only SIGKILL ends it) and a
grandchild below it; the inner run is then interrupted as a user or CI does
-- Ctrl-C to its process group, or SIGTERM to pytest alone, with and without
xdist workers -- and both processes must be gone once it has exited.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_INNER_TEST = '''
import faulthandler, pathlib, signal, subprocess, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)  # where it hangs, if it does

def test_starts_a_child_and_waits():
  child = subprocess.Popen([sys.executable, "-c", """
import signal, subprocess, sys, time
for s in (signal.SIGINT, signal.SIGTERM):
  signal.signal(s, signal.SIG_IGN)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
open({pids!r}, "a").write(f"{{grandchild.pid}}\\\\n")
time.sleep(300)
"""])
  with open({pids!r}, "a") as f:
    f.write(f"{{child.pid}}\\n")
  time.sleep(300)  # interrupted here
'''


def _parent(pid: int) -> int:
  return int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
  try:
    state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
  except (OSError, IndexError):
    return False
  return state != "Z"


def _as_from_a_shell():
  # The signal state a shell gives pytest, not this xdist worker's: a worker's
  # ignored or blocked SIGINT would be inherited, and the inner run would sleep
  # through Ctrl-C (seen in full CI-style runs: the inner test still at its sleep).
  signal.pthread_sigmask(signal.SIG_SETMASK, [])
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, signal.SIG_DFL)


@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how,workers", [("ctrl-c", 0), ("sigterm", 0), ("sigterm", 1),
                                         ("kill-worker", 1)])
def test_an_interrupted_run_ends_its_childrens_processes(tmp_path, how, workers):
  pids = tmp_path / "pids"
  (tmp_path / "test_inner.py").write_text(_INNER_TEST.format(pids=str(pids)))
  argv = [sys.executable, "-u", "-m", "pytest", "-q", "-s", "-p", "conftest", "-p", "no:cacheprovider",
          f"--rootdir={tmp_path}", "-c", os.devnull, str(tmp_path / "test_inner.py")]
  if workers:
    argv += ["-n", str(workers)]
  # Not this run's xdist/pytest variables: the inner run is a run of its own.
  env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
         "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
  inner = subprocess.Popen(argv, cwd=tmp_path, env=env, start_new_session=True,
                           preexec_fn=_as_from_a_shell, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.monotonic() + 120
    while not (pids.exists() and len(pids.read_text().split()) == 2):
      assert inner.poll() is None and time.monotonic() < deadline, inner.communicate()[0]
      time.sleep(0.1)
    started = [int(p) for p in pids.read_text().split()]
    assert all(map(_alive, started))
    if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground group
      os.killpg(inner.pid, signal.SIGINT)
    elif how == "kill-worker":  # no teardown in the worker: the controller must end them
      os.kill(_parent(started[0]), signal.SIGKILL)
    else:  # SIGTERM to pytest alone
      inner.send_signal(signal.SIGTERM)
    try:
      out, _ = inner.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say where: every thread's stack, then what it printed
      inner.send_signal(signal.SIGUSR1)
      time.sleep(2)
      os.killpg(inner.pid, signal.SIGKILL)
      pytest.fail("the interrupted run did not end in 120 s:\n" + inner.communicate()[0][-6000:])
    assert inner.returncode != 0, out
    deadline = time.monotonic() + 10
    while any(map(_alive, started)) and time.monotonic() < deadline:
      time.sleep(0.1)
    assert not any(map(_alive, started)), (started, out[-3000:])
    if not workers:  # (a worker's output does not reach the terminal)
      assert "ended 2 process(es)" in out, out[-3000:]
    if how == "kill-worker":
      assert "left after the workers" in out, out[-3000:]
  finally:
    if inner.poll() is None:
      os.killpg(inner.pid, signal.SIGKILL)
      inner.wait()
    for pid in (int(p) for p in pids.read_text().split()) if pids.exists() else ():
      try:
        os.kill(pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
