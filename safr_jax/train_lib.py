"""Training and evaluation: ``train_and_evaluate(config, workdir)``.

One epoch = every full global batch of the train split once, in a seeded order
that differs per epoch. After each epoch the dev accuracy decides early
stopping (``train.patience``) and which checkpoint is the best; at the end the
*best* checkpoint (a real copy, not the last weights) is evaluated on test and
``results.json`` is written.

Restarting in a workdir that holds checkpoints resumes from the newest readable
one: parameters, optimizer state, step, RNG and the data iterator are restored,
so the run continues with exactly the batches and random numbers it would have
seen (on the same device count).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Iterable

from absl import logging
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from safr_jax import checkpointing, data, losses, metrics, sharding
from safr_jax.initializers import INIT_MODES
from safr_jax.model import POOL_MODES, SafrClassifier

__all__ = ["ConfigError", "TrainState", "TrainingDiverged", "build_model",
           "create_train_state", "evaluate", "make_optimizer", "train_and_evaluate",
           "train_step", "eval_step", "validate_config", "loss_weights",
           "next_vmask_kl_weight"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
VMASK_KL_SCHEDULES = ("constant", "vmask")
# Model fields that change a parameter shape: a checkpoint must agree on them.
SHAPE_FIELDS = ("vocab_size", "num_classes", "d_model", "num_layers", "d_ff",
                "use_vmask", "vmask_hidden_dim")


class ConfigError(ValueError):
  """A config value that cannot work; the message names the field."""


class TrainingDiverged(RuntimeError):
  """A loss became NaN or infinite; the best checkpoint is left as it was."""


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


# ----------------------------------------------------------------------------
# Config.


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first field that cannot work."""
  def need(ok: bool, field: str, rule: str) -> None:
    if not ok:
      value = config
      for part in field.split("."):
        value = value[part]
      raise ConfigError(f"config.{field} {rule}, got {value!r}")

  for term in ("importance", "interaction", "vmask_kl"):
    value = config.loss[term]
    need(isinstance(value, (int, float)) and value >= 0, f"loss.{term}",
         "(a λ) must be a number >= 0")
  need(config.data.max_len >= 1, "data.max_len", "must be >= 1")
  need(config.data.pad_to in data.config.PAD_TO, "data.pad_to",
       f"must be one of {data.config.PAD_TO}")
  need(config.model.pool in POOL_MODES, "model.pool", f"must be one of {POOL_MODES}")
  need(config.model.dtype in DTYPES, "model.dtype", f"must be one of {tuple(DTYPES)}")
  need(config.model.init in INIT_MODES, "model.init", f"must be one of {INIT_MODES}")
  need(config.loss.vmask_kl_schedule in VMASK_KL_SCHEDULES, "loss.vmask_kl_schedule",
       f"must be one of {VMASK_KL_SCHEDULES}")
  need(config.model.use_vmask or not config.loss.vmask_kl, "loss.vmask_kl",
       "needs model.use_vmask=True (the bottleneck acts on VMASK's gate)")
  for field in ("d_model", "num_heads", "num_layers", "d_ff", "vmask_hidden_dim"):
    need(config.model[field] >= 1, f"model.{field}", "must be >= 1")
  need(config.model.d_model % config.model.num_heads == 0, "model.d_model",
       f"must be divisible by model.num_heads={config.model.num_heads}")
  need(0.0 <= config.model.dropout_rate < 1.0, "model.dropout_rate", "must be in [0, 1)")
  need(config.model.vmask_temperature > 0, "model.vmask_temperature", "must be > 0")
  need(config.train.learning_rate >= 0, "train.learning_rate", "must be >= 0")
  need(config.train.num_epochs >= 1, "train.num_epochs", "must be >= 1")
  need(config.train.patience >= 1, "train.patience", "must be >= 1")
  need(config.train.batch_size >= 1, "train.batch_size", "must be >= 1")
  need(config.train.eval_batch_size >= 1, "train.eval_batch_size", "must be >= 1")
  need(config.train.schedule in ("constant", "warmup_cosine"), "train.schedule",
       "must be 'constant' or 'warmup_cosine'")
  qb = config.loss.query_block_size
  need(qb is None or qb >= 1, "loss.query_block_size", "must be None or >= 1")
  if config.data.pad_to == "batch" and (config.model.pool == "all"
                                        or config.loss.count_padding):
    logging.warning(
        "data.pad_to='batch' with reference semantics (model.pool=%r, "
        "loss.count_padding=%s): results depend on how much padding each batch "
        "gets. Use the `reference` variant for the authors' fixed padding.",
        config.model.pool, config.loss.count_padding)


