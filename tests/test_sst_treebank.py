"""Tests of the ``sst_treebank`` source on a miniature treebank (offline, fast)."""

import json
import logging
import re

import numpy as np
import pytest

from safr_jax import data
from safr_jax.data import acquire
from safr_jax.data import config as config_lib
from safr_jax.data.sources import sst_treebank

# (sentence_index, sentence as in datasetSentences.txt, splitset_label,
#  sentiment, the dictionary's spelling of the sentence or None if absent).
# Splits are interleaved on purpose; phrase ids differ from sentence indices.
SENTENCES = [
    (1, "a gorgeous film .", 1, 0.9, None),
    (2, "dull and tired .", 1, 0.1, None),
    (3, "slow going .", 2, 0.3, None),
    (4, "exactly on the negative edge .", 1, 0.4, None),
    (5, "bad .", 3, 0.0, None),
    (6, "just above the negative edge .", 1, 0.40001, None),
    (7, "pure joy .", 2, 1.0, None),
    (8, "exactly on the positive edge .", 1, 0.6, None),
    (9, "just above the positive edge .", 1, 0.60001, None),
    (10, "so-so .", 2, 0.5, None),
    (11, "a fine cast .", 1, 0.8, None),
    # The known mismatch: mojibake and -LRB-/-RRB- in datasetSentences.txt.
    (12, "AmÃ©lie -LRB- 2001 -RRB- charms .", 1, 0.95,
     "Amélie ( 2001 ) charms ."),
    (13, "great .", 3, 0.65, None),
    (14, "a bold , funny ride .", 1, 0.7, None),
    (15, "meh -LRB- really -RRB- .", 3, 0.2, "meh ( really ) ."),
    (16, "it is a mess .", 1, 0.2, None),
    (17, "a triumph .", 2, 0.9, None),
    (18, "warm and wise .", 1, 0.99, None),
]
# Sub-phrases the dictionary also lists (never a whole sentence).
EXTRA_PHRASES = [("gorgeous", 0.85), ("film", 0.5), ("dull", 0.15)]
# By the rules: train positives 1, 9, 11, 14, 18 (0.6 and 0.40001 dropped),
# negatives 2, 4, 16; 12 unmatched. Test: 3 neg, 7 pos, 17 pos, 10 neutral.
# Dev: 5 neg, 13 pos, 15 unmatched.
TRAIN_IDS = [1, 9, 11, 2, 4, 16]  # first 3 positives, then first 3 negatives
TEST_IDS = [3, 7, 17]
DEV_IDS = [5, 13]


def _write_treebank(root, sentences=SENTENCES):
  """Writes the four files in the formats of stanfordSentimentTreebank.zip."""
  folder = root / "stanfordSentimentTreebank"
  folder.mkdir()
  phrases = [(spelling or text, value)
             for _, text, _, value, spelling in sentences] + EXTRA_PHRASES
  # Phrase ids: a fixed permutation, so id != position != sentence_index.
  ids = [(7 * i + 3) % 101 for i in range(len(phrases))]
  assert len(set(ids)) == len(ids)
  (folder / "datasetSentences.txt").write_text(
      "sentence_index\tsentence\n"
      + "".join(f"{i}\t{t}\n" for i, t, *_ in sentences), encoding="utf-8")
  (folder / "datasetSplit.txt").write_text(
      "sentence_index,splitset_label\n"
      + "".join(f"{i},{s}\n" for i, _, s, *_ in sentences), encoding="utf-8")
  (folder / "dictionary.txt").write_text(
      "".join(f"{p}|{pid}\n" for (p, _), pid in zip(phrases, ids)),
      encoding="utf-8")
  # Reverse order and Windows line breaks: lookup is by id, not by position.
  with open(folder / "sentiment_labels.txt", "w", encoding="utf-8",
            newline="") as f:
    f.write("phrase ids|sentiment values\r\n")
    for (_, value), pid in reversed(list(zip(phrases, ids))):
      f.write(f"{pid}|{value}\r\n")
  return folder


def _replace_line(path, number, text):
  lines = path.read_text(encoding="utf-8").split("\n")
  lines[number - 1] = text
  path.write_text("\n".join(lines), encoding="utf-8")


