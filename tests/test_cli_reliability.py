"""explain / evaluate / compare / train.py as a user meets them: --help, real
signals and a really full disk, each ending in one line (subprocesses)."""

import functools
import json
import pathlib
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from safr_jax import configs, train_lib
import test_stops

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


def test_a_stop_after_the_work_is_one_line_and_keeps_what_was_written(run, tmp_path):
  """Once explain's files are written (it prints what the model says of the
  text), a SIGTERM ends it at once: one line, 143, the page whole."""
  out = tmp_path / "expl"
  code = ("import os, signal, time\n"
          "from safr_jax import flag_parsing\n"
          "real = flag_parsing.shown\n"
          "def shown(text):  # explain's first use: its first line after the work\n"
          "  os.kill(os.getpid(), signal.SIGTERM)\n"
          "  time.sleep(5)\n"
          "  return real(text)\n"
          "flag_parsing.shown = shown\n"
          "import runpy, sys\n"
          f"sys.argv = ['-m', '--workdir={run}', '--out={out}', '--text=good w1']\n"
          f"{_MAIN['explain']}\n")
  proc = _python("-c", code)
  assert proc.returncode == 143, proc.stderr[-3000:]
  _no_traceback(proc.stderr)
  said = [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith(("I", "W"))]
  assert said == ["stopped by SIGTERM while exiting; what was written is complete"], said
  assert (out / "index.html").exists() and (out / "explanations.json").exists()