def loss_weights(config: ml_collections.ConfigDict) -> losses.LossWeights:
  return losses.LossWeights(importance=float(config.loss.importance),
                            interaction=float(config.loss.interaction),
                            vmask_kl=float(config.loss.vmask_kl))


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


# ----------------------------------------------------------------------------
# Model, optimizer, state.


def build_model(model_config: ml_collections.ConfigDict, *, vocab_size: int,
                num_classes: int) -> SafrClassifier:
  return SafrClassifier(
      vocab_size=vocab_size, num_classes=num_classes,
      d_model=model_config.d_model, num_heads=model_config.num_heads,
      num_layers=model_config.num_layers, d_ff=model_config.d_ff,
      dropout_rate=model_config.dropout_rate, use_vmask=model_config.use_vmask,
      vmask_hidden_dim=model_config.vmask_hidden_dim,
      vmask_temperature=model_config.vmask_temperature, pool=model_config.pool,
      # Runs saved before model.init existed were initialised the Flax way.
      param_init=model_config.get("init", "flax"), dtype=DTYPES[model_config.dtype])


def make_optimizer(train_config: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """Adam (the authors'), with optional warmup-cosine schedule and clipping."""
  lr = train_config.learning_rate
  if train_config.schedule == "warmup_cosine":
    lr = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=train_config.warmup_steps,
        decay_steps=max(total_steps, train_config.warmup_steps + 1))
  tx = optax.adam(lr)
  if train_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(train_config.grad_clip_norm), tx)
  return tx