def _cfg(**overrides):
  """``data.default_config()`` with ``group__field=value`` for nested fields."""
  cfg = data.default_config()
  for key, value in overrides.items():
    *path, last = key.split("__")
    node = cfg
    for part in path:
      node = node[part]
    node[last] = value
  return cfg


@pytest.fixture
def folder(tmp_path):
  return _write_treebank(tmp_path)


def test_thresholds():
  label = sst_treebank.sentiment_label
  assert [label(v) for v in (0.0, 0.4, 0.40001, 0.5, 0.6, 0.60001, 1.0)] == [
      0, 0, None, None, None, 1, 1]


def test_splits_labels_balancing_and_example_ids(folder):
  raw, counts = sst_treebank.read_sst_treebank(folder)
  assert set(raw) == {"train", "dev", "test"}
  by_index = {i: (t, s, v) for i, t, s, v, _ in SENTENCES}
  got = {k: raw[k].example_ids.tolist() for k in raw}
  assert got == {"train": TRAIN_IDS, "dev": DEV_IDS, "test": TEST_IDS}
  for name, split in raw.items():
    assert split.labels.dtype == np.int32
    assert split.example_ids.dtype == np.int64
    for i, text, label in zip(split.example_ids, split.texts, split.labels):
      want_text, split_label, value = by_index[int(i)]
      assert text == want_text
      assert {1: "train", 2: "test", 3: "dev"}[split_label] == name
      assert label == (1 if value > 0.6 else 0) and not 0.4 < value <= 0.6
  # Train is balanced (3 + 3 of 5 positives, 3 negatives); dev/test are not.
  assert raw["train"].labels.tolist() == [1, 1, 1, 0, 0, 0]
  assert raw["test"].labels.tolist() == [0, 1, 1]
  assert raw["dev"].labels.tolist() == [0, 1]
  per = counts["per_split"]
  assert per["train"] == dict(read=11, dropped_unmatched=1,
                              dropped_no_sentiment=0, dropped_neutral=2,
                              negative=3, positive=5, dropped_balancing=2,
                              kept=6)
  assert per["test"] == dict(read=4, dropped_unmatched=0,
                             dropped_no_sentiment=0, dropped_neutral=1,
                             negative=1, positive=2, dropped_balancing=0,
                             kept=3)
  assert per["dev"] == dict(read=3, dropped_unmatched=1,
                            dropped_no_sentiment=0, dropped_neutral=0,
                            negative=1, positive=1, dropped_balancing=0,
                            kept=2)
  assert counts["sentences"] == 18
  assert counts["dictionary_phrases"] == 18 + len(EXTRA_PHRASES)
  assert counts["duplicate_dictionary_phrases"] == 0
  json.dumps(counts)
  assert sst_treebank.read_sst_treebank(str(folder))[0]["dev"].texts == [
      "bad .", "great ."]


def test_balancing_keeps_the_first_of_the_larger_class(tmp_path):
  # 2 positives, 4 negatives in train: negatives 3 and 4 are the ones dropped.
  rows = [(1, "n one .", 1, 0.1, None), (2, "p one .", 1, 0.9, None),
          (3, "n two .", 1, 0.2, None), (4, "n three .", 1, 0.3, None),
          (5, "n four .", 1, 0.0, None), (6, "p two .", 1, 0.7, None),
          (7, "n dev .", 3, 0.1, None), (8, "p test .", 2, 0.9, None)]
  raw = sst_treebank.read_sst_treebank(_write_treebank(tmp_path, rows))[0]
  assert raw["train"].example_ids.tolist() == [2, 6, 1, 3]
  assert raw["train"].texts == ["p one .", "p two .", "n one .", "n two ."]


def test_load_dataset_with_source_sst_treebank(folder, tmp_path):
  bundle = data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=str(folder)),
                             str(tmp_path / "work"))
  assert bundle.source == "sst_treebank"
  assert bundle.label_names == ["negative", "positive"]
  info = bundle.info
  assert info["sizes"] == {"train": 6, "dev": 2, "test": 3}
  assert info["class_counts"] == {"train": [3, 3], "dev": [1, 1],
                                  "test": [1, 2]}
  assert info["sst_dir"] == str(folder)
  assert info["sst_treebank"]["per_split"]["train"]["dropped_unmatched"] == 1
  assert "sentence level" in info["description"]
  assert bundle.splits["test"].example_ids.tolist() == TEST_IDS
  saved = json.loads((tmp_path / "work" / "labels.json").read_text())
  assert saved["data"]["sst_treebank"] == info["sst_treebank"]


