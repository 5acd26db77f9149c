"""Tests of the ``aclimdb`` reader on miniature archives and folders, and on
the real IMDB archive beside the checkout when it is there."""

import gzip
import io
import json
import pathlib
import tarfile
import time

import numpy as np
import pytest

from safr_jax.data.sources import aclimdb
from safr_jax.errors import DataError

REAL_ARCHIVE = (pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
                / "imdb" / "aclImdb_text.tar.gz")

# (official split, class folder) -> {file name: text}. Ids are written out of
# numeric order and include 9 / 10 (string order would put 10 first).
REVIEWS = {
    ("train", "neg"): {"10_2.txt": "Dull.<br /><br />Very DULL.",
                       "9_1.txt": "  Awful film, leading spaces kept  ",
                       "2_3.txt": "Not good.\r\nSecond line.",
                       "100_4.txt": "Bad acting."},
    ("train", "pos"): {"3_9.txt": "Great!<br />Loved it.",
                       "1_10.txt": "Amélie is charming — 10/10",
                       "20_8.txt": "Fine movie."},
    ("test", "neg"): {"7_1.txt": "Terrible.", "0_2.txt": "Boring."},
    ("test", "pos"): {"11_7.txt": "Good fun.", "5_8.txt": "Lovely."},
}
# With train_per_class=2: the two smallest ids of each class train, the rest
# dev; negatives first; \r\n read as \n (Python text mode, as the authors).
EXPECTED = {
    "train": [(0, 2, "Not good.\nSecond line."),
              (0, 9, "  Awful film, leading spaces kept  "),
              (1, 1, "Amélie is charming — 10/10"),
              (1, 3, "Great!<br />Loved it.")],
    "dev": [(0, 10, "Dull.<br /><br />Very DULL."), (0, 100, "Bad acting."),
            (1, 20, "Fine movie.")],
    "test": [(0, 0, "Boring."), (0, 7, "Terrible."), (1, 5, "Lovely."),
             (1, 11, "Good fun.")],
}
# example_ids: official (train 0, test 1) * 2e6 + label * 1e6 + review id.
EXPECTED_IDS = {"train": [2, 9, 1_000_001, 1_000_003],
                "dev": [10, 100, 1_000_020],
                "test": [2_000_000, 2_000_007, 3_000_005, 3_000_011]}
# Members the reader must skip.
NOISE = {"aclImdb/README": b"readme", "aclImdb/imdb.vocab": b"the\nand\n",
         "aclImdb/train/unsup/0_0.txt": b"unlabelled",
         "aclImdb/train/urls_pos.txt": b"http://example.com",
         "aclImdb/train/labeledBow.feat": b"9 0:9 1:1"}


def _members(reviews=REVIEWS) -> dict[str, bytes]:
  out = {f"aclImdb/{s}/{c}/{name}": text.encode("utf-8")
         for (s, c), files in reviews.items() for name, text in files.items()}
  return {**out, **NOISE}


def write_archive(path: pathlib.Path, members: dict[str, bytes]
                  ) -> pathlib.Path:
  """A .tar.gz with folder entries first, as ``tar czf`` writes them."""
  with tarfile.open(path, "w:gz") as tar:
    for folder in ("aclImdb", "aclImdb/train", "aclImdb/test"):
      info = tarfile.TarInfo(folder)
      info.type = tarfile.DIRTYPE
      tar.addfile(info)
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return path


def write_folder(root: pathlib.Path, members: dict[str, bytes]) -> pathlib.Path:
  for name, data in members.items():
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(data)
  return root


def _as_rows(split):
  return [(int(label), int(eid) % 1_000_000, text) for label, eid, text in
          zip(split.labels, split.example_ids, split.texts)]


def test_archive_and_folder_give_the_authors_split(tmp_path):
  archive = write_archive(tmp_path / "mini.tar.gz", _members())
  parent = write_folder(tmp_path / "unpacked", _members())
  results = {
      "archive": aclimdb.read_aclimdb(archive, train_per_class=2),
      "parent folder": aclimdb.read_aclimdb(parent, train_per_class=2),
      "aclImdb folder": aclimdb.read_aclimdb(parent / "aclImdb",
                                             train_per_class=2),
  }
  for form, (raw, counts) in results.items():
    assert set(raw) == {"train", "dev", "test"}, form
    for split, rows in EXPECTED.items():
      assert _as_rows(raw[split]) == rows, (form, split)
      assert raw[split].labels.dtype == np.int32
      assert raw[split].example_ids.dtype == np.int64
      assert raw[split].example_ids.tolist() == EXPECTED_IDS[split], form
    json.dumps(counts)  # JSON-ready provenance
    assert counts["official"] == {"train": {"negative": 4, "positive": 3},
                                  "test": {"negative": 2, "positive": 2}}
    assert counts["per_split"]["dev"] == {"negative": 2, "positive": 1}
    assert counts["ignored_files"] == 0
  assert results["archive"][1]["form"] == "archive"
  assert results["parent folder"][1]["form"] == "folder"


