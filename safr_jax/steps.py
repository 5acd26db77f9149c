"""The model's training and evaluation steps and the state they change.

Pure functions of arrays and pytrees (jit them with the static keywords bound):
``build_model`` and ``make_optimizer`` from a config, ``create_train_state``,
``train_step`` (one Adam step on ``[batch, length]`` ids) and ``eval_step``
(metric sums). The loop that drives them is ``safr_jax.train_lib``; the
jitted, sharded versions a run uses come from ``safr_jax.trainer``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from safr_jax import losses
from safr_jax.model import SafrClassifier

__all__ = ["DTYPES", "TrainState", "apply_if_finite", "build_model", "create_train_state",
           "eval_step", "frozen_groups", "key_lengths", "loss_weights", "lr_scales", "make_optimizer",
           "needed_keys", "param_groups", "next_vmask_kl_weight", "resolve_query_block", "train_step"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# L_Inter keeps a few [batch, heads, length, length] float32 arrays alive for
# the backward pass; with query_block_size="auto" it is computed a block of
# query rows at a time once one such array would pass this size.
AUTO_BLOCK_BYTES = 128 * 2**20


def resolve_query_block(setting: int | str | None, *, batch: int, heads: int,
                        length: int) -> int | None:
  """The L_Inter query block for a ``[batch, length]`` input.

  ``setting``: None or "none" (all rows at once), a number of rows, or "auto":
  None while ``[batch, heads, length, length]`` float32 fits in
  ``AUTO_BLOCK_BYTES``, else the largest power of two of rows that does (L =
  2048, batch 8, 8 heads → 256; the paper's configs → None).
  """
  if setting is None or setting == "none":
    return None
  if setting != "auto":
    return int(setting)
  row_bytes = batch * heads * length * 4
  if row_bytes * length <= AUTO_BLOCK_BYTES:
    return None
  rows = max(1, AUTO_BLOCK_BYTES // row_bytes)
  return min(1 << (rows.bit_length() - 1), length)


@flax.struct.dataclass
class TrainState:
  """Everything a training step changes.

  Attributes:
    step: number of steps taken (int32 scalar).
    params: model parameters.
    opt_state: optax state.
    rng: raw key data (``jax.random.key_data``; typed keys do not checkpoint).
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


def loss_weights(config: ml_collections.ConfigDict) -> losses.LossWeights:
  """``config.loss.<name>`` for each ``LossWeights`` field."""
  return losses.LossWeights(**{name: float(config.loss[name])
                               for name in losses.weight_names()})


def next_vmask_kl_weight(beta: float, epoch: int, schedule: str) -> float:
  """β for the epoch after ``epoch`` (1-based) under ``schedule``.

  "vmask" is Chen & Ji's (UVa-NLP/VMASK ``lstm_VMASK/main.py``): after every
  10th epoch, β -= 0.099 while β > 0.01 (1 → 0.901 → … → 0.01 after epoch
  100). Floored at 0: in floating point their rule steps once more, to -0.089,
  after epoch 110.
  """
  if schedule == "vmask" and epoch % 10 == 0 and beta > 0.01:
    return max(beta - 0.099, 0.0)
  return beta


def build_model(model_config: ml_collections.ConfigDict, *, vocab_size: int,
                num_classes: int) -> SafrClassifier:
  return SafrClassifier(
      vocab_size=vocab_size, num_classes=num_classes,
      d_model=model_config.d_model, num_heads=model_config.num_heads,
      num_layers=model_config.num_layers, d_ff=model_config.d_ff,
      dropout_rate=model_config.dropout_rate, use_vmask=model_config.use_vmask,
      vmask_hidden_dim=model_config.vmask_hidden_dim,
      vmask_temperature=model_config.vmask_temperature, pool=model_config.pool,
      param_init=model_config.init, dtype=DTYPES[model_config.dtype])


def param_groups(model_config: ml_collections.ConfigDict) -> list[str]:
  """The model's top-level parameter groups, as ``train.frozen`` and
  ``train.lr_scale`` name them."""
  return (["embedding", "classifier"] + ["vmask"] * bool(model_config.use_vmask)
          + [f"block_{i}" for i in range(model_config.num_layers)])


def _items(text) -> list[str]:
  """A comma-separated config string's items, spaces stripped, empties dropped."""
  return [n.strip() for n in str(text or "").split(",") if n.strip()]


def frozen_groups(train_config: ml_collections.ConfigDict) -> list[str]:
  """``train.frozen`` ("embedding, vmask") as a list of parameter groups."""
  return _items(train_config.frozen)


def lr_scales(train_config: ml_collections.ConfigDict) -> dict[str, float]:
  """``train.lr_scale`` ("embedding=16, vmask=0.5") as {group: multiplier};
  ValueError naming the item that is not ``group=number``."""
  scales = {}
  for item in _items(train_config.lr_scale):
    group, _, number = item.partition("=")
    try:
      scales[group.strip()] = float(number)
    except ValueError:
      raise ValueError(f"{item!r} is not group=number") from None
  return scales


def make_optimizer(train_config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """Adam (the authors'), with optional warmup-cosine schedule and clipping;
  ``train.frozen``'s parameter groups get zero updates, ``train.lr_scale``'s
  their updates times their multiplier (Adam's step is scale-free, so this is
  that group's learning rate times the multiplier)."""
  lr = train_config.learning_rate
  if train_config.schedule == "warmup_cosine":
    lr = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=train_config.warmup_steps,
        decay_steps=max(total_steps, train_config.warmup_steps + 1))
  tx = optax.adam(lr)
  if train_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), tx)
  frozen = set(frozen_groups(train_config))
  if frozen:  # zero updates and no Adam moments for these top-level groups
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, lambda params: {
        k: jax.tree.map(lambda _, k=k: "frozen" if k in frozen else "train", v)
        for k, v in params.items()})
  scales = lr_scales(train_config)
  if scales:  # stateless: checkpoints of runs without it keep their layout
    tx = optax.chain(tx, optax.stateless(lambda updates, params=None: {
        k: jax.tree.map(lambda u, s=scales.get(k, 1.0): u * s, v) for k, v in updates.items()}))
  return tx


