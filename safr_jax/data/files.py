"""The user's own labelled text files: CSV, TSV or JSONL.

The format follows the extension: ``.csv`` (RFC-4180 quoting, header row),
``.tsv``/``.tab`` (tab-separated, header row, no quoting: quote characters are
ordinary text, as in GLUE's TSVs), ``.jsonl``/``.ndjson``/``.json`` (one JSON
object per line). Fields are named by ``text_field`` and ``label_field``.

Labels may be integers or strings. They are mapped to ids by sorting the
distinct train labels (numerically when all are integers, else as strings), so
0/1 stay 0/1 and "negative"/"positive" become 0/1. ``label_names`` in the config
fixes the order explicitly: a label equal to one of the names gets its index,
and an integer label ``i`` otherwise means ``label_names[i]``. A dev/test label
not seen in train (or not among ``label_names``) is an error.

Files are parsed as data only (csv / json), never evaluated or unpickled.
Non-UTF-8 bytes are replaced by U+FFFD with one warning per file. Empty texts
are kept (all-padding rows, length 0) and counted in ``bundle.info``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
from typing import Any, Optional, Sequence

import numpy as np

from safr_jax.data import sources
from safr_jax.data.errors import DataError

_INT = re.compile(r"^[+-]?\d+$")
CSV_EXT = (".csv",)
TSV_EXT = (".tsv", ".tab")
JSONL_EXT = (".jsonl", ".ndjson", ".json")


def _read_text(path: str, what: str) -> str:
  if not path:
    raise DataError(f"{what} is not set (config.data.{what})")
  if not os.path.exists(path):
    raise DataError(f"{what} {path} does not exist")
  if os.path.isdir(path):
    raise DataError(f"{what} {path} is a directory, not a file")
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.strip():
    raise DataError(f"{what} {path} is empty")
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    text = raw.decode("utf-8", errors="replace")
    logging.warning(
        "%s %s is not valid UTF-8 (first bad byte at line %d, byte offset %d); "
        "undecodable bytes were replaced by U+FFFD.", what, path, line, e.start)
  if text.startswith("\ufeff"):
    text = text[1:]
  return text


def _canonical_label(value: Any, where: str) -> Any:
  """An int for integer labels (also "3" in CSV), else a stripped string."""
  if isinstance(value, bool):
    return int(value)
  if isinstance(value, int):
    return value
  if isinstance(value, float) and value.is_integer():
    return int(value)
  if isinstance(value, str):
    value = value.strip()
    if not value:
      raise DataError(f"{where}: the label is empty")
    return int(value) if _INT.match(value) else value
  raise DataError(f"{where}: label {value!r} is neither an integer nor a string")


def read_labelled_file(path: str, *, text_field: str, label_field: str,
                       what: str = "file"
                       ) -> tuple[list[str], list[Any], list[int]]:
  """Reads one file.

  Returns:
    texts, canonical labels (int or str) and the 1-based line of each row.
  """
  path = os.fspath(path)
  text = _read_text(path, what)
  ext = os.path.splitext(path)[1].lower()
  if ext in JSONL_EXT:
    return _read_jsonl(text, path, what, text_field, label_field)
  if ext in CSV_EXT + TSV_EXT:
    return _read_delimited(text, path, what, text_field, label_field,
                           tsv=ext in TSV_EXT)
  raise DataError(f"{what} {path}: unknown extension {ext!r}; use one of "
                  f"{CSV_EXT + TSV_EXT + JSONL_EXT}")


def _read_delimited(text, path, what, text_field, label_field, *, tsv):
  csv.field_size_limit(sys.maxsize)
  options = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else {}
  reader = csv.reader(io.StringIO(text, newline=""), **options)
  try:
    header = next(reader)
  except StopIteration:
    raise DataError(f"{what} {path} is empty") from None
  header = [h.strip() for h in header]
  for field in (text_field, label_field):
    if field not in header:
      raise DataError(f"{what} {path}: no column {field!r} in the header "
                      f"(columns: {header})")
  ti, li = header.index(text_field), header.index(label_field)
  texts, labels, lines = [], [], []
  try:
    for row in reader:
      line = reader.line_num
      if not row or (len(row) == 1 and not row[0].strip()):
        continue  # blank line
      where = f"{what} {path}, line {line}"
      if len(row) != len(header):
        raise DataError(f"{where}: {len(row)} fields, the header has "
                        f"{len(header)}")
      texts.append(row[ti])
      labels.append(_canonical_label(row[li], f"{where}, field "
                                     f"{label_field!r}"))
      lines.append(line)
  except csv.Error as e:
    raise DataError(f"{what} {path}, line {reader.line_num}: {e}") from None
  return texts, labels, lines


def _read_jsonl(text, path, what, text_field, label_field):
  texts, labels, lines = [], [], []
  for line, content in enumerate(text.split("\n"), start=1):
    if not content.strip():
      continue
    where = f"{what} {path}, line {line}"
    try:
      obj = json.loads(content)
    except json.JSONDecodeError as e:
      raise DataError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
      raise DataError(f"{where}: expected a JSON object, got "
                      f"{type(obj).__name__}")
    for field in (text_field, label_field):
      if field not in obj:
        raise DataError(f"{where}: no field {field!r} (fields: "
                        f"{sorted(obj)})")
    value = obj[text_field]
    if value is None:
      value = ""
    if not isinstance(value, str):
      raise DataError(f"{where}, field {text_field!r}: expected a string, got "
                      f"{type(value).__name__}")
    texts.append(value)
    labels.append(_canonical_label(obj[label_field],
                                   f"{where}, field {label_field!r}"))
    lines.append(line)
  return texts, labels, lines


def label_vocabulary(train_labels: Sequence[Any],
                     label_names: Optional[Sequence[Any]] = None) -> list[str]:
  """The label names, index = id (see the module docstring for the order)."""
  if label_names:
    names = [str(n) for n in label_names]
    if len(set(names)) != len(names):
      raise DataError(f"label_names has duplicates: {names}")
    return names
  distinct = set(train_labels)
  if all(isinstance(v, int) for v in distinct):
    return [str(v) for v in sorted(distinct)]
  return sorted(str(v) for v in distinct)


def load_files(*, train_file: str, dev_file: Optional[str],
               test_file: Optional[str], text_field: str, label_field: str,
               dev_fraction: float, seed: int,
               label_names: Optional[Sequence[Any]] = None
               ) -> tuple[dict[str, sources.RawSplit], list[str]]:
  """train/dev/test from files; dev is carved from train when ``dev_file`` is
  unset (``dev_fraction``, seeded, stratified).

  Returns:
    (splits, label_names).
  """
  if not test_file:
    raise DataError("source='files' needs config.data.test_file (and "
                    "train_file; dev_file is optional)")
  read = {}
  for what, path in (("train_file", train_file), ("dev_file", dev_file),
                     ("test_file", test_file)):
    if what == "dev_file" and not path:
      continue
    texts, labels, lines = read_labelled_file(
        path, text_field=text_field, label_field=label_field, what=what)
    if not texts:
      raise DataError(f"{what} {path} has a header but zero examples")
    read[what] = (path, texts, labels, lines)
  names = label_vocabulary(read["train_file"][2], label_names)
  ids = {name: i for i, name in enumerate(names)}
  out = {}
  for what, (path, texts, labels, lines) in read.items():
    label_ids = []
    for label, line in zip(labels, lines):
      key = str(label)
      if (key not in ids and label_names and isinstance(label, int)
          and 0 <= label < len(names)):
        key = names[label]  # an integer label indexes the given label_names
      if key not in ids:
        raise DataError(
            f"{what} {path}, line {line}, field {label_field!r}: label "
            f"{label!r} is not among the known labels {names}"
            + (" (the labels seen in train_file)" if not label_names else ""))
      label_ids.append(ids[key])
    out[what.replace("_file", "")] = sources.RawSplit(
        texts=texts, labels=np.asarray(label_ids, np.int32),
        example_ids=np.asarray(lines, np.int64))
  if "dev" not in out:
    train = out["train"]
    if not 0.0 < dev_fraction < 1.0:
      raise DataError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    dev_size = int(round(len(train) * dev_fraction))
    if dev_size == 0 or dev_size == len(train):
      raise DataError(f"train_file {train_file}: {len(train)} examples are too "
                      f"few to carve a dev set with dev_fraction={dev_fraction}"
                      "; give a dev_file")
    out["train"], out["dev"] = sources.carve(
        train, [len(train) - dev_size, dev_size], seed)
  return {k: out[k] for k in sources.SPLITS}, names