def test_unexpected_file_names_in_review_folders_are_ignored(tmp_path):
  members = {**_members(), "aclImdb/train/pos/notes.txt": b"x",
             "aclImdb/train/pos/12_x.txt": b"y"}
  for path in (write_archive(tmp_path / "a.tar.gz", members),
               write_folder(tmp_path / "f", members)):
    raw, counts = aclimdb.read_aclimdb(path, train_per_class=2)
    assert counts["ignored_files"] == 2
    assert _as_rows(raw["dev"]) == EXPECTED["dev"]


def test_check_archive_counts_and_refuses_damage(tmp_path):
  archive = write_archive(tmp_path / "mini.tar.gz", _members())
  assert aclimdb.check_archive(archive) == {
      "train/neg": 4, "train/pos": 3, "test/neg": 2, "test/pos": 2}
  data = archive.read_bytes()
  for cut in (len(data) // 2, len(data) - 4):  # mid-stream; only the trailer
    truncated = tmp_path / f"cut{cut}.tar.gz"
    truncated.write_bytes(data[:cut])
    for read in (aclimdb.check_archive,
                 lambda p: aclimdb.read_aclimdb(p, train_per_class=2)):
      with pytest.raises(DataError, match="not a readable .tar.gz") as e:
        read(truncated)
      assert "\n" not in str(e.value)
  with pytest.raises(DataError, match="is not a file"):
    aclimdb.check_archive(tmp_path)


@pytest.mark.parametrize("case, message", [
    ("missing_folder", "(no review files .* in |/)aclImdb/test/neg"),
    ("duplicate_id", "review id 9 also appears"),
    ("not_utf8", r"aclImdb/train/pos/3_9\.txt: not valid UTF-8"),
    ("too_few_for_train", "has 3 reviews; .* first 3 .* needs more"),
])
def test_malformed_layouts_are_data_errors(tmp_path, case, message):
  members = _members()
  if case == "missing_folder":
    members = {k: v for k, v in members.items() if "/test/neg/" not in k}
  elif case == "duplicate_id":
    members["aclImdb/train/neg/9_4.txt"] = b"again"
  elif case == "not_utf8":
    members["aclImdb/train/pos/3_9.txt"] = b"caf\xe9"
  per_class = 3 if case == "too_few_for_train" else 2
  paths = (write_archive(tmp_path / "a.tar.gz", members),
           write_folder(tmp_path / "f", members))
  for path in paths:
    with pytest.raises(DataError, match=message) as e:
      aclimdb.read_aclimdb(path, train_per_class=per_class)
    assert "\n" not in str(e.value)


def test_bad_paths_name_the_config_field(tmp_path):
  with pytest.raises(DataError, match="config.data.aclimdb.dir .* does not exist"):
    aclimdb.read_aclimdb(tmp_path / "nowhere")
  with pytest.raises(DataError, match="config.data.aclimdb.dir"):
    aclimdb.read_aclimdb(None)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError,
                     match="config.data.aclimdb.dir .* without aclImdb"):
    aclimdb.read_aclimdb(tmp_path / "empty")
  text = tmp_path / "reviews.csv"
  text.write_text("text,label\n")
  with pytest.raises(DataError, match="not a gzip file"):
    aclimdb.read_aclimdb(text)
  not_tar = tmp_path / "x.tar.gz"
  not_tar.write_bytes(gzip.compress(b"plain text, not a tar archive" * 50))
  with pytest.raises(DataError, match="not a readable .tar.gz"):
    aclimdb.read_aclimdb(not_tar)


def test_default_split_of_the_real_archive():
  if not REAL_ARCHIVE.is_file():
    pytest.skip(f"{REAL_ARCHIVE} is absent (research data beside the checkout)")
  start = time.monotonic()
  raw, counts = aclimdb.read_aclimdb(REAL_ARCHIVE)
  seconds = time.monotonic() - start
  sizes = {"train": 10_000, "dev": 2_500, "test": 12_500}
  for split, per_class in sizes.items():
    labels = raw[split].labels
    assert len(raw[split]) == 2 * per_class, split
    assert np.sum(labels == 0) == per_class and np.sum(labels == 1) == per_class
    # Negatives first, then positives.
    assert (np.diff(labels) >= 0).all(), split
    ids = raw[split].example_ids
    assert len(np.unique(ids)) == len(ids), split
  train, dev = raw["train"].example_ids, raw["dev"].example_ids
  assert not set(train.tolist()) & set(dev.tolist())
  # Train holds the smallest review ids of each class, dev the rest.
  for label in (0, 1):
    train_ids = train[raw["train"].labels == label] % 1_000_000
    dev_ids = dev[raw["dev"].labels == label] % 1_000_000
    assert train_ids.max() < dev_ids.min()
    assert (np.diff(train_ids) > 0).all() and (np.diff(dev_ids) > 0).all()
  assert (raw["test"].example_ids >= 2_000_000).all()
  assert any("<br />" in t for t in raw["train"].texts[:100])
  assert counts["per_split"]["test"] == {"negative": 12_500, "positive": 12_500}
  assert seconds < 60, f"reading the real archive took {seconds:.1f} s"
