"""safr_jax.losses: parity with the authors' code, masking, gradients, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_golden
from safr_jax import losses


def _attention(scores, key_mask):
  scores = jnp.where(key_mask[:, None, None, :], scores, -1e9)
  return jax.nn.softmax(scores, axis=-1)


# --- parity with the authors' PyTorch code (float64) -------------------------


def test_importance_loss_matches_authors(x64):
  g = load_golden("regularizers.npz")
  fn = lambda x: losses.importance_loss(embeddings=x)
  value, grad = jax.value_and_grad(fn)(jnp.asarray(g["x"]))
  np.testing.assert_allclose(value, g["imp_loss"], rtol=1e-6)
  np.testing.assert_allclose(grad, g["imp_grad_x"], rtol=1e-6, atol=1e-12)
  # The golden zero rows (as VMASK's hard sample makes them) get zero gradient.
  assert np.all(np.asarray(grad)[0, 5:] == 0) and np.all(np.asarray(grad)[2, 3] == 0)


def test_interaction_loss_matches_authors_through_softmax(x64):
  g = load_golden("regularizers.npz")
  mask = jnp.asarray(g["key_mask"])
  np.testing.assert_allclose(_attention(jnp.asarray(g["scores"]), mask), g["attn"],
                             rtol=1e-12)
  fn = lambda s: losses.interaction_loss(attention_weights=_attention(s, mask))
  value, grad = jax.value_and_grad(fn)(jnp.asarray(g["scores"]))
  np.testing.assert_allclose(value, g["inter_loss"], rtol=1e-6)
  np.testing.assert_allclose(grad, g["inter_grad_scores"], rtol=1e-6, atol=1e-14)


def test_interaction_loss_matches_authors_wrt_attention(x64):
  g = load_golden("regularizers.npz")
  fn = lambda a: losses.interaction_loss(attention_weights=a)
  value, grad = jax.value_and_grad(fn)(jnp.asarray(g["attn"]))
  np.testing.assert_allclose(value, g["inter_loss"], rtol=1e-6)
  np.testing.assert_allclose(grad, g["inter_grad_attn"], rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize("block", [1, 7])
def test_query_blocks_give_the_same_value_and_gradient(x64, block):
  g = load_golden("regularizers.npz")
  mask = jnp.asarray(g["key_mask"])
  for token_mask in (None, mask):
    full = lambda a: losses.interaction_loss(attention_weights=a, token_mask=token_mask)
    blocked = lambda a: losses.interaction_loss(
        attention_weights=a, token_mask=token_mask, query_block_size=block)
    a = jnp.asarray(g["attn"])
    np.testing.assert_allclose(blocked(a), full(a), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(blocked)(a), jax.grad(full)(a), rtol=1e-10,
                               atol=1e-15)


# --- padding-aware mode -------------------------------------------------------


def _random_batch(key, b=3, length=9, e=8, h=2, lengths=(9, 4, 1)):
  kx, ks = jax.random.split(key)
  x = jax.random.normal(kx, (b, length, e))
  mask = jnp.arange(length)[None, :] < jnp.asarray(lengths)[:, None]
  scores = jax.random.normal(ks, (b, h, length, length))
  return x, mask, scores


def _pad(array, extra, axes):
  widths = [(0, 0)] * array.ndim
  for axis in axes:
    widths[axis] = (0, extra)
  return jnp.pad(array, widths)


def test_padding_changes_neither_loss_when_masked():
  x, mask, scores = _random_batch(jax.random.key(0))
  x = jnp.where(mask[..., None], x, 0.0)
  imp = losses.importance_loss(embeddings=x, token_mask=mask)
  inter = losses.interaction_loss(attention_weights=_attention(scores, mask),
                                  token_mask=mask)
  for extra in (1, 7):
    x_p, mask_p = _pad(x, extra, [1]), _pad(mask, extra, [1])
    # Padding positions hold arbitrary values: they must not matter.
    x_p = x_p.at[:, -extra:].set(3.0)
    scores_p = _pad(scores, extra, [2, 3])
    np.testing.assert_allclose(
        losses.importance_loss(embeddings=x_p, token_mask=mask_p), imp, rtol=1e-6)
    np.testing.assert_allclose(
        losses.interaction_loss(attention_weights=_attention(scores_p, mask_p),
                                token_mask=mask_p), inter, rtol=1e-6)
  # ...whereas the reference semantics count padding, so it does change them.
  x_p = _pad(x, 7, [1])
  assert not np.isclose(losses.importance_loss(embeddings=x_p),
                        losses.importance_loss(embeddings=x))


def test_full_mask_equals_reference():
  x, _, scores = _random_batch(jax.random.key(1), lengths=(9, 9, 9))
  full = jnp.ones(x.shape[:2], bool)
  a = jax.nn.softmax(scores, -1)
  np.testing.assert_allclose(losses.importance_loss(embeddings=x, token_mask=full),
                             losses.importance_loss(embeddings=x), rtol=1e-6)
  np.testing.assert_allclose(
      losses.interaction_loss(attention_weights=a, token_mask=full),
      losses.interaction_loss(attention_weights=a), rtol=1e-6)


def test_orthogonal_embeddings_have_zero_importance_loss():
  x = jnp.eye(4)[None] * 3.0  # four orthogonal tokens
  assert float(losses.importance_loss(embeddings=x)) == pytest.approx(0.0, abs=1e-7)
  # Identical tokens interfere maximally: each row of I is ‖x‖ off the diagonal.
  same = jnp.ones((1, 4, 4))
  expected = np.sqrt(3) * 2.0 / 2.0  # ‖(2, 2, 2)‖ / sqrt(E=4), norms are 2
  assert float(losses.importance_loss(embeddings=same)) == pytest.approx(
      expected, rel=1e-4)


def test_scale_invariant_importance_ignores_each_tokens_scale():
  x = jnp.array([[[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]])
  # Both sides normalised: Î = cosines; P_i = ‖Î_i‖₂ over j ≠ i.
  c = 1 / np.sqrt(2)
  want = np.mean([np.sqrt(c ** 2 + 0), np.sqrt(c ** 2 + c ** 2), np.sqrt(0 + c ** 2)])
  got = losses.importance_loss(embeddings=x, scale_invariant=True, eps=0.0)
  assert float(got) == pytest.approx(want, rel=1e-6)
  # Shrinking tokens (a closing gate) lowers the authors' L_Imp, not this one,
  # so it sends no gradient into a token's scale; a zero (dropped) token
  # still counts for nothing.
  shrink = x * jnp.array([1.0, 0.1, 0.5])[None, :, None]
  assert float(losses.importance_loss(embeddings=shrink)) < float(
      losses.importance_loss(embeddings=x))
  assert float(losses.importance_loss(embeddings=shrink, scale_invariant=True)) == (
      pytest.approx(float(got), rel=1e-4))
  scale_grad = jax.grad(lambda g: losses.importance_loss(
      embeddings=x * g[None, :, None], scale_invariant=True))(jnp.ones(3))
  np.testing.assert_allclose(scale_grad, 0.0, atol=1e-4)
  dropped = x.at[0, 2].set(0.0)
  assert float(losses.importance_loss(embeddings=dropped, scale_invariant=True)) == (
      pytest.approx(np.mean([c, c, 0.0]), rel=1e-4))


# --- gradients are finite in the corner cases --------------------------------


@pytest.mark.parametrize("case", ["zero_rows", "all_padding", "length_one"])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_finite(case, masked):
  x, mask, scores = _random_batch(jax.random.key(2))
  if case == "zero_rows":
    x = x.at[0, 3:].set(0.0).at[1].set(0.0)
  elif case == "all_padding":
    mask = mask.at[1].set(False)
    x = jnp.where(mask[..., None], x, 0.0)
  else:
    x, mask, scores = x[:, :1], mask[:, :1], scores[:, :, :1, :1]
  token_mask = mask if masked else None

  def total(x, scores, logits):
    a = _attention(scores, mask)
    return (losses.importance_loss(embeddings=x, token_mask=token_mask)
            + losses.interaction_loss(attention_weights=a, token_mask=token_mask)
            + losses.vmask_kl_loss(mask_logits=logits, token_mask=token_mask))

  logits = jnp.zeros(x.shape[:2] + (2,))
  value, grads = jax.value_and_grad(total, argnums=(0, 1, 2))(x, scores, logits)
  assert np.isfinite(value)
  for g in grads:
    assert np.all(np.isfinite(g))


def test_bfloat16_inputs_give_float32_losses():
  x, mask, scores = _random_batch(jax.random.key(3))
  a = jax.nn.softmax(scores, -1)
  imp = losses.importance_loss(embeddings=x.astype(jnp.bfloat16), token_mask=mask)
  inter = losses.interaction_loss(attention_weights=a.astype(jnp.bfloat16))
  assert imp.dtype == jnp.float32 and inter.dtype == jnp.float32
  np.testing.assert_allclose(imp, losses.importance_loss(embeddings=x, token_mask=mask),
                             rtol=2e-2)


def test_jit_and_vmap():
  x, mask, scores = _random_batch(jax.random.key(4))
  a = jax.nn.softmax(scores, -1)
  jitted = jax.jit(lambda x, m: losses.importance_loss(embeddings=x, token_mask=m))
  np.testing.assert_allclose(jitted(x, mask),
                             losses.importance_loss(embeddings=x, token_mask=mask),
                             rtol=1e-6)
  # vmap over an extra leading axis (e.g. layers) gives per-layer losses.
  stacked = jnp.stack([a, a[::-1]])
  per_layer = jax.vmap(lambda a: losses.interaction_loss(attention_weights=a))(stacked)
  np.testing.assert_allclose(
      per_layer[1], losses.interaction_loss(attention_weights=a[::-1]), rtol=1e-6)


# --- vmask KL and safr_loss ---------------------------------------------------


def test_vmask_kl_is_zero_at_the_prior_and_positive_elsewhere():
  logits = jnp.zeros((2, 3, 2))
  assert float(losses.vmask_kl_loss(mask_logits=logits)) == pytest.approx(0.0, abs=1e-7)
  sure = jnp.broadcast_to(jnp.asarray([0.0, 5.0]), (2, 3, 2))
  q = float(jax.nn.sigmoid(5.0))
  expected = q * np.log(q / 0.5) + (1 - q) * np.log((1 - q) / 0.5)
  assert float(losses.vmask_kl_loss(mask_logits=sure)) == pytest.approx(expected, rel=1e-5)


def test_safr_loss_weights_and_terms():
  x, mask, scores = _random_batch(jax.random.key(5))
  a = _attention(scores, mask)
  inter = {"masked_embeddings": x, "attention": (a, a), "vmask_logits": None}
  logits = jax.random.normal(jax.random.key(6), (3, 2))
  labels = jnp.asarray([0, 1, 1])
  total, terms = losses.safr_loss(
      logits=logits, labels=labels, intermediates=inter, token_mask=mask,
      weights=losses.LossWeights(importance=0.5, interaction=2.0))
  expected = terms["ce"] + 0.5 * terms["importance"] + 2.0 * terms["interaction"]
  np.testing.assert_allclose(total, expected, rtol=1e-6)
  ce = -np.mean(np.asarray(jax.nn.log_softmax(logits))[np.arange(3), labels])
  np.testing.assert_allclose(terms["ce"], ce, rtol=1e-6)
  baseline, _ = losses.safr_loss(
      logits=logits, labels=labels, intermediates=inter, token_mask=mask,
      weights=losses.LossWeights(importance=0.0, interaction=0.0))
  np.testing.assert_allclose(baseline, ce, rtol=1e-6)


def test_negative_weight_is_rejected():
  with pytest.raises(ValueError, match="LossWeights.importance must be >= 0"):
    losses.LossWeights(importance=-1.0)


# --- shape errors name the argument and the shape -----------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: losses.importance_loss(embeddings=jnp.ones((3, 4))),
     r"embeddings must have rank 3 .*got shape \(3, 4\)"),
    (lambda: losses.importance_loss(embeddings=jnp.ones((2, 3, 4)),
                                    token_mask=jnp.ones((2, 5), bool)),
     r"token_mask must have shape .*\(2, 3\).*got shape \(2, 5\)"),
    (lambda: losses.interaction_loss(attention_weights=jnp.ones((2, 3, 3))),
     r"attention_weights must have rank 4 .*got shape \(2, 3, 3\)"),
    (lambda: losses.interaction_loss(attention_weights=jnp.ones((1, 2, 3, 4))),
     r"attention_weights must be square .*\(1, 2, 3, 4\)"),
    (lambda: losses.vmask_kl_loss(mask_logits=jnp.ones((2, 3, 3))),
     r"mask_logits must have shape \[batch, length, 2\], got shape \(2, 3, 3\)"),
    (lambda: losses.cross_entropy_loss(logits=jnp.ones((2, 2)), labels=jnp.ones(3, int)),
     r"labels must have shape \[batch\] = \(2,\), got shape \(3,\)"),
])
def test_wrong_shapes_name_the_argument(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_losses_module_does_not_import_flax():
  import subprocess
  import sys
  code = ("import sys, safr_jax.losses; "
          "assert 'flax' not in sys.modules, 'flax imported'")
  import pathlib
  subprocess.run([sys.executable, "-c", code], check=True,
                 cwd=pathlib.Path(__file__).resolve().parents[1])


# --- L_Inter's closed-form gradient against autodiff of the formula ----------


def _plain_interaction(a, token_mask=None):
  """The module docstring's L_Inter, differentiated by plain autodiff."""
  b, h, l, _ = a.shape
  c = a / jnp.sum(a, axis=-1, keepdims=True)
  g = jnp.where(jnp.eye(l, dtype=bool), 0.0, jnp.einsum("bhij,bhkj->bhik", a, a))
  terms = c * (1.0 - g)
  if token_mask is None:
    return jnp.mean(terms)
  pairs = token_mask[:, :, None] & token_mask[:, None, :]
  return (jnp.sum(jnp.where(pairs[:, None], terms, 0.0))
          / (h * jnp.sum(jnp.sum(token_mask, axis=1) ** 2)))


