"""Every way a training process can be stopped ends in one line and 143 / 130 (or 2).

Real ``train.py`` processes and real signals. Where the moment matters (during
a checkpoint save, during the test evaluation) the process sends the signal to
itself from a wrapped function, so the test does not race the run; a full disk
is an injected ENOSPC of the kind TensorStore raises.
"""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from safr_jax import startup

ROOT = pathlib.Path(__file__).resolve().parents[1]

# 64 sentences, batch 16: 4 steps an epoch, 2 epochs; checkpoints at 2, 4, 6, 8.
TINY = ["--config=configs/sst2.py:quick", "--config.data.source=rt_polarity",
        "--config.data.max_examples=64", "--config.data.max_len=16",
        "--config.model.d_model=16", "--config.model.d_ff=32",
        "--config.model.vmask_hidden_dim=16", "--config.train.num_epochs=2",
        "--config.train.checkpoint_every_steps=2", "--config.train.log_every_steps=1",
        "--config.train.patience=100"]


def _train(workdir, wrap: str = "") -> subprocess.CompletedProcess:
  """``python train.py TINY --workdir=workdir``, with ``wrap`` run first in the
  same process (it may replace functions to inject a signal or an error)."""
  argv = ["train.py", *TINY, f"--workdir={workdir}"]
  code = textwrap.dedent(wrap) + textwrap.dedent(f"""
      import runpy, sys
      sys.argv = {argv!r}
      runpy.run_path("train.py", run_name="__main__")
  """)
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


def _said(proc) -> list[str]:
  """What the process said on stderr besides its INFO log lines."""
  return [l for l in proc.stderr.splitlines() if l.strip() and not l.startswith("I")]