def test_evaluate_uses_the_runs_compilation_cache_and_the_same_scores(run, tmp_path):
  """evaluate compiles into the XLA cache the run was trained with (its
  config.json), every program (no 1 s minimum), loads them the second time
  with the same scores; --compilation_cache_dir= turns it off."""
  copy = tmp_path / "run"
  shutil.copytree(run, copy, ignore=shutil.ignore_patterns("train.lock"))
  config = json.loads((copy / "config.json").read_text())
  config["train"]["compilation_cache_dir"] = str(tmp_path / "xla")
  (copy / "config.json").write_text(json.dumps(config))

  def evaluate(name, *flags):
    out = tmp_path / f"{name}.json"
    proc = _python("-m", "safr_jax.evaluate", f"--workdir={copy}", f"--out={out}",
                   "--max_examples=8", "--random_orders=1", *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    result.pop("timing_s")
    return result, proc.stderr

  cold, said = evaluate("cold")
  assert f"XLA compilation cache: {tmp_path / 'xla'}" in said
  cached = sorted(p.name for p in (tmp_path / "xla").iterdir())
  assert len(cached) >= 5, cached
  warm, _ = evaluate("warm")
  assert warm == cold
  assert sorted(p.name for p in (tmp_path / "xla").iterdir()) == cached  # all loaded
  off, said = evaluate("off", "--compilation_cache_dir=", "--nomalloc_tuning")
  assert off == cold and "XLA compilation cache" not in said


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
  # evaluate writes the per-example file first (interpretability.write_report).
  expected = {"evaluate": f"{full}/interp.examples.json",
              "explain": f"{full}/expl/example_000.png"}
  for command, path in expected.items():
    stderr = (logs / command).read_text()
    assert (logs / f"{command}.rc").read_text().strip() == "2", stderr[-3000:]
    _no_traceback(stderr)
    assert stderr.strip().splitlines()[-1] == (
        f"error: cannot write {path}: No space left on device; free some space and run again")
  left = sorted((logs / "left").read_text().split("\n"))
  assert [l.split()[0] for l in left if l] == ["expl", "filler"]  # no .tmp, no 0-byte file


# ----------------------------------------------------------------------------
# A stop at any moment (round 3): real signals at many timings, and injected
# at the moments that lost them: inside an import (where raising aborts C
# initialisation or leaves a half-imported module), inside a gc callback
# (where Python swallows the exception) and during Python's finalization
# (where the default handlers are back).

_MAIN = {"evaluate": "runpy.run_module('safr_jax.evaluate', run_name='__main__', alter_sys=True)",
         "explain": "runpy.run_module('safr_jax.explain', run_name='__main__', alter_sys=True)",
         "compare": "runpy.run_module('safr_jax.compare', run_name='__main__', alter_sys=True)",
         "train": "runpy.run_path('train.py', run_name='__main__')"}
# A module each command imports in its seconds of heavy importing.
_HEAVY = {"evaluate": "tensorstore", "explain": "tensorstore", "compare": "matplotlib",
          "train": "tensorstore"}

# Sends the signal from inside an import of MODULE, then runs Python code
# there: a handler that raises now leaves the marker file.
_IN_IMPORT = """
import os, sys, time
class _Finder:
  fired = False
  def find_spec(self, name, path=None, target=None):
    if name == {module!r} and not self.fired:
      self.fired = True
      try:
        os.kill(os.getpid(), {signum})
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
          pass
      except BaseException:
        open({marker!r}, "w").write("raised inside an import")
        raise
sys.meta_path.insert(0, _Finder())
"""
# Sends the signal from the first gc callback once the work has begun (its
# modules imported, no import running): Python swallows what it raises there.
_IN_GC_CALLBACK = """
import gc, os, sys
def _callback(phase, info):
  if phase != "start" or {module!r} not in sys.modules:
    return
  frame = sys._getframe(1)
  while frame is not None:
    if frame.f_code.co_filename.startswith("<frozen importlib"):
      return
    frame = frame.f_back
  gc.callbacks.remove(_callback)
  os.kill(os.getpid(), {signum})
  for _ in range(200000):
    pass
gc.callbacks.append(_callback)
"""
# Sends the signal while Python finalizes the process (module globals freed).
_IN_FINALIZATION = """
import os
class _AtTheEnd:
  def __del__(self):
    os.kill(os.getpid(), {signum})
    import time
    time.sleep(1)
_at_the_end = _AtTheEnd()
"""
# The module whose presence means the work (after the heavy imports) began.
_WORKING = {"evaluate": "safr_jax.interpret.interpretability",
            "explain": "safr_jax.interpret.explanations",
            "compare": "safr_jax.interpret.comparison", "train": "safr_jax.train_lib"}


def _args(command, run, out):
  return {"evaluate": ["-m", f"--workdir={run}", f"--out={out}.json", "--max_examples=8",
                       "--random_orders=1"],
          "explain": ["-m", f"--workdir={run}", f"--out={out}", "--text=good w1"],
          "compare": ["-m", str(run), f"--out={out}", "--method=vmask"],
          "train": ["train.py", *test_stops.TINY, f"--workdir={out}"]}[command]


def _stops(command, run, tmp_path, cases):
  """Starts one process per case at once, each stopped as its case says;
  returns {case name: (returncode, stderr, what it left)}.

  A case is (name, signum, how): how is a delay in seconds after the
  process first handles SIGTERM (its first line: 0 = at once), or one of
  "import", "gc", "finalization" (the wrappers above)."""
  procs = {}
  try:
    for name, signum, how in cases:
      out, marker = tmp_path / f"out_{name}", tmp_path / f"marker_{name}"
      wrap = {"import": _IN_IMPORT.format(module=_HEAVY[command], signum=int(signum),
                                          marker=str(marker)),
              "gc": _IN_GC_CALLBACK.format(module=_WORKING[command], signum=int(signum)),
              "finalization": _IN_FINALIZATION.format(signum=int(signum))}.get(how, "")
      code = f"{wrap}\nimport runpy, sys\nsys.argv = {_args(command, run, out)!r}\n{_MAIN[command]}\n"
      log = open(tmp_path / f"stderr_{name}", "w")  # pylint: disable=consider-using-with
      procs[name] = (subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=log,
                                      stdout=subprocess.DEVNULL), log, signum, how, out, marker)
    handling = {n: None for n, c in procs.items() if isinstance(c[3], float)}
    sent, deadline = set(), time.monotonic() + 120
    while len(sent) < len(handling) and time.monotonic() < deadline:
      for name in handling.keys() - sent:
        proc, _, signum, delay, _, _ = procs[name]
        if proc.poll() is not None:
          sent.add(name)
        elif handling[name] is None and _handles(proc.pid, signal.SIGTERM):
          handling[name] = time.monotonic()  # its first line has run
        if handling[name] is not None and time.monotonic() >= handling[name] + delay:
          proc.send_signal(signum)
          sent.add(name)
      time.sleep(0.002)
    results = {}
    for name, (proc, log, _, _, out, marker) in procs.items():
      proc.wait(timeout=300)
      log.close()
      left = sorted(p.name for p in tmp_path.glob(f"out_{name}*"))
      left += sorted(p.name for p in (out.glob("*") if out.is_dir() else ()))
      results[name] = (proc.returncode, (tmp_path / f"stderr_{name}").read_text(),
                       left + (["marker"] if marker.exists() else []))
    return results
  finally:
    for proc, log, *_ in procs.values():
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()


def _handles(pid: int, signum: int) -> bool:
  """Whether process ``pid`` has a handler for ``signum`` (Linux: SigCgt)."""
  try:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
  except OSError:
    return False
  line = next((l for l in status.splitlines() if l.startswith("SigCgt:")), "SigCgt: 0")
  return bool(int(line.split()[1], 16) >> (signum - 1) & 1)


_STOPPED = {"train": "stopped during start-up; nothing was trained; run the same command "
                     "to start"}


def _assert_stopped(command, name, result, signum):
  rc, stderr, left = result
  said = [l for l in stderr.splitlines() if l.strip() and not l.startswith(("I", "W"))]
  context = f"{command} {name}: rc {rc}, left {left}\n{stderr[-3000:]}"
  assert rc == 128 + signum, context
  for bad in ("Traceback", "Exception ignored", "Fatal Python error", "Segmentation"):
    assert bad not in stderr, context
  assert len(said) == 1, context
  assert (said[0] == _STOPPED["train"] if command == "train" else
          said[0] == "stopped during start-up; nothing was written"
          or said[0].startswith(f"error: {command} stopped by "
                                f"{signal.Signals(signum).name} before it finished;")
          ), context
  if command != "train":  # nothing a later reader trusts (train's start is resumable)
    assert left == [], context


