"""train_lib / train.py: end to end, exact resume, early stopping, failures."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safr_jax import configs
from safr_jax import checkpointing, errors, losses, steps, train_lib, trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tiny_config(**overrides):
  """A model small enough that a whole run takes seconds on 2 cores."""
  c = configs.get_config("sst2", "safr")
  c.data.update(source="rt_polarity", max_examples=64, max_len=16, pad_to="max_len")
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  c.train.update(batch_size=16, eval_batch_size=32, num_epochs=2, learning_rate=3e-3,
                 checkpoint_every_steps=3, log_every_steps=2, progress_bar=False)
  for key, value in overrides.items():
    section, field = key.split(".")
    c[section][field] = value
  return c


def _params(workdir, step):
  ckpts = checkpointing.Checkpoints(pathlib.Path(workdir) / "checkpoints")
  try:
    restored = ckpts.restore(step)
  finally:
    ckpts.close()
  return restored.state["params"], restored.meta


def _run(argv, timeout=300):
  return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


# --- the user's command -------------------------------------------------------


def test_quick_config_runs_end_to_end_offline(tmp_path):
  workdir = tmp_path / "quick"
  cache = tmp_path / "xla_cache"
  proc = _run(["train.py", "--config=configs/sst2.py:quick", f"--workdir={workdir}",
               f"--config.train.compilation_cache_dir={cache}"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert list(cache.iterdir())  # the CLI turned XLA's persistent cache on
  results = json.loads((workdir / "results.json").read_text())
  # Offline, `auto` must have fallen back to the builtin substitute and said so.
  assert results["source"] == "rt_polarity"
  # The CPU it trained on: XLA:CPU is deterministic on one kind only.
  info = pathlib.Path("/proc/cpuinfo")
  cpu = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
         if line.startswith("model name")] if info.exists() else []
  assert results["devices"]["host_cpu"] == (cpu[0] if cpu else None)
  assert results["dataset"]["requested_source"] == "auto"
  assert "NOT" in results["dataset"]["description"]
  assert 0.0 <= results["test"]["accuracy"] <= 1.0
  for key in ("ce", "importance", "interaction"):
    assert np.isfinite(results["test"][key])
  assert results["versions"]["jax"] == jax.__version__
  assert results["config"]["variant"] == "quick"
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  splits = {r["split"] for r in records}
  assert {"train", "dev", "test"} <= splits
  assert all("grad_norm" in r and "keep_rate" in r for r in records if r["split"] == "train")
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps and results["best_step"] in steps
  assert (workdir / "vocab.txt").exists() and (workdir / "config.json").exists()
  assert "Test accuracy" in proc.stdout
  # Expected third-party noise is filtered at the command line.
  for noise in ("Unable to initialize backend 'tpu'", "tracked_metric", "dataset_info.json"):
    assert noise not in proc.stderr


def test_unwritable_workdir_is_one_clear_error(tmp_path, monkeypatch):
  # As root, chmod cannot make a folder read-only; the OS error is simulated.
  import errno  # pylint: disable=g-import-not-at-top
  real_mkdir = pathlib.Path.mkdir

  def read_only(self, *args, **kwargs):
    if self == tmp_path / "ro":
      raise OSError(errno.EROFS, "Read-only file system", str(self))
    return real_mkdir(self, *args, **kwargs)

  monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
  with pytest.raises(errors.WorkdirError, match=r"cannot write in .*ro: Read-only file system"):
    train_lib.train_and_evaluate(tiny_config(), tmp_path / "ro")


# --- resume -------------------------------------------------------------------


def test_interrupted_run_resumes_to_identical_parameters(tmp_path):
  full = train_lib.train_and_evaluate(tiny_config(), tmp_path / "full")
  # 64 examples / 16 = 4 steps per epoch; checkpoints at 3, 4 (epoch), 6, 8.
  stopped = train_lib.train_and_evaluate(
      tiny_config(**{"train.stop_after_steps": 5}), tmp_path / "cut")
  assert stopped is None
  assert not (tmp_path / "cut" / "results.json").exists()
  resumed = train_lib.train_and_evaluate(tiny_config(), tmp_path / "cut")
  a, _ = _params(tmp_path / "full", 8)
  b, _ = _params(tmp_path / "cut", 8)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert resumed["test"] == full["test"]
  assert resumed["dev_history"] == full["dev_history"]


def test_unreadable_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
  workdir = tmp_path / "run"
  train_lib.train_and_evaluate(tiny_config(**{"train.stop_after_steps": 7}), workdir)
  ckpt_dir = workdir / "checkpoints"
  assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [4, 6]
  for f in (ckpt_dir / "6" / "state").rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  # A half-written save (orbax's temporary folder, as a kill during a save
  # leaves it) is ignored, and the trainer removes it.
  (ckpt_dir / "9.orbax-checkpoint-tmp" / "state").mkdir(parents=True)
  results = train_lib.train_and_evaluate(tiny_config(), workdir)
  assert results is not None and results["epochs_run"] == 2
  assert "resumed from step 4" in caplog.text
  # Nothing is deleted: the unreadable checkpoint is kept aside for inspection.
  assert len(list(ckpt_dir.glob("unreadable-6-*"))) == 1
  assert not list(ckpt_dir.glob("*orbax-checkpoint-tmp*"))


def test_checkpoint_of_another_model_shape_is_a_clear_error(tmp_path):
  # The workdir identity check (tests/test_workdir.py) refuses this first; the
  # checkpoint's own record is the second line of defence, e.g. for a folder
  # of bare checkpoints.
  workdir = tmp_path / "run"
  train_lib.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), workdir)
  (workdir / "run_identity.json").unlink()
  (workdir / "config.json").unlink()
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"different model: d_model 16 \(checkpoint\) vs 32 \(config\)"):
    train_lib.train_and_evaluate(tiny_config(**{"model.d_model": 32}), workdir)


# --- early stopping and the best checkpoint ------------------------------------


def test_early_stopping_after_patience_epochs(tmp_path):
  # With a learning rate of 0 dev accuracy never improves after epoch 1.
  results = train_lib.train_and_evaluate(
      tiny_config(**{"train.learning_rate": 0.0, "train.patience": 2,
                     "train.num_epochs": 10}), tmp_path / "run")
  assert results["epochs_run"] == 3
  assert results["stopped_early"] and results["best_epoch"] == 1


def test_lambda_warmup_trains_without_safr_losses_then_with_them(tmp_path):
  # Epoch 1 of a warm-up trains as the `vmask` variant does (λ = 0), not as SAFR.
  epoch = 4  # 64 examples / batch 16
  params = {}
  for name, overrides in (("warm", {"loss.warmup_epochs": 1}),
                          ("vmask", {"loss.importance": 0.0, "loss.interaction": 0.0}),
                          ("safr", {})):
    train_lib.train_and_evaluate(
        tiny_config(**overrides, **{"train.stop_after_steps": epoch + 1}), tmp_path / name)
    params[name] = jax.tree.leaves(_params(tmp_path / name, epoch)[0])
  # Float noise only (λ·0 is still in the graph; Adam turns the key bias's
  # ~0 gradient noise into lr-sized steps), against SAFR's lr-sized changes.
  for a, b in zip(params["warm"], params["vmask"]):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
  assert max(float(np.abs(a - b).max()) for a, b in zip(params["warm"], params["safr"])) > 1e-2
  # With a learning rate of 0 dev accuracy never improves, yet the warm-up
  # epochs neither count for patience nor become the best checkpoint.
  stopped = train_lib.train_and_evaluate(
      tiny_config(**{"loss.warmup_epochs": 3, "train.learning_rate": 0.0,
                     "train.patience": 2, "train.num_epochs": 10}), tmp_path / "stopped")
  assert stopped["best_epoch"] == 4 and stopped["epochs_run"] == 6


def test_frozen_groups_keep_their_initial_values_and_the_rest_trains(tmp_path):
  c = tiny_config(**{"train.frozen": "embedding, vmask", "train.stop_after_steps": 5})
  train_lib.train_and_evaluate(c, tmp_path / "run")
  after, _ = _params(tmp_path / "run", 4)  # the epoch end
  model = steps.build_model(c.model, vocab_size=after["embedding"]["embedding"].shape[0],
                            num_classes=2)
  before = steps.create_train_state(model, steps.make_optimizer(c.train, 8), seed=c.seed,
                                    max_len=c.data.max_len).params
  for group in ("embedding", "vmask"):
    for x, y in zip(jax.tree.leaves(before[group]), jax.tree.leaves(after[group])):
      np.testing.assert_array_equal(x, y)
  assert max(float(np.abs(x - y).max()) for x, y in zip(
      jax.tree.leaves(before["block_0"]), jax.tree.leaves(after["block_0"]))) > 1e-3


def test_lr_scale_multiplies_its_groups_updates_only():
  params = {"embedding": {"embedding": jnp.full((4, 3), 0.5)},
            "block_0": {"kernel": jnp.full((3, 3), -0.2)}}
  grads = jax.tree.map(lambda p: jnp.linspace(-1.0, 2.0, p.size).reshape(p.shape), params)

  def updates(**overrides):
    tx = steps.make_optimizer(tiny_config(**overrides).train, 8)
    state = tx.init(params)
    for _ in range(3):  # Adam's moments build up: the multiplier still holds each step
      u, state = tx.update(grads, state, params)
    return u

  plain, scaled = updates(), updates(**{"train.lr_scale": "embedding = 16"})
  np.testing.assert_allclose(scaled["embedding"]["embedding"],
                             16 * plain["embedding"]["embedding"], rtol=1e-6)
  np.testing.assert_array_equal(scaled["block_0"]["kernel"], plain["block_0"]["kernel"])
  assert float(jnp.abs(plain["embedding"]["embedding"]).min()) > 0


def test_test_metrics_come_from_the_best_checkpoint(tmp_path, monkeypatch):
  real_evaluate = trainer.Trainer.evaluate
  scripted = iter([0.5, 0.9, 0.6, 0.55])

  def fake_dev(self, params, split_name, vmask_kl_weight=None, **kwargs):
    out = real_evaluate(self, params, split_name, vmask_kl_weight, **kwargs)
    if split_name == "dev":
      out["accuracy"] = next(scripted)
    return out

  monkeypatch.setattr(trainer.Trainer, "evaluate", fake_dev)
  workdir = tmp_path / "run"
  results = train_lib.train_and_evaluate(
      tiny_config(**{"train.patience": 2, "train.num_epochs": 10}), workdir)
  assert results["dev_history"] == [0.5, 0.9, 0.6, 0.55]
  assert results["best_epoch"] == 2 and results["best_step"] == 8
  monkeypatch.setattr(trainer.Trainer, "evaluate", real_evaluate)

  # Recompute test metrics of the best and of the last weights independently.
  config = tiny_config()
  setup = trainer.make_trainer(config)
  best, _ = _params(workdir, 8)
  last, _ = _params(workdir, 16)
  on_best = setup.evaluate(best, "test")
  on_last = setup.evaluate(last, "test")
  assert results["test"]["loss"] == pytest.approx(on_best["loss"], rel=1e-6)
  assert on_last["loss"] != pytest.approx(on_best["loss"], rel=1e-6)
  # ...and the last epoch's weights, what the authors' code would report.
  assert results["last_step"] == 16
  assert results["test_last_epoch"]["loss"] == pytest.approx(on_last["loss"], rel=1e-6)


# --- divergence ----------------------------------------------------------------


def test_nan_loss_stops_with_the_step_and_term_and_keeps_the_best(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  train_lib.train_and_evaluate(tiny_config(**{"train.num_epochs": 1}), workdir)
  before, _ = _params(workdir, 4)
  real = losses.safr_loss

  def nan_importance(**kw):
    total, terms = real(**kw)
    terms = dict(terms, importance=terms["importance"] * jnp.nan)
    return total + terms["importance"], terms

  monkeypatch.setattr(steps.losses, "safr_loss", nan_importance)
  with pytest.raises(errors.TrainingDiverged,
                     match=r"diverged at step 5: non-finite importance"):
    train_lib.train_and_evaluate(tiny_config(**{"train.num_epochs": 3}), workdir)
  after, meta = _params(workdir, 4)
  assert meta["history"]["best_step"] == 4
  for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(x, y)
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [4]


# --- bad input -----------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"loss.importance": -1.0}, r"config.loss.importance \(a λ\) must be a number >= 0, got -1.0"),
    ({"data.max_len": 0}, r"config.data.max_len must be >= 1, got 0"),
    ({"model.num_heads": 3}, r"config.model.d_model must be divisible by model.num_heads=3"),
    ({"train.batch_size": 1000}, r"config.train.batch_size=1000 is larger than the train split"),
    ({"train.frozen": "embeding"}, r"config.train.frozen 'embeding' is not a parameter group "
                                   r"\(one of \['embedding', 'classifier', 'vmask', 'block_0'\]\)"),
    ({"train.lr_scale": "embedding:16"}, r"config.train.lr_scale: 'embedding:16' is not "
                                         r"group=number \(e.g. 'embedding=16'\)"),
    ({"train.lr_scale": "block_1=2"}, r"config.train.lr_scale 'block_1' is not a parameter group"),
    ({"train.lr_scale": "vmask=0"}, r"config.train.lr_scale vmask's multiplier must be a finite "
                                    r"number > 0 \(freeze with train.frozen\), got 'vmask=0'"),
])
def test_bad_config_values_are_clear_errors(tmp_path, overrides, message):
  with pytest.raises(errors.ConfigError, match=message):
    train_lib.train_and_evaluate(tiny_config(**overrides), tmp_path / "run")


@pytest.mark.parametrize("argv, message", [
    (["--config=configs/sst2.py", "--config.train.learning_rat=1"], "learning_rate"),
    (["--config=configs/sst2.py:nonsense"], "unknown variant 'nonsense'"),
    (["--config=configs/sst2.py:quick", "--config.loss.interaction=-2"],
     "config.loss.interaction (a λ) must be a number >= 0, got -2"),
])
def test_cli_errors_are_one_line(tmp_path, argv, message):
  proc = _run(["train.py", *argv, f"--workdir={tmp_path / 'w'}"], timeout=120)
  assert proc.returncode != 0
  assert message in proc.stderr
  assert "Traceback" not in proc.stderr


# --- VMASK's information bottleneck -------------------------------------------


def test_vmask_kl_schedule_steps_after_every_tenth_epoch():
  beta, seen = 1.0, {}
  for epoch in range(1, 131):
    beta = steps.next_vmask_kl_weight(beta, epoch, "vmask")
    seen[epoch] = beta
  assert seen[9] == 1.0 and seen[10] == pytest.approx(0.901)
  assert seen[19] == pytest.approx(0.901) and seen[20] == pytest.approx(0.802)
  assert seen[100] == pytest.approx(0.01) and seen[130] >= 0.0
  assert steps.next_vmask_kl_weight(0.5, 10, "constant") == 0.5


def test_bottleneck_schedule_survives_a_resume(tmp_path):
  overrides = {"loss.vmask_kl": 1.0, "loss.vmask_kl_schedule": "vmask",
               "train.num_epochs": 12, "train.patience": 100,
               "train.checkpoint_every_steps": 0}
  full = train_lib.train_and_evaluate(tiny_config(**overrides), tmp_path / "full")
  assert train_lib.train_and_evaluate(
      tiny_config(**overrides, **{"train.stop_after_steps": 42}), tmp_path / "cut") is None
  resumed = train_lib.train_and_evaluate(tiny_config(**overrides), tmp_path / "cut")
  assert resumed["test"] == full["test"]
  for a, b in zip(jax.tree.leaves(_params(tmp_path / "full", 48)[0]),
                  jax.tree.leaves(_params(tmp_path / "cut", 48)[0])):
    np.testing.assert_array_equal(a, b)
  records = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
  beta = {r["epoch"]: r["vmask_kl_weight"] for r in records if r["split"] == "train_epoch"}
  assert beta[10] == 1.0 and beta[11] == pytest.approx(0.901) and beta[12] == pytest.approx(0.901)
  # β enters the loss: the last epoch's weights are scored with its β.
  last = full["test_last_epoch"]
  assert last["loss"] == pytest.approx(
      last["ce"] + last["importance"] + last["interaction"] + 0.901 * last["vmask_kl"],
      rel=1e-5)


@pytest.mark.parametrize("argv0, typed", [(str(ROOT / "train.py"), "python train.py"),
                                          ("/venv/bin/safr-train", "safr-train")])
def test_help_names_the_command_as_typed(argv0, typed):
  code = (f"import sys; sys.argv = [{argv0!r}, '--help']; "
          "from safr_jax import commands; commands.train()")
  proc = _run(["-c", code], timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"\n  {typed} --config=sst2[:VARIANTS]" in proc.stdout


@pytest.mark.parametrize("command", ["explain", "evaluate", "compare"])
def test_an_installed_commands_help_shows_its_usage_as_typed(command):
  code = (f"import sys; sys.argv = ['/venv/bin/safr-{command}', '--help']; "
          f"from safr_jax import commands; commands.{command}()")
  proc = _run(["-c", code], timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"\n    safr-{command} " in proc.stdout and "python -m" not in proc.stdout


def test_a_config_by_name_works_from_any_directory(tmp_path):
  by_path = _run(["-m", "safr_jax.configs", str(ROOT / "configs" / "imdb.py") + ":quick,baseline"])
  by_name = subprocess.run([sys.executable, "-m", "safr_jax.configs", "imdb:quick,baseline"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert by_path.returncode == by_name.returncode == 0, by_name.stderr[-2000:]
  assert by_name.stdout == by_path.stdout and "max_len: 64" in by_name.stdout
