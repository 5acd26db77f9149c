"""Tests of safr_jax.data: offline, CPU, a few seconds."""

import hashlib
import json
import logging
import time

import numpy as np
import pytest

from conftest import split_with_lengths
from safr_jax import data
from safr_jax.data import download
from safr_jax.data.sources import planted as planted_lib
from safr_jax.data import splits as splits_lib

# sha256 over ("train", ids, "dev", ids, "test", ids) of the seed-0 builtin
# splits. A change here means the split changed: every machine must agree.
RT_SPLIT_SHA = "8aae9829c010567bd129381a930d525604dfacf43a0dff029cdf43b53a632461"
IMDB_SPLIT_SHA = "2f2328becf77971d0e9d7e3412ffcfd4b8f5527d96408c70538fafd9f3cac6eb"


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


def _split_sha(bundle):
  h = hashlib.sha256()
  for name in ("train", "dev", "test"):
    h.update(name.encode())
    h.update(np.asarray(bundle.splits[name].example_ids, "<i8").tobytes())
  return h.hexdigest()


def _no_network(url, timeout):
  del timeout
  return False, f"test: no network for {url}"


@pytest.fixture(scope="module")
def rt():
  return data.load_dataset(_cfg(source="rt_polarity", max_len=64))


@pytest.fixture(scope="module")
def planted():
  return data.load_dataset(_cfg(source="planted", max_len=32,
                                planted__train_size=400, planted__dev_size=100,
                                planted__test_size=100))