def create_train_state(model: SafrClassifier, tx: optax.GradientTransformation,
                       *, seed: int, max_len: int) -> TrainState:
  init_key, train_key = jax.random.split(jax.random.key(seed))
  params = model.init(init_key, jnp.ones((1, max_len), jnp.int32))["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=jax.random.key_data(train_key))


def _token_mask(insides, count_padding: bool, example_weights=None):
  if count_padding:
    return None
  mask = insides.token_mask
  if example_weights is not None:  # filler rows of the last eval batch
    mask = mask & (example_weights > 0)[:, None]
  return mask


# The regularizers a λ warm-up (config.loss.warmup_epochs) holds at 0: SAFR's
# own, not VMASK's bottleneck.
WARMUP_TERMS = ("importance", "interaction", "scale_invariant_importance")


def train_step(state: TrainState, batch: dict[str, jax.Array],
               vmask_kl_weight: jax.Array | None = None,
               regularizer_scale: jax.Array | None = None, *,
               model: SafrClassifier, tx: optax.GradientTransformation,
               weights: losses.LossWeights, count_padding: bool,
               query_block_size: int | str | None = None,
               cut_padded_keys: bool | None = None) -> tuple[TrainState, dict]:
  """One optimizer step on ``batch`` (``ids [B, L]``, ``labels [B]``).

  ``vmask_kl_weight`` (a scalar, may be traced) replaces ``weights.vmask_kl``:
  the bottleneck's β changes between epochs without recompiling.
  ``regularizer_scale`` (a scalar, may be traced) multiplies the λ of
  ``WARMUP_TERMS``: 0 during a λ warm-up.
  ``query_block_size``: see ``resolve_query_block`` ("auto" decides per shape).
  ``cut_padded_keys``: attend only to the keys up to the batch's longest row
  (``key_lengths``; same numbers to float rounding, faster on rows padded to
  a fixed length). None (default): on with the authors' semantics
  (``count_padding``, whose runs pad every row to ``max_len``).

  Dropout and Gumbel noise come from ``fold_in(rng, step)``, so a resumed run
  draws the same numbers. A step whose loss or gradient is not finite leaves
  params and optimizer state unchanged (and says so in its metrics), so no NaN
  ever reaches a checkpoint.

  Returns:
    The new state and metric sums (see ``safr_jax.metrics``).
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  gumbel_key, dropout_key = jax.random.split(key)
  weights = _with_vmask_kl(weights, vmask_kl_weight)
  if regularizer_scale is not None:
    weights = dataclasses.replace(weights, **{
        k: getattr(weights, k) * regularizer_scale for k in WARMUP_TERMS})

  block = resolve_query_block(query_block_size, batch=batch["ids"].shape[0],
                              heads=model.num_heads, length=batch["ids"].shape[1])

  def value_and_grad(num_keys):
    def loss_fn(params):
      logits, insides = model.apply({"params": params}, batch["ids"], deterministic=False,
                                    rngs={"gumbel": gumbel_key, "dropout": dropout_key},
                                    num_keys=num_keys)
      total, terms = losses.safr_loss(
          logits=logits, labels=batch["labels"], intermediates=insides,
          token_mask=_token_mask(insides, count_padding), weights=weights,
          query_block_size=block)
      return total, (terms, logits, insides.keep_prob)

    def run(params):
      (total, (terms, logits, keep_prob)), grads = jax.value_and_grad(
          loss_fn, has_aux=True)(params)
      return total, terms, logits, keep_prob, grads
    return run

  total, terms, logits, keep_prob, grads = _over_real_keys(
      value_and_grad, batch["ids"], count_padding if cut_padded_keys is None
      else cut_padded_keys)(state.params)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
  params, opt_state = apply_if_finite(finite, tx, grads, state.params, state.opt_state)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  n = jnp.asarray(batch["labels"].shape[0], jnp.float32)
  sums = {f"{k}_sum": v * n for k, v in terms.items()}
  sums.update(
      loss_sum=total * n,
      accuracy_sum=jnp.sum(jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32),
      grad_norm_sum=grad_norm * n,
      **_gate_sums(keep_prob, batch["ids"] != 0, n),
      nonfinite_sum=(~finite).astype(jnp.float32) * n,
      count=n)
  return new_state, sums


def apply_if_finite(finite: jax.Array, tx: optax.GradientTransformation, grads: Any,
                    params: Any, opt_state: Any) -> tuple[Any, Any]:
  """``tx``'s update applied to ``params`` if ``finite``, else both unchanged.

  One ``lax.cond``: a finite step runs only the optimizer, a non-finite one
  only returns its inputs. (Computing the update and then selecting
  ``where(finite, new, old)`` over every parameter and both Adam moments
  read and wrote each of them once more every step.)
  """
  def apply(operands):
    grads, params, opt_state = operands
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def keep(operands):
    _, params, opt_state = operands
    return params, opt_state

  return jax.lax.cond(finite, apply, keep, (grads, params, opt_state))


def _with_vmask_kl(weights: losses.LossWeights, value) -> losses.LossWeights:
  return weights if value is None else dataclasses.replace(weights, vmask_kl=value)


def _gate_sums(keep_prob, token_mask, n) -> dict[str, jax.Array]:
  """The VMASK gate as two numbers (times ``n``): ``keep_rate``, the mean
  keep-probability over real tokens, and ``keep_above_half``, the share of
  real tokens with keep-probability > 0.5. Both 1 without VMASK."""
  if keep_prob is None:
    one = jnp.ones((), jnp.float32) * n
    return {"keep_rate_sum": one, "keep_above_half_sum": one}
  mask = token_mask.astype(jnp.float32)
  tokens = jnp.maximum(jnp.sum(mask), 1.0)
  return {"keep_rate_sum": jnp.sum(keep_prob * mask) / tokens * n,
          "keep_above_half_sum": jnp.sum((keep_prob > 0.5) * mask) / tokens * n}


# Padded keys. Rows padded to a fixed max_len (the authors' padded mode,
# data.pad_to="max_len") end in keys that every row masks out and that so get
# attention weight exactly 0; attention and L_Inter over the key axis can stop
# at the batch's longest row (SafrClassifier(num_keys=...)). Shapes are static
# under jit, so a step holds one branch per key length of ``key_lengths`` and
# ``lax.switch`` runs the shortest that covers the batch: compiling costs one
# program per branch, running only the branch taken.
MIN_CUT_WIDTH = 64  # narrower batches gain too little for the compile time


def key_lengths(width: int, enabled: bool = True) -> tuple[int, ...]:
  """The key lengths a ``[batch, width]`` step has a branch for: quarters of
  ``width`` rounded up to multiples of 8 (128 → 32, 64, 96, 128), or just
  ``width`` when cutting is off or ``width < MIN_CUT_WIDTH``."""
  if not enabled or width < MIN_CUT_WIDTH:
    return (width,)
  return tuple(sorted({min(width, -(-width * i // 32) * 8) for i in range(1, 5)}))


def cut_pays(lengths: np.ndarray, width: int, batch_size: int) -> bool:
  """Whether cutting padded keys is worth its extra compiled branches: a random
  batch of ``batch_size`` rows of these ``lengths`` fits a shorter branch than
  ``width`` at least 10 % of the time (SST-2 at 128: always; IMDB at 256: ~never)."""
  branches = key_lengths(width)
  if len(branches) == 1 or len(lengths) == 0:
    return False
  return float(np.mean(np.asarray(lengths) <= branches[-2])) ** batch_size >= 0.1


def needed_keys(ids: jax.Array) -> jax.Array:
  """The keys a batch needs (int32 scalar): one past its last real token, or
  all ``width`` if some row has no real token (its softmax is uniform over
  every key, padding included)."""
  width = ids.shape[1]
  real = ids != 0
  last = jnp.max(jnp.where(real, jnp.arange(1, width + 1), 0), axis=1)
  return jnp.where(jnp.all(jnp.any(real, axis=1)), jnp.max(last), width).astype(jnp.int32)


def _over_real_keys(make, ids: jax.Array, enabled: bool):
  """``make(num_keys)`` run with the shortest of ``key_lengths`` that covers
  ``ids``' real keys (``make(None)`` when there is only one)."""
  lengths = key_lengths(ids.shape[1], enabled)
  if len(lengths) == 1:
    return make(None)
  index = jnp.searchsorted(jnp.asarray(lengths), needed_keys(ids))
  branches = [make(None if k == ids.shape[1] else k) for k in lengths]
  return lambda *args: jax.lax.switch(index, branches, *args)


def eval_step(params: Any, batch: dict[str, jax.Array],
              vmask_kl_weight: jax.Array | None = None, *, model: SafrClassifier,
              weights: losses.LossWeights, count_padding: bool,
              query_block_size: int | str | None = None,
              cut_padded_keys: bool | None = None, per_example: bool = False):
  """Metric sums on ``batch`` (``ids``, ``labels``, ``weights [B]``), eval mode;
  with ``per_example``, ``(sums, correct [B])`` (each row's argmax == label).

  ``batch["weights"]`` are example weights (0 for the filler rows that pad the
  last batch); the keyword ``weights`` holds the λ of each loss term.
  """
  weights = _with_vmask_kl(weights, vmask_kl_weight)
  example_weights = batch["weights"].astype(jnp.float32)

  def evaluate(num_keys):
    def run(params):
      logits, insides = model.apply({"params": params}, batch["ids"], deterministic=True,
                                    num_keys=num_keys)
      mask = _token_mask(insides, count_padding, example_weights)
      total, terms = losses.safr_loss(
          logits=logits, labels=batch["labels"], intermediates=insides, token_mask=mask,
          weights=weights, example_weights=example_weights,
          query_block_size=resolve_query_block(
              query_block_size, batch=batch["ids"].shape[0], heads=model.num_heads,
              length=batch["ids"].shape[1]))
      return total, terms, logits, insides.keep_prob
    return run

  total, terms, logits, keep_prob = _over_real_keys(
      evaluate, batch["ids"], count_padding if cut_padded_keys is None
      else cut_padded_keys)(params)
  n = jnp.sum(example_weights)
  sums = {f"{k}_sum": v * n for k, v in terms.items()}
  correct = jnp.argmax(logits, -1) == batch["labels"]
  sums.update(loss_sum=total * n, accuracy_sum=jnp.sum(example_weights * correct),
              **_gate_sums(keep_prob, batch["ids"] != 0, n), count=n)
  return (sums, correct) if per_example else sums