def create_train_state(model: SafrClassifier, tx: optax.GradientTransformation,
                       *, seed: int, max_len: int) -> TrainState:
  init_key, train_key = jax.random.split(jax.random.key(seed))
  params = model.init(init_key, jnp.ones((1, max_len), jnp.int32))["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=jax.random.key_data(train_key))


# ----------------------------------------------------------------------------
# Steps.


def _token_mask(inter, count_padding: bool, example_weights=None):
  if count_padding:
    return None
  mask = inter.token_mask
  if example_weights is not None:  # filler rows of the last eval batch
    mask = mask & (example_weights > 0)[:, None]
  return mask


def train_step(state: TrainState, batch: dict[str, jax.Array],
               vmask_kl_weight: jax.Array | None = None, *,
               model: SafrClassifier, tx: optax.GradientTransformation,
               weights: losses.LossWeights, count_padding: bool,
               query_block_size: int | None = None) -> tuple[TrainState, dict]:
  """One optimizer step on ``batch`` (``ids [B, L]``, ``labels [B]``).

  ``vmask_kl_weight`` (a scalar, may be traced) replaces ``weights.vmask_kl``:
  the bottleneck's β changes between epochs without recompiling.

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

  def loss_fn(params):
    logits, inter = model.apply({"params": params}, batch["ids"], deterministic=False,
                                rngs={"gumbel": gumbel_key, "dropout": dropout_key})
    total, terms = losses.safr_loss(
        logits=logits, labels=batch["labels"], intermediates=inter,
        token_mask=_token_mask(inter, count_padding), weights=weights,
        query_block_size=query_block_size)
    return total, (terms, logits, inter)

  (total, (terms, logits, inter)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = state.replace(step=state.step + 1, params=keep(params, state.params),
                            opt_state=keep(opt_state, state.opt_state))
  n = jnp.asarray(batch["labels"].shape[0], jnp.float32)
  sums = {f"{k}_sum": v * n for k, v in terms.items()}
  sums.update(
      loss_sum=total * n,
      accuracy_sum=jnp.sum(jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32),
      grad_norm_sum=grad_norm * n,
      **_gate_sums(inter, n),
      nonfinite_sum=(~finite).astype(jnp.float32) * n,
      count=n)
  return new_state, sums


def _with_vmask_kl(weights: losses.LossWeights, value) -> losses.LossWeights:
  return weights if value is None else dataclasses.replace(weights, vmask_kl=value)


def _gate_sums(inter, n) -> dict[str, jax.Array]:
  """The VMASK gate as two numbers (times ``n``): ``keep_rate``, the mean
  keep-probability over real tokens, and ``keep_above_half``, the share of
  real tokens with keep-probability > 0.5. Both 1 without VMASK."""
  if inter.keep_prob is None:
    one = jnp.ones((), jnp.float32) * n
    return {"keep_rate_sum": one, "keep_above_half_sum": one}
  mask = inter.token_mask.astype(jnp.float32)
  tokens = jnp.maximum(jnp.sum(mask), 1.0)
  return {"keep_rate_sum": jnp.sum(inter.keep_prob * mask) / tokens * n,
          "keep_above_half_sum": jnp.sum((inter.keep_prob > 0.5) * mask) / tokens * n}


def eval_step(params: Any, batch: dict[str, jax.Array],
              vmask_kl_weight: jax.Array | None = None, *, model: SafrClassifier,
              weights: losses.LossWeights, count_padding: bool,
              query_block_size: int | None = None) -> dict:
  """Metric sums on ``batch`` (``ids``, ``labels``, ``weights [B]``), eval mode."""
  weights = _with_vmask_kl(weights, vmask_kl_weight)
  logits, inter = model.apply({"params": params}, batch["ids"], deterministic=True)
  w = batch["weights"].astype(jnp.float32)
  mask = _token_mask(inter, count_padding, w)
  total, terms = losses.safr_loss(
      logits=logits, labels=batch["labels"], intermediates=inter, token_mask=mask,
      weights=weights, example_weights=w, query_block_size=query_block_size)
  n = jnp.sum(w)
  sums = {f"{k}_sum": v * n for k, v in terms.items()}
  sums.update(loss_sum=total * n,
              accuracy_sum=jnp.sum(w * (jnp.argmax(logits, -1) == batch["labels"])),
              **_gate_sums(inter, n), count=n)
  return sums


# ----------------------------------------------------------------------------
# The loop.


@dataclasses.dataclass
class _Setup:
  """What a run needs besides its state; built once per process."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  bundle: Any
  model: SafrClassifier
  tx: optax.GradientTransformation
  mesh: jax.sharding.Mesh
  train_step: Callable
  eval_step: Callable
  steps_per_epoch: int


def evaluate(setup: _Setup, params: Any, split_name: str,
             vmask_kl_weight: float | None = None) -> dict[str, float]:
  """Means of every metric over the whole ``split_name`` split (the total
  ``loss`` with the bottleneck weight ``vmask_kl_weight``, default the
  config's)."""
  kl = float(setup.config.loss.vmask_kl if vmask_kl_weight is None else vmask_kl_weight)
  split = setup.bundle.splits[split_name]
  sums = None
  for batch in data.eval_batches(split, batch_size=setup.config.train.eval_batch_size,
                                 pad_to=setup.config.data.pad_to,
                                 process_index=jax.process_index(),
                                 process_count=jax.process_count()):
    sums = metrics.add(sums, setup.eval_step(params, sharding.shard_batch(batch, setup.mesh),
                                             kl))
  if sums is None:
    raise data.DataError(f"the {split_name} split has no examples")
  return metrics.means(sums)


def _model_meta(config, vocab_size: int, num_classes: int) -> dict[str, Any]:
  meta = dict(config.model.to_dict(), vocab_size=vocab_size, num_classes=num_classes)
  return {k: meta[k] for k in SHAPE_FIELDS} | {"pool": meta["pool"]}


def _check_same_model(expected: dict[str, Any], where: str):
  def check(meta: dict[str, Any]) -> None:
    saved = meta.get("model", {})
    differ = [f"{k} {saved.get(k)!r} (checkpoint) vs {expected[k]!r} (config)"
              for k in SHAPE_FIELDS if saved.get(k) != expected[k]]
    if differ:
      raise checkpointing.CheckpointError(
          f"{where} holds a checkpoint of a different model: " + ", ".join(differ)
          + ". Use another --workdir, or a config that matches it.")
  return check


def _setup(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> _Setup:
  mesh = sharding.make_mesh()
  for field in ("batch_size", "eval_batch_size"):
    try:  # a ConfigError, so the command line reports it in one line
      sharding.check_batch_size(config.train[field], mesh, f"config.train.{field}")
    except ValueError as e:
      raise ConfigError(str(e)) from None
  # Every process loads the data; only process 0 writes vocab.txt/labels.json
  # (two writers of one file race in a shared workdir).
  bundle = data.load_dataset(config.data,
                             workdir if jax.process_index() == 0 else None)
  spe = data.steps_per_epoch(bundle.splits["train"], config.train.batch_size)
  if spe < 1:
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size} is larger than the "
        f"train split ({len(bundle.splits['train'])} examples): no full batch")
  model = build_model(config.model, vocab_size=len(bundle.vocab),
                      num_classes=len(bundle.label_names))
  tx = make_optimizer(config.train, spe * config.train.num_epochs)
  weights = loss_weights(config)
  static = dict(model=model, weights=weights, count_padding=config.loss.count_padding,
                query_block_size=config.loss.query_block_size)
  repl = sharding.replicated(mesh)
  # β of the bottleneck is an argument (not a constant) only when it can be
  # non-zero, so runs without it compile exactly as before.
  dynamic_kl = bool(config.loss.vmask_kl)
  step_jit = jax.jit(lambda s, b, kl: train_step(s, b, kl if dynamic_kl else None,
                                                 tx=tx, **static),
                     donate_argnums=0, out_shardings=(repl, repl))
  eval_jit = jax.jit(lambda p, b, kl: eval_step(p, b, kl if dynamic_kl else None, **static),
                     out_shardings=repl)
  base_kl = float(config.loss.vmask_kl)
  step_fn = lambda s, b, kl=base_kl: step_jit(s, b, jnp.float32(kl))
  eval_fn = lambda p, b, kl=base_kl: eval_jit(p, b, jnp.float32(kl))
  return _Setup(config=config, workdir=workdir, bundle=bundle, model=model, tx=tx,
                mesh=mesh, train_step=step_fn, eval_step=eval_fn, steps_per_epoch=spe)


