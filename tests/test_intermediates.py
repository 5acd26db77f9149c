"""What explain and evaluate read (``interpret.forward``) is the trained model's own
computation: its attention weights, FFN activations and gated embeddings, for
the configs a run is made from, and it follows the model when the model changes."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safr_jax import configs, model as model_lib, steps
from safr_jax.interpret import forward

_VOCAB = 40
# (variant, model.dtype, tolerance). float32: 1e-6 (seen: ≤ 5e-7). bfloat16:
# values hold 8 significant bits (steps of 0.4-0.8 %), and XLA may keep a
# product in float32 in one compiled program where another rounds it to
# bfloat16 (seen: half a step, 0.34 % of a gated embedding; probabilities 4e-4),
# so 1e-2, relative and absolute.
_CONFIGS = [("safr", "float32", 1e-6), ("reference", "float32", 1e-6),
            ("baseline", "float32", 1e-6), ("safr", "bfloat16", 1e-2)]


def _run(variant, dtype, **model_fields):
  """A tiny untrained run of ``configs/sst2.py:variant`` (what ``runs.Run`` holds)."""
  config = configs.get_config("sst2", variant)
  config.model.update(d_model=16, num_heads=2, d_ff=24, vmask_hidden_dim=8, dtype=dtype,
                      **model_fields)
  config.data.max_len = 16
  model = steps.build_model(config.model, vocab_size=_VOCAB, num_classes=2)
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 16), jnp.int32))["params"]
  return types.SimpleNamespace(config=config, model=model, params=params)


def _ids():
  rng = np.random.default_rng(0)
  ids = rng.integers(1, _VOCAB, (5, 16)).astype(np.int32)
  for row, n in enumerate([16, 9, 4, 1, 0]):        # one full row, one empty row
    ids[row, n:] = 0
  ids[1, 2] = 0                                     # a hole before the last token
  return ids


def _own(run, ids):
  """The model's own ``(probs, Intermediates)`` of ``ids``."""
  logits, inter = jax.jit(lambda p, x: run.model.apply({"params": p}, x))(
      run.params, jnp.asarray(ids))
  return np.asarray(jax.nn.softmax(logits), np.float64), inter


def _f64(x):
  return np.asarray(jnp.asarray(x, jnp.float32), np.float64)


def _own_grad_x_input(run, ids, target):
  """Gradient × input through the model's ``__call__``: the gradient of log p(target)
  w.r.t. a zero added to what its ``nn.Embed`` returns, times that output."""
  embedded = run.params["embedding"]["embedding"][ids].astype(run.model.dtype)

  def log_p(delta):
    def add(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      hit = isinstance(context.module, nn.Embed) and context.method_name == "__call__"
      return out + delta if hit else out
    with nn.intercept_methods(add):
      logits, _ = run.model.apply({"params": run.params}, jnp.asarray(ids))
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return jnp.sum(jnp.take_along_axis(logp, jnp.asarray(target)[:, None], axis=-1))

  grads = jax.jit(jax.grad(log_p))(jnp.zeros_like(embedded))
  return np.where(ids != 0, _f64(jnp.sum(grads.astype(jnp.float32)
                                         * embedded.astype(jnp.float32), -1)), 0.0)


def _check_against_own(run, ids, tol):
  """Everything ``forward`` hands explain/evaluate equals the model's own values."""
  close = lambda got, want, what: np.testing.assert_allclose(
      got, want, rtol=tol, atol=tol, err_msg=what)
  predictor = forward.Predictor.for_run(run)
  lengths = forward.last_token(ids)
  seen = {}
  passed = forward.collect(predictor, ids, lengths, lambda row, a: seen.setdefault(row, a))
  ids = ids[:, :passed.width]
  probs, inter = _own(run, ids)
  mean_attention = np.mean([_f64(a) for a in inter.attention], axis=(0, 2))
  ffn = np.stack([_f64(h) for h in inter.ffn_hidden])
  close(passed.probs, probs, "probs")
  close(passed.attention, mean_attention, "attention")
  assert (passed.keep_prob is None) == (inter.keep_prob is None)
  if inter.keep_prob is not None:
    close(passed.keep_prob, _f64(inter.keep_prob), "keep_prob")
  assert sorted(seen) == [row for row in range(len(ids)) if lengths[row]]
  for row, acts in seen.items():
    n = int(lengths[row])
    close(acts.embeddings, _f64(inter.masked_embeddings[row, :n]), "embeddings")
    close(acts.ffn, ffn[:, row, :n], "ffn")
    close(acts.attention, mean_attention[row, :n, :n], "example attention")
  # Occlusion and faithfulness: copies with tokens deleted.
  rng = np.random.default_rng(1)
  rows = rng.integers(0, len(ids), 24)
  keep = rng.random((24, ids.shape[1])) < 0.6
  close(predictor.deletion_probs(ids, rows, keep),
        _own(run, np.where(keep, ids[rows], 0))[0], "deletion probs")
  target = np.argmax(probs, -1)
  close(predictor.grad_x_input(ids, lengths, target), _own_grad_x_input(run, ids, target),
        "gradient x input")
  return passed


@pytest.mark.parametrize("variant,dtype,tol", _CONFIGS)
def test_forward_reads_the_models_own_intermediates(variant, dtype, tol):
  run = _run(variant, dtype)
  assert run.model.use_vmask == (variant != "baseline")
  assert run.model.pool == ("all" if variant == "reference" else "tokens")
  _check_against_own(run, _ids(), tol)


def test_forward_follows_the_models_code(monkeypatch):
  """Change the model's attention softmax and positional encoding: what forward
  reads changes with them (it runs the model's code, it does not copy it)."""
  run = _run("safr", "float32", num_layers=2)
  ids = _ids()
  before = forward.collect(forward.Predictor.for_run(run), ids, forward.last_token(ids))
  softmax, positions = model_lib._softmax, model_lib.sinusoidal_positions  # pylint: disable=protected-access
  monkeypatch.setattr(model_lib, "_softmax", lambda scores: softmax(3.0 * scores))
  monkeypatch.setattr(model_lib, "sinusoidal_positions",
                      lambda length, dim: -2.0 * positions(length, dim))
  after = _check_against_own(run, ids, 1e-6)
  assert np.abs(after.attention - before.attention).max() > 1e-2
  assert np.abs(after.probs - before.probs).max() > 1e-4
