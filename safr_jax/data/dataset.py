"""``load_dataset``: config → source → splits → vocabulary → fixed-shape ids.

Also the files a run keeps beside its checkpoints (``vocab.txt``,
``labels.json``) so explanation/evaluation reuse exactly the training ids.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Any, NamedTuple

from absl import logging
import numpy as np

from safr_jax import provenance
from safr_jax.data import aclimdb as aclimdb_lib
from safr_jax.data import acquire
from safr_jax.data import config as config_lib
from safr_jax.data import files as files_lib
from safr_jax.data import planted as planted_lib
from safr_jax.data import sources
from safr_jax.data import splits as splits_lib
from safr_jax.data import sst_treebank as sst_lib
from safr_jax.errors import DataError
from safr_jax.data.vocabulary import Vocabulary

VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.json"


@dataclasses.dataclass
class EncodedSplit:
  """One split as arrays (N examples, L = max_len).

  Attributes:
    ids: int32 [N, L]; 0 = ``<PAD>`` (right padding), 1 = ``<UNK>``; texts
      longer than L are truncated to their first L tokens.
    lengths: int32 [N], tokens kept (0 for an empty text: an all-padding row).
    labels: int32 [N], index into ``DatasetBundle.label_names``.
    texts: the N original texts (before normalisation).
    example_ids: int64 [N], each example's row in its source (see
      ``sources.RawSplit``).
    planted: bool [N, L] or None; ``planted`` source only: planted positions.
    planted_sign: int8 [N, L] or None; +1/-1 counted at sentiment words.
    negation_pairs: int32 [N, 3, 2] or None; (not, word) positions, -1 padded.
  """
  ids: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  texts: list[str]
  example_ids: np.ndarray
  planted: np.ndarray | None = None
  planted_sign: np.ndarray | None = None
  negation_pairs: np.ndarray | None = None

  def __len__(self) -> int:
    return int(self.ids.shape[0])

  @property
  def max_len(self) -> int:
    return int(self.ids.shape[1])


@dataclasses.dataclass
class DatasetBundle:
  """Everything ``load_dataset`` returns.

  Attributes:
    splits: "train"/"dev"/"test" → :class:`EncodedSplit`.
    vocab: the train-split :class:`Vocabulary`.
    label_names: index = label id.
    source: the source actually used (never "auto").
    info: JSON-serialisable provenance for results.json (requested and used
      source, fallback reason, description, sizes, text options, …).
  """
  splits: dict[str, EncodedSplit]
  vocab: Vocabulary
  label_names: list[str]
  source: str
  info: dict[str, Any]


class Resolution(NamedTuple):
  """What ``auto`` (or an explicit source) resolved to.

  Attributes:
    source: a concrete source (never "auto").
    reason: None when ``source`` is the paper's benchmark (``sst_treebank``,
      ``aclimdb``, TFDS ``imdb_reviews``: the same IMDB texts) or was asked
      for; else why the steps before it were passed over (a fallback).
    path: for ``sst_treebank`` / ``aclimdb``, where the data is.
    obtained: how ``path`` was found: "config.data.sst_dir", "cache", or
      "downloaded from URL".
    steps: every step ``auto`` passed over, with its reason.
  """
  source: str
  reason: str | None
  path: pathlib.Path | None = None
  obtained: str | None = None
  steps: tuple[str, ...] = ()


def _check_auto(cfg) -> tuple[str, str]:
  """(auto_tfds, auto_fallback), each checked."""
  name = config_lib.get(cfg, "auto_tfds")
  fallback = config_lib.get(cfg, "auto_fallback")
  if fallback not in config_lib.BUILTIN_SOURCES + ("planted",):
    raise DataError(f"auto_fallback must be one of "
                    f"{config_lib.BUILTIN_SOURCES + ('planted',)}, got "
                    f"{fallback!r}")
  if name not in config_lib.TFDS_SOURCES:
    raise DataError(f"auto_tfds must be one of {config_lib.TFDS_SOURCES}, got "
                    f"{name!r}")
  return name, fallback


def _probe_timeout(cfg) -> float:
  return min(float(config_lib.get(cfg, "auto_probe_timeout_s")), 10.0)


def resolve_auto(cfg, *, probe=sources.probe_url) -> Resolution:
  """Which source ``auto`` means here (the order: ``data/config.py``).

  SST-2 (``auto_tfds="glue/sst2"``): the treebank from ``sst_dir``, the
  cache, or ``sst_url``; then TFDS ``glue/sst2``; then ``auto_fallback``.
  IMDB (``auto_tfds="imdb_reviews"``): the archive from ``imdb_dir``; TFDS
  ``imdb_reviews``; the archive from the cache or ``imdb_url``; then
  ``auto_fallback``. Local answers come first; the hosts still needed are
  probed at once, so an offline machine decides within one probe timeout.
  """
  name, fallback = _check_auto(cfg)
  bench = acquire.SST if name == "glue/sst2" else acquire.IMDB
  data_dir = config_lib.get(cfg, "tfds_data_dir")
  timeout = _probe_timeout(cfg)
  steps: list[str] = []

  given = acquire.given_path(bench, cfg)
  if given is not None:
    if given.exists():
      return Resolution(bench.source, None, given,
                        f"config.data.{bench.path_field}")
    steps.append(f"config.data.{bench.path_field} {given} does not exist")
    logging.warning("data: %s; auto tries the next source.", steps[-1])
  # SST-2's cached treebank wins before TFDS is even imported (seconds).
  hit = acquire.cached(bench, cfg)
  if bench is acquire.SST and hit is not None:
    return Resolution(bench.source, None, hit, "cache", tuple(steps))
  try:
    tfds_ready, tfds_why = sources.tfds_is_prepared(name, data_dir)
  except DataError as e:  # tensorflow_datasets unusable
    tfds_ready, tfds_why = False, str(e)
  if bench is acquire.IMDB and tfds_ready:
    return Resolution(name, None, steps=tuple(steps))
  if hit is not None:
    return Resolution(bench.source, None, hit, "cache", tuple(steps))
  steps.append(f"{bench.source}: not in {acquire.cache_dir(cfg)}")

  urls = [acquire.url(bench, cfg)]
  if not tfds_ready:
    urls.append(sources.TFDS_INFO[name].download_url)
  answers = sources.probe_all(urls, timeout, probe=probe)
  answered = lambda url, t: answers[url]  # pylint: disable=unnecessary-lambda-assignment

  def try_tfds() -> bool:
    nonlocal tfds_why
    if tfds_ready:
      return True
    ready, why = sources.prepare_tfds(name, data_dir, probe_timeout=timeout,
                                      probe=answered)
    tfds_why = f"{tfds_why}; {why}"
    return ready

  if bench is acquire.IMDB and try_tfds():
    return Resolution(name, None, steps=tuple(steps))
  try:
    path = acquire.download(bench, cfg, probe=answered, timeout=timeout)
    return Resolution(bench.source, None, path,
                      f"downloaded from {acquire.url(bench, cfg)}", tuple(steps))
  except DataError as e:  # no network, or a download that failed
    steps.append(f"{bench.source}: {e}")
  if bench is acquire.SST:
    if try_tfds():
      # GLUE's phrase-level SST-2 is not the paper's: said as a fallback.
      return Resolution(name, "; ".join(steps), steps=tuple(steps))
  steps.append(f"{name}: {tfds_why}")
  return Resolution(fallback, "; ".join(steps), steps=tuple(steps))


def _resolve(requested: str, cfg, probe) -> Resolution:
  """``auto`` resolved, or an explicit source (located when it is one of the
  paper's benchmarks)."""
  if requested == "auto":
    return resolve_auto(cfg, probe=probe)
  if requested in acquire.BY_SOURCE:
    path, obtained = acquire.locate(acquire.BY_SOURCE[requested], cfg,
                                    probe=probe, timeout=_probe_timeout(cfg))
    return Resolution(requested, None, path, obtained)
  return Resolution(requested, None)


def _raw_splits(resolution: Resolution, cfg, probe
                ) -> tuple[dict[str, sources.RawSplit], list[str], str,
                           dict[str, Any]]:
  """(raw splits, label names, description, extra info) of a concrete source."""
  source = resolution.source
  seed = int(config_lib.get(cfg, "split_seed"))
  located = {"data_path": str(resolution.path),
             "obtained": resolution.obtained} if resolution.path else {}
  if source == "sst_treebank":
    raw, counts = sst_lib.read_sst_treebank(resolution.path)
    return (raw, list(sources.SENTIMENT_LABELS), sst_lib.DESCRIPTION,
            {"sst_dir": str(resolution.path), "sst_treebank": counts,
             **located})
  if source == "aclimdb":
    raw, counts = aclimdb_lib.read_aclimdb(resolution.path)
    return (raw, list(sources.SENTIMENT_LABELS), aclimdb_lib.DESCRIPTION,
            {"imdb_dir": str(resolution.path), "aclimdb": counts, **located})
  if source in config_lib.TFDS_SOURCES:
    raw = sources.load_tfds(
        source, data_dir=config_lib.get(cfg, "tfds_data_dir"),
        dev_fraction=float(config_lib.get(cfg, "dev_fraction")), seed=seed,
        probe_timeout=_probe_timeout(cfg), probe=probe)
    return (raw, list(sources.SENTIMENT_LABELS),
            sources.TFDS_INFO[source].description,
            {"tfds_data_dir": config_lib.get(cfg, "tfds_data_dir")})
  if source in config_lib.BUILTIN_SOURCES:
    return (sources.load_builtin(source, seed=seed),
            list(sources.SENTIMENT_LABELS),
            sources.BUILTIN_DESCRIPTIONS[source], {})
  if source == "files":
    allow_rare = bool(config_lib.get(cfg, "allow_rare_labels"))
    raw, names = files_lib.load_files(
        train_file=config_lib.get(cfg, "train_file"),
        dev_file=config_lib.get(cfg, "dev_file"),
        test_file=config_lib.get(cfg, "test_file"),
        text_field=config_lib.get(cfg, "text_field"),
        label_field=config_lib.get(cfg, "label_field"),
        dev_fraction=float(config_lib.get(cfg, "dev_fraction")), seed=seed,
        label_names=config_lib.get(cfg, "label_names"),
        allow_rare_labels=allow_rare)
    paths = {k: config_lib.get(cfg, f"{k}_file") for k in sources.SPLITS}
    return (raw, names, f"user files {paths}",
            {"allow_rare_labels": allow_rare})
  if source == "planted":
    raw = planted_lib.load_planted(
        sizes=[config_lib.get(cfg, f"planted_{k}_size")
               for k in sources.SPLITS],
        seed=int(config_lib.get(cfg, "planted_seed")),
        max_len=int(config_lib.get(cfg, "max_len")),
        min_len=int(config_lib.get(cfg, "planted_min_len")),
        example_max_len=int(config_lib.get(cfg, "planted_max_len")),
        filler_vocab_size=int(config_lib.get(cfg, "planted_filler_vocab_size")),
        negation_prob=float(config_lib.get(cfg, "planted_negation_prob")))
    return raw, list(sources.SENTIMENT_LABELS), planted_lib.DESCRIPTION, {}
  raise DataError(f"unknown config.data.source {source!r}; one of "
                  f"{config_lib.SOURCES}")


def _check_options(cfg) -> tuple[str, int, int]:
  """(requested source, max_len, split_seed), each checked."""
  requested = config_lib.get(cfg, "source")
  if requested not in config_lib.SOURCES:
    raise DataError(f"unknown config.data.source {requested!r}; one of "
                    f"{config_lib.SOURCES}")
  max_len = int(config_lib.get(cfg, "max_len"))
  if max_len < 1:
    raise DataError(f"max_len must be >= 1, got {max_len}")
  seed = int(config_lib.get(cfg, "split_seed"))
  if seed < 0:
    raise DataError(f"split_seed must be >= 0, got {seed}")
  return requested, max_len, seed


def _log_source(cfg, source: str, reason: str | None,
                description: str) -> None:
  """One info line, or one loud warning when ``auto`` fell back."""
  if reason is None:
    logging.info("data: %s — %s", source, description)
    return
  wanted = ("the paper's SST-2 (sst_treebank)"
            if config_lib.get(cfg, "auto_tfds") == "glue/sst2"
            else "IMDB (imdb_reviews or aclimdb)")
  logging.warning(
      "\n" + "!" * 78 + "\n!! DATA: source='auto' could not use %s, so this "
      "run uses %r instead.\n!! Why: %s\n!! What it is: %s\n" + "!" * 78,
      wanted, source, reason, description)


def _cap(raw: dict[str, sources.RawSplit], max_examples: Any, seed: int
         ) -> tuple[dict[str, sources.RawSplit], int | None]:
  """Each split cut to a stratified ``max_examples`` subset (None: as is)."""
  if max_examples is None:
    return raw, None
  max_examples = int(max_examples)
  if max_examples < 1:
    raise DataError(f"max_examples must be >= 1 or None, got {max_examples}")
  return {k: r.take(splits_lib.stratified_subsample(r.labels, max_examples,
                                                     seed + 7))
          for k, r in raw.items()}, max_examples


def _encode(raw: dict[str, sources.RawSplit], vocab: Vocabulary, max_len: int
            ) -> tuple[dict[str, EncodedSplit], dict[str, int], dict[str, int]]:
  """(encoded splits, empty texts per split, truncated texts per split)."""
  encoded, empty, truncated = {}, {}, {}
  for name in sources.SPLITS:
    r = raw[name]
    ids, lengths, full = vocab.encode_batch(r.texts, max_len,
                                            full_lengths=True)
    empty[name] = int((lengths == 0).sum())
    truncated[name] = int((full > max_len).sum())
    encoded[name] = EncodedSplit(
        ids=ids, lengths=lengths, labels=np.asarray(r.labels, np.int32),
        texts=list(r.texts), example_ids=np.asarray(r.example_ids, np.int64),
        planted=r.extras.get("planted"),
        planted_sign=r.extras.get("planted_sign"),
        negation_pairs=r.extras.get("negation_pairs"))
  if any(empty.values()):
    logging.warning("data: %s empty text(s) kept as all-padding rows "
                    "(length 0): %s", sum(empty.values()), empty)
  return encoded, empty, truncated


def load_dataset(cfg, workdir: str | pathlib.Path | None = None, *,
                 probe=sources.probe_url) -> DatasetBundle:
  """Loads, splits and encodes the dataset ``cfg`` (= ``config.data``) asks for.

  Args:
    cfg: ``config.data`` (ConfigDict or dict; absent fields take defaults).
    workdir: if given, ``vocab.txt`` and ``labels.json`` are written there.
    probe: ``(url, timeout) -> (reachable, why)``; tests replace it.

  Returns:
    A :class:`DatasetBundle`; every split has ids int32 [N, max_len].
  """
  start = time.monotonic()
  requested, max_len, seed = _check_options(cfg)
  resolution = _resolve(requested, cfg, probe)
  try:
    raw, label_names, description, extra_info = _raw_splits(resolution, cfg, probe)
  except DataError as e:
    if resolution.obtained != "cache":
      raise
    # A cached copy that no longer reads: set aside, then what comes next (a
    # download, or auto's next step), saying why.
    bench = acquire.BY_SOURCE[resolution.source]
    note = (f"{bench.source}: the cached copy does not read ({e}); moved aside to "
            f"{acquire.move_aside(bench, cfg, str(e))}")
    resolution = _resolve(requested, cfg, probe)
    resolution = resolution._replace(
        steps=(note,) + resolution.steps,
        reason=None if resolution.reason is None else f"{note}; {resolution.reason}")
    raw, label_names, description, extra_info = _raw_splits(resolution, cfg, probe)
  source, reason = resolution.source, resolution.reason
  _log_source(cfg, source, reason, description)
  raw, max_examples = _cap(raw, config_lib.get(cfg, "max_examples"), seed)
  for name in sources.SPLITS:
    if len(raw[name]) == 0:
      raise DataError(f"the {name} split of source {source!r} has zero "
                      "examples")

  vocab = Vocabulary.build(
      raw["train"].texts, min_freq=int(config_lib.get(cfg, "min_freq")),
      lowercase=bool(config_lib.get(cfg, "lowercase")),
      strip_html=bool(config_lib.get(cfg, "strip_html")))
  encoded, empty, truncated = _encode(raw, vocab, max_len)
  info = {
      "requested_source": requested,
      "source": source,
      "fallback_reason": reason,
      "auto_steps": list(resolution.steps),
      "description": description,
      "label_names": list(label_names),
      "sizes": {k: len(v) for k, v in encoded.items()},
      "class_counts": {k: np.bincount(v.labels, minlength=len(label_names))
                       .astype(int).tolist() for k, v in encoded.items()},
      "vocab_size": len(vocab),
      "max_len": max_len,
      "min_freq": int(config_lib.get(cfg, "min_freq")),
      "lowercase": vocab.lowercase,
      "strip_html": vocab.strip_html,
      "split_seed": seed,
      "max_examples": max_examples,
      "empty_texts": empty,
      "truncated_texts": truncated,
      "load_seconds": round(time.monotonic() - start, 3),
  }
  info.update(extra_info)
  bundle = DatasetBundle(splits=encoded, vocab=vocab,
                         label_names=list(label_names), source=source,
                         info=info)
  if workdir is not None:
    save_vocab_and_labels(bundle, workdir)
  return bundle


def save_vocab_and_labels(bundle: DatasetBundle,
                          workdir: str | pathlib.Path) -> None:
  """Writes ``workdir/vocab.txt`` (one token per line, line = id) and
  ``workdir/labels.json`` (label names, text options, data provenance)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  bundle.vocab.save(workdir / VOCAB_FILE)
  payload = {
      "label_names": list(bundle.label_names),
      "text_options": {"lowercase": bundle.vocab.lowercase,
                       "strip_html": bundle.vocab.strip_html,
                       "max_len": bundle.info.get("max_len")},
      "data": bundle.info,
  }
  provenance.write_json(workdir / LABELS_FILE, payload)


def load_vocab_and_labels(workdir: str | pathlib.Path
                          ) -> tuple[Vocabulary, list[str]]:
  """Reads what :func:`save_vocab_and_labels` wrote: (vocab, label_names).

  The vocabulary carries the run's lowercase/strip_html options, so
  ``vocab.encode`` gives exactly the training ids.
  """
  workdir = pathlib.Path(workdir)
  labels_path = workdir / LABELS_FILE
  if not labels_path.exists():
    raise DataError(f"{labels_path} does not exist (was the run trained with "
                    "this workdir?)")
  try:
    payload = json.loads(labels_path.read_text(encoding="utf-8"))
    names = payload["label_names"]
    options = payload.get("text_options", {})
  except UnicodeDecodeError as e:
    raise DataError(f"{labels_path} is not valid UTF-8 ({e.reason} at byte "
                    f"{e.start})") from None
  except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
    raise DataError(f"{labels_path} is not a valid labels file: {e!r}") from None
  if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
    raise DataError(f"{labels_path}: label_names must be a list of strings")
  vocab = Vocabulary.load(workdir / VOCAB_FILE,
                          lowercase=bool(options.get("lowercase", False)),
                          strip_html=bool(options.get("strip_html", False)))
  return vocab, names
