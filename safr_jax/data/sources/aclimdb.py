"""The paper's IMDB: the official ``aclImdb_v1.tar.gz``, split as the SAFR authors'
``data/read.py`` (``preprocess_imdb_data``, ``read_csv_data``, lines 47-95) splits it
(docs/DATA.md, "The paper's IMDB"). Only ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``
are read, as text mode reads them; each split lists negatives, then positives (their
``train_dev_pos`` holds ``IMDB_train_neg.csv``, lines 79-89)."""

from __future__ import annotations

import gzip
import os
import pathlib
import re
import tarfile
import time
import zlib
from typing import Any

from absl import logging
import numpy as np

from safr_jax.data.core import (SENTIMENT_LABELS, SPLITS, Acquire, RawSplit, Source,
                                benchmark_options, given_path)
from safr_jax.errors import DataError

ARCHIVE_NAME = "aclImdb_v1.tar.gz"
TRAIN_PER_CLASS = 10_000
# The review folders, in the authors' concatenation order (negatives first).
OFFICIAL_SPLITS = ("train", "test")
CLASS_FOLDERS = ("neg", "pos")
LABEL_OF = {"neg": 0, "pos": 1}
ID_LIMIT = 1_000_000

DESCRIPTION = (
    "IMDB Large Movie Review Dataset (Maas et al. 2011) from the official aclImdb archive, split "
    "as the SAFR authors do: train = the first 10,000 reviews of each class of the official train "
    "set, dev = the other 2,500 of each class, test = the 25,000 official test reviews; negatives "
    "then positives in each split; a class in numeric review-id order (the authors' os.listdir "
    "order is not portable). Texts as in the files: not lowercased, <br /> tags kept.")
EXAMPLE_IDS = ("official * 2000000 + label * 1000000 + review id; official 0 = "
               "aclImdb/train, 1 = aclImdb/test; label 0 = neg, 1 = pos")

_REVIEW = r"(\d+)_(\d+)\.txt"
_MEMBER = re.compile(r"(?:\./)?aclImdb/(train|test)/(pos|neg)/(?:" + _REVIEW + ")")
_IN_FOLDER = re.compile(r"(?:\./)?aclImdb/(?:train|test)/(?:pos|neg)/[^/]+")
_FILE = re.compile(_REVIEW)
_CHUNK = 1 << 20

Folder = tuple[str, str]  # (official split, class folder): ("train", "neg")
_FOLDERS: tuple[Folder, ...] = tuple((s, c) for s in OFFICIAL_SPLITS for c in CLASS_FOLDERS)
_EXPECTED = ("aclImdb_v1.tar.gz (or a .tar.gz of the same layout), the "
             "unpacked aclImdb/ folder, or a folder containing aclImdb/")


class _Collector:
  """(review id, text) per folder; refuses two files with the same review id."""

  def __init__(self):
    self.reviews: dict[Folder, list[tuple[int, str | None]]] = {f: [] for f in _FOLDERS}
    self.seen: dict[tuple[Folder, int], str] = {}
    self.ignored = 0

  def add(self, folder: Folder, review_id: str, data: bytes | None, where: str) -> None:
    """One review file's ``data`` (None: only the layout is checked)."""
    try:
      text = None if data is None else data.decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(f"{where}: not valid UTF-8 ({e.reason} at byte {e.start}); "
                      "the official review files are UTF-8") from None
    if text and "\r" in text:  # as Python's text mode, which the authors read with
      text = text.replace("\r\n", "\n").replace("\r", "\n")
    number = int(review_id)
    if number >= ID_LIMIT:
      raise DataError(f"{where}: review id {number} is not below {ID_LIMIT}, which "
                      "example_ids need (official ids are 0-12,499)")
    first = self.seen.setdefault((folder, number), where)
    if first != where:
      raise DataError(f"{where}: review id {number} also appears as {first}")
    self.reviews[folder].append((number, text))


def _read(path: pathlib.Path | str, how=pathlib.Path.read_bytes):
  """``how(path)``: its bytes, or an open file; an OSError is a DataError naming it."""
  try:
    return how(pathlib.Path(path))
  except OSError as e:
    raise DataError(f"{path} cannot be read: {e.strerror or e}") from None


def _scan_archive(path: pathlib.Path, found: _Collector, read_text: bool) -> None:
  """Streams the gzip tar at ``path`` to its end (a truncated file is an error)."""
  with _read(path, lambda p: open(p, "rb")) as raw:  # pylint: disable=consider-using-with
    if raw.read(2) != b"\x1f\x8b":
      raise DataError(f"{path} is not a gzip file; expected {_EXPECTED}")
    raw.seek(0)
    try:
      with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        with tarfile.open(fileobj=gz, mode="r|") as tar:
          for member in tar:
            match = _MEMBER.fullmatch(member.name)
            if match is None:
              found.ignored += bool(_IN_FOLDER.fullmatch(member.name))
              continue
            where = f"{path}:{member.name}"
            if not member.isfile():
              raise DataError(f"{where} is not a regular file")
            found.add((match[1], match[2]), match[3],
                      tar.extractfile(member).read() if read_text else None, where)
        # tarfile stops at the end-of-archive blocks; reading on to the end
        # makes gzip check its CRC and length, so a truncated file fails.
        while gz.read(_CHUNK):
          pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
      reason = " ".join(str(e).split()) or type(e).__name__
      raise DataError(f"{path} is not a readable .tar.gz archive ({reason}); a download "
                      "cut off or a damaged file? Delete it and get it again") from None