def _must_not_probe(*args, **kwargs):
  raise AssertionError(f"the network was consulted: {args} {kwargs}")


def test_auto_prefers_sst_treebank_when_its_dir_exists(folder):
  bundle = data.load_dataset(_cfg(source="auto", sst_treebank__dir=str(folder)),
                             probe=_must_not_probe)
  assert bundle.source == "sst_treebank"
  assert bundle.info["requested_source"] == "auto"
  assert bundle.info["fallback_reason"] is None
  assert bundle.splits["train"].example_ids.tolist() == TRAIN_IDS


def test_auto_without_a_usable_sst_dir(folder, tmp_path, caplog):
  small = dict(max_examples=40, download__cache_dir=str(tmp_path / "cache"))
  resolve = lambda **kw: acquire.resolve(config_lib.complete(_cfg(**small, **kw)), _offline)
  # The IMDB config ignores the treebank's dir.
  assert resolve(benchmark="aclimdb", sst_treebank__dir=str(folder)
                 ).source.name == "imdb_builtin"
  # Unset: the cache, a download, then the stand-in, each reason said.
  resolution = resolve()
  assert resolution.source.name == "rt_polarity"
  assert resolution.steps == (
      f"sst_treebank: not in {tmp_path / 'cache'}",
      "sst_treebank: cannot download https://nlp.stanford.edu/~socherr/"
      "stanfordSentimentTreebank.zip: test: offline")
  assert resolution.reason == "; ".join(resolution.steps)
  # Set but missing: a warning, and the fallback reason says so.
  missing = str(tmp_path / "nope")
  with caplog.at_level(logging.WARNING):
    bundle = data.load_dataset(_cfg(source="auto", sst_treebank__dir=missing, **small),
                               probe=_offline)
  assert bundle.source == "rt_polarity"
  assert f"config.data.sst_treebank.dir {missing} does not exist" in (
      bundle.info["fallback_reason"])
  assert bundle.info["auto_steps"][0] == (
      f"config.data.sst_treebank.dir {missing} does not exist")
  assert any("sst_treebank.dir" in r.getMessage() for r in caplog.records)


def _offline(url, timeout):
  del timeout
  return False, "test: offline"


@pytest.mark.parametrize("sst_dir", [None, ""])
def test_source_without_sst_dir_or_cache_offline(sst_dir, tmp_path):
  with pytest.raises(data.DataError, match=(
      r"source 'sst_treebank' needs its data: set config\.data\.sst_treebank\.dir, or "
      rf"put it in {re.escape(str(tmp_path / 'stanfordSentimentTreebank'))}; "
      r"downloading it failed: .*test: offline")):
    data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=sst_dir,
                           download__cache_dir=str(tmp_path)), probe=_offline)


def test_source_reads_the_cache_without_sst_dir(folder, tmp_path):
  """A treebank in the cache is read with no probe at all."""
  cache = tmp_path / "cache"
  cache.mkdir()
  folder.rename(cache / "stanfordSentimentTreebank")
  bundle = data.load_dataset(_cfg(source="sst_treebank", download__cache_dir=str(cache)),
                             probe=_must_not_probe)
  assert bundle.info["obtained"] == "cache"
  assert bundle.splits["train"].example_ids.tolist() == TRAIN_IDS


def test_missing_folder(tmp_path):
  missing = tmp_path / "stanfordSentimentTreebank"
  with pytest.raises(data.DataError, match=rf"config\.data\.sst_treebank\.dir "
                     rf"{re.escape(str(missing))} does not exist"):
    sst_treebank.read_sst_treebank(missing)
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(data.DataError, match="is not a folder"):
    sst_treebank.read_sst_treebank(tmp_path / "a_file")


@pytest.mark.parametrize("name", sst_treebank.FILES)
def test_missing_file(folder, name):
  (folder / name).unlink()
  with pytest.raises(data.DataError,
                     match=rf"{re.escape(str(folder / name))} does not exist"):
    data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=str(folder)))


