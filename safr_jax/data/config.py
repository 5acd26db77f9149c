"""``config.data``: the options every source shares, documented beside their defaults,
then one group per source (``config.data.planted``, …), documented in its module under
``data/sources/``; docs/DATA.md says what each source is. Runs saved with an older layout
are read through ``safr_jax.migration``.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from safr_jax import migration
from safr_jax.data import sources
from safr_jax.errors import DataError

PAD_TO = ("max_len", "batch")
BATCHING = ("random", "bucketed")


def default_config() -> ml_collections.ConfigDict:
  """Returns a ``config.data`` with every field at its default (SST-2-like)."""
  c = ml_collections.ConfigDict()
  c.source = "auto"  # a name of sources.REGISTRY, or "auto" (docs/DATA.md)
  c.benchmark = "sst_treebank"  # what "auto" means: "sst_treebank" or "aclimdb"
  c.max_len = 128  # tokens per row; longer texts keep their first max_len
  c.split_seed = 0  # >= 0; of every split and of max_examples subsampling
  # None, or a cap per split (stratified, deterministic subset).
  c.max_examples = ml_collections.FieldReference(None, field_type=int)
  # Padding never changes a result (model.pool="tokens", loss.count_padding=False), so a
  # batch is padded only to its longest row, rounded up to a multiple of 8 ("batch"), and
  # train batches are length-bucketed (docs/DATA.md); the `reference` variant sets both
  # back to the authors' ("max_len", "random").
  c.pad_to = "batch"
  c.batching = "bucketed"
  c.bucket_window = 100  # >= 1; larger = less padding, less random (1 = random)
  c.vocab = ml_collections.ConfigDict()
  c.vocab.min_freq = 2        # train count a token needs to enter the vocabulary
  c.vocab.lowercase = False   # lowercase before tokenising (the authors do not)
  c.vocab.strip_html = False  # replace <br /> (any <br> form) by a space
  c.download = ml_collections.ConfigDict()  # the paper's benchmarks (docs/DATA.md)
  c.download.cache_dir = "~/.cache/safr_jax/data"
  c.download.probe_timeout_s = 5.0  # does the host answer? (capped at 10)
  # A download fails when no byte has come for stall_s seconds, or after timeout_s.
  c.download.stall_s = 60.0
  c.download.timeout_s = 3600.0
  for src in sources.REGISTRY.values():  # each source's own options
    if src.options is not None and src.config_group not in c:
      c[src.config_group] = src.options()
  return c


def complete(cfg: Any) -> ml_collections.ConfigDict:
  """``cfg`` (a ``config.data``, whole or partial) over the defaults; a field that does not
  exist is a DataError naming where it moved (a saved run's config goes through
  ``migration.upgrade`` first)."""
  given = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
  out = default_config().to_dict()
  known = migration.flatten(out)
  for key, value in migration.flatten(given).items():
    if key not in known and not (key in out and isinstance(out[key], dict)):
      moved = migration.MOVED.get(key)
      hint = f" (now config.data.{moved})" if isinstance(moved, str) else ""
      raise DataError(f"unknown config.data field {key!r}{hint}")
    *path, last = key.split(".")
    node = out
    for part in path:
      node = node[part]
    node[last] = value
  return ml_collections.ConfigDict(out)
