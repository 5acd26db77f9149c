"""``load_dataset``: config → source → splits → vocabulary → fixed-shape ids; and the files
a run keeps (``vocab.txt``, ``labels.json``) so evaluation reuses the training ids."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any

from absl import logging
import numpy as np

from safr_jax import provenance
from safr_jax.data import acquire
from safr_jax.data import config as config_lib
from safr_jax.data import probe as probe_lib
from safr_jax.data import splits as splits_lib
from safr_jax.data.core import SPLITS, RawSplit
from safr_jax.data.vocabulary import Vocabulary
from safr_jax.errors import DataError

VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.json"


@dataclasses.dataclass
class EncodedSplit:
  """One split as arrays (N examples, L = max_len); the last three: ``planted`` only."""
  ids: np.ndarray  # int32 [N, L], right-padded with 0 (<PAD>); 1 = <UNK>
  lengths: np.ndarray  # int32 [N], tokens kept (0: an empty text)
  labels: np.ndarray  # int32 [N], index into DatasetBundle.label_names
  texts: list[str]  # as read, before normalisation
  example_ids: np.ndarray  # int64 [N], see core.RawSplit
  planted: np.ndarray | None = None  # bool [N, L]: planted positions
  planted_sign: np.ndarray | None = None  # int8 [N, L]: +1/-1 at sentiment words
  negation_pairs: np.ndarray | None = None  # int32 [N, 3, 2]: (not, word), -1 padded

  def __len__(self) -> int:
    return int(self.ids.shape[0])

  @property
  def max_len(self) -> int:
    return int(self.ids.shape[1])


@dataclasses.dataclass
class DatasetBundle:
  """What ``load_dataset`` returns; ``source`` is the one used (never "auto"), ``info`` the
  JSON-ready provenance for results.json."""
  splits: dict[str, EncodedSplit]
  vocab: Vocabulary
  label_names: list[str]
  source: str
  info: dict[str, Any]


def _encode(raw: dict[str, RawSplit], vocab: Vocabulary, max_len: int
            ) -> tuple[dict[str, EncodedSplit], dict[str, int], dict[str, int]]:
  """(encoded splits, empty texts per split, truncated texts per split)."""
  encoded, empty, truncated = {}, {}, {}
  for name in SPLITS:
    r = raw[name]
    ids, lengths, full = vocab.encode_batch(r.texts, max_len, full_lengths=True)
    empty[name] = int((lengths == 0).sum())
    truncated[name] = int((full > max_len).sum())
    encoded[name] = EncodedSplit(
        ids=ids, lengths=lengths, labels=np.asarray(r.labels, np.int32),
        texts=list(r.texts), example_ids=np.asarray(r.example_ids, np.int64),
        **{k: r.extras.get(k) for k in ("planted", "planted_sign", "negation_pairs")})
  if any(empty.values()):
    logging.warning("data: %s empty text(s) kept as all-padding rows "
                    "(length 0): %s", sum(empty.values()), empty)
  return encoded, empty, truncated


def _load(res: acquire.Resolution, cfg):
  """(raw splits, label names, description, info) of a resolved source."""
  raw, info = res.source.load(cfg, res.path)
  if res.path is not None:
    info.update(data_path=str(res.path), obtained=res.obtained)
  labels = info.pop("label_names", None) or list(res.source.labels)
  return raw, labels, info.pop("description", res.source.description), info


def load_dataset(cfg, workdir: str | pathlib.Path | None = None, *,
                 probe=probe_lib.probe_url) -> DatasetBundle:
  """The dataset ``cfg`` (``config.data``, absent fields at their defaults) asks for; with
  ``workdir``, ``vocab.txt`` and ``labels.json`` are written there. ``probe(url, timeout)
  -> (reachable, why)``: tests replace it."""
  start = time.monotonic()
  cfg = config_lib.complete(cfg)
  max_len, seed = int(cfg.max_len), int(cfg.split_seed)
  if max_len < 1:
    raise DataError(f"config.data.max_len must be >= 1, got {cfg.max_len}")
  if seed < 0:
    raise DataError(f"config.data.split_seed must be >= 0, got {cfg.split_seed}")
  res = acquire.resolve(cfg, probe)
  try:
    raw, label_names, description, extra_info = _load(res, cfg)
  except DataError as e:
    if res.obtained != "cache":
      raise
    # A cached copy that no longer reads: set aside, then what comes next (a
    # download, or auto's stand-in), saying why.
    note = (f"{res.source.name}: the cached copy does not read ({e}); moved aside to "
            f"{acquire.move_aside(res.source, cfg, str(e))}")
    res = acquire.resolve(cfg, probe)
    res = res._replace(steps=(note,) + res.steps,
                       reason=None if res.reason is None else f"{note}; {res.reason}")
    raw, label_names, description, extra_info = _load(res, cfg)
  source, reason = res.source.name, res.reason
  if reason is None:
    logging.info("data: %s — %s", source, description)
  else:  # auto fell back: loudly
    logging.warning("\n" + "!" * 78 + "\n!! DATA: source='auto' could not use the paper's %s, so "
                    "this run uses %r instead.\n!! Why: %s\n!! What it is: %s\n" + "!" * 78,
                    cfg.benchmark, source, reason, description)
  max_examples = None if cfg.max_examples is None else int(cfg.max_examples)
  if max_examples is not None:  # each split cut to a stratified subset
    if max_examples < 1:
      raise DataError(f"config.data.max_examples must be >= 1 or None, got {max_examples}")
    raw = {k: r.take(splits_lib.stratified_subsample(r.labels, max_examples, seed + 7))
           for k, r in raw.items()}
  for name in SPLITS:
    if len(raw[name]) == 0:
      raise DataError(f"the {name} split of source {source!r} has zero examples")

  vocab = Vocabulary.build(raw["train"].texts, min_freq=int(cfg.vocab.min_freq),
                           lowercase=bool(cfg.vocab.lowercase),
                           strip_html=bool(cfg.vocab.strip_html))
  encoded, empty, truncated = _encode(raw, vocab, max_len)
  info = {
      "requested_source": cfg.source, "source": source, "fallback_reason": reason,
      "auto_steps": list(res.steps), "description": description, "label_names": list(label_names),
      "sizes": {k: len(v) for k, v in encoded.items()},
      "class_counts": {k: np.bincount(v.labels, minlength=len(label_names)).astype(int).tolist()
                       for k, v in encoded.items()},
      "vocab_size": len(vocab), "max_len": max_len, "min_freq": int(cfg.vocab.min_freq),
      "lowercase": vocab.lowercase, "strip_html": vocab.strip_html, "split_seed": seed,
      "max_examples": max_examples, "empty_texts": empty, "truncated_texts": truncated,
      "load_seconds": round(time.monotonic() - start, 3), **extra_info,
  }
  bundle = DatasetBundle(splits=encoded, vocab=vocab, label_names=list(label_names),
                         source=source, info=info)
  if workdir is not None:
    save_vocab_and_labels(bundle, workdir)
  return bundle


def save_vocab_and_labels(bundle: DatasetBundle, workdir: str | pathlib.Path) -> None:
  """Writes ``workdir/vocab.txt`` (one token per line, line = id) and ``labels.json``."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  bundle.vocab.save(workdir / VOCAB_FILE)
  provenance.write_json(workdir / LABELS_FILE, {
      "label_names": list(bundle.label_names),
      "text_options": {"lowercase": bundle.vocab.lowercase, "strip_html": bundle.vocab.strip_html,
                       "max_len": bundle.info.get("max_len")},
      "data": bundle.info})


def load_vocab_and_labels(workdir: str | pathlib.Path) -> tuple[Vocabulary, list[str]]:
  """(vocab, label_names) as :func:`save_vocab_and_labels` wrote them; the vocabulary
  carries the run's text options, so ``vocab.encode`` gives the training ids."""
  workdir = pathlib.Path(workdir)
  labels_path = workdir / LABELS_FILE
  if not labels_path.exists():
    raise DataError(f"{labels_path} does not exist (was the run trained with this workdir?)")
  try:
    payload = json.loads(labels_path.read_text(encoding="utf-8"))
    names = payload["label_names"]
    options = payload.get("text_options", {})
  except UnicodeDecodeError as e:
    raise DataError(f"{labels_path} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
  except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
    raise DataError(f"{labels_path} is not a valid labels file: {e!r}") from None
  if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
    raise DataError(f"{labels_path}: label_names must be a list of strings")
  vocab = Vocabulary.load(workdir / VOCAB_FILE, lowercase=bool(options.get("lowercase", False)),
                          strip_html=bool(options.get("strip_html", False)))
  return vocab, names