def _toy_split(n=37, max_len=40, seed=0):
  """Rows whose first id encodes the row (row + 2), random lengths."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, max_len + 1, size=n).astype(np.int32)
  lengths[3] = max_len
  return split_with_lengths(lengths, rng, max_len)


def _rows(batch):
  return (batch["ids"][:, 0] - 2).tolist()


# ----------------------------------------------------------------- TFDS (mock)


@pytest.mark.parametrize("name,max_len", [("glue/sst2", 16),
                                          ("imdb_reviews", 24)])
def test_tfds_sources_with_mock_data(name, max_len):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                              num_examples=40):
    bundle = data.load_dataset(_cfg(source=name, max_len=max_len, vocab__min_freq=1,
                                    tfds__dev_fraction=0.25), probe=_no_network)
  assert bundle.source == name and bundle.info["fallback_reason"] is None
  assert bundle.label_names == ["negative", "positive"]
  sizes = bundle.info["sizes"]
  assert sizes["test"] == 40
  if name == "imdb_reviews":
    assert (sizes["train"], sizes["dev"]) == (32, 8)  # 80/20, like 20k/5k
  else:
    assert (sizes["train"], sizes["dev"]) == (30, 10)
  for split in bundle.splits.values():
    assert split.ids.dtype == np.int32 and split.ids.shape[1] == max_len
    assert all(isinstance(t, str) for t in split.texts)
    assert set(np.unique(split.labels)) <= {0, 1}
  batch = next(data.train_iterator(bundle.splits["train"], batch_size=8,
                                   seed=0, pad_to="max_len"))
  assert batch["ids"].shape == (8, max_len) and batch["ids"].dtype == np.int32
  assert batch["labels"].shape == (8,) and batch["labels"].dtype == np.int32
  assert set(batch["labels"].tolist()) <= {0, 1}
  for batch in data.eval_batches(bundle.splits["test"], batch_size=16,
                                 pad_to="batch"):
    assert batch["ids"].shape[0] == 16 and batch["ids"].shape[1] % 8 == 0
    assert batch["weights"].dtype == np.float32


# ------------------------------------------------------------ auto / network


def test_auto_falls_back_fast_without_network(tmp_path, caplog):
  start = time.monotonic()
  with caplog.at_level(logging.WARNING):
    bundle = data.load_dataset(
        _cfg(source="auto", download__cache_dir=str(tmp_path), max_len=32),
        probe=_no_network)
  assert time.monotonic() - start < 10
  assert bundle.source == "rt_polarity"
  info = bundle.info
  assert info["requested_source"] == "auto" and info["source"] == "rt_polarity"
  assert "no network" in info["fallback_reason"]
  assert "NOT the SST-2 benchmark" in info["description"]
  loud = [r for r in caplog.records if "source='auto'" in r.getMessage()]
  assert len(loud) == 1 and "rt_polarity" in loud[0].getMessage()
  json.dumps(info)


def test_real_probe_returns_within_budget():
  for url in ("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
              "http://10.255.255.1/unroutable"):
    start = time.monotonic()
    ok, why = data.probe_url(url, 1.0)
    assert time.monotonic() - start < 2.0, why
    assert isinstance(ok, bool) and url in why


def test_explicit_tfds_source_unprepared_offline_is_a_clear_error(tmp_path):
  start = time.monotonic()
  with pytest.raises(data.DataError, match="download_and_prepare"):
    data.load_dataset(_cfg(source="glue/sst2", tfds__data_dir=str(tmp_path)),
                      probe=_no_network)
  assert time.monotonic() - start < 10


# ------------------------------------------------------------------- builtin


def test_rt_polarity_is_real_and_split_stably(rt):
  sizes = rt.info["sizes"]
  assert (sizes["train"], sizes["dev"], sizes["test"]) == (6824, 853, 853)
  assert sum(sizes.values()) == 8530
  counts = rt.info["class_counts"]
  assert np.sum(list(counts.values()), axis=0).tolist() == [4265, 4265]
  for name, c in counts.items():
    assert abs(c[0] - c[1]) <= 1, (name, c)
  ids = [set(rt.splits[k].example_ids.tolist()) for k in ("train", "dev",
                                                          "test")]
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
  assert set().union(*ids) == set(range(8530))
  texts = [set(rt.splits[k].texts) for k in ("train", "dev", "test")]
  assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
  assert _split_sha(rt) == RT_SPLIT_SHA
  # Real text, 1 = positive (first sentence of the corpus).
  first = rt.splits["train"].texts[0]
  assert first.startswith("the rock is destined to be the 21st century's")
  assert rt.splits["train"].labels[0] == 1


def test_imdb_builtin_is_real_and_split_stably():
  start = time.monotonic()
  bundle = data.load_dataset(_cfg(source="imdb_builtin", max_len=256,
                                  vocab__strip_html=True))
  assert time.monotonic() - start < 20
  sizes = bundle.info["sizes"]
  assert (sizes["train"], sizes["dev"], sizes["test"]) == (20000, 2500, 2500)
  assert bundle.info["class_counts"] == {"train": [10000, 10000],
                                         "dev": [1250, 1250],
                                         "test": [1250, 1250]}
  ids = [set(bundle.splits[k].example_ids.tolist())
         for k in ("train", "dev", "test")]
  assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
  assert set().union(*ids) == set(range(25000))
  assert _split_sha(bundle) == IMDB_SPLIT_SHA
  assert "no official test split" in bundle.info["description"]
  assert "<br" not in " ".join(bundle.vocab.tokens)
  assert bundle.info["truncated_texts"]["train"] > 0


def test_splits_are_deterministic_and_seeded():
  labels = np.array([0] * 30 + [1] * 70)
  a = splits_lib.stratified_split(labels, [80, 10, 10], seed=3)
  b = splits_lib.stratified_split(labels, [80, 10, 10], seed=3)
  c = splits_lib.stratified_split(labels, [80, 10, 10], seed=4)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))
  assert [len(x) for x in a] == [80, 10, 10]
  assert [int(labels[x].sum()) for x in a] == [56, 7, 7]
  assert np.array_equal(np.sort(np.concatenate(a)), np.arange(100))
  # The permutation is pinned (raw PCG64 stream + stable sort).
  assert splits_lib.stable_permutation(8, 0).tolist() == \
      splits_lib.stable_permutation(8, 0).tolist()


def test_max_examples_caps_each_split_stratified():
  bundle = data.load_dataset(_cfg(source="rt_polarity", max_len=16,
                                  max_examples=100))
  assert bundle.info["sizes"] == {"train": 100, "dev": 100, "test": 100}
  for c in bundle.info["class_counts"].values():
    assert abs(c[0] - c[1]) <= 1
  again = data.load_dataset(_cfg(source="rt_polarity", max_len=16,
                                 max_examples=100))
  assert _split_sha(bundle) == _split_sha(again)


# ---------------------------------------------------------------- vocabulary


def test_vocab_round_trip_and_unknowns(rt, tmp_path):
  data.save_vocab_and_labels(rt, str(tmp_path))
  assert (tmp_path / "vocab.txt").read_text("utf-8").split("\n")[:2] == [
      "<PAD>", "<UNK>"]
  vocab, names = data.load_vocab_and_labels(str(tmp_path))
  assert names == ["negative", "positive"]
  assert vocab == rt.vocab and len(vocab) == len(rt.vocab)
  dev = rt.splits["dev"]
  ids, lengths = vocab.encode_batch(dev.texts, dev.max_len)
  np.testing.assert_array_equal(ids, dev.ids)
  np.testing.assert_array_equal(lengths, dev.lengths)
  assert vocab.encode("the zzqqxx-never-seen film") == [
      vocab.token_to_id("the"), data.Vocabulary.unk_id, vocab.token_to_id("film")]
  assert vocab.encode("<PAD> <UNK>") == [1, 1]  # id 0 only ever means padding
  assert vocab.decode(vocab.encode("the film")) == ["the", "film"]


def test_vocab_is_train_only_min_freq_and_ordered():
  vocab = data.Vocabulary.build(["b a a", "c b a", "d"], min_freq=2)
  assert vocab.tokens == ["<PAD>", "<UNK>", "a", "b"]  # 3×a, 2×b; c, d once
  vocab = data.Vocabulary.build(["y x", "x y"], min_freq=1)
  assert vocab.tokens == ["<PAD>", "<UNK>", "x", "y"]  # tie → token order
  vocab = data.Vocabulary.build(["Good<br />film", "good film"], min_freq=2,
                                lowercase=True, strip_html=True)
  assert vocab.encode("GOOD<br/>FILM") == [vocab.token_to_id("good"),
                                           vocab.token_to_id("film")]
  assert vocab.tokens == ["<PAD>", "<UNK>", "film", "good"]
  ids, lengths = vocab.encode_batch(["", "good " * 10], 4)
  assert ids.tolist() == [[0, 0, 0, 0], [3, 3, 3, 3]]  # truncated to max_len
  assert lengths.tolist() == [0, 4]


def test_vocab_options_survive_the_workdir(tmp_path):
  bundle = data.load_dataset(_cfg(source="rt_polarity", max_len=16,
                                  max_examples=200, vocab__lowercase=True))
  data.save_vocab_and_labels(bundle, str(tmp_path))
  vocab, _ = data.load_vocab_and_labels(str(tmp_path))
  assert vocab.lowercase
  assert vocab.encode("THE FILM") == bundle.vocab.encode("the film")


# --------------------------------------------------------------------- grain


def test_restored_iterator_continues_exactly_across_epochs():
  split = _toy_split()
  it = data.train_iterator(split, batch_size=8, seed=5, pad_to="batch")
  assert data.steps_per_epoch(split, 8) == 4
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  expected = [next(it) for _ in range(10)]  # crosses two epoch boundaries
  restored = data.train_iterator(split, batch_size=8, seed=5, pad_to="batch")
  restored.set_state(state)
  for want, got in zip(expected, [next(restored) for _ in range(10)]):
    for key in ("ids", "labels"):
      np.testing.assert_array_equal(want[key], got[key])


def test_epochs_are_shuffled_and_drop_the_partial_batch():
  split = _toy_split()
  it = data.train_iterator(split, batch_size=8, seed=0, pad_to="max_len")
  epochs = [[r for _ in range(4) for r in _rows(next(it))] for _ in range(3)]
  for rows in epochs:
    assert len(rows) == 32 and len(set(rows)) == 32  # 5 rows dropped
  assert epochs[0] != epochs[1] != epochs[2]
  other = data.train_iterator(split, batch_size=8, seed=1, pad_to="max_len")
  other_epoch0 = [r for _ in range(4) for r in _rows(next(other))]
  assert other_epoch0 not in epochs  # seed 1 is not seed 0 shifted by an epoch


def test_pad_to_batch_widths():
  split = _toy_split(n=64, max_len=40)
  it = data.train_iterator(split, batch_size=4, seed=0, pad_to="batch")
  for _ in range(16):
    batch = next(it)
    longest = int(split.lengths[_rows(batch)].max())
    assert batch["ids"].shape == (4, min(40, -(-longest // 8) * 8))
    assert (batch["ids"][:, 8:] == 0).all() or longest > 8
  assert data.batch_width(np.array([0, 0]), 128, "batch") == 8
  assert data.batch_width(np.array([9]), 12, "batch") == 12
  assert data.batch_width(np.array([9]), 128, "max_len") == 128


@pytest.mark.parametrize("pad_to", ["max_len", "batch"])
def test_process_shares_make_up_the_global_batch(pad_to):
  split = _toy_split()
  whole = data.train_iterator(split, batch_size=8, seed=2, pad_to=pad_to)
  shares = [data.train_iterator(split, batch_size=8, seed=2, pad_to=pad_to,
                                process_index=p, process_count=2)
            for p in range(2)]
  for _ in range(6):
    want = next(whole)
    got = [next(s) for s in shares]
    assert got[0]["ids"].shape == got[1]["ids"].shape == (4, want["ids"].shape[1])
    for key in ("ids", "labels"):
      np.testing.assert_array_equal(np.concatenate([g[key] for g in got]),
                                    want[key])
  with pytest.raises(data.DataError, match="divisible"):
    data.train_iterator(split, batch_size=9, seed=0, pad_to=pad_to,
                        process_count=2)


def test_iterator_state_mismatch_and_tiny_split_errors():
  split = _toy_split()
  state = data.train_iterator(split, batch_size=8, seed=0).get_state()
  with pytest.raises(data.DataError, match="batch_size"):
    data.train_iterator(split, batch_size=4, seed=0).set_state(state)
  with pytest.raises(data.DataError, match="larger than the split"):
    data.train_iterator(split, batch_size=64, seed=0)
  with pytest.raises(data.DataError, match="pad_to"):
    data.train_iterator(split, batch_size=8, seed=0, pad_to="longest")


@pytest.mark.parametrize("pad_to", ["max_len", "batch"])
def test_eval_batches_cover_every_example_once(pad_to):
  split = _toy_split()
  batches = list(data.eval_batches(split, batch_size=8, pad_to=pad_to))
  assert len(batches) == 5 == data.num_eval_batches(split, 8)
  rows = [r for b in batches for r, w in zip(_rows(b), b["weights"]) if w]
  assert rows == list(range(37))
  last = batches[-1]
  assert last["weights"].tolist() == [1] * 5 + [0] * 3
  assert (last["ids"][5:] == 0).all()
  assert all(b["ids"].dtype == np.int32 and b["labels"].dtype == np.int32
             for b in batches)
  shares = [list(data.eval_batches(split, batch_size=8, pad_to=pad_to,
                                   process_index=p, process_count=2))
            for p in range(2)]
  assert len(shares[0]) == len(shares[1]) == 5
  for whole, a, b in zip(batches, *shares):
    for key in ("ids", "labels", "weights"):
      np.testing.assert_array_equal(np.concatenate([a[key], b[key]]),
                                    whole[key])


# ----------------------------------------------------------------- bad input


def _write(path, content):
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.write_bytes(content)
  return str(path)


def _files_cfg(tmp_path, train, test, dev=None, ext="csv", **kw):
  cfg = _cfg(source="files", max_len=8, vocab__min_freq=1,
             files__train=_write(tmp_path / f"train.{ext}", train),
             files__test=_write(tmp_path / f"test.{ext}", test), **kw)
  if dev is not None:
    cfg.files.dev = _write(tmp_path / f"dev.{ext}", dev)
  return cfg


GOOD_CSV = "text,label\n" + "".join(
    f"\"nice, film {i}\",pos\nbad film {i},neg\n" for i in range(10))


def test_files_csv_tsv_jsonl_with_string_labels(tmp_path):
  bundle = data.load_dataset(_files_cfg(tmp_path, GOOD_CSV, GOOD_CSV),
                             workdir=str(tmp_path / "run"))
  assert bundle.label_names == ["neg", "pos"]
  assert bundle.info["sizes"] == {"train": 18, "dev": 2, "test": 20}
  assert bundle.splits["test"].texts[0] == "nice, film 0"
  assert bundle.splits["test"].labels[:2].tolist() == [1, 0]
  _, names = data.load_vocab_and_labels(str(tmp_path / "run"))
  assert names == ["neg", "pos"]
  tsv = "sentence\tlabel\n\"quoted start\tx\t1\n" + "a b\t0\nc d\t1\n" * 3
  tsv = "sentence\tlabel\n\"quoted\" start\t1\n" + "a b\t0\nc d\t1\n" * 3
  bundle = data.load_dataset(_files_cfg(tmp_path, tsv, tsv, dev=tsv, ext="tsv",
                                        files__text_field="sentence"))
  assert bundle.splits["train"].texts[0] == "\"quoted\" start"
  assert bundle.label_names == ["0", "1"]
  lines = [json.dumps({"review": "great fun", "stars": 1}),
           json.dumps({"review": "dull", "stars": 0})] * 3
  jsonl = "\n".join(lines) + "\n"
  bundle = data.load_dataset(_files_cfg(
      tmp_path, jsonl, jsonl, dev=jsonl, ext="jsonl", files__text_field="review",
      files__label_field="stars", files__label_names=["negative", "positive"]))
  assert bundle.label_names == ["negative", "positive"]
  assert bundle.splits["dev"].labels.tolist() == [1, 0] * 3


def test_missing_file(tmp_path):
  cfg = _files_cfg(tmp_path, GOOD_CSV, GOOD_CSV)
  cfg.files.test = str(tmp_path / "nope.csv")
  with pytest.raises(data.DataError, match=r"test_file .*nope\.csv does not "
                     "exist"):
    data.load_dataset(cfg)


def test_empty_file(tmp_path):
  with pytest.raises(data.DataError, match=r"train_file .*train\.csv is empty"):
    data.load_dataset(_files_cfg(tmp_path, "", GOOD_CSV))


def test_split_with_zero_examples(tmp_path):
  with pytest.raises(data.DataError, match=r"dev_file .*dev\.csv has a header "
                     "but zero examples"):
    data.load_dataset(_files_cfg(tmp_path, GOOD_CSV, GOOD_CSV,
                                 dev="text,label\n"))
  with pytest.raises(data.DataError, match="zero examples"):
    data.load_dataset(_cfg(source="planted", max_len=32, planted__dev_size=0))


@pytest.mark.parametrize("field", ["text", "label"])
def test_missing_column(tmp_path, field):
  header = "text,stars\n" if field == "label" else "body,label\n"
  with pytest.raises(data.DataError, match=rf"train\.csv: no column '{field}'"):
    data.load_dataset(_files_cfg(tmp_path, header + "a,1\n", GOOD_CSV))
  row = {"text": "a", "label": 1}
  jsonl = json.dumps(row) + "\n" + json.dumps(
      {k: v for k, v in row.items() if k != field}) + "\n"
  with pytest.raises(data.DataError, match=rf"train\.jsonl, line 2: no field "
                     rf"'{field}'"):
    data.load_dataset(_files_cfg(tmp_path, jsonl, jsonl, ext="jsonl"))


def test_label_outside_known_set(tmp_path):
  dev = "text,label\ngood,pos\nbad,neg\nmeh,neutral\n"
  with pytest.raises(data.DataError, match=r"dev\.csv, line 4, field 'label': "
                     r"label 'neutral' is not among the known labels"):
    data.load_dataset(_files_cfg(tmp_path, GOOD_CSV, GOOD_CSV, dev=dev))


def _rows_csv(labels):
  return "text,label\n" + "".join(f"review {i},{label}\n"
                                  for i, label in enumerate(labels))


# 137 pos, 133 neg and one stray "banana" on line 58 (1 of 271 rows).
STRAY_CSV = _rows_csv(["pos", "neg"] * 28 + ["banana"]
                      + ["pos", "neg"] * 105 + ["pos", "pos", "pos", "pos"])


def test_a_stray_train_label_is_an_error_naming_label_file_and_line(tmp_path):
  cfg = _files_cfg(tmp_path, STRAY_CSV, GOOD_CSV)
  with pytest.raises(data.DataError) as e:
    data.load_dataset(cfg)
  msg = str(e.value)
  assert "label 'banana'" in msg and str(tmp_path / "train.csv") in msg
  assert "line 58" in msg and "1 of 271 rows" in msg and "test_file" in msg
  assert "allow_rare_labels" in msg and "label_names" in msg
  # A small file (1 of 21 rows is over 1 %): caught because no dev/test row
  # has it; every stray line is named, at most five.
  small = GOOD_CSV + "odd one,banana\n" * 7
  with pytest.raises(data.DataError, match=r"train\.csv: label 'banana': in "
                     r"no row of dev_file or test_file; lines 22, 23, 24, "
                     r"25, 26 \(\+2 more\)"):
    data.load_dataset(_files_cfg(tmp_path, small, GOOD_CSV, dev=GOOD_CSV))
  # Under 1 % is an error even when test has the label.
  test = GOOD_CSV + "so-so,meh\n"
  rare = _rows_csv(["pos", "neg"] * 100 + ["meh"])
  with pytest.raises(data.DataError, match=r"label 'meh': 1 of 201 rows "
                     r"\(0\.5 %, under 1 %\); line 202"):
    data.load_dataset(_files_cfg(tmp_path, rare, test))


def test_allow_rare_labels_keeps_the_label_and_logs_counts(tmp_path, caplog):
  cfg = _files_cfg(tmp_path, STRAY_CSV, GOOD_CSV, dev=GOOD_CSV,
                   files__allow_rare_labels=True)
  with caplog.at_level(logging.INFO):
    bundle = data.load_dataset(cfg)
  assert bundle.label_names == ["banana", "neg", "pos"]
  assert bundle.info["class_counts"] == {"train": [1, 133, 137],
                                         "dev": [0, 10, 10],
                                         "test": [0, 10, 10]}
  assert bundle.info["allow_rare_labels"] is True
  messages = [r.getMessage() for r in caplog.records]
  counts = [m for m in messages if "class counts per split" in m]
  assert counts == ["data: class counts per split (labels ['banana', 'neg', "
                    "'pos']): train [1, 133, 137], dev [0, 10, 10], test "
                    "[0, 10, 10]"]
  assert any("label 'banana': 1 of 271 rows" in m and "Kept as a class" in m
             for m in messages)


def test_normal_and_small_files_pass_the_label_check(tmp_path, caplog):
  # 10 rows, 50 % per class, dev carved from train (1 row): passes, and the
  # carved dev does not count as evidence either way.
  ten = _rows_csv(["pos", "neg"] * 5)
  with caplog.at_level(logging.INFO):
    bundle = data.load_dataset(_files_cfg(tmp_path, ten, ten))
  assert bundle.info["sizes"] == {"train": 9, "dev": 1, "test": 10}
  assert any("dev [" in r.getMessage() and "(carved from train_file)"
             in r.getMessage() for r in caplog.records)
  # A large, balanced file with dev and test files.
  big = _rows_csv(["pos", "neg"] * 150)
  bundle = data.load_dataset(_files_cfg(tmp_path, big, ten, dev=ten))
  assert bundle.info["class_counts"]["train"] == [150, 150]
  # With label_names the classes are declared, so no label is stray.
  bundle = data.load_dataset(_files_cfg(
      tmp_path, STRAY_CSV, GOOD_CSV, files__label_names=["neg", "pos", "banana"]))
  assert bundle.label_names == ["neg", "pos", "banana"]
  assert sum(c[2] for c in bundle.info["class_counts"].values()) == 1


def test_malformed_rows_name_the_line(tmp_path):
  with pytest.raises(data.DataError, match=r"train\.csv, line 3: 3 fields"):
    data.load_dataset(_files_cfg(tmp_path, "text,label\na,1\nb,1,x\n",
                                 GOOD_CSV))
  with pytest.raises(data.DataError, match=r"train\.csv, line 2, field "
                     "'label': the label is empty"):
    data.load_dataset(_files_cfg(tmp_path, "text,label\na,\n", GOOD_CSV))
  with pytest.raises(data.DataError, match=r"test\.jsonl, line 2: not valid "
                     "JSON"):
    good = json.dumps({"text": "a", "label": 0}) + "\n"
    data.load_dataset(_files_cfg(tmp_path, good * 4, good + "{oops\n",
                                 dev=good, ext="jsonl"))


def _reviews(n, first_column="text"):
  """A CSV of n one-line reviews (line k + 2 holds review k)."""
  rows = [(f"review number {k} is fine", "pos" if k % 2 else "neg") for k in range(n)]
  if first_column == "label":
    return "label,text\n" + "".join(f"{l},{t}\n" for t, l in rows)
  return "text,label\n" + "".join(f"{t},{l}\n" for t, l in rows)


def _replace_line(text, line, content):
  lines = text.split("\n")
  lines[line - 1] = content
  return "\n".join(lines)


@pytest.mark.parametrize("first_column", ["text", "label"])
def test_a_quote_that_never_closes_is_an_error_naming_where_it_opens(tmp_path, first_column):
  """It would swallow every later row into one text (200 rows read as 20)."""
  quoted = ('"an unclosed quote,pos' if first_column == "text"
            else 'pos,"an unclosed quote')
  train = _replace_line(_reviews(200, first_column), 22, quoted)
  with pytest.raises(data.DataError, match=r"train\.csv, line 22: a quote opens on "
                     r"this line and never closes, so lines 22–201 \(the rest of the "
                     r"file\)"):
    data.load_dataset(_files_cfg(tmp_path, train, _reviews(20, first_column),
                                 files__text_field="text"))


def test_a_quote_closed_late_is_named_where_it_opens(tmp_path, caplog):
  # Closed 39 lines later, the row still has two fields: a warning.
  train = _replace_line(_reviews(200, "label"), 22, 'pos,"a quote opens')
  train = _replace_line(train, 61, 'neg,and closes here"')
  with caplog.at_level(logging.WARNING):
    bundle = data.load_dataset(_files_cfg(tmp_path, train, _reviews(20)))
  assert bundle.info["sizes"]["train"] + bundle.info["sizes"]["dev"] == 200 - 39
  warnings = [r.getMessage() for r in caplog.records if "unusually long" in r.getMessage()]
  assert len(warnings) == 1 and "train.csv" in warnings[0]
  assert "row(s) starting at line 22 (" in warnings[0] and "over 40 lines" in warnings[0]
  # Closed 3 lines later by a quoted text: the field count breaks, and the
  # error names the line where the quote opens, not where the row ends.
  train = _replace_line(_reviews(50), 22, '"a quote opens,pos')
  train = _replace_line(train, 25, '"quoted, text",neg')
  with pytest.raises(data.DataError, match=r"train\.csv, line 22: 3 fields, the header "
                     r"has 2 \(this row spans lines 22–25"):
    data.load_dataset(_files_cfg(tmp_path, train, _reviews(20)))


def test_a_stray_quote_closed_by_the_next_rows_quote_is_an_error(tmp_path):
  """The two rows would read as one with the right number of fields (400 as 399)."""
  quoted = "text,label\n" + "".join(f'"review number {k} is fine",{"pos" if k % 2 else "neg"}\n'
                                    for k in range(400))
  train = _replace_line(quoted, 22, '"a stray quote,pos')
  with pytest.raises(data.DataError, match=r"train\.csv, line 22: the quoted text that "
                     r"opens on this line is closed by the quote on line 23, .*lines 22–23 "
                     r"would be read as one row"):
    data.load_dataset(_files_cfg(tmp_path, train, _reviews(20)))


def test_a_row_far_longer_than_the_others_is_a_warning(tmp_path, caplog):
  train = _replace_line(_reviews(60), 31, "word " * 1000 + ",pos")
  with caplog.at_level(logging.WARNING):
    data.load_dataset(_files_cfg(tmp_path, train, _reviews(20)))
  warnings = [r.getMessage() for r in caplog.records if "unusually long" in r.getMessage()]
  assert len(warnings) == 1 and "line 31 (5000 characters over 1 lines)" in warnings[0]
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # ordinary multi-line texts: no warning
    data.load_dataset(_files_cfg(tmp_path, _reviews(60) + '"two\nlines",pos\n',
                                 _reviews(20)))
  assert not [r for r in caplog.records if "unusually long" in r.getMessage()]


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl"])
def test_nul_bytes_are_an_error_naming_file_and_line(tmp_path, ext):
  good = {"csv": _reviews(20), "tsv": _reviews(20).replace(",", "\t"),
          "jsonl": "".join(json.dumps({"text": f"t {i}", "label": i % 2}) + "\n"
                           for i in range(20))}[ext]
  lines = good.split("\n")
  lines[3] = lines[3][:2] + "\x00" + lines[3][2:]
  bad = "\n".join(lines)
  with pytest.raises(data.DataError, match=rf"test\.{ext}, line 4: a NUL byte; this is "
                     "not a text file"):
    data.load_dataset(_files_cfg(tmp_path, good, bad, ext=ext))


def test_jsonl_control_character_error_is_complete(tmp_path):
  good = json.dumps({"text": "a", "label": 0}) + "\n"
  bad = good + '{"text": "tab\there", "label": 1}\n'
  with pytest.raises(data.DataError) as e:
    data.load_dataset(_files_cfg(tmp_path, good * 4, bad, dev=good, ext="jsonl"))
  assert str(e.value).endswith(
      "test.jsonl, line 2: not valid JSON: a raw control character U+0009 ('\\t') at "
      "column 14, inside a string; JSON needs it escaped (e.g. \\t)")


def test_non_utf8_is_replaced_with_a_warning(tmp_path, caplog):
  train = GOOD_CSV.encode() + b"caf\xe9 latte,pos\n"
  with caplog.at_level(logging.WARNING):
    bundle = data.load_dataset(_files_cfg(tmp_path, train, GOOD_CSV,
                                          dev=GOOD_CSV))
  msgs = [r.getMessage() for r in caplog.records if "UTF-8" in r.getMessage()]
  assert len(msgs) == 1 and "train.csv" in msgs[0] and "line 22" in msgs[0]
  assert "caf\ufffd latte" in bundle.splits["train"].texts


def test_empty_texts_are_kept_as_padding_rows(tmp_path, caplog):
  train = GOOD_CSV + "\"\",pos\n"
  with caplog.at_level(logging.WARNING):
    bundle = data.load_dataset(_files_cfg(tmp_path, train, GOOD_CSV,
                                          dev=GOOD_CSV))
  split = bundle.splits["train"]
  assert len(split) == 21 and split.lengths[-1] == 0
  assert (split.ids[-1] == 0).all()
  assert bundle.info["empty_texts"]["train"] == 1
  assert any("empty text" in r.getMessage() for r in caplog.records)
  weights = [b["weights"] for b in data.eval_batches(split, batch_size=8)]
  assert float(np.concatenate(weights).sum()) == 21


def test_bad_config_values():
  with pytest.raises(data.DataError, match="unknown config.data.source"):
    data.load_dataset(_cfg(source="sst2"))
  with pytest.raises(data.DataError, match="planted.max_len"):
    data.load_dataset(_cfg(source="planted", max_len=16, planted__max_len=24))
  with pytest.raises(data.DataError, match="does not exist"):
    data.load_vocab_and_labels("/nonexistent-safr-workdir")


# ------------------------------------------------------------------- planted


def test_planted_labels_follow_the_rule(planted):
  assert planted.source == "planted"
  assert planted.info["sizes"] == {"train": 400, "dev": 100, "test": 100}
  n_pairs = 0
  for split in planted.splits.values():
    assert split.planted.shape == split.ids.shape
    assert split.negation_pairs.shape == (len(split), 3, 2)
    for i, text in enumerate(split.texts):
      tokens = text.split()
      assert split.labels[i] == planted_lib.rule_label(tokens)
      pos = np.flatnonzero(split.planted[i])
      assert all(tokens[p] in planted_lib.POSITIVE + planted_lib.NEGATIVE
                 + (planted_lib.NEGATOR,) for p in pos)
      assert all(not tokens[p] in planted_lib.POSITIVE + planted_lib.NEGATIVE
                 for p in range(len(tokens)) if p not in pos)
      score = int(split.planted_sign[i].sum())
      assert (score > 0) == bool(split.labels[i])
      for a, b in split.negation_pairs[i]:
        if a >= 0:
          n_pairs += 1
          assert tokens[a] == "not" and b == a + 1
          assert split.planted_sign[i, b] == (
              1 if tokens[b] in planted_lib.NEGATIVE else -1)
    # Planted words are in the vocabulary, never <UNK>.
    assert not (split.ids[split.planted] == data.Vocabulary.unk_id).any()
  assert n_pairs > 50
  counts = planted.info["class_counts"]["train"]
  assert min(counts) > 150


def test_planted_is_seeded():
  a = planted_lib.generate(20, seed=1)
  b = planted_lib.generate(20, seed=1)
  c = planted_lib.generate(20, seed=2)
  assert a.texts == b.texts and a.texts != c.texts
