"""SafrClassifier, VMask and convert: parity with the authors' model, switches."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_golden
from safr_jax import convert, losses
from safr_jax.model import SafrClassifier, sinusoidal_positions
from safr_jax.vmask import VMask, hard_gumbel_softmax

_COMPARED = ("logits", "vmask_logits", "x_vmask", "attn")


def _golden_model(dtype):
  g = load_golden("model.npz")
  c = lambda k: int(g[f"config/{k}"])
  model = SafrClassifier(
      vocab_size=c("vocab_size"), num_classes=c("num_classes"), d_model=c("d_model"),
      num_heads=c("num_heads"), num_layers=c("num_layers"), d_ff=c("d_ff"),
      vmask_hidden_dim=c("mask_hidden_dim"), dropout_rate=float(g["config/dropout"]),
      pool="all", dtype=dtype, param_dtype=dtype)
  state_dict = {k.removeprefix("param/"): v for k, v in g.items()
                if k.startswith("param/")}
  return g, model, convert.torch_state_dict_to_params(state_dict)


def test_golden_model_forward_and_losses(x64):
  g, model, params = _golden_model(jnp.float64)
  ids = jnp.asarray(g["ids"])
  logits, inter = model.apply({"params": params}, ids)
  ours = {"logits": logits, "vmask_logits": inter.vmask_logits,
          "x_vmask": inter.masked_embeddings, "attn": inter.attention[0]}
  for key in _COMPARED:
    np.testing.assert_allclose(ours[key], g[key], rtol=1e-5, atol=1e-8, err_msg=key)
  np.testing.assert_allclose(sinusoidal_positions(*g["pe"].shape), g["pe"],
                             rtol=1e-5, atol=1e-6)
  total, terms = losses.safr_loss(logits=logits, labels=jnp.asarray(g["labels"]),
                                  intermediates=inter, token_mask=None)
  for ours_key, key in (("ce", "ce_loss"), ("importance", "imp_loss"),
                        ("interaction", "inter_loss")):
    np.testing.assert_allclose(terms[ours_key], g[key], rtol=1e-5, err_msg=key)
  np.testing.assert_allclose(total, g["total_loss"], rtol=1e-5)


def test_golden_model_parameter_gradients(x64):
  g, model, params = _golden_model(jnp.float64)

  def total(p):
    logits, inter = model.apply({"params": p}, jnp.asarray(g["ids"]))
    return losses.safr_loss(logits=logits, labels=jnp.asarray(g["labels"]),
                            intermediates=inter, token_mask=None)[0]

  grads = convert.params_to_torch_state_dict(jax.grad(total)(params))
  expected = {k.removeprefix("grad/"): v for k, v in g.items() if k.startswith("grad/")}
  assert sorted(grads) == sorted(expected)
  for name, value in expected.items():
    # The key bias cannot change a softmax: its true gradient is 0 and both
    # sides hold rounding noise (~1e-18), hence the tiny absolute floor.
    np.testing.assert_allclose(grads[name], value, rtol=1e-5, atol=1e-12,
                               err_msg=name)


def test_convert_round_trip_and_bad_keys():
  g, _, params = _golden_model(jnp.float32)
  state_dict = {k.removeprefix("param/"): v for k, v in g.items()
                if k.startswith("param/")}
  back = convert.params_to_torch_state_dict(params)
  assert sorted(back) == sorted(state_dict)
  for k in state_dict:
    np.testing.assert_array_equal(back[k], state_dict[k])
  sizes = convert.config_from_state_dict(state_dict)
  assert sizes == dict(vocab_size=50, d_model=16, num_layers=1, d_ff=32,
                       vmask_hidden_dim=8, num_classes=2)
  with pytest.raises(ValueError, match="'layers.0.attn.q.weight' is not a parameter"):
    convert.torch_state_dict_to_params({"layers.0.attn.q.weight": np.ones((2, 2))})


def test_golden_model_in_float32_is_close():
  g, model, params = _golden_model(jnp.float32)
  logits, _ = model.apply({"params": params}, jnp.asarray(g["ids"]))
  np.testing.assert_allclose(logits, g["logits"], rtol=1e-4, atol=1e-5)


def _tiny(**kw):
  args = dict(vocab_size=30, num_classes=3, d_model=16, num_heads=2, num_layers=2,
              d_ff=24, vmask_hidden_dim=8)
  args.update(kw)
  return SafrClassifier(**args)


def _ids(lengths, length, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(2, 30, size=(len(lengths), length))
  ids[np.arange(length)[None, :] >= np.asarray(lengths)[:, None]] = 0
  return jnp.asarray(ids, jnp.int32)


def test_intermediates_shapes_and_baseline_switch():
  ids = _ids([7, 3], 7)
  for use_vmask in (True, False):
    model = _tiny(use_vmask=use_vmask)
    variables = model.init(jax.random.key(0), ids)
    logits, inter = model.apply(variables, ids)
    assert logits.shape == (2, 3)
    assert inter.masked_embeddings.shape == (2, 7, 16)
    assert [a.shape for a in inter.attention] == [(2, 2, 7, 7)] * 2
    assert [h.shape for h in inter.ffn_hidden] == [(2, 7, 24)] * 2
    np.testing.assert_array_equal(inter.token_mask, ids != 0)
    if use_vmask:
      assert inter.vmask_logits.shape == (2, 7, 2) and inter.keep_prob.shape == (2, 7)
    else:
      assert inter.vmask_logits is None and "vmask" not in variables["params"]


def test_call_is_embed_then_token_inputs_then_classify():
  """The parts other code runs (``interpret.forward``) are the model's own:
  composed they give ``__call__`` bit for bit, dropout and Gumbel draws too."""
  ids = _ids([7, 3, 5], 7)
  model = _tiny(dropout_rate=0.3)
  params = model.init(jax.random.key(0), ids)["params"]
  rngs = {"gumbel": jax.random.key(1), "dropout": jax.random.key(2)}

  def parts(module, ids, deterministic):
    inputs, masked, gate = module.token_inputs(module.embed(ids), ids != 0,
                                               deterministic=deterministic)
    logits, attention, ffn = module.classify(inputs, deterministic=deterministic)
    return logits, masked, gate.keep_prob, attention, ffn

  for deterministic in (True, False):
    logits, inter = model.apply({"params": params}, ids, deterministic=deterministic,
                                rngs=rngs)
    got = model.apply({"params": params}, ids, deterministic, method=parts, rngs=rngs)
    want = (logits, inter.masked_embeddings, inter.keep_prob, inter.attention,
            inter.ffn_hidden)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b)


def test_token_inputs_are_per_token():
  """Each row of ``TokenInputs`` depends on its token and position only: the
  rows of a token at position j are the same in any example."""
  ids = _ids([7, 3], 7)
  model = _tiny()
  params = model.init(jax.random.key(0), ids)["params"]
  run = lambda x: model.apply(
      {"params": params}, x, method=lambda m, x: m.token_inputs(m.embed(x), x != 0)[0])
  both, alone = run(ids), run(ids[1:])
  other = run(ids.at[0, 3:].set(0))                  # a row with later tokens deleted
  for a, b, c in zip(jax.tree.leaves(both), jax.tree.leaves(alone), jax.tree.leaves(other)):
    if a.dtype == bool:
      continue
    np.testing.assert_allclose(a[1], b[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a[0, :3], c[0, :3], rtol=1e-6, atol=1e-6)
  assert len(both.qkv) == 3 and both.qkv[0].shape == (2, 7, 16)


def test_token_pooling_is_padding_invariant_and_all_pooling_is_not():
  ids = _ids([6, 2, 1], 6)
  padded = jnp.pad(ids, ((0, 0), (0, 10)))
  for pool, invariant in (("tokens", True), ("all", False)):
    model = _tiny(pool=pool)
    variables = model.init(jax.random.key(0), ids)
    a, ia = model.apply(variables, ids)
    b, ib = model.apply(variables, padded)
    assert np.allclose(a, b, atol=1e-5) == invariant
    if invariant:
      total_a = losses.safr_loss(logits=a, labels=jnp.zeros(3, int), intermediates=ia,
                                 token_mask=ia.token_mask)[0]
      total_b = losses.safr_loss(logits=b, labels=jnp.zeros(3, int), intermediates=ib,
                                 token_mask=ib.token_mask)[0]
      np.testing.assert_allclose(total_a, total_b, rtol=1e-5)


def test_training_mode_samples_hard_gates_with_gradients():
  ids = _ids([7, 7, 4], 7)
  model = _tiny(dropout_rate=0.0)
  variables = model.init(jax.random.key(0), ids)
  rngs = {"gumbel": jax.random.key(1), "dropout": jax.random.key(2)}

  def loss(params):
    logits, inter = model.apply({"params": params}, ids, deterministic=False, rngs=rngs)
    return losses.safr_loss(logits=logits, labels=jnp.zeros(3, int), intermediates=inter,
                            token_mask=inter.token_mask)[0], inter

  # jit: op by op this took 37 s on 2 busy cores, compiled 14 s.
  (value, inter), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
  embed = variables["params"]["embedding"]["embedding"][ids] * 4.0
  gates = np.asarray(inter.masked_embeddings / embed)[..., 0]
  assert set(np.unique(np.round(gates, 5))) <= {0.0, 1.0}
  # Straight-through: VMASK's own parameters still learn.
  assert np.abs(grads["vmask"]["logits"]["kernel"]).sum() > 0
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(grads))


def test_hard_gumbel_softmax_frequencies_follow_probabilities():
  logits = jnp.log(jnp.asarray([[0.2, 0.8]]))
  samples = jax.vmap(lambda k: hard_gumbel_softmax(k, logits))(
      jax.random.split(jax.random.key(0), 4000))
  assert float(samples[:, 0, 1].mean()) == pytest.approx(0.8, abs=0.03)


def test_vmask_eval_multiplies_by_keep_probability():
  x = jax.random.normal(jax.random.key(0), (2, 5, 4))
  layer = VMask(hidden_dim=3)
  variables = layer.init(jax.random.key(1), x, deterministic=True)
  out = layer.apply(variables, x, deterministic=True)
  np.testing.assert_allclose(out.masked, x * out.keep_prob[..., None], rtol=1e-6)
  np.testing.assert_allclose(out.keep_prob, jax.nn.softmax(out.logits, -1)[..., 1])


def test_bfloat16_activations_keep_float32_params_and_outputs():
  ids = _ids([5, 2], 5)
  model = _tiny(dtype=jnp.bfloat16)
  variables = model.init(jax.random.key(0), ids)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  logits, inter = model.apply(variables, ids)
  assert logits.dtype == jnp.float32 and inter.attention[0].dtype == jnp.float32
  assert inter.ffn_hidden[0].dtype == jnp.bfloat16


def test_interaction_loss_composes_with_another_flax_model():
  """A user's own model: Flax's attention, weights read with sow + mutable."""

  class UserModel(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)(
          x, x, sow_weights=True)
      return nn.Dense(2)(h.mean(axis=1))

  x = jax.random.normal(jax.random.key(0), (4, 6, 8))
  labels = jnp.asarray([0, 1, 0, 1])
  model = UserModel()
  params = model.init(jax.random.key(1), x)["params"]
  tx = optax.adam(1e-2)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(params):
      logits, state = model.apply({"params": params}, x, mutable=["intermediates"])
      (attn,) = jax.tree.leaves(state["intermediates"])  # [B, H, L, L]
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return ce + losses.interaction_loss(attention_weights=attn)
    value, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  start = params
  values = []
  for _ in range(5):
    params, opt_state, value = step(params, opt_state)
    values.append(float(value))
  assert all(np.isfinite(values)) and values[-1] < values[0]
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), start, params)
  assert all(jax.tree.leaves(changed))
  assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


class _PlainVMask(nn.Module):
  """VMask's network with plain ``nn.Dense`` layers (autodiff's gradients)."""

  @nn.compact
  def __call__(self, x):
    hidden = jnp.tanh(nn.Dense(8, name="hidden")(x))
    return nn.Dense(2, name="logits")(hidden)


@pytest.mark.parametrize("param_init", ["flax", "torch"])
def test_vmask_projection_gradients_equal_autodiff(x64, param_init):
  """VMask's Dense layers take their kernel gradients from a hand-written VJP;
  same parameters, same forward bit for bit, same gradients as plain Dense."""
  x = jax.random.normal(jax.random.key(0), (3, 5, 6))
  ours = VMask(8, param_init=param_init, dtype=jnp.float64, param_dtype=jnp.float64)
  params = ours.init({"params": jax.random.key(1)}, x, deterministic=True)["params"]
  plain = _PlainVMask()
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, plain.init(jax.random.key(1), x)["params"])
  weights = jax.random.normal(jax.random.key(2), (3, 5, 2))

  def loss_ours(p, x):
    return jnp.sum(ours.apply({"params": p}, x, deterministic=True).logits * weights)

  def loss_plain(p, x):
    return jnp.sum(plain.apply({"params": p}, x) * weights)

  v, g = jax.jit(jax.value_and_grad(loss_ours, argnums=(0, 1)))(params, x)
  v0, g0 = jax.value_and_grad(loss_plain, argnums=(0, 1))(params, x)
  np.testing.assert_allclose(v, v0, rtol=1e-14)  # (jit against eager)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g0)):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
  # Reverse over reverse works through the hand-written VJP.
  hvp = lambda f: jax.grad(lambda x: jnp.vdot(jax.grad(f, argnums=1)(params, x), x))(x)
  np.testing.assert_allclose(hvp(loss_ours), hvp(loss_plain), rtol=1e-10, atol=1e-14)
