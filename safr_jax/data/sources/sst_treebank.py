"""The paper's SST-2: the sentence-level Stanford Sentiment Treebank, read as the SAFR
authors' ``data/read.py`` reads it (docs/DATA.md, "The paper's SST-2": what that drops and
why). Files are split on tabs, commas and ``|`` (no CSV quoting), as theirs are."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

from absl import logging
import numpy as np

from safr_jax.data import free_text
from safr_jax.data.core import (SENTIMENT_LABELS, SPLITS, Acquire, RawSplit, Source,
                                benchmark_options, given_path)
from safr_jax.errors import DataError

SENTENCES_FILE = "datasetSentences.txt"
SPLIT_FILE = "datasetSplit.txt"
DICTIONARY_FILE = "dictionary.txt"
SENTIMENT_FILE = "sentiment_labels.txt"
FILES = (SENTENCES_FILE, SPLIT_FILE, DICTIONARY_FILE, SENTIMENT_FILE)

SPLIT_LABELS = {1: "train", 2: "test", 3: "dev"}  # splitset_label -> split name
# sentiment <= NEGATIVE_MAX -> 0; sentiment > POSITIVE_MIN -> 1; else dropped.
NEGATIVE_MAX = 0.4
POSITIVE_MIN = 0.6

DESCRIPTION = (
    "Stanford Sentiment Treebank (Socher et al. 2013), sentence level, read as the SAFR authors "
    "do: the treebank's own train/dev/test sentences; label = sentiment of the dictionary phrase "
    "equal to the sentence (<= 0.4 negative, > 0.6 positive, neutral dropped; sentences without "
    "an exact dictionary match dropped, not repaired); train balanced to the first min(#pos, "
    "#neg) of each class. This is the paper's SST-2, not GLUE's (whose train split has 67k "
    "phrases).")

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def sentiment_label(value: float) -> int | None:
  """0 (negative) if ``value <= 0.4``, 1 (positive) if ``> 0.6``, else None."""
  return 0 if value <= NEGATIVE_MAX else 1 if value > POSITIVE_MIN else None


def _rows(path: pathlib.Path, sep: str, names: tuple[str, ...], *, header: bool = True
          ) -> Iterator[tuple[int, list[str]]]:
  """(1-based line number, fields) of each non-empty line after the header (if any)."""
  try:
    raw = path.read_bytes()
    text = raw.decode("utf-8").removeprefix("\ufeff")
  except OSError as e:
    raise DataError(f"{path}: cannot be read: {e}") from None
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}, line {line}: not valid UTF-8 ({e.reason} at byte "
                    f"offset {e.start})") from None
  pending = header  # the header line is still to come
  for number, line in enumerate(text.split("\n"), start=1):
    if not (line := line.removesuffix("\r")):
      continue
    fields = line.split(sep)
    if len(fields) != len(names):
      shown = line if len(line) <= 80 else line[:77] + "..."
      raise DataError(f"{path}, line {number}: {len(fields)} field(s) separated by {sep!r}, "
                      f"expected {len(names)} ({', '.join(names)}): {shown!r}")
    if not pending:
      yield number, fields
    elif _INT.match(fields[0].strip()):
      raise DataError(f"{path}, line {number}: expected the header "
                      f"{sep.join(names)!r}, found data {line!r}")
    pending = False
  if pending:
    raise DataError(f"{path} is empty (expected the header {sep.join(names)!r})")


def _number(path: pathlib.Path, number: int, field: str, value: str, *,
            integer: bool = True) -> int | float:
  """An integer, or (``integer=False``) a sentiment in [0, 1]."""
  where = f"{path}, line {number}, field {field!r}"
  if not (_INT if integer else _FLOAT).match(value.strip()):
    raise DataError(f"{where}: {value!r} is not " + ("an integer" if integer else "a number"))
  if integer:
    return int(value)
  if not 0.0 <= float(value) <= 1.0:
    raise DataError(f"{where}: {value!r} is outside [0, 1]")
  return float(value)


def _first_time(path: pathlib.Path, number: int, what: str, key: int, seen: dict[int, int]) -> int:
  """``key``, recorded as on line ``number``; an error if it was seen before."""
  if key in seen:
    raise DataError(f"{path}, line {number}: {what} {key} already appeared on line {seen[key]}")
  seen[key] = number
  return key


def read_sst_treebank(sst_dir: str | pathlib.Path | None
                      ) -> tuple[dict[str, RawSplit], dict[str, Any]]:
  """(splits, counts) of the unzipped ``stanfordSentimentTreebank/`` folder; ``example_ids``
  are the ``sentence_index`` values, ``counts`` is ``bundle.info["sst_treebank"]``."""
  folder = given_path(sst_dir, "sst_treebank", "the unzipped stanfordSentimentTreebank/ "
                      f"folder with {', '.join(FILES)}")
  if not folder.is_dir():
    raise DataError(f"config.data.sst_treebank.dir {folder} is not a folder")
  for name in FILES:
    if not (folder / name).is_file():
      raise DataError(f"{folder / name} does not exist: config.data.sst_treebank.dir must "
                      f"hold {', '.join(FILES)} (the unzipped stanfordSentimentTreebank.zip)")
  path, sentences, seen = folder / SENTENCES_FILE, [], {}
  for number, (index, sentence) in _rows(path, "\t", ("sentence_index", "sentence")):
    index = _number(path, number, "sentence_index", index)
    sentences.append((number, _first_time(path, number, "sentence_index", index, seen), sentence))
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
    raise DataError(f"{path} is empty (expected one phrase|phrase_id line per phrase)")
  path, sentiment_of, seen = folder / SENTIMENT_FILE, {}, {}
  for number, (phrase_id, value) in _rows(path, "|", ("phrase ids", "sentiment values")):
    phrase_id = _number(path, number, "phrase ids", phrase_id)
    phrase_id = _first_time(path, number, "phrase id", phrase_id, seen)
    sentiment_of[phrase_id] = _number(path, number, "sentiment values", value, integer=False)
  # The authors' join: rows (index, sentence, label) per split, in file order.
  per_split = {name: dict.fromkeys(("read", "dropped_unmatched", "dropped_no_sentiment",
                                    "dropped_neutral", "negative", "positive",
                                    "dropped_balancing", "kept"), 0) for name in SPLITS}
  rows: dict[str, list[tuple[int, str, int]]] = {name: [] for name in SPLITS}
  for number, index, sentence in sentences:
    if index not in split_of:
      raise DataError(f"{folder / SPLIT_FILE} has no splitset_label for sentence_index "
                      f"{index} ({folder / SENTENCES_FILE}, line {number})")
    counts = per_split[split_of[index]]
    counts["read"] += 1
    if sentence not in phrase_ids:
      counts["dropped_unmatched"] += 1
    # A phrase listed twice yields one row per entry, as the authors' join.
    for phrase_id in phrase_ids.get(sentence, ()):
      value = sentiment_of.get(phrase_id)
      if value is None:
        counts["dropped_no_sentiment"] += 1
      elif (label := sentiment_label(value)) is None:
        counts["dropped_neutral"] += 1
      else:
        counts[SENTIMENT_LABELS[label]] += 1
        rows[split_of[index]].append((index, sentence, label))
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
    logging.warning("%s: %d phrase(s) listed more than once; a sentence matching one gets one row "
                    "per entry (as the authors' join)", folder / DICTIONARY_FILE, duplicates)
  unmatched = sum(c["dropped_unmatched"] for c in per_split.values())
  if unmatched:
    logging.info("sst_treebank: %d of %d sentences have no exact match in %s "
                 "(encoding differences) and are dropped, as the authors do",
                 unmatched, len(sentences), DICTIONARY_FILE)
  return out, {"sentences": len(sentences), "dictionary_phrases": len(phrase_ids),
               "duplicate_dictionary_phrases": duplicates, "per_split": per_split}


def _load(cfg, path):
  raw, counts = read_sst_treebank(path)
  return raw, {"sst_dir": str(path), "sst_treebank": counts}


SOURCE = Source(
    "sst_treebank", DESCRIPTION, _load, prepare_text=free_text.ptb, stand_in="rt_polarity",
    options=benchmark_options("https://nlp.stanford.edu/~socherr/stanfordSentimentTreebank.zip"),
    acquire=Acquire("stanfordSentimentTreebank", FILES, read_sst_treebank))
