"""The paper's SST-2: the sentence-level Stanford Sentiment Treebank, read as the SAFR
authors' ``data/read.py`` reads it (docs/DATA.md, "The paper's SST-2": what that drops and
why). Files are split on tabs, commas and ``|`` (no CSV quoting), as theirs are.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

from absl import logging
import numpy as np

from safr_jax.data import free_text
from safr_jax.data.core import (SENTIMENT_LABELS, SPLITS, Acquire, RawSplit, Source,
                                benchmark_options)
from safr_jax.errors import DataError

SENTENCES_FILE = "datasetSentences.txt"
SPLIT_FILE = "datasetSplit.txt"
DICTIONARY_FILE = "dictionary.txt"
SENTIMENT_FILE = "sentiment_labels.txt"
FILES = (SENTENCES_FILE, SPLIT_FILE, DICTIONARY_FILE, SENTIMENT_FILE)

# splitset_label -> split name.
SPLIT_LABELS = {1: "train", 2: "test", 3: "dev"}
# sentiment <= NEGATIVE_MAX -> 0; sentiment > POSITIVE_MIN -> 1; else dropped.
NEGATIVE_MAX = 0.4
POSITIVE_MIN = 0.6

DESCRIPTION = (
    "Stanford Sentiment Treebank (Socher et al. 2013), sentence level, read as "
    "the SAFR authors do: the treebank's own train/dev/test sentences; label = "
    "sentiment of the dictionary phrase equal to the sentence (<= 0.4 "
    "negative, > 0.6 positive, neutral dropped; sentences without an exact "
    "dictionary match dropped, not repaired); train balanced to the first "
    "min(#pos, #neg) of each class. This is the paper's SST-2, not GLUE's "
    "(whose train split has 67k phrases).")

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def sentiment_label(value: float) -> int | None:
  """0 (negative) if ``value <= 0.4``, 1 (positive) if ``> 0.6``, else None."""
  if value <= NEGATIVE_MAX:
    return 0
  if value > POSITIVE_MIN:
    return 1
  return None


def _lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
  """(1-based line number, text) of each non-empty line."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot be read: {e}") from None
  try:
    text = raw.decode("utf-8").removeprefix("\ufeff")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}, line {line}: not valid UTF-8 ({e.reason} at byte "
                    f"offset {e.start})") from None
  for number, line in enumerate(text.split("\n"), start=1):
    if line := line.removesuffix("\r"):
      yield number, line


def _fields(path: pathlib.Path, number: int, line: str, sep: str,
            names: tuple[str, ...]) -> list[str]:
  fields = line.split(sep)
  if len(fields) != len(names):
    shown = line if len(line) <= 80 else line[:77] + "..."
    raise DataError(
        f"{path}, line {number}: {len(fields)} field(s) separated by {sep!r}, "
        f"expected {len(names)} ({', '.join(names)}): {shown!r}")
  return fields


def _number(path: pathlib.Path, number: int, field: str, value: str, *,
            integer: bool = True) -> int | float:
  """An integer, or (``integer=False``) a sentiment in [0, 1]."""
  if not (_INT if integer else _FLOAT).match(value.strip()):
    raise DataError(f"{path}, line {number}, field {field!r}: {value!r} is not "
                    + ("an integer" if integer else "a number"))
  if integer:
    return int(value)
  if not 0.0 <= float(value) <= 1.0:
    raise DataError(f"{path}, line {number}, field {field!r}: {value!r} is "
                    "outside [0, 1]")
  return float(value)


def _rows(path: pathlib.Path, sep: str, names: tuple[str, ...], *, header: bool = True
          ) -> Iterator[tuple[int, list[str]]]:
  """(line number, fields) of each data line after the header (if any)."""
  lines = _lines(path)
  if header:
    first = next(lines, None)
    if first is None:
      raise DataError(f"{path} is empty (expected the header {sep.join(names)!r})")
    number, line = first
    if _INT.match(_fields(path, number, line, sep, names)[0].strip()):
      raise DataError(f"{path}, line {number}: expected the header "
                      f"{sep.join(names)!r}, found data {line!r}")
  for number, line in lines:
    yield number, _fields(path, number, line, sep, names)


