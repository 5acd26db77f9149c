"""safr_jax.steps.train_step: what a non-finite step does (and does not) change."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from safr_jax import losses, steps
from safr_jax.model import SafrClassifier


def _setup():
  model = SafrClassifier(vocab_size=30, d_model=16, num_heads=2, d_ff=32,
                         vmask_hidden_dim=16, pool="tokens")
  tx = optax.adam(1e-2)
  state = steps.create_train_state(model, tx, seed=0, max_len=8)
  ids = jax.random.randint(jax.random.key(1), (4, 8), 1, 30).at[2, 5:].set(0)
  batch = {"ids": ids, "labels": jnp.asarray([0, 1, 1, 0])}
  step = jax.jit(functools.partial(steps.train_step, model=model, tx=tx,
                                   weights=losses.LossWeights(), count_padding=False))
  return state, batch, step


def _leaves_equal(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
def test_a_non_finite_step_changes_neither_params_nor_optimizer_state(bad):
  state, batch, step = _setup()
  good, sums = step(state, batch, None, jnp.float32(1.0))
  assert float(sums["nonfinite_sum"]) == 0.0
  # A finite step moves the parameters and Adam's moments and count.
  assert not _leaves_equal(good.params, state.params)
  assert not _leaves_equal(good.opt_state, state.opt_state)
  # A λ scale of NaN/inf makes the loss (and gradient) non-finite: nothing moves
  # but the step count, and the metrics say so.
  after, sums = step(good, batch, None, jnp.float32(bad))
  assert float(sums["nonfinite_sum"]) == float(sums["count"]) == 4.0
  assert not np.isfinite(float(sums["loss_sum"]))
  assert _leaves_equal(after.params, good.params)
  assert _leaves_equal(after.opt_state, good.opt_state)
  assert int(after.step) == int(good.step) + 1
  # ...and the next finite step goes on from there as if the bad one never was.
  again, _ = step(after, batch, None, jnp.float32(1.0))
  direct, _ = step(good.replace(step=after.step), batch, None, jnp.float32(1.0))
  assert _leaves_equal(again.params, direct.params)
  assert _leaves_equal(again.opt_state, direct.opt_state)


def test_apply_if_finite_is_the_optimizer_step_when_finite():
  params = {"w": jnp.arange(3.0), "b": jnp.ones(())}
  tx = optax.adam(0.1)
  opt_state = tx.init(params)
  grads = {"w": jnp.asarray([1.0, -2.0, 0.5]), "b": jnp.asarray(3.0)}
  updates, want_opt = tx.update(grads, opt_state, params)
  want = optax.apply_updates(params, updates)
  got, got_opt = jax.jit(steps.apply_if_finite, static_argnums=1)(
      jnp.bool_(True), tx, grads, params, opt_state)
  # (jit fuses Adam's arithmetic its own way: equal to rounding.)
  for x, y in zip(jax.tree.leaves((got, got_opt)), jax.tree.leaves((want, want_opt))):
    np.testing.assert_allclose(x, y, rtol=1e-6)
  assert not _leaves_equal(got, params)
  same, same_opt = steps.apply_if_finite(jnp.bool_(False), tx, grads, params, opt_state)
  assert _leaves_equal(same, params) and _leaves_equal(same_opt, opt_state)