def _abstract_state(setup: _Setup) -> TrainState:
  """The train state's shapes and dtypes, replicated over the mesh: what a
  checkpoint restores into."""
  config, repl = setup.config, sharding.replicated(setup.mesh)
  shapes = jax.eval_shape(lambda: create_train_state(
      setup.model, setup.tx, seed=config.seed, max_len=config.data.max_len))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                      shapes)


def _initial_state(setup: _Setup, ckpts: checkpointing.Checkpoints):
  """Fresh, resumed or ``init_from`` state, and the checkpoint meta (or None)."""
  config = setup.config
  abstract = _abstract_state(setup)
  expected = _model_meta(config, len(setup.bundle.vocab), len(setup.bundle.label_names))
  restored = ckpts.restore_newest_readable(
      abstract, check_meta=_check_same_model(expected, f"workdir {setup.workdir}"))
  if restored is not None:
    logging.info("Resuming from %s at step %d.", ckpts.directory, restored.step)
    return restored.state, restored.meta
  # Initialised only when no checkpoint of this run restores (a resume skips it).
  state = create_train_state(setup.model, setup.tx, seed=config.seed,
                             max_len=config.data.max_len)
  state = jax.device_put(state, sharding.replicated(setup.mesh))
  if config.init_from:
    source = pathlib.Path(config.init_from)
    other = checkpointing.Checkpoints(
        source / "checkpoints" if (source / "checkpoints").is_dir() else source)
    found = other.restore_newest_readable(
        abstract, check_meta=_check_same_model(expected, f"init_from {source}"))
    if found is None:
      raise ConfigError(f"config.init_from={str(source)!r} holds no checkpoint")
    logging.info("Starting from the weights of %s (step %d).", source, found.step)
    state = state.replace(params=found.state.params)
  return state, None


