"""Mixed precision: ``model.dtype="bfloat16"`` activations, float32 params and losses."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safr_jax import configs
from safr_jax import data, trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(dtype):
  c = configs.get_config("sst2", "safr")
  c.data.update(source="rt_polarity", max_examples=64, max_len=16, pad_to="batch")
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16, dtype=dtype)
  c.train.update(batch_size=16, eval_batch_size=32, learning_rate=3e-3, progress_bar=False)
  return c


def _train(dtype, workdir, steps=4):
  config = _config(dtype)
  del workdir
  setup = trainer.make_trainer(config)
  state = setup.init_state()
  it = data.train_iterator(setup.bundle.splits["train"], batch_size=16, seed=0,
                           pad_to="batch")
  history = []
  for _ in range(steps):
    state, sums = setup.train_step(state, setup.shard(next(it)))
    history.append(sums)
  return setup, state, history


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
  return _train("bfloat16", tmp_path_factory.mktemp("bf16"))


def test_bfloat16_activations_keep_float32_params_and_losses(bf16_run):
  setup, state, history = bf16_run
  for leaf in jax.tree.leaves((state.params, state.opt_state)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32
  for sums in history:
    for name, value in sums.items():
      assert value.dtype == jnp.float32, name
      assert np.isfinite(value), name
  # The activations really are bfloat16; attention weights and logits float32.
  ids = jnp.asarray(setup.bundle.splits["dev"].ids[:4])
  logits, inter = setup.model.apply({"params": state.params}, ids)
  assert inter.masked_embeddings.dtype == jnp.bfloat16
  assert inter.ffn_hidden[0].dtype == jnp.bfloat16
  assert inter.attention[0].dtype == jnp.float32
  assert logits.dtype == jnp.float32
  dev = setup.evaluate(state.params, "dev")
  assert all(np.isfinite(v) for v in dev.values())


def test_bfloat16_losses_are_close_to_float32(bf16_run, tmp_path):
  _, _, bf16 = bf16_run
  _, _, fp32 = _train("float32", tmp_path / "fp32", steps=1)
  for term in ("ce_sum", "importance_sum", "interaction_sum"):
    assert float(bf16[0][term]) == pytest.approx(float(fp32[0][term]), rel=3e-2), term
