"""A run survives preemption and is never silently corrupted.

SIGTERM/SIGINT stop a real ``train.py`` with a checkpoint and resume to the
parameters of an uninterrupted run; a workdir refuses another run before
writing anything; a second trainer is locked out; recovery from a broken
checkpoint is quiet; metrics never repeat a step after a resume.
"""

import functools
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from safr_jax import checkpointing, configs, errors, train_lib, workdir as workdir_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A tiny model on 320 rt_polarity sentences, batch 4: 80 steps an epoch, so a
# signal sent after the first logged step lands mid-epoch.
OVERRIDES = {"data.source": "rt_polarity", "data.max_examples": 320, "data.max_len": 16,
             "data.pad_to": "max_len", "model.d_model": 16, "model.num_heads": 2,
             "model.d_ff": 32, "model.vmask_hidden_dim": 16, "train.batch_size": 4,
             "train.eval_batch_size": 64, "train.num_epochs": 2, "train.learning_rate": 3e-3,
             "train.checkpoint_every_steps": 0, "train.log_every_steps": 1,
             "train.progress_bar": False}


def _config(**extra):
  c = configs.get_config("sst2", "safr")
  for key, value in {**OVERRIDES, **extra}.items():
    *path, field = key.split(".")  # data.files.train: a source's group
    functools.reduce(getattr, path, c)[field] = value
  return c


def _argv(workdir, **extra):
  return [sys.executable, "train.py", "--config=configs/sst2.py", f"--workdir={workdir}",
          *(f"--config.{k}={v}" for k, v in {**OVERRIDES, **extra}.items())]


def _params(workdir, step=None):
  ckpts = checkpointing.Checkpoints(pathlib.Path(workdir) / "checkpoints")
  try:
    restored = ckpts.restore(ckpts.latest_step() if step is None else step)
  finally:
    ckpts.close()
  return restored


def _hashes(workdir: pathlib.Path) -> dict[str, str]:
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("full") / "run"
  results = train_lib.train_and_evaluate(_config(), workdir)
  return workdir, results


