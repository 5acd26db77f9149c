"""The user's own labelled files (``config.data.files``): CSV (RFC-4180 quoting, header),
TSV (``.tsv``/``.tab``, header, no quoting, as GLUE's) or JSONL (``.jsonl``/``.ndjson``/
``.json``, one object per line), by extension; parsed as data only (docs/DATA.md, "Your
own files": label ids, the stray-label check, encoding)."""

from __future__ import annotations

import collections
import csv
import io
import json
import pathlib
import re
import sys
from typing import Any, Sequence

from absl import logging
import ml_collections
import numpy as np

from safr_jax.data.core import SPLITS, RawSplit, Source, carve
from safr_jax.errors import DataError

_INT = re.compile(r"^[+-]?\d+$")
CSV_EXT = (".csv",)
TSV_EXT = (".tsv", ".tab")
JSONL_EXT = (".jsonl", ".ndjson", ".json")
# Without label_names, a train label under this share of the train rows is an
# error (unless config.data.files.allow_rare_labels); errors show this many lines.
RARE_LABEL_FRACTION = 0.01
MAX_LINES_SHOWN = 5
# A delimited row this unlike the others is named in a warning (_warn_unusual_rows).
MAX_ROW_LINES = 10
LONG_ROW_FACTOR = 100
LONG_ROW_MIN_CHARS = 2000


def _read_text(path: pathlib.Path, what: str) -> str:
  if not path.exists():
    raise DataError(f"{what} {path} does not exist")
  if path.is_dir():
    raise DataError(f"{what} {path} is a directory, not a file")
  raw = path.read_bytes()
  if not raw.strip():
    raise DataError(f"{what} {path} is empty")
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line = raw[:e.start].count(b"\n") + 1
    text = raw.decode("utf-8", errors="replace")
    logging.warning("%s %s is not valid UTF-8 (first bad byte at line %d, byte offset %d); "
                    "undecodable bytes were replaced by U+FFFD.", what, path, line, e.start)
  text = text.removeprefix("\ufeff")
  nul = text.find("\x00")
  if nul >= 0:
    raise DataError(f"{what} {path}, line {text.count(chr(10), 0, nul) + 1}: a NUL byte; "
                    "this is not a text file (binary, or UTF-16: save it as UTF-8)")
  return text


def _canonical_label(value: Any, where: str) -> Any:
  """An int for integer labels (also "3" in CSV), else a stripped string."""
  if isinstance(value, int) or isinstance(value, float) and value.is_integer():
    return int(value)  # bools too
  if isinstance(value, str):
    value = value.strip()
    if not value:
      raise DataError(f"{where}: the label is empty")
    return int(value) if _INT.match(value) else value
  raise DataError(f"{where}: label {value!r} is neither an integer nor a string")


def read_labelled_file(path: str | pathlib.Path | None, *, text_field: str, label_field: str,
                       what: str = "file") -> tuple[list[str], list[Any], list[int]]:
  """(texts, canonical labels (int or str), the 1-based line of each row) of one file."""
  if not path:
    raise DataError(f"{what} is not set (config.data.files.{what.removesuffix('_file')})")
  path = pathlib.Path(path)
  text = _read_text(path, what)
  ext = path.suffix.lower()
  if ext in JSONL_EXT:
    return _read_jsonl(text, path, what, text_field, label_field)
  if ext in CSV_EXT + TSV_EXT:
    return _read_delimited(text, path, what, text_field, label_field, tsv=ext in TSV_EXT)
  raise DataError(f"{what} {path}: unknown extension {ext!r}; use one of "
                  f"{CSV_EXT + TSV_EXT + JSONL_EXT}")