def _saved_steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                if p.name.isdigit())


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_checkpoint_save_stops_at_that_checkpoint(tmp_path, signum, code):
  # The signal comes while the epoch-end checkpoint (step 4) is being saved:
  # the stop must not save step 4 a second time (orbax: StepAlreadyExistsError).
  workdir = tmp_path / "run"
  proc = _train(workdir, f"""
      import os
      from safr_jax import checkpointing
      real_save = checkpointing.Checkpoints.save
      def save(self, step, **kw):
        if step == 4:
          os.kill(os.getpid(), {int(signum)})
        return real_save(self, step, **kw)
      checkpointing.Checkpoints.save = save
  """)
  assert proc.returncode == code, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
  assert _said(proc)[-1] == ("stopped at step 4 (checkpoint saved); run the same command "
                             "to resume")
  assert _saved_steps(workdir) == [4]
  if signum == signal.SIGTERM:  # and the same command resumes from it
    rerun = _train(workdir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming from" in rerun.stderr and "at step 4." in rerun.stderr
    assert (workdir / "results.json").exists()


def test_a_signal_during_the_test_evaluation_stops_it_and_the_same_command_tests(tmp_path):
  workdir = tmp_path / "run"
  proc = _train(workdir, """
      import os, signal
      from safr_jax import trainer
      real_evaluate = trainer.Trainer.evaluate
      def evaluate(self, params, split, *args, **kwargs):
        if split == "test":
          os.kill(os.getpid(), signal.SIGTERM)
        return real_evaluate(self, params, split, *args, **kwargs)
      trainer.Trainer.evaluate = evaluate
  """)
  assert proc.returncode == 143, proc.stderr[-3000:]
  assert "SIGTERM received: stopping the final test evaluation" in proc.stderr
  assert _said(proc)[-1] == ("stopped during the final test evaluation: training finished "
                             "at step 8 and is saved; run the same command to test it")
  assert not (workdir / "results.json").exists()
  rerun = _train(workdir)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "Test accuracy" in rerun.stdout and (workdir / "results.json").exists()


def _handles(pid: int, signum: int) -> bool:
  """Whether process ``pid`` has a handler for ``signum`` (Linux: SigCgt)."""
  for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
    if line.startswith("SigCgt:"):
      return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
  return False


def _signal_once_handled(proc, signum, timeout=60):
  """Sends ``signum`` as soon as ``proc`` handles signals: during start-up,
  not after a guessed sleep that a busy machine can outlast. (SIGTERM's handler
  is the sign: Python itself handles SIGINT from its first instruction.)"""
  deadline = time.monotonic() + timeout
  while not _handles(proc.pid, signal.SIGTERM):
    assert proc.poll() is None and time.monotonic() < deadline, "no handler installed"
    time.sleep(0.005)
  proc.send_signal(signum)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_start_up_is_one_line(tmp_path, signum, code):
  proc = subprocess.Popen([sys.executable, "train.py", *TINY, f"--workdir={tmp_path / 'w'}"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  _signal_once_handled(proc, signum)  # importing JAX: long before the first step
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == code, stderr[-3000:]
  assert stderr.strip().splitlines()[-1] == startup.TRAIN_MESSAGE
  assert "Traceback" not in stderr


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_command_stopped_while_starting_is_one_line(tmp_path, command):
  """`python -m safr_jax.<command>` handles SIGTERM from its first line: the
  package imports nothing heavy, so the seconds of importing JAX are covered."""
  args = {"evaluate": [f"--workdir={tmp_path}"], "compare": [str(tmp_path)]}[command]
  proc = subprocess.Popen([sys.executable, "-m", f"safr_jax.{command}", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _signal_once_handled(proc, signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143, stderr[-3000:]
  assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr, stderr
  assert "stopped" in stderr


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_resumes_when_freed(tmp_path):
  workdir = tmp_path / "run"
  # What TensorStore raises on a full disk, after orbax made its temporary folder;
  # and the tracebacks its other writers log: a commit thread failing after the
  # save raised, an asyncio future nobody awaited (they never reach the terminal).
  proc = _train(workdir, f"""
      import asyncio, pathlib
      import orbax.checkpoint as ocp
      from orbax.checkpoint._src.futures import future as orbax_future
      real_save = ocp.CheckpointManager.save
      def save(self, step, *args, **kwargs):
        if step == 4:
          partial = pathlib.Path({str(workdir)!r}) / "checkpoints" / "4.orbax-checkpoint-tmp"
          (partial / "state").mkdir(parents=True)
          (partial / "state" / "d").write_bytes(b"x" * 1000)
          async def late():
            await asyncio.sleep(0.3)
            raise OSError(28, "No space left on device")
          orbax_future.CommitFuture(late(), name="late")
          loop = asyncio.new_event_loop()
          lost = loop.create_future()
          lost.set_exception(OSError(28, "No space left on device"))
          del lost
          loop.close()
          raise ValueError('RESOURCE_EXHAUSTED: Error writing "params" in OCDBT database: '
                           'Failed to write 425464 bytes to file 14: No space left on device '
                           "[os_error_code='28']")
        return real_save(self, step, *args, **kwargs)
      ocp.CheckpointManager.save = save
  """)
  assert proc.returncode == 2, proc.stderr[-3000:]
  said = _said(proc)
  assert len(said) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert said[0].startswith(f"error: no space left in {workdir / 'checkpoints'} for "
                            "checkpoint 4: it needs about ")
  assert said[0].endswith(" are free. Free some space there and run the same command to "
                          "resume from step 2.")
  assert [p.name for p in (workdir / "checkpoints").iterdir()] == ["2"]  # no partial save
  rerun = _train(workdir)  # space freed
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "at step 2." in rerun.stderr and (workdir / "results.json").exists()


def test_a_failed_saves_library_tracebacks_show_at_verbosity_1(tmp_path, caplog, monkeypatch):
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  from safr_jax import checkpointing  # pylint: disable=g-import-not-at-top
  checkpointing.Checkpoints(tmp_path).close()  # hides them from now on
  for verbosity in (0, 1):
    monkeypatch.setattr(logging, "get_verbosity", lambda v=verbosity: v)
    std_logging.getLogger("asyncio").error(
        "Future exception was never retrieved (verbosity %d)", verbosity)
  assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == [
      "Future exception was never retrieved (verbosity 1)"]
