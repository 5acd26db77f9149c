"""The paper's SST-2: the sentence-level Stanford Sentiment Treebank (Socher et
al. 2013) with its own train/dev/test split, read as the SAFR authors'
``data/read.py`` reads it (docs/DATA.md, "The paper's SST-2", says what that
drops and why). The folder is the unzipped ``stanfordSentimentTreebank.zip``:
``datasetSentences.txt`` (``sentence_index<TAB>sentence``),
``datasetSplit.txt`` (``sentence_index,splitset_label``: 1 train, 2 test,
3 dev), ``dictionary.txt`` (``phrase|phrase_id``, no header) and
``sentiment_labels.txt`` (``phrase ids|sentiment values``).

1. A sentence's label comes from the phrase whose text is *exactly* the
   sentence; sentences without one are dropped, not repaired (mojibake,
   ``-LRB-``), as the authors' inner join drops them.
2. Sentiment ``<= 0.4`` is negative (0), ``> 0.6`` positive (1), else dropped.
3. Train only is balanced: the first ``min(#pos, #neg)`` of each class in file
   order, positives first; dev and test keep file order.

``example_ids`` are the ``sentence_index`` values. Files are split on tabs,
commas and ``|`` (no CSV quoting); a malformed line is a DataError naming it.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

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
  """(1-based line number, text without line break) of each non-empty line."""
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot be read: {e}") from None
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    raise DataError(f"{path}, line {line}: not valid UTF-8 ({e.reason} at byte "
                    f"offset {e.start})") from None
  if text.startswith("\ufeff"):
    text = text[1:]
  for number, line in enumerate(text.split("\n"), start=1):
    if line.endswith("\r"):
      line = line[:-1]
    if line:
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


def _int(path: pathlib.Path, number: int, field: str, value: str) -> int:
  if not _INT.match(value.strip()):
    raise DataError(f"{path}, line {number}, field {field!r}: {value!r} is not "
                    "an integer")
  return int(value)


def _float(path: pathlib.Path, number: int, field: str, value: str) -> float:
  if not _FLOAT.match(value.strip()):
    raise DataError(f"{path}, line {number}, field {field!r}: {value!r} is not "
                    "a number")
  result = float(value)
  if not 0.0 <= result <= 1.0:
    raise DataError(f"{path}, line {number}, field {field!r}: {value!r} is "
                    "outside [0, 1]")
  return result


def _rows(path: pathlib.Path, sep: str, names: tuple[str, ...], *,
          header: bool) -> Iterator[tuple[int, list[str]]]:
  """(line number, fields) of each data line; checks the header line if any."""
  lines = _lines(path)
  if header:
    first = next(lines, None)
    if first is None:
      raise DataError(f"{path} is empty (expected the header "
                      f"{sep.join(names)!r})")
    number, line = first
    fields = _fields(path, number, line, sep, names)
    if _INT.match(fields[0].strip()):
      raise DataError(f"{path}, line {number}: expected the header "
                      f"{sep.join(names)!r}, found data {line!r}")
  for number, line in lines:
    yield number, _fields(path, number, line, sep, names)


def _first_time(path: pathlib.Path, number: int, what: str, key: int,
                seen: dict[int, int]) -> None:
  """Records that ``key`` is on line ``number``; an error if it was seen before."""
  if key in seen:
    raise DataError(f"{path}, line {number}: {what} {key} already appeared on "
                    f"line {seen[key]}")
  seen[key] = number


def _read_sentences(path: pathlib.Path) -> list[tuple[int, int, str]]:
  """[(line, sentence_index, sentence)] in file order."""
  names = ("sentence_index", "sentence")
  out, seen = [], {}
  for number, (index, sentence) in _rows(path, "\t", names, header=True):
    index = _int(path, number, names[0], index)
    _first_time(path, number, "sentence_index", index, seen)
    out.append((number, index, sentence))
  return out


def _read_splits(path: pathlib.Path) -> dict[int, str]:
  """sentence_index -> split name."""
  names = ("sentence_index", "splitset_label")
  out, seen = {}, {}
  for number, (index, label) in _rows(path, ",", names, header=True):
    index = _int(path, number, names[0], index)
    label = _int(path, number, names[1], label)
    if label not in SPLIT_LABELS:
      raise DataError(f"{path}, line {number}, field 'splitset_label': {label} "
                      "is not 1 (train), 2 (test) or 3 (dev)")
    _first_time(path, number, "sentence_index", index, seen)
    out[index] = SPLIT_LABELS[label]
  return out


def _read_dictionary(path: pathlib.Path) -> tuple[dict[str, list[int]], int]:
  """(phrase -> phrase ids in file order, number of lines)."""
  names = ("phrase", "phrase_id")
  out: dict[str, list[int]] = {}
  lines = 0
  for number, (phrase, phrase_id) in _rows(path, "|", names, header=False):
    out.setdefault(phrase, []).append(_int(path, number, names[1], phrase_id))
    lines += 1
  return out, lines


def _read_sentiments(path: pathlib.Path) -> dict[int, float]:
  """phrase id -> sentiment value."""
  names = ("phrase ids", "sentiment values")
  out, seen = {}, {}
  for number, (phrase_id, value) in _rows(path, "|", names, header=True):
    phrase_id = _int(path, number, names[0], phrase_id)
    _first_time(path, number, "phrase id", phrase_id, seen)
    out[phrase_id] = _float(path, number, names[1], value)
  return out


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


class _Row(NamedTuple):
  """A labelled sentence."""
  index: int  # sentence_index
  sentence: str
  label: int  # 0 = negative, 1 = positive


def _label_sentences(
    sentences: list[tuple[int, int, str]], split_of: dict[int, str],
    phrase_ids: dict[str, list[int]], sentiment_of: dict[int, float],
    split_path: pathlib.Path, sentences_path: pathlib.Path
) -> tuple[dict[str, list[_Row]], dict[str, dict[str, int]]]:
  """(rows per split in file order, counts per split): the authors' join."""
  per_split = {name: dict(read=0, dropped_unmatched=0, dropped_no_sentiment=0,
                          dropped_neutral=0, negative=0, positive=0,
                          dropped_balancing=0, kept=0) for name in SPLITS}
  rows: dict[str, list[_Row]] = {name: [] for name in SPLITS}
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
      rows[split].append(_Row(index, sentence, label))
  return rows, per_split