def _first_time(path: pathlib.Path, number: int, what: str, key: int,
                seen: dict[int, int]) -> int:
  """``key``, recorded as on line ``number``; an error if it was seen before."""
  if key in seen:
    raise DataError(f"{path}, line {number}: {what} {key} already appeared on "
                    f"line {seen[key]}")
  seen[key] = number
  return key


def _check_folder(sst_dir: str | pathlib.Path | None) -> pathlib.Path:
  if sst_dir is None or not str(sst_dir):
    raise DataError("the sst_treebank source needs config.data.sst_treebank.dir: the "
                    "unzipped stanfordSentimentTreebank/ folder (see "
                    "docs/DATA.md)")
  folder = pathlib.Path(sst_dir).expanduser()
  if not folder.exists():
    raise DataError(f"config.data.sst_treebank.dir {folder} does not exist (expected "
                    f"the unzipped stanfordSentimentTreebank/ folder with "
                    f"{', '.join(FILES)})")
  if not folder.is_dir():
    raise DataError(f"config.data.sst_treebank.dir {folder} is not a folder")
  for name in FILES:
    if not (folder / name).is_file():
      raise DataError(f"{folder / name} does not exist: config.data.sst_treebank.dir "
                      f"must hold {', '.join(FILES)} (the unzipped "
                      "stanfordSentimentTreebank.zip)")
  return folder


def _label_sentences(
    sentences: list[tuple[int, int, str]], split_of: dict[int, str],
    phrase_ids: dict[str, list[int]], sentiment_of: dict[int, float],
    split_path: pathlib.Path, sentences_path: pathlib.Path
) -> tuple[dict[str, list[tuple[int, str, int]]], dict[str, dict[str, int]]]:
  """(rows (index, sentence, label) per split in file order, counts per split): the
  authors' join."""
  per_split = {name: dict(read=0, dropped_unmatched=0, dropped_no_sentiment=0,
                          dropped_neutral=0, negative=0, positive=0,
                          dropped_balancing=0, kept=0) for name in SPLITS}
  rows: dict[str, list[tuple[int, str, int]]] = {name: [] for name in SPLITS}
  for number, index, sentence in sentences:
    split = split_of.get(index)
    if split is None:
      raise DataError(
          f"{split_path} has no splitset_label for sentence_index {index} "
          f"({sentences_path}, line {number})")
    counts = per_split[split]
    counts["read"] += 1
    ids = phrase_ids.get(sentence)
    if ids is None:
      counts["dropped_unmatched"] += 1
      continue
    # A phrase listed twice yields one row per entry, as the authors' join.
    for phrase_id in ids:
      value = sentiment_of.get(phrase_id)
      if value is None:
        counts["dropped_no_sentiment"] += 1
        continue
      label = sentiment_label(value)
      if label is None:
        counts["dropped_neutral"] += 1
        continue
      counts[SENTIMENT_LABELS[label]] += 1
      rows[split].append((index, sentence, label))
  return rows, per_split


