"""``config.data``: the options every source shares, documented beside their defaults,
then one group per source (``config.data.planted``, …), documented in its module under
``data/sources/``; docs/DATA.md says what each source is. Runs saved with an older layout
are read through :func:`upgrade` (the ``MOVED`` and ``ADDED`` tables).
"""

from __future__ import annotations

from typing import Any

import ml_collections

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


# Fields moved since (old name -> new place(s) in config.data); a function
# maps the old value where its meaning changed.
MOVED: dict[str, Any] = {
    "min_freq": "vocab.min_freq", "lowercase": "vocab.lowercase",
    "strip_html": "vocab.strip_html",
    "cache_dir": "download.cache_dir", "auto_probe_timeout_s": "download.probe_timeout_s",
    "download_stall_s": "download.stall_s", "download_timeout_s": "download.timeout_s",
    "sst_dir": "sst_treebank.dir", "sst_url": "sst_treebank.url",
    "imdb_dir": "aclimdb.dir", "imdb_url": "aclimdb.url",
    "tfds_data_dir": "tfds.data_dir",
    "dev_fraction": ("tfds.dev_fraction", "files.dev_fraction"),
    "train_file": "files.train", "dev_file": "files.dev", "test_file": "files.test",
    "text_field": "files.text_field", "label_field": "files.label_field",
    "label_names": "files.label_names", "allow_rare_labels": "files.allow_rare_labels",
    **{f"planted_{k}": f"planted.{k}" for k in (
        "train_size", "dev_size", "test_size", "min_len", "max_len",
        "filler_vocab_size", "negation_prob", "seed")},
    # auto named a TFDS dataset; it now names the paper's benchmark, whose
    # stand-in is the source's own (auto_fallback is gone).
    "auto_tfds": ("benchmark", lambda v: {"imdb_reviews": "aclimdb"}.get(v, "sst_treebank")),
    "auto_fallback": (),
}
# Fields added since whose value before differs from today's default.
ADDED = {"batching": "random"}  # bucketed became the default later


def _moved(move: Any, value: Any) -> dict[str, Any]:
  if isinstance(move, str):
    return {move: value}
  if len(move) == 2 and callable(move[1]):
    return {move[0]: move[1](value)}
  return {target: value for target in move}  # copied to each, or () dropped


def upgrade_flat(flat: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """Flat ``{prefix + field: value}`` with every ``MOVED`` field at its new place
  (``prefix="data."`` for a whole config flattened)."""
  out = {}
  for key, value in flat.items():
    name = key[len(prefix):] if key.startswith(prefix) else None
    if name in MOVED:
      out.update({prefix + k: v for k, v in _moved(MOVED[name], value).items()})
    else:
      out.setdefault(key, value)
  return out


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def complete(cfg: Any, *, saved: bool = False) -> ml_collections.ConfigDict:
  """``cfg`` (a ``config.data``, whole or partial) over the defaults; a field that does not
  exist is a DataError naming where it moved. ``saved=True``: a run's saved config of any
  age: moved fields are upgraded and absent ones take the value they had before."""
  given = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
  flat = _flatten(given)
  if saved:
    flat = upgrade_flat(flat)
    flat = {**{k: v for k, v in ADDED.items() if k not in given}, **flat}
  out = default_config().to_dict()
  known = _flatten(out)
  for key, value in flat.items():
    if key not in known and not (key in out and isinstance(out[key], dict)):
      moved = MOVED.get(key)
      hint = f" (now config.data.{moved})" if isinstance(moved, str) else ""
      raise DataError(f"unknown config.data field {key!r}{hint}")
    *path, last = key.split(".")
    node = out
    for part in path:
      node = node[part]
    node[last] = value
  return ml_collections.ConfigDict(out)


def upgrade(data_dict: dict[str, Any]) -> dict[str, Any]:
  """A run's saved ``config.data`` (any age) in today's layout, complete."""
  return complete(data_dict, saved=True).to_dict()