def _balanced(train: list[_Row]) -> list[_Row]:
  """The first min(#pos, #neg) of each class, positives then negatives."""
  positives = [r for r in train if r.label == 1]
  negatives = [r for r in train if r.label == 0]
  keep = min(len(positives), len(negatives))
  return positives[:keep] + negatives[:keep]


def read_sst_treebank(sst_dir: str | pathlib.Path | None
                      ) -> tuple[dict[str, RawSplit], dict[str, Any]]:
  """Reads the treebank folder as the SAFR authors do (see the module doc).

  Args:
    sst_dir: the unzipped ``stanfordSentimentTreebank/`` folder.

  Returns:
    (splits, counts): ``splits`` maps "train"/"dev"/"test" to a
    :class:`RawSplit` (labels 0 = negative, 1 = positive; ``example_ids`` =
    ``sentence_index``); ``counts`` is JSON-ready provenance for
    ``bundle.info["sst_treebank"]``: the number of ``sentences`` and of
    ``dictionary_phrases`` (distinct), ``duplicate_dictionary_phrases``, and in
    ``per_split`` for each split the sentences ``read``, ``dropped_unmatched``
    (no dictionary phrase equals the sentence), ``dropped_no_sentiment`` (its
    phrase id has no sentiment value), ``dropped_neutral``, the ``negative`` /
    ``positive`` counts before balancing, ``dropped_balancing`` and ``kept``.

  Raises:
    DataError: missing folder or file, an empty file, a malformed line (the
      message names the file and line), an unknown split label, a sentence
      without a split, or a split left without a labelled sentence.
  """
  folder = _check_folder(sst_dir)
  sentences = _read_sentences(folder / SENTENCES_FILE)
  split_of = _read_splits(folder / SPLIT_FILE)
  phrase_ids, dictionary_lines = _read_dictionary(folder / DICTIONARY_FILE)
  if not dictionary_lines:
    raise DataError(f"{folder / DICTIONARY_FILE} is empty (expected one "
                    "phrase|phrase_id line per phrase)")
  sentiment_of = _read_sentiments(folder / SENTIMENT_FILE)
  rows, per_split = _label_sentences(
      sentences, split_of, phrase_ids, sentiment_of, folder / SPLIT_FILE,
      folder / SENTENCES_FILE)
  balanced = _balanced(rows["train"])
  per_split["train"]["dropped_balancing"] = len(rows["train"]) - len(balanced)
  rows["train"] = balanced

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
    out[name] = RawSplit(
        texts=[r.sentence for r in rows[name]],
        labels=np.asarray([r.label for r in rows[name]], np.int32),
        example_ids=np.asarray([r.index for r in rows[name]], np.int64))

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
