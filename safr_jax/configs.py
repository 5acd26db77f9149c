"""Configs: the SAFR authors' hyper-parameters, the variants, and validation.

Every config field is documented here, beside its default (the data fields in
``safr_jax/data/config.py``, each source's own group in its module under
``safr_jax/data/sources/``). A dataset config file (``configs/sst2.py``,
``configs/imdb.py``, ``configs/planted.py``) calls ``get_config(dataset, arg)``;
variants are picked on the command line after a colon and compose left to
right, e.g. ``--config=configs/sst2.py:reference,baseline`` (the authors'
numerics, plain Transformer) or ``:quick,baseline``. Every field can be
overridden, e.g. ``--config.train.learning_rate=3e-4``;
``python -m safr_jax.configs configs/sst2.py[:VARIANTS]`` prints every field.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys

from absl import logging
import jax
import ml_collections

from safr_jax import data
from safr_jax import losses
from safr_jax.errors import ConfigError
from safr_jax.initializers import INIT_MODES
from safr_jax.model import POOL_MODES
from safr_jax.steps import DTYPES, frozen_groups, lr_scales, param_groups

__all__ = ["VARIANTS", "DATASETS", "VMASK_KL_SCHEDULES", "base_config", "apply_variant",
           "get_config", "validate_config"]

VMASK_KL_SCHEDULES = ("constant", "vmask")

VARIANTS = ("safr", "baseline", "vmask", "imp", "inter", "ib", "safr_ib",
            "scale_invariant", "reference", "quick")

# The paper's benchmark `auto` means (else its offline stand-in), and the
# authors' max_len.
DATASETS = {
    "sst2": dict(benchmark="sst_treebank", max_len=128),
    "imdb": dict(benchmark="aclimdb", max_len=256),
    "planted": dict(source="planted", max_len=32),
}


def base_config(dataset: str) -> ml_collections.ConfigDict:
  """The authors' settings for ``dataset`` ("sst2", "imdb" or "planted")."""
  if dataset not in DATASETS:
    raise ConfigError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
  c = ml_collections.ConfigDict()
  c.name = dataset
  c.variant = "safr"
  c.seed = 0

  # Every data field at its default (safr_jax/data/config.py and each source's
  # module document them); a dataset changes only what differs.
  c.data = data.default_config()
  c.data.update(DATASETS[dataset])

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
  # the authors' model gets them: embedding N(0, 1), Linear U(±1/sqrt(fan_in)));
  # "torch_embedding" / "torch_dense": PyTorch's for that part only.
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
  # λ of L_Imp with both tokens normalised (x̂_i · x̂_j): closing the VMASK gate
  # cannot lower it (losses.importance_loss, scale_invariant=True). Not the
  # authors'; the `scale_invariant` variant swaps it for loss.importance.
  c.loss.scale_invariant_importance = 0.0
  # λ warm-up (a candidate fix): L_Imp and L_Inter are off for this many first
  # epochs, so the model learns the task first; early stopping and the best
  # checkpoint start after it. The authors': 0.
  c.loss.warmup_epochs = 0
  # "auto": compute L_Inter a block of query rows at a time once a
  # [batch, heads, L, L] array would pass 128 MiB (long inputs); "none": all at
  # once; or a number of rows. Same value either way, less memory.
  c.loss.query_block_size = "auto"

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32   # global batch, over all devices and processes
  c.train.learning_rate = 1e-4
  c.train.schedule = "constant"  # or "warmup_cosine"
  c.train.warmup_steps = 0
  c.train.grad_clip_norm = 0.0   # 0 = no clipping
  # Parameter groups never updated, comma-separated: embedding, vmask, classifier,
  # block_<i> (e.g. "embedding": train on the initial word vectors).
  c.train.frozen = ""
  # Learning-rate multipliers by parameter group, e.g. "embedding=16": move a
  # group as far as another init's would (PyTorch's N(0, 1) rows are √d longer).
  c.train.lr_scale = ""
  c.train.num_epochs = 100
  c.train.patience = 3           # epochs without dev improvement before stopping
  c.train.eval_batch_size = 128
  c.train.checkpoint_every_steps = 500  # besides every epoch end; 0 = epochs only
  c.train.log_every_steps = 50
  c.train.stop_after_steps = 0   # >0: stop (as if killed) after this many steps
  c.train.progress_bar = True    # tqdm on a terminal; plain log lines otherwise
  # XLA's persistent compilation cache (the command line turns it on): a later
  # run of the same shapes skips compiling. "" = off.
  c.train.compilation_cache_dir = "~/.cache/safr_jax/xla"
  # A workdir holding *another* run (other data, model or settings) is an
  # error; True moves that run aside (<workdir>.replaced-<time>) and starts
  # over. The same run always resumes, whatever this says.
  c.train.overwrite = False

  c.init_from = ""  # a workdir or checkpoint step folder to take weights from
  return c