def _save_run_files(config, workdir: pathlib.Path, bundle) -> None:
  if jax.process_index() != 0:
    return
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")
  (workdir / "dataset.json").write_text(json.dumps(bundle.info, indent=2, default=str) + "\n")


class _Progress:
  """tqdm on a terminal; otherwise a plain log line every ``log_every`` steps."""

  def __init__(self, config, total: int, initial: int):
    import tqdm  # pylint: disable=g-import-not-at-top
    use_bar = (config.train.progress_bar and sys.stderr.isatty()
               and jax.process_index() == 0)
    self._bar = tqdm.tqdm(total=total, initial=initial, unit="step",
                          dynamic_ncols=True) if use_bar else None
    self._total, self._start_step, self._start = total, initial, time.monotonic()
    self._batch = config.train.batch_size

  def update(self, step: int, scalars: dict[str, float] | None) -> None:
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      if scalars:
        self._bar.set_postfix(loss=f"{scalars['loss']:.4f}",
                              acc=f"{scalars['accuracy']:.3f}",
                              ex_s=f"{self._rate(step):.0f}")
    elif scalars:
      done = step - self._start_step
      eta = (self._total - step) * (time.monotonic() - self._start) / max(done, 1)
      logging.info("step %d/%d  loss %.4f  acc %.3f  keep %.3f  %.0f ex/s  ETA %s",
                   step, self._total, scalars["loss"], scalars["accuracy"],
                   scalars["keep_rate"], self._rate(step),
                   datetime.timedelta(seconds=int(eta)))

  def _rate(self, step: int) -> float:
    return (step - self._start_step) * self._batch / max(time.monotonic() - self._start, 1e-9)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike) -> dict[str, Any] | None:
  """Trains (or resumes) in ``workdir``, then tests the best checkpoint.

  Returns:
    The results written to ``<workdir>/results.json``, or None when
    ``train.stop_after_steps`` stopped the run early (as a kill would).

  Raises:
    ConfigError / data.DataError: bad config or data, before any training.
    TrainingDiverged: a non-finite loss; the best checkpoint is untouched.
    checkpointing.CheckpointError: the workdir's checkpoints cannot be used.
  """
  start_time = time.time()
  validate_config(config)
  workdir = pathlib.Path(workdir).absolute()
  workdir.mkdir(parents=True, exist_ok=True)
  setup = _setup(config, workdir)
  _save_run_files(config, workdir, setup.bundle)
  ckpts = checkpointing.Checkpoints(workdir / "checkpoints", cleanup_tmp=True)
  writer = metrics.MetricWriter(workdir, enabled=jax.process_index() == 0)
  try:
    record = _train(setup, ckpts, writer)
    if record is None:
      return None
    return _finish(setup, ckpts, writer, record, start_time)
  finally:
    writer.close()
    ckpts.close()


