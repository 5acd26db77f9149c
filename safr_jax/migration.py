"""A run saved by an older safr-jax, read as today's: the one table of config
fields moved (``MOVED``, inside ``config.data``) or added (``ADDED``) since,
applied where a saved config is read (``runs.load_run``, ``workdir``'s identity
check), never as a getter with a default at each use."""

from __future__ import annotations

from typing import Any

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
# Fields added since, with the value a run saved before them had (today's
# default for most; not for data.batching and loss.query_block_size).
ADDED = {"data.batching": "random",  # bucketed became the default later
         "loss.vmask_kl": 0.0, "loss.scale_invariant_importance": 0.0,
         "loss.warmup_epochs": 0, "loss.query_block_size": None,  # None: unblocked
         "model.init": "flax", "train.frozen": "", "train.lr_scale": ""}


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


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty dict is a value)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def upgrade(config: dict[str, Any]) -> dict[str, Any]:
  """A saved ``config.json`` (any age): moved fields at their new place, fields
  it lacks from ``ADDED`` at the value they had; the rest as saved."""
  out = {k: v for k, v in config.items()}
  if isinstance(out.get("data"), dict):
    flat = upgrade_flat(flatten(out["data"]))
    out["data"] = {}
    for key, value in flat.items():
      *path, last = key.split(".")
      node = out["data"]
      for part in path:
        node = node.setdefault(part, {})
      node[last] = value
  for key, value in ADDED.items():
    section, field = key.split(".")
    if isinstance(out.get(section), dict) and field not in out[section]:
      out[section] = {**out[section], field: value}
  return out
