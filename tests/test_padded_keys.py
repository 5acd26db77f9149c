"""The authors' padded mode over real keys only: ``SafrClassifier(num_keys=)``
and ``steps``' ``cut_padded_keys`` give the numbers of the full key axis."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from safr_jax import losses, steps
from safr_jax.model import SafrClassifier

WIDTH = 64


def _model(**kw):
  return SafrClassifier(vocab_size=40, d_model=16, num_heads=2, d_ff=32,
                        vmask_hidden_dim=16, pool="all", param_init="torch", **kw)


def _batch(lengths, seed=0):
  ids = jax.random.randint(jax.random.key(seed), (len(lengths), WIDTH), 1, 40)
  ids = jnp.where(jnp.arange(WIDTH)[None, :] < jnp.asarray(lengths)[:, None], ids, 0)
  return {"ids": ids, "labels": jnp.arange(len(lengths)) % 2,
          "weights": (jnp.asarray(lengths) > 0).astype(jnp.float32)}


def test_key_lengths_and_needed_keys():
  assert steps.key_lengths(128) == (32, 64, 96, 128)
  assert steps.key_lengths(256) == (64, 128, 192, 256)
  assert steps.key_lengths(48) == (48,)  # too narrow to be worth the branches
  assert steps.key_lengths(128, enabled=False) == (128,)
  assert int(steps.needed_keys(_batch([5, 17, 3])["ids"])) == 17
  # A row of padding only attends uniformly to every key: nothing may be cut.
  assert int(steps.needed_keys(_batch([5, 0, 3])["ids"])) == WIDTH


@pytest.mark.parametrize("num_keys", [24, 40, WIDTH])
def test_model_over_the_first_keys_equals_all_keys(num_keys):
  model = _model()
  batch = _batch([20, 7, 1, 13])
  params = model.init(jax.random.key(0), batch["ids"])["params"]
  logits, full = model.apply({"params": params}, batch["ids"])
  cut_logits, cut = model.apply({"params": params}, batch["ids"], num_keys=num_keys)
  assert cut.attention[0].shape == (4, 2, WIDTH, num_keys)
  np.testing.assert_allclose(cut_logits, logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(cut.attention[0], full.attention[0][..., :num_keys],
                             rtol=1e-5, atol=1e-7)
  assert np.all(np.asarray(full.attention[0][..., num_keys:]) == 0.0)
  for mask in (None, batch["ids"] != 0):
    np.testing.assert_allclose(
        losses.interaction_loss(attention_weights=cut.attention[0], token_mask=mask),
        losses.interaction_loss(attention_weights=full.attention[0], token_mask=mask),
        rtol=1e-5)


@pytest.mark.parametrize("lengths", [[20, 7, 1, 13], [20, 0, 1, 13], [64, 2, 3, 4]])
def test_train_and_eval_steps_give_the_same_numbers_with_keys_cut(lengths):
  model, tx = _model(), optax.adam(1e-2)
  state = steps.create_train_state(model, tx, seed=0, max_len=WIDTH)
  batch = _batch(lengths)
  static = dict(model=model, weights=losses.LossWeights(), count_padding=True)
  train = {cut: jax.jit(functools.partial(steps.train_step, tx=tx, cut_padded_keys=cut,
                                          **static)) for cut in (False, True)}
  evaluate = {cut: jax.jit(functools.partial(steps.eval_step, cut_padded_keys=cut, **static))
              for cut in (False, True)}
  states = {cut: state for cut in train}
  for _ in range(3):
    sums = {}
    for cut in train:
      states[cut], sums[cut] = train[cut](states[cut], batch)
    for key in sums[False]:
      np.testing.assert_allclose(sums[True][key], sums[False][key], rtol=2e-5, atol=1e-6,
                                 err_msg=key)
  # (Not the attention key bias: softmax is invariant to it, so its gradient is
  # rounding noise that Adam scales to full-size steps; tests/test_sharding.py.)
  flat = {cut: jax.tree_util.tree_flatten_with_path(states[cut].params)[0] for cut in train}
  for (path, a), (_, b) in zip(flat[True], flat[False]):
    name = jax.tree_util.keystr(path)
    if "['key']['bias']" not in name:
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=name)
  got = {cut: evaluate[cut](states[False].params, batch) for cut in evaluate}
  for key in got[False]:
    np.testing.assert_allclose(got[True][key], got[False][key], rtol=1e-5, atol=1e-6,
                               err_msg=key)


def test_reference_semantics_cut_by_default():
  """count_padding=True (the authors' padded mode) cuts unless told not to:
  the jitted step then holds one branch per key length."""
  model, tx = _model(), optax.adam(1e-2)
  state = steps.create_train_state(model, tx, seed=0, max_len=WIDTH)
  batch = _batch([20, 7, 1, 13])
  texts = {}
  for cut in (None, False):
    step = jax.jit(functools.partial(steps.train_step, model=model, tx=tx,
                                     weights=losses.LossWeights(), count_padding=True,
                                     cut_padded_keys=cut))
    texts[cut] = step.lower(state, batch).as_text()
  # One more lax.switch (the non-finite guard is a lax.cond in both), whose
  # branches hold attention over 16, 32, 48 and all 64 keys.
  assert texts[None].count("stablehlo.case") == texts[False].count("stablehlo.case") + 1
  assert "2x64x16xf32" in texts[None] and "2x64x16xf32" not in texts[False]


def test_keys_are_cut_where_it_pays():
  rng = np.random.default_rng(0)
  sentences = rng.integers(3, 60, 5000)              # SST-2-like rows, width 128
  reviews = np.minimum(rng.gamma(2.0, 110.0, 5000), 256).astype(int)  # IMDB-like, 256
  assert steps.cut_pays(sentences, 128, 32)
  assert not steps.cut_pays(reviews, 256, 32)
  assert not steps.cut_pays(sentences, 48, 32)       # too narrow to have branches