def _scan_folder(root: pathlib.Path, found: _Collector, read_text: bool) -> None:
  """The reviews of the unpacked ``aclImdb/`` folder ``root``."""
  for folder in _FOLDERS:
    where = root.joinpath(*folder)
    if not where.is_dir():
      raise DataError(f"{where} is missing: the aclImdb folder {root} must hold "
                      "train/pos, train/neg, test/pos and test/neg")
    with os.scandir(where) as entries:
      for entry in entries:
        if not entry.is_file():
          continue
        if (match := _FILE.fullmatch(entry.name)) is None:
          found.ignored += 1
          continue
        found.add(folder, match[1], _read(entry.path) if read_text else None, entry.path)


def _scan(path: str | os.PathLike | None, read_text: bool
          ) -> tuple[pathlib.Path, str, _Collector]:
  """(archive file or aclImdb folder, "archive" or "folder", its reviews)."""
  where, form = given_path(path, "aclimdb", _EXPECTED), "folder"
  if where.is_file():
    form = "archive"
  elif (where / "aclImdb").is_dir():
    where = where / "aclImdb"
  elif not ((where / "train").is_dir() or (where / "test").is_dir()):
    raise DataError(f"config.data.aclimdb.dir {where} is a folder without aclImdb/ "
                    f"or train/ and test/ (expected {_EXPECTED})")
  found = _Collector()
  (_scan_archive if form == "archive" else _scan_folder)(where, found, read_text)
  empty = [f"aclImdb/{s}/{c}" for s, c in _FOLDERS if not found.reviews[(s, c)]]
  if empty:
    raise DataError(f"{where} has no review files <id>_<rating>.txt in "
                    f"{', '.join(empty)} (expected {_EXPECTED})")
  if found.ignored:
    logging.warning("%s: %d file(s) in the review folders are not named <id>_<rating>.txt "
                    "and were ignored", where, found.ignored)
  return where, form, found


def check_archive(path: str | os.PathLike) -> dict[str, int]:
  """Review files per folder (``{"train/neg": 12500, ...}``) of a whole, readable archive
  with reviews in all four folders, texts not decoded (``download.ensure_file``'s check)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected the {ARCHIVE_NAME} archive")
  _, _, found = _scan(path, read_text=False)
  return {f"{s}/{c}": len(found.reviews[(s, c)]) for s, c in _FOLDERS}


def read_aclimdb(path: str | os.PathLike | None, *, train_per_class: int = TRAIN_PER_CLASS
                 ) -> tuple[dict[str, RawSplit], dict[str, Any]]:
  """(splits, counts) of ``path`` (``_EXPECTED``): train = the first ``train_per_class``
  reviews of each class of the official train set by numeric review id (theirs is
  ``os.listdir`` order, which differs between file systems), dev = the rest, test = the
  official test set; ``counts`` is ``bundle.info["aclimdb"]``."""
  start = time.monotonic()
  where, form, found = _scan(path, read_text=True)
  columns = {s: ([], [], []) for s in SPLITS}  # texts, labels, example ids
  for official, cls in _FOLDERS:
    reviews = sorted(found.reviews[(official, cls)], key=lambda r: r[0])  # by review id
    if official == "test":
      parts = [("test", reviews)]
    elif len(reviews) <= train_per_class:
      raise DataError(f"{where}: aclImdb/{official}/{cls} has {len(reviews)} reviews; the "
                      f"authors' split takes the first {train_per_class} of each class "
                      "for train and the rest for dev, so it needs more")
    else:
      parts = [("train", reviews[:train_per_class]), ("dev", reviews[train_per_class:])]
    first_id = (OFFICIAL_SPLITS.index(official) * 2 + LABEL_OF[cls]) * ID_LIMIT  # + review id
    for split, chosen in parts:
      texts, labels, ids = columns[split]
      texts += [text for _, text in chosen]
      labels += [LABEL_OF[cls]] * len(chosen)
      ids += [first_id + review_id for review_id, _ in chosen]
  out = {s: RawSplit(texts=t, labels=np.asarray(l, np.int32),
                     example_ids=np.asarray(i, np.int64)) for s, (t, l, i) in columns.items()}
  counts = {
      "path": str(where), "form": form,
      "official": {official: {SENTIMENT_LABELS[LABEL_OF[c]]: len(found.reviews[(official, c)])
                              for c in CLASS_FOLDERS} for official in OFFICIAL_SPLITS},
      "per_split": {split: {name: int(np.sum(out[split].labels == label))
                            for label, name in enumerate(SENTIMENT_LABELS)}
                    for split in SPLITS},
      "ignored_files": found.ignored,
      "rule": (f"train = the first {train_per_class} of each class of aclImdb/train, "
               "dev = the rest of aclImdb/train, test = all of aclImdb/test"),
      "order": "negatives then positives; each class by numeric review id (the authors "
               "use os.listdir order)",
      "example_ids": EXAMPLE_IDS,
  }
  logging.info("aclimdb: read %s (%s) in %.1f s: train %d, dev %d, test %d", where, form,
               time.monotonic() - start, *(len(out[s]) for s in SPLITS))
  return out, counts


def _load(cfg, path):
  raw, counts = read_aclimdb(path)
  return raw, {"imdb_dir": str(path), "aclimdb": counts}


SOURCE = Source(
    "aclimdb", DESCRIPTION, _load, stand_in="imdb_builtin",
    options=benchmark_options("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"),
    acquire=Acquire(ARCHIVE_NAME, (), check_archive))