def read_sst_treebank(sst_dir: str | pathlib.Path | None
                      ) -> tuple[dict[str, RawSplit], dict[str, Any]]:
  """(splits, counts) of the unzipped ``stanfordSentimentTreebank/`` folder; ``example_ids``
  are the ``sentence_index`` values, ``counts`` is ``bundle.info["sst_treebank"]``."""
  folder = _check_folder(sst_dir)
  path, sentences, seen = folder / SENTENCES_FILE, [], {}
  for number, (index, sentence) in _rows(path, "\t", ("sentence_index", "sentence")):
    index = _number(path, number, "sentence_index", index)
    sentences.append((number, _first_time(path, number, "sentence_index", index, seen),
                      sentence))
  path, split_of, seen = folder / SPLIT_FILE, {}, {}
  for number, (index, label) in _rows(path, ",", ("sentence_index", "splitset_label")):
    index = _number(path, number, "sentence_index", index)
    label = _number(path, number, "splitset_label", label)
    if label not in SPLIT_LABELS:
      raise DataError(f"{path}, line {number}, field 'splitset_label': {label} "
                      "is not 1 (train), 2 (test) or 3 (dev)")
    split_of[_first_time(path, number, "sentence_index", index, seen)] = SPLIT_LABELS[label]
  path, phrase_ids, dictionary_lines = folder / DICTIONARY_FILE, {}, 0
  for number, (phrase, phrase_id) in _rows(path, "|", ("phrase", "phrase_id"), header=False):
    phrase_ids.setdefault(phrase, []).append(_number(path, number, "phrase_id", phrase_id))
    dictionary_lines += 1
  if not dictionary_lines:
    raise DataError(f"{folder / DICTIONARY_FILE} is empty (expected one "
                    "phrase|phrase_id line per phrase)")
  path, sentiment_of, seen = folder / SENTIMENT_FILE, {}, {}
  for number, (phrase_id, value) in _rows(path, "|", ("phrase ids", "sentiment values")):
    phrase_id = _number(path, number, "phrase ids", phrase_id)
    phrase_id = _first_time(path, number, "phrase id", phrase_id, seen)
    sentiment_of[phrase_id] = _number(path, number, "sentiment values", value,
                                      integer=False)
  rows, per_split = _label_sentences(
      sentences, split_of, phrase_ids, sentiment_of, folder / SPLIT_FILE,
      folder / SENTENCES_FILE)
  # Train only is balanced: the first min(#pos, #neg) of each class, positives first.
  by_label = [[r for r in rows["train"] if r[2] == label] for label in (1, 0)]
  keep = min(map(len, by_label))
  per_split["train"]["dropped_balancing"] = len(rows["train"]) - 2 * keep
  rows["train"] = by_label[0][:keep] + by_label[1][:keep]

  out = {}
  for name in SPLITS:
    per_split[name]["kept"] = len(rows[name])
    if not rows[name]:
      c = per_split[name]
      raise DataError(
          f"{folder}: the {name} split has no labelled sentence: of its {c['read']} "
          f"in {SENTENCES_FILE} ({SPLIT_FILE}), {c['dropped_unmatched']} match no "
          f"phrase of {DICTIONARY_FILE}, {c['dropped_no_sentiment']} have no value in "
          f"{SENTIMENT_FILE}, {c['dropped_neutral']} are neutral")
    indices, sentences_kept, labels = zip(*rows[name])
    out[name] = RawSplit(texts=list(sentences_kept), labels=np.asarray(labels, np.int32),
                         example_ids=np.asarray(indices, np.int64))

  duplicates = dictionary_lines - len(phrase_ids)
  if duplicates:
    logging.warning("%s: %d phrase(s) listed more than once; a sentence "
                    "matching one gets one row per entry (as the authors' "
                    "join)", folder / DICTIONARY_FILE, duplicates)
  unmatched = sum(c["dropped_unmatched"] for c in per_split.values())
  if unmatched:
    logging.info("sst_treebank: %d of %d sentences have no exact match in %s "
                 "(encoding differences) and are dropped, as the authors do",
                 unmatched, len(sentences), DICTIONARY_FILE)
  counts = {
      "sentences": len(sentences),
      "dictionary_phrases": len(phrase_ids),
      "duplicate_dictionary_phrases": duplicates,
      "per_split": per_split,
  }
  return out, counts


def _load(cfg, path):
  raw, counts = read_sst_treebank(path)
  return raw, {"sst_dir": str(path), "sst_treebank": counts}


SOURCE = Source(
    "sst_treebank", DESCRIPTION, _load, prepare_text=free_text.ptb, stand_in="rt_polarity",
    options=benchmark_options("https://nlp.stanford.edu/~socherr/stanfordSentimentTreebank.zip"),
    acquire=Acquire("stanfordSentimentTreebank", FILES, read_sst_treebank))