def apply_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """Sets the fields that make ``variant`` (one of ``VARIANTS``) on top of ``c``."""
  if variant not in VARIANTS:
    raise ConfigError(f"unknown variant {variant!r}; choose one of "
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
  elif variant == "scale_invariant":  # L_Imp that the gate cannot lower by closing
    c.loss.scale_invariant_importance = c.loss.importance
    c.loss.importance = 0.0
  elif variant == "reference":  # every switch as the authors' code has it
    c.model.pool = "all"
    c.model.init = "torch"
    c.loss.count_padding = True
    c.data.pad_to = "max_len"
    c.data.batching = "random"  # their DataLoader(shuffle=True)
  elif variant == "quick":  # tiny model on a few hundred examples
    c.data.max_examples = 320
    c.data.max_len = min(c.data.max_len, 64)
    # One batch shape: at this size compiling a step for each bucketed width
    # (8 of them) took ~90 of a run's ~105 s on 2 cores; one width, ~35 s.
    c.data.pad_to = "max_len"
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


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the first field that cannot work."""
  def need(ok: bool, field: str, rule: str) -> None:
    if not ok:
      value = config
      for part in field.split("."):
        value = value[part]
      raise ConfigError(f"config.{field} {rule}, got {value!r}")

  for term in losses.weight_names():
    if term not in config.loss:
      raise ConfigError(f"config.loss.{term} is missing: every regularizer "
                        "needs its λ (losses.LossWeights)")
    value = config.loss[term]
    need(isinstance(value, (int, float)) and not isinstance(value, bool)
         and math.isfinite(value) and value >= 0, f"loss.{term}",
         "(a λ) must be a number >= 0")
  need(config.data.max_len >= 1, "data.max_len", "must be >= 1")
  need(config.data.batching in data.config.BATCHING, "data.batching",
       f"must be one of {data.config.BATCHING}")
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
  need(isinstance(config.loss.warmup_epochs, int) and
       0 <= config.loss.warmup_epochs < config.train.num_epochs, "loss.warmup_epochs",
       f"must be an integer in [0, train.num_epochs={config.train.num_epochs})")
  need(config.train.batch_size >= 1, "train.batch_size", "must be >= 1")
  need(config.train.eval_batch_size >= 1, "train.eval_batch_size", "must be >= 1")
  need(config.train.log_every_steps >= 1, "train.log_every_steps", "must be >= 1")
  need(config.train.checkpoint_every_steps >= 0, "train.checkpoint_every_steps",
       "must be >= 0 (0 = at epoch ends only)")
  need(config.train.stop_after_steps >= 0, "train.stop_after_steps", "must be >= 0")
  need(math.isfinite(config.train.learning_rate), "train.learning_rate",
       "must be finite")
  need(config.train.grad_clip_norm >= 0, "train.grad_clip_norm", "must be >= 0")
  need(config.train.schedule in ("constant", "warmup_cosine"), "train.schedule",
       "must be 'constant' or 'warmup_cosine'")
  groups = param_groups(config.model)
  for name in frozen_groups(config.train):
    need(name in groups, "train.frozen", f"{name!r} is not a parameter group (one of {groups})")
  try:
    scales = lr_scales(config.train)
  except ValueError as e:
    raise ConfigError(f"config.train.lr_scale: {e} (e.g. 'embedding=16')") from None
  for name, scale in scales.items():
    need(name in groups, "train.lr_scale", f"{name!r} is not a parameter group (one of {groups})")
    need(math.isfinite(scale) and scale > 0, "train.lr_scale",
         f"{name}'s multiplier must be a finite number > 0 (freeze with train.frozen)")
  _check_memory(config)
  qb = config.loss.query_block_size
  need(qb is None or str(qb) in ("auto", "none") or (str(qb).isdigit() and int(qb) >= 1),
       "loss.query_block_size", "must be 'auto', 'none' or a number of rows >= 1")
  if config.data.pad_to == "batch" and (config.model.pool == "all"
                                        or config.loss.count_padding):
    logging.warning(
        "data.pad_to='batch' with reference semantics (model.pool=%r, "
        "loss.count_padding=%s): results depend on how much padding each batch "
        "gets. Use the `reference` variant for the authors' fixed padding.",
        config.model.pool, config.loss.count_padding)


def attention_bytes(config: ml_collections.ConfigDict, devices: int = 1) -> int:
  """Bytes of one layer's attention weights for the larger of a training and
  an evaluation batch: ``[batch / devices, heads, max_len, max_len]`` in
  float32, the model's largest array (it grows with max_len squared)."""
  batch = max(config.train.batch_size, config.train.eval_batch_size)
  per_device = -(-batch // max(devices, 1))
  return per_device * config.model.num_heads * config.data.max_len ** 2 * 4


def _machine_bytes() -> int | None:
  """Memory of one device: the accelerator's limit, or this host's RAM."""
  device = jax.local_devices()[0]
  if device.platform != "cpu":
    stats = device.memory_stats() or {}
    return stats.get("bytes_limit")
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def _check_memory(config: ml_collections.ConfigDict) -> None:
  """A max_len or batch whose attention weights alone cannot fit is a
  ConfigError now, not an allocation traceback after the run files exist."""
  need = attention_bytes(config, jax.local_device_count())
  have = _machine_bytes()
  if have and need > have:
    gib = lambda b: f"{b / 2**30:,.1f} GiB"  # pylint: disable=unnecessary-lambda-assignment
    raise ConfigError(
        f"config.data.max_len={config.data.max_len} needs {gib(need)} for one "
        f"layer's attention weights ([batch, heads, max_len, max_len] float32 "
        f"with train.batch_size={config.train.batch_size}, "
        f"train.eval_batch_size={config.train.eval_batch_size}), more than "
        f"this device's {gib(have)}; lower data.max_len or the batch sizes")


def main(argv: list[str]) -> None:
  """``python -m safr_jax.configs configs/sst2.py[:VARIANTS]`` (or ``sst2[:…]``):
  every field; a bad file or variant is one line on stderr, status 2."""
  if len(argv) < 2 or argv[1] in ("-h", "--help", "-help"):
    print("usage: python -m safr_jax.configs configs/sst2.py[:VARIANTS]")
    sys.exit(0 if len(argv) > 1 else 2)
  path, _, variants = argv[1].partition(":")
  try:
    if path in DATASETS and not os.path.isfile(path):
      config = get_config(path, variants or None)
    elif not os.path.isfile(path):
      raise ConfigError(f"no such config file {path!r} (a file such as configs/sst2.py, "
                        f"or a name: {', '.join(DATASETS)})")
    else:
      spec = importlib.util.spec_from_file_location("safr_config_file", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      config = module.get_config(variants) if variants else module.get_config()
  except ConfigError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  print(config)


if __name__ == "__main__":
  main(sys.argv)
