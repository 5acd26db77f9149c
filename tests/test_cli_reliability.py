"""explain / evaluate / compare / train.py as a user meets them: --help, real
signals and a really full disk, each ending in one line (subprocesses)."""

import functools
import pathlib
import queue
import signal
import subprocess
import sys
import threading

import pytest

from safr_jax import configs, train_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny planted SAFR run (one shape, one epoch: a few seconds)."""
  c = configs.get_config("planted", "safr")
  c.data.update(max_examples=64, pad_to="max_len")
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  c.train.update(batch_size=16, eval_batch_size=32, num_epochs=1, learning_rate=3e-3,
                 checkpoint_every_steps=0, log_every_steps=4, progress_bar=False)
  workdir = tmp_path_factory.mktemp("runs") / "planted"
  train_lib.train_and_evaluate(c, workdir)
  return workdir


def _python(*argv, **kwargs):
  return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, **kwargs)


def _no_traceback(stderr: str) -> None:
  assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]


# ----------------------------------------------------------------------------
# --help (item 16)


@functools.lru_cache(maxsize=None)
def _help(argv):
  return _python(*argv, "--help")


@pytest.mark.parametrize("argv", [("train.py",), ("-m", "safr_jax.explain"),
                                  ("-m", "safr_jax.evaluate"), ("-m", "safr_jax.compare")])
def test_help_exits_0(argv):
  proc = _help(argv)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "--" in proc.stdout and "Try --helpfull" in proc.stdout
  _no_traceback(proc.stderr)


def test_train_help_shows_no_none_default_and_the_measured_gain():
  text = _help(("train.py",)).stdout
  config_help = text.split("--config:", 1)[1].split("\n  --", 1)[0]
  assert "default" not in config_help and "Required" in config_help
  # The number the help gives is the one measured in docs/PERFORMANCE.md.
  help_text = " ".join(text.split())
  assert "+11 % training and +22 % evaluation examples/s" in help_text
  perf = " ".join((ROOT / "docs" / "PERFORMANCE.md").read_text().split())
  assert "(+11 %) and 927 / 744 / 888 eval (+22 %)" in perf


# ----------------------------------------------------------------------------
# SIGINT / SIGTERM (item 4)


def _stop_midway(argv, signum):
  """Starts ``python -m argv``, sends ``signum`` once it has loaded the run's
  data (so mid-work), returns (returncode, stderr)."""
  proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  lines = queue.Queue()
  reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stderr], daemon=True)
  reader.start()
  seen = []
  try:
    while True:
      line = lines.get(timeout=240)
      seen.append(line)
      if "] data: " in line:  # the split is loaded; compiling and computing follow
        break
    proc.send_signal(signum)
    proc.wait(timeout=120)
  finally:
    proc.kill()
  reader.join(timeout=10)
  while not lines.empty():
    seen.append(lines.get())
  return proc.returncode, "".join(seen)


def _tmp_files(folder: pathlib.Path):
  return [p.name for p in folder.rglob("*") if ".tmp" in p.name]


@pytest.mark.parametrize("command,signum", [("evaluate", signal.SIGINT),
                                            ("explain", signal.SIGTERM)])
def test_a_stop_is_one_line_and_leaves_no_partial_output(run, tmp_path, command, signum):
  out = tmp_path / ("interp.json" if command == "evaluate" else "expl")
  rc, stderr = _stop_midway((f"safr_jax.{command}", f"--workdir={run}", f"--out={out}"),
                            signum)
  assert rc == 128 + signum, stderr[-3000:]
  _no_traceback(stderr)
  errors = [l for l in stderr.splitlines() if l.startswith("error:")]
  name = signal.Signals(signum).name
  assert len(errors) == 1 and errors[0].startswith(
      f"error: {command} stopped by {name} before it finished;"), stderr[-3000:]
  # Nothing half-written to be trusted later: no result file, no temporary.
  if command == "evaluate":
    assert not out.exists()
  else:
    assert not (out / "index.html").exists() and not (out / "explanations.json").exists()
  assert _tmp_files(tmp_path) == []


def test_a_stop_while_exiting_is_one_line():
  """After the work: a SIGINT inside an atexit callback (where Python prints
  "Exception ignored in atexit callback" and a traceback) ends at once."""
  code = ("import atexit, os, signal, time\n"
          "from safr_jax import cli\n"
          "cli._work_done()  # what explain/evaluate/compare do once written\n"
          "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(30)))\n")
  proc = _python("-c", code)
  assert proc.returncode == 130
  _no_traceback(proc.stderr)
  assert proc.stderr.strip().splitlines() == [
      "stopped by SIGINT while exiting; what was written is complete"]


# ----------------------------------------------------------------------------
# A full disk (item 5): a real one, a tmpfs filled up, in a user namespace.


def _can_mount_tmpfs() -> bool:
  try:
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           "mount -t tmpfs -o size=64k tmpfs /mnt"],
                          capture_output=True, timeout=30).returncode == 0
  except (OSError, subprocess.SubprocessError):
    return False


@pytest.mark.skipif(not _can_mount_tmpfs(),
                    reason="needs `unshare --user --mount` to mount a small tmpfs")
def test_a_full_disk_names_the_file_and_leaves_no_temporary(run, tmp_path):
  full, logs = tmp_path / "full", tmp_path / "logs"
  full.mkdir()
  logs.mkdir()
  py = sys.executable
  script = f"""
mount -t tmpfs -o size=64k tmpfs {full} || exit 99
dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null
{py} -m safr_jax.evaluate --workdir={run} --out={full}/interp.json --max_examples=8 \
  --random_orders=1 >/dev/null 2>{logs}/evaluate; echo $? >{logs}/evaluate.rc
{py} -m safr_jax.explain --workdir={run} --out={full}/expl --text="good w1" \
  >/dev/null 2>{logs}/explain; echo $? >{logs}/explain.rc
find {full} -mindepth 1 -printf '%P %s\\n' >{logs}/left
"""
  proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                         script], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  expected = {"evaluate": f"{full}/interp.json", "explain": f"{full}/expl/example_000.png"}
  for command, path in expected.items():
    stderr = (logs / command).read_text()
    assert (logs / f"{command}.rc").read_text().strip() == "2", stderr[-3000:]
    _no_traceback(stderr)
    assert stderr.strip().splitlines()[-1] == (
        f"error: cannot write {path}: No space left on device; free some space and run again")
  left = sorted((logs / "left").read_text().split("\n"))
  assert [l.split()[0] for l in left if l] == ["expl", "filler"]  # no .tmp, no 0-byte file
