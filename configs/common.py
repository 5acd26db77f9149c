"""The SAFR authors' hyper-parameters and the variants shared by every dataset.

A dataset config calls ``get_config(dataset, arg)``; variants are picked on
the command line after a colon and compose left to right, e.g.
``--config=configs/sst2.py:reference,baseline`` (the authors' numerics, plain
Transformer) or ``:quick,baseline``. Every field can be overridden, e.g.
``--config.train.learning_rate=3e-4``.
"""

from __future__ import annotations

import ml_collections

from safr_jax import data

VARIANTS = ("safr", "baseline", "vmask", "imp", "inter", "ib", "safr_ib",
            "reference", "quick")

# What `auto` tries first and falls back to, and the authors' max_len.
DATASETS = {
    "sst2": dict(auto_tfds="glue/sst2", auto_fallback="rt_polarity", max_len=128),
    "imdb": dict(auto_tfds="imdb_reviews", auto_fallback="imdb_builtin",
                 max_len=256),
    "planted": dict(auto_tfds="glue/sst2", auto_fallback="planted", max_len=32,
                    source="planted"),
}


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The authors' settings for ``dataset`` ("sst2", "imdb" or "planted")."""
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
  c = ml_collections.ConfigDict()
  c.name = dataset
  c.variant = "safr"
  c.seed = 0

  c.data = data.default_config()
  c.data.update(DATASETS[dataset])
  # Padding-aware by default: padding never changes a result, so batches can
  # be padded to their longest row. The `reference` variant undoes this.
  c.data.pad_to = "batch"

  c.model = ml_collections.ConfigDict()
  c.model.d_model = 256
  c.model.num_heads = 8
  c.model.num_layers = 1
  c.model.d_ff = 1024
  c.model.dropout_rate = 0.1
  c.model.use_vmask = True
  c.model.vmask_hidden_dim = 1024
  c.model.vmask_temperature = 1.0
  c.model.pool = "tokens"  # "all" = the authors' (padding averaged in)
  # Parameter initialisers: "flax" (Flax defaults) or "torch" (PyTorch's, as
  # the authors' model gets them: embedding N(0, 1), Linear U(±1/sqrt(fan_in))).
  c.model.init = "flax"
  c.model.dtype = "float32"  # or "bfloat16" activations (params stay float32)

  c.loss = ml_collections.ConfigDict()
  c.loss.importance = 1.0   # λ_imp
  c.loss.interaction = 1.0  # λ_inter
  # VMASK's information bottleneck (Chen & Ji 2020), weight β; SAFR: off.
  c.loss.vmask_kl = 0.0
  # "constant": β stays loss.vmask_kl. "vmask": Chen & Ji's annealing, after
  # every 10th epoch β -= 0.099 while β > 0.01 (kept in the checkpoint).
  c.loss.vmask_kl_schedule = "constant"
  c.loss.count_padding = False  # True = the authors' semantics
  # Compute L_Inter a block of queries at a time (None = all at once); saves
  # memory for long sequences, same value.
  c.loss.query_block_size = ml_collections.FieldReference(None, field_type=int)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32   # global batch, over all devices and processes
  c.train.learning_rate = 1e-4
  c.train.schedule = "constant"  # or "warmup_cosine"
  c.train.warmup_steps = 0
  c.train.grad_clip_norm = 0.0   # 0 = no clipping
  c.train.num_epochs = 100
  c.train.patience = 3           # epochs without dev improvement before stopping
  c.train.eval_batch_size = 128
  c.train.checkpoint_every_steps = 500  # besides every epoch end; 0 = epochs only
  c.train.log_every_steps = 50
  c.train.stop_after_steps = 0   # >0: stop (as if killed) after this many steps
  c.train.progress_bar = True    # tqdm on a terminal; plain log lines otherwise

  c.init_from = ""  # a workdir or checkpoint step folder to take weights from
  return c


def apply_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """Sets the fields that make ``variant`` (one of ``VARIANTS``) on top of ``c``."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of "
                     f"{', '.join(VARIANTS)} (comma-separated to combine)")
  if variant == "baseline":  # the plain Transformer the paper compares against
    c.model.use_vmask = False
    c.loss.importance = c.loss.interaction = 0.0
  elif variant == "vmask":
    c.loss.importance = c.loss.interaction = 0.0
  elif variant == "imp":
    c.loss.interaction = 0.0
  elif variant == "inter":
    c.loss.importance = 0.0
  elif variant in ("ib", "safr_ib"):  # + VMASK's annealed information bottleneck
    c.loss.vmask_kl = 1.0
    c.loss.vmask_kl_schedule = "vmask"
  elif variant == "reference":  # every switch as the authors' code has it
    c.model.pool = "all"
    c.model.init = "torch"
    c.loss.count_padding = True
    c.data.pad_to = "max_len"
  elif variant == "quick":  # tiny model on a few hundred examples
    c.data.max_examples = 320
    c.data.max_len = min(c.data.max_len, 64)
    c.model.update(d_model=32, num_heads=2, d_ff=64, vmask_hidden_dim=32)
    c.train.update(batch_size=16, num_epochs=3, learning_rate=1e-3,
                   eval_batch_size=64, checkpoint_every_steps=10,
                   log_every_steps=5)
  return c


def get_config(dataset: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``dataset``'s config for ``arg``: comma-separated variants applied left to
  right (default "safr"), e.g. "reference,baseline"."""
  names = [v.strip() for v in (arg or "safr").split(",") if v.strip()] or ["safr"]
  c = base_config(dataset)
  for name in names:
    apply_variant(c, name)
  c.variant = ",".join(names)
  return c
