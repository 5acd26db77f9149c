"""Defaults for ``config.data``; every field is documented in ``safr_jax.data``."""

from __future__ import annotations

from typing import Any

import ml_collections

SOURCES = ("auto", "glue/sst2", "sst_treebank", "imdb_reviews", "rt_polarity",
           "imdb_builtin", "files", "planted")
TFDS_SOURCES = ("glue/sst2", "imdb_reviews")
BUILTIN_SOURCES = ("rt_polarity", "imdb_builtin")
PAD_TO = ("max_len", "batch")


def default_config() -> ml_collections.ConfigDict:
  """Returns a ``config.data`` with every field at its default (SST-2-like)."""
  c = ml_collections.ConfigDict()
  c.source = "auto"
  c.auto_tfds = "glue/sst2"
  c.auto_fallback = "rt_polarity"
  c.auto_probe_timeout_s = 5.0
  c.max_len = 128
  c.min_freq = 2
  c.lowercase = False
  c.strip_html = False
  c.dev_fraction = 0.1
  c.split_seed = 0
  c.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  c.sst_dir = ml_collections.FieldReference(None, field_type=str)
  c.train_file = ml_collections.FieldReference(None, field_type=str)
  c.dev_file = ml_collections.FieldReference(None, field_type=str)
  c.test_file = ml_collections.FieldReference(None, field_type=str)
  c.text_field = "text"
  c.label_field = "label"
  c.label_names = ml_collections.FieldReference(None, field_type=list)
  c.max_examples = ml_collections.FieldReference(None, field_type=int)
  c.pad_to = "max_len"
  c.planted_train_size = 2000
  c.planted_dev_size = 500
  c.planted_test_size = 500
  c.planted_min_len = 8
  c.planted_max_len = 24
  c.planted_filler_vocab_size = 200
  c.planted_negation_prob = 0.3
  c.planted_seed = 0
  return c


_DEFAULTS = default_config()


def get(cfg: Any, name: str) -> Any:
  """``cfg.name``, or the default when the field is absent (dicts work too)."""
  if isinstance(cfg, dict) or hasattr(cfg, "get"):
    try:
      if name in cfg:
        return cfg[name]
    except TypeError:
      pass
  elif hasattr(cfg, name):
    return getattr(cfg, name)
  if name not in _DEFAULTS:
    raise KeyError(f"unknown config.data field {name!r}")
  return _DEFAULTS[name]