def _train(setup: _Setup, ckpts: checkpointing.Checkpoints,
           writer: metrics.MetricWriter) -> dict[str, Any] | None:
  config, spe = setup.config, setup.steps_per_epoch
  state, meta = _initial_state(setup, ckpts)
  model_meta = _model_meta(config, len(setup.bundle.vocab), len(setup.bundle.label_names))
  record = dict(meta["record"]) if meta else dict(
      best_dev_accuracy=-1.0, best_step=None, best_epoch=None,
      epochs_without_improvement=0, dev_history=[], stopped_early=False,
      train_seconds=0.0, train_steps=0)
  # β of the bottleneck for the coming epoch; in the checkpoint, so a resumed
  # run continues the schedule.
  record.setdefault("vmask_kl_weight", float(config.loss.vmask_kl))
  step = int(jax.device_get(state.step))
  total_steps = spe * config.train.num_epochs
  # A larger train.num_epochs extends a finished run; early stopping is final.
  if record["stopped_early"] or step >= total_steps:
    logging.info("Training in %s already finished (step %d); evaluating its best "
                 "checkpoint.", setup.workdir, step)
    return record
  it = data.train_iterator(setup.bundle.splits["train"], batch_size=config.train.batch_size,
                           seed=config.seed, pad_to=config.data.pad_to,
                           process_index=jax.process_index(),
                           process_count=jax.process_count())
  if meta:
    it.set_state(meta["iterator"])
  progress = _Progress(config, total_steps, step)

  def save(dev_accuracy=None):
    ckpts.save(step, state=state, dev_accuracy=dev_accuracy,
               meta={"iterator": it.get_state(), "record": record, "model": model_meta,
                     "epoch": step // spe, "config": config.to_dict()})

  window, epoch_sums, pending = None, None, None
  tic, tic_step = time.monotonic(), step
  try:
    while step < total_steps:
      batch = sharding.shard_batch(next(it), setup.mesh)
      state, sums = setup.train_step(state, batch, record["vmask_kl_weight"])
      step += 1
      # Read the previous step's metrics only now: the host never waits for the
      # step it just dispatched.
      if pending is not None:
        _check_finite(*pending)
      pending = (step, sums)
      window = metrics.add(window, sums)
      epoch_sums = metrics.add(epoch_sums, sums)
      if step % config.train.log_every_steps == 0:
        scalars = metrics.means(window)
        writer.write(step, "train", scalars)
        progress.update(step, scalars)
        window = None
      else:
        progress.update(step, None)
      if step == config.train.stop_after_steps:
        _check_finite(*pending)
        logging.warning("Stopping after step %d as train.stop_after_steps says; "
                        "restart to resume from the last checkpoint.", step)
        return None
      if step % spe == 0:  # end of an epoch
        _check_finite(*pending)
        pending = None
        record["train_seconds"] += time.monotonic() - tic
        record["train_steps"] += step - tic_step
        epoch = step // spe
        stop = _end_epoch(setup, state, step, epoch, epoch_sums, record, writer)
        epoch_sums = None
        save(dev_accuracy=record["dev_history"][-1])
        tic, tic_step = time.monotonic(), step
        if stop:
          break
      elif config.train.checkpoint_every_steps and step % config.train.checkpoint_every_steps == 0:
        _check_finite(*pending)
        save()
  finally:
    progress.close()
  return record


def _check_finite(step: int, sums: dict) -> None:
  values = jax.device_get(sums)
  if values["nonfinite_sum"] > 0:
    bad = [k.removesuffix("_sum") for k in ("ce_sum", "importance_sum", "interaction_sum",
                                            "vmask_kl_sum", "grad_norm_sum")
           if not math.isfinite(float(values[k]))]
    raise TrainingDiverged(
        f"training diverged at step {step}: non-finite {', '.join(bad) or 'loss'}; "
        "that update was not applied and no checkpoint was written after it. "
        "Lower config.train.learning_rate or set config.train.grad_clip_norm.")


def _end_epoch(setup, state, step, epoch, epoch_sums, record, writer) -> bool:
  """Dev evaluation and early-stopping bookkeeping; True = stop now."""
  config = setup.config
  train_scalars = metrics.means(epoch_sums)
  train_scalars["vmask_kl_weight"] = record["vmask_kl_weight"]
  dev = evaluate(setup, state.params, "dev", record["vmask_kl_weight"])
  record["dev_history"].append(dev["accuracy"])
  record.setdefault("vmask_kl_history", []).append(record["vmask_kl_weight"])
  improved = dev["accuracy"] > record["best_dev_accuracy"]
  if improved:
    record.update(best_dev_accuracy=dev["accuracy"], best_step=step, best_epoch=epoch,
                  epochs_without_improvement=0)
  else:
    record["epochs_without_improvement"] += 1
  writer.write(step, "train_epoch", train_scalars, epoch=epoch)
  writer.write(step, "dev", dev, epoch=epoch)
  logging.info("epoch %d (step %d): train loss %.4f acc %.3f | dev loss %.4f acc %.4f "
               "imp %.4f inter %.4f%s", epoch, step, train_scalars["loss"],
               train_scalars["accuracy"], dev["loss"], dev["accuracy"],
               dev["importance"], dev["interaction"], " (best)" if improved else "")
  record["vmask_kl_weight"] = next_vmask_kl_weight(
      record["vmask_kl_weight"], epoch, config.loss.vmask_kl_schedule)
  if record["epochs_without_improvement"] >= config.train.patience:
    logging.info("Early stopping: no dev improvement for %d epochs; best epoch %d.",
                 config.train.patience, record["best_epoch"])
    record["stopped_early"] = True
    return True
  return False


def _finish(setup, ckpts, writer, record, start_time) -> dict[str, Any]:
  config = setup.config
  best = record["best_step"]
  if best is None:
    raise checkpointing.CheckpointError(
        f"{ckpts.directory} has no evaluated checkpoint to test")
  abstract = _abstract_state(setup)
  state = ckpts.restore(best, abstract).state
  # Each checkpoint's loss is reported with the bottleneck β it trained under.
  kl_history = record.get("vmask_kl_history") or [float(config.loss.vmask_kl)]
  test = evaluate(setup, state.params, "test", kl_history[record["best_epoch"] - 1])
  writer.write(best, "test", test)
  # What the authors' code reports: it keeps `state_dict()` by reference, so
  # the weights it tests are the last epoch's, not the best dev epoch's.
  last = ckpts.latest_step()
  if last is None or last == best:
    test_last, last = test, best
  else:
    test_last = evaluate(setup, ckpts.restore(last, abstract).state.params, "test",
                         kl_history[-1])
  bundle = setup.bundle
  seconds = record["train_seconds"]
  results = {
      "dataset": bundle.info,
      "source": bundle.source,
      "test": test,
      "test_last_epoch": test_last,
      "last_step": last,
      "best_dev_accuracy": record["best_dev_accuracy"],
      "best_epoch": record["best_epoch"],
      "best_step": best,
      "epochs_run": len(record["dev_history"]),
      "dev_history": record["dev_history"],
      "vmask_kl_history": record.get("vmask_kl_history"),
      "stopped_early": bool(record.get("stopped_early", False)),
      "wall_time_s": time.time() - start_time,
      "train_seconds": seconds,
      # Training steps only (no evaluation), first-step compilation included.
      "train_examples_per_s": (record["train_steps"] * config.train.batch_size
                               / seconds) if seconds else None,
      "devices": {"count": jax.device_count(), "processes": jax.process_count(),
                  "kind": jax.devices()[0].device_kind},
      "versions": _versions(),
      "git_commit": _git_commit(),
      "config": config.to_dict(),
      "workdir": str(setup.workdir),
  }
  if jax.process_index() == 0:
    path = setup.workdir / "results.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
  summary = (f"Test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}, "
             f"L_Imp {test['importance']:.4f}, L_Inter {test['interaction']:.4f}) of the "
             f"best checkpoint (epoch {record['best_epoch']}, dev accuracy "
             f"{record['best_dev_accuracy']:.4f}) on {bundle.source}; the last "
             f"epoch's weights (what the authors' code tests): {test_last['accuracy']:.4f}.")
  print(summary)
  print(f"Results: {setup.workdir / 'results.json'}")
  return results


def _versions() -> dict[str, str]:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  out = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
               "tensorflow-datasets", "numpy", "safr-jax"):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  return out


def _git_commit() -> str | None:
  try:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pathlib.Path(__file__).parent,
        capture_output=True, text=True, timeout=5, check=True).stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    return None