def _attention_and_mask(seed, softmax=True, b=3, h=2, length=9):
  ka, kl = jax.random.split(jax.random.key(seed))
  scores = 2.0 * jax.random.normal(ka, (b, h, length, length))
  lengths = jax.random.randint(kl, (b,), 1, length + 1).at[0].set(length)
  mask = jnp.arange(length)[None, :] < lengths[:, None]
  # Without softmax the rows do not sum to 1, so the C = A / rowsum path counts.
  a = _attention(scores, mask) if softmax else jnp.abs(scores) + 0.1
  return a, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("softmax", [True, False])
def test_interaction_gradient_equals_autodiff_of_the_formula(x64, seed, softmax):
  a, mask = _attention_and_mask(seed, softmax)
  for token_mask in (None, mask):
    ours = lambda a: losses.interaction_loss(attention_weights=a, token_mask=token_mask)
    plain = lambda a: _plain_interaction(a, token_mask)  # pylint: disable=cell-var-from-loop
    v, g = jax.jit(jax.value_and_grad(ours))(a)
    v0, g0 = jax.value_and_grad(plain)(a)
    np.testing.assert_allclose(v, v0, rtol=1e-13)
    np.testing.assert_allclose(g, g0, rtol=1e-11, atol=1e-15)
    assert np.max(np.abs(np.asarray(g0))) > 1e-3  # a gradient worth comparing