_CASES = [("first_line", signal.SIGTERM, 0.0), ("first_line_int", signal.SIGINT, 0.0),
          ("after_0.05", signal.SIGINT, 0.05), ("after_0.3", signal.SIGTERM, 0.3),
          ("in_import", signal.SIGTERM, "import"), ("in_gc", signal.SIGINT, "gc")]


@pytest.mark.parametrize("command", ["evaluate", "explain", "compare", "train"])
def test_a_stop_at_any_moment_is_one_line_and_writes_nothing(run, tmp_path, command):
  cases = [c for c in _CASES if not (command == "compare" and c[2] == "gc")]
  results = _stops(command, run, tmp_path, cases)
  for name, signum, _ in cases:
    _assert_stopped(command, name, results[name], signum)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "explain", "compare", "train"])
def test_a_stop_at_many_moments_is_one_line_and_writes_nothing(run, tmp_path, command):
  cases = [(f"after_{d}", (signal.SIGTERM, signal.SIGINT)[i % 2], d) for i, d in
           enumerate((0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 1.6, 2.0, 3.0, 4.0))]
  results = _stops(command, run, tmp_path, cases)
  for name, signum, _ in cases:
    rc, stderr, left = results[name]
    if rc == 0 and "Traceback" not in stderr:  # finished before the signal: complete
      continue
    _assert_stopped(command, name, results[name], signum)


def test_a_stop_while_python_finalizes_cannot_kill_silently(tmp_path):
  """The commands leave without Python's finalization (whose default handlers
  let a SIGTERM kill the process without a word, exit -15)."""
  proc = _stops("compare", tmp_path / "no_run", tmp_path,
                [("end", signal.SIGTERM, "finalization")])["end"]
  assert proc[0] == 2, proc[1][-3000:]  # compare's own error: nothing to compare
  assert [l for l in proc[1].splitlines() if l.startswith("error:")], proc[1][-3000:]


# ----------------------------------------------------------------------------
# A run whose run_identity.json is gone: its checkpoint is the record.


def test_without_its_identity_a_run_is_checked_against_its_checkpoint(run, tmp_path):
  from safr_jax import runs  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "run"
  shutil.copytree(run, copy, ignore=shutil.ignore_patterns("train.lock", "tensorboard"))
  (copy / "run_identity.json").unlink()
  originals = {n: (copy / n).read_text() for n in ("config.json", "vocab.txt")}

  def edited(name, change):
    for n, text in originals.items():  # one edit at a time
      (copy / n).write_text(text)
    (copy / name).write_text(change(originals[name]))
    return copy

  def model_field(field, value):
    return lambda text: json.dumps({**json.loads(text), "model": dict(
        json.loads(text)["model"], **{field: value})})

  assert runs.load_run(edited("config.json", model_field("d_ff", 32))).step > 0  # as trained
  for field, value, trained in (("d_ff", 64, 32), ("pool", "all", "tokens")):
    with pytest.raises(runs.RunError, match=rf"config\.json: model\.{field} is {value!r} but "
                       rf"the checkpoint in .* was trained with {trained!r} \(run_identity"):
      runs.load_run(edited("config.json", model_field(field, value)))
  with pytest.raises(runs.RunError, match=r"parameter embedding/embedding of checkpoint \d+ "
                     r"has shape \(\d+, 16\) but config\.json, vocab\.txt and labels\.json "
                     r"build \(\d+, 16\)"):
    runs.load_run(edited("vocab.txt", lambda text: text.rsplit("\n", 3)[0] + "\n"))
  # On the command line: one line, no number.
  edited("config.json", model_field("pool", "all"))
  proc = _python("-m", "safr_jax.evaluate", f"--workdir={copy}",
                 f"--out={tmp_path / 'i.json'}")
  assert proc.returncode == 2, proc.stderr[-3000:]
  _no_traceback(proc.stderr)
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error: {copy / 'config.json'}: model.pool is 'all' but the checkpoint")
  assert not (tmp_path / "i.json").exists()


# ----------------------------------------------------------------------------
# Small ones: --config twice, control characters from the user's text.


def test_config_given_twice_is_one_line():
  proc = _python("train.py", "--config=configs/sst2.py", "--config=configs/sst2.py:quick")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      "error: --config is given 2 times (--config=configs/sst2.py, "
      "--config=configs/sst2.py:quick); give one config file, and change its fields "
      "with --config.FIELD=VALUE"]


def test_control_characters_of_a_text_are_shown_not_sent_to_the_terminal(run, tmp_path):
  flagfile = tmp_path / "flags"  # a NUL cannot be in argv, but can be in a flag file
  flagfile.write_bytes(b"--text=good\x00 w1\x1b[2Jgone\n")
  proc = _python("-m", "safr_jax.explain", f"--workdir={run}", f"--out={tmp_path / 'e'}",
                 f"--flagfile={flagfile}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for stream in (proc.stdout, proc.stderr):
    assert not any(c in stream for c in "\x00\x1b"), stream[-3000:]
  assert "good[U+0000]" in proc.stderr and "w1[U+001B][2Jgone" in proc.stderr
