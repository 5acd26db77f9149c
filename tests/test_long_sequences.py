"""Long sequences: blockwise L_Inter and the attention softmax keep memory down.

``interaction_loss(query_block_size=q)`` computes the value and (by a
hand-written VJP) the gradient ``q`` query rows at a time; these tests pin that
it equals the all-at-once autodiff result for any block size, masked or not,
and that XLA's compiled step holds no ``[B, H, L, L]`` temporary for it.
``benchmarks/memory_long_seq.py`` measures a whole training step at L = 2048.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safr_jax import losses
from safr_jax import model as model_lib


def _inputs(key, b=2, h=3, length=10, softmax=True):
  ks, km = jax.random.split(key)
  scores = jax.random.normal(ks, (b, h, length, length))
  # Row sums differ from 1 without softmax: the C = A / rowsum path counts.
  a = jax.nn.softmax(scores, -1) if softmax else jnp.abs(scores) + 0.1
  lengths = jnp.array([length, max(1, length - 4)])[:b]
  mask = jnp.arange(length)[None, :] < lengths[:, None]
  return a, mask


@pytest.mark.parametrize("block", [1, 3, 4, 9])
@pytest.mark.parametrize("softmax", [True, False])
def test_any_block_size_gives_the_value_and_gradient_of_one_block(x64, block, softmax):
  a, mask = _inputs(jax.random.key(block), softmax=softmax)
  for token_mask in (None, mask):
    full = lambda a: losses.interaction_loss(attention_weights=a, token_mask=token_mask)
    blocked = lambda a: losses.interaction_loss(  # pylint: disable=cell-var-from-loop
        attention_weights=a, token_mask=token_mask, query_block_size=block)
    v_full, g_full = jax.value_and_grad(full)(a)
    v_blk, g_blk = jax.jit(jax.value_and_grad(blocked))(a)
    np.testing.assert_allclose(v_blk, v_full, rtol=1e-12)
    np.testing.assert_allclose(g_blk, g_full, rtol=1e-10, atol=1e-15)


def test_blocked_loss_under_vmap_and_second_order(x64):
  a, _ = _inputs(jax.random.key(0), b=1, length=7)
  stacked = jnp.stack([a[0], 2.0 * a[0]])  # [2, H, L, L]: vmap over "batches"
  blocked = lambda x: losses.interaction_loss(attention_weights=x[None], query_block_size=3)
  full = lambda x: losses.interaction_loss(attention_weights=x[None])
  np.testing.assert_allclose(jax.vmap(jax.grad(blocked))(stacked),
                             jax.vmap(jax.grad(full))(stacked), rtol=1e-10, atol=1e-15)
  # The hand-written backward pass is itself differentiable (grad of grad).
  hvp = lambda f: jax.grad(lambda x: jnp.vdot(jax.grad(f)(x), stacked[1]))(stacked[0])
  np.testing.assert_allclose(hvp(blocked), hvp(full), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("masked", [False, True])
def test_blocked_loss_holds_no_full_size_temporary(masked):
  b, h, length, block = 2, 4, 512, 64
  a = jax.ShapeDtypeStruct((b, h, length, length), jnp.float32)
  m = jax.ShapeDtypeStruct((b, length), jnp.bool_)
  attention_bytes = b * h * length * length * 4

  def temp_bytes(query_block_size):
    f = jax.jit(jax.value_and_grad(lambda a, m: losses.interaction_loss(
        attention_weights=a, token_mask=m if masked else None,
        query_block_size=query_block_size)))
    return f.lower(a, m).compile().memory_analysis().temp_size_in_bytes

  # Besides the gradient itself (an output), only [B, H, block, L] slabs.
  assert temp_bytes(block) < attention_bytes
  assert temp_bytes(None) >= 2 * attention_bytes  # what blocking saves


def test_attention_softmax_value_is_jax_nn_softmax_and_jvp_works():
  scores = 3.0 * jax.random.normal(jax.random.key(1), (2, 4, 9, 9))
  scores = jnp.where(jnp.arange(9) < 6, scores, -1e9)  # masked keys, as in the model
  np.testing.assert_array_equal(model_lib._softmax(scores),  # pylint: disable=protected-access
                                jax.nn.softmax(scores, axis=-1))
  g = jax.random.normal(jax.random.key(2), scores.shape)
  ours = jax.vjp(model_lib._softmax, scores)[1](g)[0]  # pylint: disable=protected-access
  ref = jax.vjp(lambda s: jax.nn.softmax(s, axis=-1), scores)[1](g)[0]
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
  _, tangent = jax.jvp(model_lib._softmax, (scores,), (g,))  # pylint: disable=protected-access
  np.testing.assert_allclose(tangent, jax.jvp(lambda s: jax.nn.softmax(s, axis=-1),
                                              (scores,), (g,))[1], rtol=1e-5, atol=1e-6)


def test_auto_query_block_blocks_only_long_inputs():
  from safr_jax import steps  # pylint: disable=g-import-not-at-top
  auto = lambda b, l: steps.resolve_query_block("auto", batch=b, heads=8, length=l)
  assert auto(32, 128) is None and auto(32, 256) is None  # the paper's configs
  assert auto(8, 2048) == 256  # [8, 8, 256, 2048] float32 = 128 MiB
  assert auto(1, 8192) == 512
  assert steps.resolve_query_block("none", batch=8, heads=8, length=2048) is None
  assert steps.resolve_query_block("64", batch=8, heads=8, length=2048) == 64