@pytest.mark.parametrize("name,number,text,message", [
    # datasetSentences.txt: line 1 is the header, line k + 1 sentence k.
    ("datasetSentences.txt", 3, "2 dull and tired .",
     r"1 field\(s\) separated by '\\t', expected 2"),
    ("datasetSentences.txt", 4, "3\tslow\tgoing .", r"3 field\(s\)"),
    ("datasetSentences.txt", 5, "four\texactly on the negative edge .",
     r"field 'sentence_index': 'four' is not an integer"),
    ("datasetSentences.txt", 6, "2\tbad .",
     r"sentence_index 2 already appeared on line 3"),
    ("datasetSentences.txt", 1, "1\ta gorgeous film .",
     r"expected the header 'sentence_index\\tsentence', found data"),
    ("datasetSplit.txt", 7, "6;1", r"1 field\(s\) separated by ','"),
    ("datasetSplit.txt", 8, "7,x", r"field 'splitset_label': 'x' is not an "
     "integer"),
    ("datasetSplit.txt", 9, "8,4", r"field 'splitset_label': 4 is not 1 "
     r"\(train\), 2 \(test\) or 3 \(dev\)"),
    ("datasetSplit.txt", 10, "9,0", r"field 'splitset_label': 0 is not 1"),
    ("dictionary.txt", 2, "dull and tired .", r"1 field\(s\) separated by "
     r"'\|', expected 2 \(phrase, phrase_id\)"),
    ("dictionary.txt", 3, "slow going .|1|2", r"3 field\(s\)"),
    ("dictionary.txt", 4, "exactly on the negative edge .|1.5",
     r"field 'phrase_id': '1.5' is not an integer"),
    ("sentiment_labels.txt", 3, "0.5", r"1 field\(s\) separated by '\|'"),
    ("sentiment_labels.txt", 4, "17|high",
     r"field 'sentiment values': 'high' is not a number"),
    ("sentiment_labels.txt", 5, "17|1.5", r"'1.5' is outside \[0, 1\]"),
    ("sentiment_labels.txt", 6, "x|0.5",
     r"field 'phrase ids': 'x' is not an integer"),
])
def test_bad_line_names_file_and_line(folder, name, number, text, message):
  _replace_line(folder / name, number, text)
  where = re.escape(f"{folder / name}, line {number}")
  with pytest.raises(data.DataError, match=rf"{where}[:,] .*{message}"):
    data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=str(folder)))


def test_sentence_without_split(folder):
  path = folder / "datasetSplit.txt"
  lines = path.read_text(encoding="utf-8").split("\n")
  path.write_text("\n".join(l for l in lines if not l.startswith("5,")),
                  encoding="utf-8")
  with pytest.raises(data.DataError, match=(
      rf"{re.escape(str(path))} has no splitset_label for sentence_index 5 "
      rf"\({re.escape(str(folder / 'datasetSentences.txt'))}, line 6\)")):
    sst_treebank.read_sst_treebank(folder)


def test_empty_file_and_bad_utf8(folder):
  (folder / "sentiment_labels.txt").write_text("")
  with pytest.raises(data.DataError, match=r"sentiment_labels\.txt is empty"):
    sst_treebank.read_sst_treebank(folder)
  (folder / "dictionary.txt").write_bytes(b"ok|1\nbad \xff|2\n")
  with pytest.raises(data.DataError,
                     match=r"dictionary\.txt, line 2: not valid UTF-8"):
    sst_treebank.read_sst_treebank(folder)


def test_an_empty_dictionary_is_named(folder):
  """Every sentence would be unmatched, every split empty: an error naming no file."""
  (folder / "dictionary.txt").write_text("")
  with pytest.raises(data.DataError, match=rf"{re.escape(str(folder / 'dictionary.txt'))} "
                     r"is empty"):
    data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=str(folder)))
  (folder / "dictionary.txt").write_text("nothing in the treebank|1\n")
  with pytest.raises(data.DataError, match=rf"{re.escape(str(folder))}: the train split has "
                     r"no labelled sentence: of its \d+ in datasetSentences\.txt "
                     r"\(datasetSplit\.txt\), \d+ match no phrase of dictionary\.txt"):
    data.load_dataset(_cfg(source="sst_treebank", sst_treebank__dir=str(folder)))
