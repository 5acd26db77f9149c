"""A run's compiled pieces: ``make_trainer(config)`` → ``Trainer``.

A ``Trainer`` holds what a run needs besides its changing state: the encoded
dataset, the model, the optimizer, the device mesh and the jitted, sharded
``train_step``/``eval_step`` of ``safr_jax.steps``. The training loop
(``safr_jax.train_lib``), the tests and the benchmarks all build their steps
here, so they measure and test exactly what training runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from safr_jax import data, metrics, sharding, steps
from safr_jax.errors import ConfigError, DataError
from safr_jax.model import SafrClassifier

__all__ = ["Trainer", "make_trainer"]


@dataclasses.dataclass
class Trainer:
  """What a run needs besides its state; built once per process.

  Attributes:
    config: the run's config.
    bundle: the encoded dataset (``safr_jax.data.DatasetBundle``).
    model, tx: the classifier and its optimizer.
    mesh: the device mesh batches are sharded over (data parallel).
    train_step: ``(state, batch, vmask_kl_weight=β, regularizer_scale=1) ->
      (state, metric sums)``,
      jitted; donates ``state``.
    eval_step: ``(params, batch, vmask_kl_weight=β) -> metric sums``, jitted.
    steps_per_epoch: full global batches in the train split.
    jitted_train_step: the ``jax.jit`` object behind ``train_step``, taking
      ``(state, batch, β as float32)``: ``.lower(...)`` it to inspect or
      compile exactly what training runs (benchmarks do).
  """
  config: ml_collections.ConfigDict
  bundle: Any
  model: SafrClassifier
  tx: optax.GradientTransformation
  mesh: jax.sharding.Mesh
  train_step: Callable
  eval_step: Callable
  steps_per_epoch: int
  jitted_train_step: Any = None

  def init_state(self) -> steps.TrainState:
    """A fresh train state (``config.seed``), replicated over the mesh."""
    state = steps.create_train_state(self.model, self.tx, seed=self.config.seed,
                                     max_len=self.config.data.max_len)
    return jax.device_put(state, sharding.replicated(self.mesh))

  def abstract_state(self) -> steps.TrainState:
    """The train state's shapes and dtypes, replicated over the mesh: what a
    checkpoint restores into."""
    repl = sharding.replicated(self.mesh)
    shapes = jax.eval_shape(lambda: steps.create_train_state(
        self.model, self.tx, seed=self.config.seed, max_len=self.config.data.max_len))
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=repl),
                        shapes)

  def shard(self, batch: dict[str, Any]) -> dict[str, jax.Array]:
    """A host batch as global arrays split over the mesh's data axis."""
    return sharding.shard_batch(batch, self.mesh)

  def evaluate(self, params: Any, split_name: str,
               vmask_kl_weight: float | None = None,
               check: Callable[[], None] | None = None) -> dict[str, float]:
    """Means of every metric over the whole ``split_name`` split; the total
    ``loss`` uses the bottleneck weight ``vmask_kl_weight`` (default the
    config's). ``check`` is called before each batch and may raise to abandon
    the evaluation (a stop request)."""
    config = self.config
    kl = float(config.loss.vmask_kl if vmask_kl_weight is None else vmask_kl_weight)
    sums = None
    for batch in data.eval_batches(self.bundle.splits[split_name],
                                   batch_size=config.train.eval_batch_size,
                                   pad_to=config.data.pad_to,
                                   process_index=jax.process_index(),
                                   process_count=jax.process_count()):
      if check is not None:
        check()
      sums = metrics.add(sums, self.eval_step(params, self.shard(batch), kl))
    if sums is None:
      raise DataError(f"the {split_name} split has no examples")
    return metrics.means(sums)


def make_trainer(config: ml_collections.ConfigDict) -> Trainer:
  """Loads the data and builds the model, optimizer and jitted steps.

  Writes nothing: a caller that owns a workdir saves the vocabulary itself
  (``data.save_vocab_and_labels``) once it knows the workdir is this run's.
  """
  mesh = sharding.make_mesh()
  for field in ("batch_size", "eval_batch_size"):
    try:  # a ConfigError, so the command line reports it in one line
      sharding.check_batch_size(config.train[field], mesh, f"config.train.{field}")
    except ValueError as e:
      raise ConfigError(str(e)) from None
  bundle = data.load_dataset(config.data)
  spe = data.steps_per_epoch(bundle.splits["train"], config.train.batch_size)
  if spe < 1:
    raise ConfigError(
        f"config.train.batch_size={config.train.batch_size} is larger than the "
        f"train split ({len(bundle.splits['train'])} examples): no full batch")
  model = steps.build_model(config.model, vocab_size=len(bundle.vocab),
                            num_classes=len(bundle.label_names))
  tx = steps.make_optimizer(config.train, spe * config.train.num_epochs)
  train = bundle.splits["train"]
  static = dict(model=model, weights=steps.loss_weights(config),
                count_padding=config.loss.count_padding,
                query_block_size=config.loss.query_block_size,
                # Rows padded to max_len: attend over real keys only where that pays.
                cut_padded_keys=config.loss.count_padding and steps.cut_pays(
                    train.lengths, train.max_len, config.train.batch_size))
  repl = sharding.replicated(mesh)
  # β of the bottleneck is an argument (not a constant) only when it can be
  # non-zero, so runs without it compile exactly as before.
  dynamic_kl = bool(config.loss.vmask_kl)
  # Likewise the λ warm-up's scale (0 for the first loss.warmup_epochs epochs).
  warmup = bool(config.loss.warmup_epochs)
  step_jit = jax.jit(lambda s, b, kl, scale: steps.train_step(
      s, b, kl if dynamic_kl else None, scale if warmup else None, tx=tx, **static),
                     donate_argnums=0, out_shardings=(repl, repl))
  eval_jit = jax.jit(lambda p, b, kl: steps.eval_step(
      p, b, kl if dynamic_kl else None, **static), out_shardings=repl)
  base_kl = float(config.loss.vmask_kl)
  return Trainer(
      config=config, bundle=bundle, model=model, tx=tx, mesh=mesh,
      train_step=lambda s, b, kl=base_kl, scale=1.0: step_jit(
          s, b, jnp.float32(kl), jnp.float32(scale)),
      eval_step=lambda p, b, kl=base_kl: eval_jit(p, b, jnp.float32(kl)),
      steps_per_epoch=spe, jitted_train_step=step_jit)
