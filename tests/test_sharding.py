"""sharding: data parallel over many devices gives the losses of one device.

The main pytest process has one CPU device, and the device count is fixed when
jax starts, so the many-device runs happen in subprocesses that set
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before importing jax:
this file doubles as the worker (``python tests/test_sharding.py worker ...``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 20
TERMS = ("loss", "ce", "importance", "interaction", "accuracy", "grad_norm", "keep_rate")


def _env(devices: int) -> dict[str, str]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
  return env


@pytest.fixture(scope="module")
def one_and_eight():
  # Both workers at once: each spends most of its time compiling on one core.
  procs = [subprocess.Popen(
      [sys.executable, str(pathlib.Path(__file__).resolve()), "worker", str(devices)],
      cwd=ROOT, env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for devices in (1, 8)]
  out = []
  try:
    for proc in procs:
      stdout, stderr = proc.communicate(timeout=240)
      assert proc.returncode == 0, stderr[-4000:]
      out.append(json.loads(stdout.strip().splitlines()[-1]))
  finally:  # a timeout or failure must not leave the other worker computing
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  return tuple(out)


def test_eight_devices_train_with_the_losses_of_one(one_and_eight):
  one, eight = one_and_eight
  assert one["devices"] == 1 and eight["devices"] == 8
  # The batch really is split: each of the 8 devices holds 1/8 of the rows.
  assert eight["shard_rows"] == [eight["batch_size"] // 8] * 8
  assert len(one["steps"]) == len(eight["steps"]) == STEPS
  for step, (a, b) in enumerate(zip(one["steps"], eight["steps"]), start=1):
    for term in TERMS:
      assert b[term] == pytest.approx(a[term], abs=1e-5, rel=1e-5), (step, term)
  # Training moved (so agreeing means something) and ended at the same weights.
  assert one["steps"][0]["loss"] != pytest.approx(one["steps"][-1]["loss"], abs=1e-3)
  assert eight["param_sample"].keys() == one["param_sample"].keys()
  for name, values in one["param_sample"].items():
    np.testing.assert_allclose(eight["param_sample"][name], values, atol=1e-5, rtol=1e-4,
                               err_msg=name)
  for term in ("loss", "accuracy", "importance", "interaction"):
    assert eight["dev"][term] == pytest.approx(one["dev"][term], abs=1e-5, rel=1e-5)


def test_batch_not_divisible_by_device_count_is_a_one_line_error(tmp_path):
  env = _env(8)
  proc = subprocess.run(
      [sys.executable, "train.py", "--config=configs/sst2.py:quick",
       "--config.data.source=rt_polarity", "--config.train.batch_size=12",
       f"--workdir={tmp_path / 'run'}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert ("error: config.train.batch_size=12 must be a positive multiple of the "
          "device count 8") in proc.stderr
  assert "Traceback" not in proc.stderr
  # Refused at start-up: nothing was trained or written.
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_check_batch_size_names_the_field():
  import jax  # pylint: disable=g-import-not-at-top
  from safr_jax import sharding  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh()
  sharding.check_batch_size(4, mesh, "x")
  with pytest.raises(ValueError, match=r"config.train.eval_batch_size=0 must be a positive "
                     rf"multiple of the device count {jax.device_count()}"):
    sharding.check_batch_size(0, mesh, "config.train.eval_batch_size")


def test_shard_batch_on_one_device_keeps_values():
  from safr_jax import sharding  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh()
  batch = {"ids": np.arange(12, dtype=np.int32).reshape(4, 3),
           "labels": np.array([0, 1, 1, 0], np.int32)}
  out = sharding.shard_batch(batch, mesh)
  for key, value in batch.items():
    np.testing.assert_array_equal(np.asarray(out[key]), value)
    assert out[key].sharding == sharding.batch_sharding(mesh)


# ----------------------------------------------------------------------------
# The worker: a tiny SAFR model, 20 real training steps through train_lib's
# jitted, sharded step (mesh, check_batch_size, shard_batch, donation).


def _tiny_config():
  from safr_jax import configs  # pylint: disable=g-import-not-at-top
  c = configs.get_config("sst2", "safr")
  # pad_to="batch": widths vary, so more than one compiled shape is exercised.
  c.data.update(source="rt_polarity", max_examples=96, max_len=24, pad_to="batch")
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  c.train.update(batch_size=16, eval_batch_size=32, num_epochs=5, learning_rate=3e-3,
                 progress_bar=False)
  return c


def _worker(devices: int) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  from safr_jax import data, metrics, trainer  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == devices, (jax.device_count(), devices)
  config = _tiny_config()
  setup = trainer.make_trainer(config)
  state = setup.init_state()
  it = data.train_iterator(setup.bundle.splits["train"],
                           batch_size=config.train.batch_size, seed=config.seed,
                           pad_to=config.data.pad_to)
  steps, shard_rows = [], None
  for _ in range(STEPS):
    batch = setup.shard(next(it))
    if shard_rows is None:
      shard_rows = [s.data.shape[0] for s in batch["ids"].addressable_shards]
    state, sums = setup.train_step(state, batch)
    steps.append(metrics.means(sums))
  dev = setup.evaluate(state.params, "dev")
  # The attention key bias is left out: softmax ignores it, so its gradient
  # is rounding noise, which Adam scales up to full-size, device-count-
  # dependent steps -- they change no output.
  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state.params))[0]
  sample = {jax.tree_util.keystr(path): np.ravel(x)[:64].tolist() for path, x in flat
            if "key" not in jax.tree_util.keystr(path) or "bias" not in jax.tree_util.keystr(path)}
  print(json.dumps({"devices": jax.device_count(), "batch_size": config.train.batch_size,
                    "shard_rows": shard_rows, "steps": steps, "dev": dev,
                    "param_sample": sample}))


if __name__ == "__main__":
  if len(sys.argv) >= 3 and sys.argv[1] == "worker":
    sys.path.insert(0, str(ROOT))
    _worker(int(sys.argv[2]))
  else:
    sys.exit("usage: python tests/test_sharding.py worker DEVICES")