def test_interaction_gradient_under_vmap_jvp_and_second_order(x64):
  a, mask = _attention_and_mask(3)
  t = jax.random.normal(jax.random.key(9), a.shape)
  ours = lambda a: losses.interaction_loss(attention_weights=a, token_mask=mask)
  plain = lambda a: _plain_interaction(a, mask)
  # vmap of grad over a leading axis (e.g. layers).
  stacked = jnp.stack([a, a[::-1]])
  np.testing.assert_allclose(jax.vmap(jax.grad(ours))(stacked),
                             jax.vmap(jax.grad(plain))(stacked), rtol=1e-11, atol=1e-15)
  # Forward mode works too (a custom JVP, not a custom VJP)...
  np.testing.assert_allclose(jax.jvp(ours, (a,), (t,))[1], jax.jvp(plain, (a,), (t,))[1],
                             rtol=1e-11)
  # ...and so do second derivatives: forward over reverse and reverse over reverse.
  np.testing.assert_allclose(jax.jvp(jax.grad(ours), (a,), (t,))[1],
                             jax.jvp(jax.grad(plain), (a,), (t,))[1], rtol=1e-9, atol=1e-14)
  hvp = lambda f: jax.grad(lambda x: jnp.vdot(jax.grad(f)(x), t))(a)
  np.testing.assert_allclose(hvp(ours), hvp(plain), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("block", [None, 2, 4])
def test_cut_keys_equal_zero_weight_keys(x64, block):
  """[B, H, L, K] attention (keys after K cut off) = the square array whose
  keys after K have weight 0: value and gradient, masked or not."""
  a, mask = _attention_and_mask(4, length=9)
  keys = 5
  a = a.at[..., keys:].set(0.0)
  a = a / jnp.sum(a, axis=-1, keepdims=True)
  mask = mask & (jnp.arange(9) < keys)[None, :]
  for token_mask in (None, mask):
    f = lambda a: losses.interaction_loss(  # pylint: disable=cell-var-from-loop
        attention_weights=a, token_mask=token_mask, query_block_size=block)
    v_cut, g_cut = jax.value_and_grad(f)(a[..., :keys])
    v_sq, g_sq = jax.value_and_grad(f)(a)
    np.testing.assert_allclose(v_cut, v_sq, rtol=1e-13)
    np.testing.assert_allclose(g_cut, g_sq[..., :keys], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(v_cut, _plain_interaction(a, token_mask), rtol=1e-13)