# --- graceful stop ----------------------------------------------------------------


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_and_the_same_command_resumes_exactly(tmp_path, uninterrupted,
                                                           signum, code):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(_argv(workdir), cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics_file = workdir / "metrics.jsonl"
  deadline = time.monotonic() + 240
  while not (metrics_file.exists() and metrics_file.read_text().strip()):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.monotonic() < deadline, "no training step logged"
    time.sleep(0.05)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=240)
  assert proc.returncode == code, stderr[-2000:]
  last = stderr.strip().splitlines()[-1]
  stopped_at = int(last.split("stopped at step ")[1].split()[0])
  assert last == (f"stopped at step {stopped_at} (checkpoint saved); run the same "
                  "command to resume")
  assert 0 < stopped_at < 160  # mid-run, before the 2 x 80 steps end
  assert _params(workdir).step == stopped_at
  # The same command resumes and ends exactly where an uninterrupted run ends.
  # train.py applied its malloc settings (on by default); the uninterrupted run
  # in this process did not: equal parameters also show they change no result.
  rerun = subprocess.run(_argv(workdir), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  full_dir, full = uninterrupted
  resumed = json.loads((workdir / "results.json").read_text())
  assert resumed["test"] == full["test"]
  for a, b in zip(jax.tree.leaves(_params(full_dir, 160).state["params"]),
                  jax.tree.leaves(_params(workdir, 160).state["params"])):
    np.testing.assert_array_equal(a, b)
  steps = [r["step"] for r in map(json.loads, metrics_file.read_text().splitlines())
           if r["split"] == "train"]
  assert steps == sorted(set(steps))  # no step twice


# --- workdir identity -----------------------------------------------------------


@pytest.mark.parametrize("change,what", [
    ({"data.max_examples": 200}, "vocabulary"),
    ({"model.d_model": 32}, "config.model.d_model 16 (run) vs 32 (now)"),
    ({"loss.importance": 0.5}, "config.loss.importance 1.0 (run) vs 0.5 (now)"),
])
def test_another_run_in_a_finished_workdir_changes_nothing(uninterrupted, change, what):
  workdir, _ = uninterrupted
  before = _hashes(workdir)
  with pytest.raises(errors.WorkdirError, match="holds another run") as e:
    train_lib.train_and_evaluate(_config(**change), workdir)
  assert what in str(e.value) and "\n" not in str(e.value)
  assert "--config.train.overwrite=True" in str(e.value)
  assert _hashes(workdir) == before


def _write_files(folder: pathlib.Path, labels: tuple[str, str]) -> dict[str, str]:
  rng = np.random.default_rng(0)
  words = "good bad fine dull great awful nice poor".split()
  out = {}
  for split, n in (("train", 120), ("dev", 30), ("test", 30)):
    rows = ["text,label"]
    for i in range(n):
      rows.append(f"{' '.join(rng.choice(words, 5))},{labels[i % 2]}")
    path = folder / f"{split}.csv"
    path.write_text("\n".join(rows) + "\n")
    out[f"data.files.{split}"] = str(path)
  return out


def test_other_labels_in_a_finished_workdir_are_refused_and_cli_says_one_line(tmp_path):
  (tmp_path / "a").mkdir()
  (tmp_path / "b").mkdir()
  first = {**_write_files(tmp_path / "a", ("neg", "pos")), "data.source": "files",
           "train.num_epochs": 1}
  workdir = tmp_path / "run"
  train_lib.train_and_evaluate(_config(**first), workdir)
  before = _hashes(workdir)
  second = {**first, **_write_files(tmp_path / "b", ("bad", "good"))}
  proc = subprocess.run(_argv(workdir, **second), cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 2
  error = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(error) == 1 and "labels ['neg', 'pos'] (run) vs ['bad', 'good'] (now)" in error[0]
  assert _hashes(workdir) == before
  # overwrite=True moves the old run aside (nothing deleted) and starts over.
  results = train_lib.train_and_evaluate(_config(**second, **{"train.overwrite": True}),
                                         workdir)
  assert results["dataset"]["label_names"] == ["bad", "good"]
  aside = list(tmp_path.glob("run.replaced-*"))
  assert len(aside) == 1 and _hashes(aside[0]) == before
  # The new run holds no stale lock of its own, and the moved run's lock is released.
  assert (workdir / workdir_lib.LOCK_FILE).read_text() == ""
  assert (aside[0] / workdir_lib.LOCK_FILE).exists()


def test_a_config_of_another_dataset_name_trains_and_resumes(tmp_path):
  config = _config(**{"train.num_epochs": 1, "data.max_examples": 80})
  config.name = "my_dataset"  # a user's own config file, not sst2/imdb/planted
  first = train_lib.train_and_evaluate(config, tmp_path / "run")
  again = train_lib.train_and_evaluate(config, tmp_path / "run")
  assert again["test"] == first["test"]


# --- the lock -----------------------------------------------------------------------


def test_second_trainer_is_locked_out_and_a_stale_lock_is_taken_over(tmp_path, caplog):
  workdir = tmp_path / "run"
  workdir.mkdir()
  holder = workdir_lib.WorkdirLock(workdir)
  holder.acquire()
  try:
    proc = subprocess.run(_argv(workdir), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  finally:
    holder.release()
  assert proc.returncode == 2
  assert f"in use by another trainer (pid {os.getpid()} on " in proc.stderr
  assert not (workdir / "config.json").exists()
  # A trainer killed with -9 leaves its lock file; the kernel drops its flock.
  script = ("import pathlib, time; from safr_jax import workdir as w; "
            f"w.WorkdirLock(pathlib.Path({str(workdir)!r})).acquire(); "
            "print('locked', flush=True); time.sleep(600)")
  child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                           text=True)
  assert child.stdout.readline().strip() == "locked"
  child.kill()
  child.wait()
  assert f'"pid": {child.pid}' in (workdir / workdir_lib.LOCK_FILE).read_text()
  lock = workdir_lib.WorkdirLock(workdir)
  lock.acquire()
  lock.release()
  assert f"pid {child.pid} on" in caplog.text and "gone" in caplog.text


# --- quiet recovery, resume hygiene -------------------------------------------------


def test_truncated_checkpoint_resumes_from_the_previous_one_quietly(tmp_path):
  workdir = tmp_path / "run"
  extra = {"train.checkpoint_every_steps": 20}
  assert train_lib.train_and_evaluate(
      _config(**extra, **{"train.stop_after_steps": 110}), workdir) is None
  ckpt_dir = workdir / "checkpoints"
  assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [80, 100]
  for f in (ckpt_dir / "100" / "state").rglob("*"):
    if f.is_file() and f.parent.name == "d":
      f.write_bytes(f.read_bytes()[:10])
  proc = subprocess.run(_argv(workdir, **extra), cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  about = [l for l in proc.stderr.splitlines()
           if "checkpoint" in l.lower() or "orbax" in l.lower() or "Traceback" in l]
  assert 1 <= len(about) <= 5, about
  assert any("resumed from step 80" in l for l in about)
  assert len(list(ckpt_dir.glob("unreadable-100-*"))) == 1


def test_metrics_have_no_repeated_step_after_a_kill(tmp_path):
  # stop_after_steps stops as a kill would: records after the last checkpoint
  # (step 40) were written, and the resumed run writes those steps again.
  workdir = tmp_path / "run"
  extra = {"train.checkpoint_every_steps": 20}
  train_lib.train_and_evaluate(_config(**extra, **{"train.stop_after_steps": 50}), workdir)
  train_lib.train_and_evaluate(_config(**extra), workdir)
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train_steps = [r["step"] for r in records if r["split"] == "train"]
  assert train_steps == list(range(1, 161))
  # The resumed epoch's averages cover all of it (80 steps of 4 examples).
  epochs = [r for r in records if r["split"] == "train_epoch"]
  assert [r["epoch"] for r in epochs] == [1, 2]
  assert all(r["count"] == 320 for r in epochs)


def _saved_without_the_field(tmp_path) -> dict:
  """Writes a run identity saved before a config field existed; returns its data part."""
  data = {"source": "files", "fingerprint": "f", "vocab_sha256": "v", "vocab_size": 9,
          "label_names": ["a", "b"], "sizes": {"train": 1}}
  saved = {"config": {"model.d_model": 16}, "data": data}
  (tmp_path / workdir_lib.IDENTITY_FILE).write_text(json.dumps(saved))
  return data


def test_a_field_added_since_the_run_started_resumes_at_its_default(tmp_path):
  data = _saved_without_the_field(tmp_path)
  now = lambda value: {"config": {"model.d_model": 16, "model.init": value}, "data": data}
  defaults = {"model": {"d_model": 256, "init": "flax"}}
  assert workdir_lib.check_identity(tmp_path, now("flax"), defaults=defaults)
  with pytest.raises(errors.WorkdirError, match="config.model.init 'flax' \\(run, from before "
                     "the field existed\\) vs 'torch'"):
    workdir_lib.check_identity(tmp_path, now("torch"), defaults=defaults)


def test_a_field_whose_default_changed_resumes_at_its_old_value(tmp_path):
  # A run saved before data.batching existed trained on random batches, which
  # is what it must resume with, although bucketed is today's default.
  data = _saved_without_the_field(tmp_path)
  now = lambda value: {"config": {"model.d_model": 16, "data.batching": value}, "data": data}
  defaults = configs.get_config("sst2", "safr").to_dict()
  assert defaults["data"]["batching"] == "bucketed"
  assert workdir_lib.check_identity(tmp_path, now("random"), defaults=defaults)
  with pytest.raises(errors.WorkdirError,
                     match="config.data.batching 'random' \\(run, from before the field "
                     "existed\\) vs 'bucketed' \\(now; --config.data.batching=random resumes it\\)"):
    workdir_lib.check_identity(tmp_path, now("bucketed"), defaults=defaults)


# --- damaged or missing run files ---------------------------------------------------


def test_a_deleted_identity_is_rebuilt_from_the_run_files_when_they_agree(tmp_path, caplog):
  small = {"train.num_epochs": 1, "data.max_examples": 80}
  workdir = tmp_path / "run"
  assert train_lib.train_and_evaluate(
      _config(**small, **{"train.stop_after_steps": 10}), workdir) is None
  (workdir / workdir_lib.IDENTITY_FILE).unlink()
  before = _hashes(workdir)
  with pytest.raises(errors.WorkdirError,
                     match=r"holds another run \(run_identity.json is missing; compared "
                     r"with config.json, dataset.json, vocab.txt, labels.json\): "
                     r"config.model.d_model 16 \(run\) vs 32 \(now\)"):
    train_lib.train_and_evaluate(_config(**small, **{"model.d_model": 32}), workdir)
  assert _hashes(workdir) == before
  # The same run resumes (not "another run": data source None vs 'rt_polarity').
  results = train_lib.train_and_evaluate(_config(**small), workdir)
  assert results["epochs_run"] == 1
  assert "rebuilt it from config.json, dataset.json, vocab.txt, labels.json" in caplog.text
  saved = json.loads((workdir / workdir_lib.IDENTITY_FILE).read_text())
  assert saved["data"]["source"] == "rt_polarity" and saved["data"]["fingerprint"]


def _metrics_log(workdir: pathlib.Path, tail: bytes) -> pathlib.Path:
  path = workdir / "metrics.jsonl"
  lines = [json.dumps({"step": s, "split": "train", "loss": 1.0}) for s in (1, 2, 3)]
  path.write_bytes("\n".join(lines).encode() + b"\n" + tail)
  return path


@pytest.mark.parametrize("damage, what", [
    (b'{"step": 4, "split": "train", "loss": "\xff"}\n', "line 4 is damaged (invalid UTF-8"),
    (b'{"step": 4, "spl\n{"step": 5, "split": "train"}\n', "line 4 is damaged (not JSON"),
])
def test_a_damaged_metrics_log_is_one_error_naming_the_file_and_line(tmp_path, damage, what):
  from safr_jax import metrics  # pylint: disable=g-import-not-at-top
  path = _metrics_log(tmp_path, damage)
  before = path.read_bytes()
  with pytest.raises(errors.RunError) as e:
    metrics.MetricWriter(tmp_path, tensorboard=False, start_step=5)
  assert f"{path} {what}" in str(e.value) and "\n" not in str(e.value)
  assert path.read_bytes() == before  # nothing dropped behind the user's back


def test_a_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, caplog):
  from safr_jax import metrics  # pylint: disable=g-import-not-at-top
  path = _metrics_log(tmp_path, b'{"step": 4, "split": "tr')  # killed mid-write
  metrics.MetricWriter(tmp_path, tensorboard=False, start_step=5).close()
  assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [1, 2, 3]
  assert "torn last line" in caplog.text and str(path) in caplog.text


def test_concurrent_json_writers_never_collide_nor_show_half_a_file(tmp_path):
  import threading  # pylint: disable=g-import-not-at-top
  from safr_jax import provenance  # pylint: disable=g-import-not-at-top
  path = tmp_path / "shared.json"
  provenance.write_json(path, {"writer": -1, "payload": []})
  failures, reads = [], []

  def write(i):
    try:
      for j in range(20):
        provenance.write_json(path, {"writer": i, "payload": list(range(2000 + j))})
    except Exception as e:  # pylint: disable=broad-except
      failures.append(e)

  def read(stop):
    while not stop.is_set():
      try:
        reads.append(json.loads(path.read_text())["writer"])
      except Exception as e:  # pylint: disable=broad-except
        failures.append(e)

  stop = threading.Event()
  reader = threading.Thread(target=read, args=(stop,))
  reader.start()
  writers = [threading.Thread(target=write, args=(i,)) for i in range(8)]
  for t in writers:
    t.start()
  for t in writers:
    t.join()
  stop.set()
  reader.join()
  assert not failures, failures[:3]
  assert reads and json.loads(path.read_text())["writer"] in range(8)
  assert [p.name for p in tmp_path.iterdir()] == ["shared.json"]  # no temporary left


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_no_temporary(tmp_path,
                                                                         monkeypatch):
  import errno  # pylint: disable=g-import-not-at-top
  from safr_jax import provenance  # pylint: disable=g-import-not-at-top

  def full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(provenance.os, "fsync", full)
  with pytest.raises(errors.WorkdirError,
                     match=rf"cannot write {tmp_path / 'results.json'}: No space left on "
                     "device; free some space and run again"):
    provenance.write_json(tmp_path / "results.json", {"a": 1})
  assert list(tmp_path.iterdir()) == []