def _read_delimited(text, path, what, text_field, label_field, *, tsv):
  csv.field_size_limit(sys.maxsize)
  options = dict(delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else {}
  # The physical lines as the csv reader splits them, to find where a row
  # starts and what it spans.
  physical = io.StringIO(text, newline="").readlines()
  reader = csv.reader(io.StringIO(text, newline=""), **options)
  header = next(reader, None)
  if header is None:
    raise DataError(f"{what} {path} is empty")
  header = [h.strip() for h in header]
  for field in (text_field, label_field):
    if field not in header:
      raise DataError(f"{what} {path}: no column {field!r} in the header (columns: {header})")
  ti, li = header.index(text_field), header.index(label_field)
  texts, labels, lines, spans = [], [], [], []
  start = reader.line_num + 1
  try:
    for row in reader:
      line, end, start = start, reader.line_num, reader.line_num + 1
      if not row or (len(row) == 1 and not row[0].strip()):
        continue  # blank line
      where = f"{what} {path}, line {line}"
      # A row that runs to the end of the file with an odd number of quotes opened a quote
      # that never closes (csv then reads every later line into it).
      if (end > line and not tsv and end >= len(physical)
          and "".join(physical[line - 1:end]).count('"') % 2):
        raise DataError(f"{where}: a quote opens on this line and never closes, so "
                        f"lines {line}–{end} (the rest of the file) would be read as one "
                        "text; close it, or double a quote inside a quoted text (\"\")")
      if len(row) != len(header):
        raise DataError(f"{where}: {len(row)} fields, the header has {len(header)}"
                        + _spanned(line, end))
      if end > line and not tsv:
        _check_quote_ends_field(physical, line, end, where)
      texts.append(row[ti])
      labels.append(_canonical_label(row[li], f"{where}, field {label_field!r}"))
      lines.append(line)
      spans.append(end - line + 1)
  except csv.Error as e:
    raise DataError(f"{what} {path}, line {start}: {e}"
                    + _spanned(start, reader.line_num)) from None
  _warn_unusual_rows(texts, lines, spans, f"{what} {path}", text_field)
  return texts, labels, lines


def _first_few(items: Sequence[Any]) -> str:
  """The first ``MAX_LINES_SHOWN`` of ``items``, then how many more there are."""
  more = len(items) - MAX_LINES_SHOWN
  return ", ".join(map(str, items[:MAX_LINES_SHOWN])) + (f" (+{more} more)" if more > 0 else "")


def _spanned(line: int, end: int) -> str:
  return (f" (this row spans lines {line}–{end}: a quote that opens on line "
          f"{line} and closes late?)" if end > line else "")


def _check_quote_ends_field(physical: list[str], line: int, end: int, where: str) -> None:
  """A quote that does not close on its line, closed instead by the next row's opening
  quote (followed by its text, not by a comma), joins two rows into one that still has the
  right number of fields."""
  reader = csv.reader(io.StringIO("".join(physical[line - 1:end]), newline=""), strict=True)
  try:
    list(reader)
  except csv.Error:
    raise DataError(
        f"{where}: the quoted text that opens on this line is closed by the quote on line "
        f"{line + reader.line_num - 1}, which does not end the field (the next row's opening "
        f"quote?), so lines {line}–{end} would be read as one row; close the quote on its "
        'line, or double a quote inside a quoted text ("")') from None


def _warn_unusual_rows(texts: list[str], lines: list[int], spans: list[int],
                       where: str, text_field: str) -> None:
  """One warning naming the rows that span many lines or are far longer than the others:
  a misplaced quote joins rows without failing."""
  if not texts:
    return
  median = float(np.median([len(t) for t in texts]))
  limit = max(LONG_ROW_MIN_CHARS, LONG_ROW_FACTOR * median)
  odd = [f"line {n} ({len(t)} characters over {k} lines)"
         for t, n, k in zip(texts, lines, spans) if k > MAX_ROW_LINES or len(t) > limit]
  if odd:
    logging.warning("%s: unusually long %r field in the row(s) starting at %s; the median "
                    "row has %d characters on one line. A quote opened there and closed "
                    "late joins the rows in between into one text: check the quotes.",
                    where, text_field, _first_few(odd), median)


def _read_jsonl(text, path, what, text_field, label_field):
  texts, labels, lines = [], [], []
  for line, content in enumerate(text.split("\n"), start=1):
    if not content.strip():
      continue
    where = f"{what} {path}, line {line}"
    try:
      obj = json.loads(content)
    except json.JSONDecodeError as e:
      if e.msg.startswith("Invalid control character"):  # msg alone ends "character at"
        char = e.doc[e.pos]
        raise DataError(f"{where}: not valid JSON: a raw control character U+{ord(char):04X} "
                        f"({char!r}) at column {e.colno}, inside a string; JSON needs it "
                        "escaped (e.g. \\t)") from None
      raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
      raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for field in (text_field, label_field):
      if field not in obj:
        raise DataError(f"{where}: no field {field!r} (fields: {sorted(obj)})")
    value = "" if obj[text_field] is None else obj[text_field]
    if not isinstance(value, str):
      raise DataError(f"{where}, field {text_field!r}: expected a string, got "
                      + type(value).__name__)
    texts.append(value)
    labels.append(_canonical_label(obj[label_field], f"{where}, field {label_field!r}"))
    lines.append(line)
  return texts, labels, lines


def label_vocabulary(train_labels: Sequence[Any], label_names: Sequence[Any] | None = None
                     ) -> list[str]:
  """The label names, index = id: ``label_names``, else the sorted distinct train labels
  (numerically when all are integers)."""
  if label_names:
    names = [str(n) for n in label_names]
    if len(set(names)) != len(names):
      raise DataError(f"label_names has duplicates: {names}")
    return names
  distinct = set(train_labels)
  if all(isinstance(v, int) for v in distinct):
    return [str(v) for v in sorted(distinct)]
  return sorted(str(v) for v in distinct)


_File = collections.namedtuple("_File", "what path texts labels lines")  # what: "dev_file" …


def _label_ids(file: _File, names: list[str], label_field: str, explicit: bool) -> np.ndarray:
  """int32 ids of ``file``'s labels; an unknown label names its line."""
  ids = {name: i for i, name in enumerate(names)}
  out = []
  for label, line in zip(file.labels, file.lines):
    key = str(label)
    if key not in ids and explicit and isinstance(label, int) and 0 <= label < len(names):
      key = names[label]  # an integer label indexes the given label_names
    if key not in ids:
      raise DataError(f"{file.what} {file.path}, line {line}, field {label_field!r}: label "
                      f"{label!r} is not among the known labels {names}"
                      + ("" if explicit else " (the labels seen in train_file)"))
    out.append(ids[key])
  return np.asarray(out, np.int32)


def _check_labels(read: dict[str, _File], splits: dict[str, RawSplit],
                  names: list[str], *, allow_rare_labels: bool) -> None:
  """Without ``label_names``, a stray train label is an error (``allow_rare_labels``: a
  warning): under 1 % of the train_file rows (``splits["train"]``, a carved dev included),
  or in no evaluation file (a dev set carved from train_file is train data: not one)."""
  evaluated = [w for w in ("dev_file", "test_file") if w in read]
  eval_counts = sum(np.bincount(splits[w.removesuffix("_file")].labels,
                                minlength=len(names)) for w in evaluated)
  train = splits["train"]
  counts, total, rare = np.bincount(train.labels, minlength=len(names)), len(train), []
  for i, name in enumerate(names):
    why = []
    if counts[i] < RARE_LABEL_FRACTION * total:
      why.append(f"{counts[i]} of {total} rows ({100 * counts[i] / total:.2g} "
                 f"%, under {100 * RARE_LABEL_FRACTION:g} %)")
    if eval_counts[i] == 0:
      why.append(f"in no row of {' or '.join(evaluated)}")
    if why:
      lines = train.example_ids[train.labels == i].tolist()
      rare.append(f"label {name!r}: {' and '.join(why)}; "
                  f"{'line' if len(lines) == 1 else 'lines'} {_first_few(lines)}")
  if not rare:
    return
  where = f"train_file {read['train_file'].path}: {'; '.join(rare)}"
  if allow_rare_labels:
    logging.warning("data: %s. Kept as a class, since "
                    "config.data.files.allow_rare_labels=True.", where)
    return
  raise DataError(
      f"{where}. Without config.data.files.label_names every distinct train label becomes a "
      f"class, so this would train a {len(names)}-class model (train rows per class: "
      f"{', '.join(f'{n} {c}' for n, c in zip(names, counts))}). Fix those rows, list the "
      "classes in config.data.files.label_names, or set "
      "config.data.files.allow_rare_labels=True to keep the label as a class.")


def options() -> ml_collections.ConfigDict:
  """``config.data.files``."""
  path = lambda: ml_collections.FieldReference(None, field_type=str)  # unset: None
  return ml_collections.ConfigDict(dict(
      # .csv, .tsv/.tab or .jsonl/.ndjson/.json paths; train and test are needed,
      # without dev, dev is carved from train (dev_fraction, seeded, stratified).
      train=path(), dev=path(), test=path(), dev_fraction=0.1,
      text_field="text",    # column / JSON key of the text
      label_field="label",  # column / JSON key of the label
      # The label order (index = id). None = the sorted train labels, and then a
      # rare label is an error (see allow_rare_labels).
      label_names=ml_collections.FieldReference(None, field_type=list),
      # Without label_names, a label under 1 % of the train rows or in train only
      # is a DataError naming its rows (a stray label would add a class). True keeps it.
      allow_rare_labels=False))


def _load(cfg, path=None):
  """(splits, info); dev is carved from train when ``files.dev`` is unset (seeded,
  stratified), and the class counts per split are logged on one line."""
  del path
  f = cfg.files
  if not f.test:
    raise DataError("source='files' needs config.data.files.test (and "
                    "files.train; files.dev is optional)")
  read = {}
  for what, path in (("train_file", f.train), ("dev_file", f.dev), ("test_file", f.test)):
    if what == "dev_file" and not path:
      continue
    read[what] = _File(what, path, *read_labelled_file(
        path, text_field=f.text_field, label_field=f.label_field, what=what))
    if not read[what].texts:
      raise DataError(f"{what} {path} has a header but zero examples")
  names = label_vocabulary(read["train_file"].labels, f.label_names)
  out = {what.removesuffix("_file"): RawSplit(
      texts=r.texts, labels=_label_ids(r, names, f.label_field, explicit=bool(f.label_names)),
      example_ids=np.asarray(r.lines, np.int64)) for what, r in read.items()}
  whole_train = out["train"]
  if "dev" not in out:
    dev_fraction = float(f.dev_fraction)
    if not 0.0 < dev_fraction < 1.0:
      raise DataError(f"config.data.files.dev_fraction must be in (0, 1), got {dev_fraction}")
    dev_size = int(round(len(whole_train) * dev_fraction))
    if not 0 < dev_size < len(whole_train):
      raise DataError(f"train_file {f.train}: {len(whole_train)} examples are too few to "
                      f"carve a dev set with dev_fraction={dev_fraction}; give a dev_file")
    out["train"], out["dev"] = carve(whole_train, [len(whole_train) - dev_size, dev_size],
                                     int(cfg.split_seed))
  logging.info("data: class counts per split (labels %s): %s", names, ", ".join(
      f"{k} {np.bincount(out[k].labels, minlength=len(names)).tolist()}"
      + (" (carved from train_file)" if k == "dev" and "dev_file" not in read else "")
      for k in SPLITS))
  if not f.label_names:
    _check_labels(read, {**out, "train": whole_train}, names,
                  allow_rare_labels=bool(f.allow_rare_labels))
  paths = {"train": f.train, "dev": f.dev, "test": f.test}
  return {k: out[k] for k in SPLITS}, {"description": f"user files {paths}", "label_names": names,
                                       "allow_rare_labels": bool(f.allow_rare_labels)}


SOURCE = Source("files", "Your own CSV / TSV / JSONL files", _load, labels=None, options=options)
