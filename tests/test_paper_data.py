"""The paper's data by default: ``auto`` finds SST-2 and IMDB in a given path,
the cache or a download (a server on 127.0.0.1), and falls back saying why."""

import contextlib
import functools
import http.server
import io
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from safr_jax import data
from safr_jax import configs
from safr_jax.data import acquire
from safr_jax.data import config as config_lib
from safr_jax.data.sources import aclimdb

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_SST = SHARED_DATA / "sst" / "stanfordSentimentTreebank"
WHY_ABSENT = f"{SHARED_DATA} is absent (a user's checkout): the paper's data is not here"

# A miniature treebank: (sentence_index, sentence, split label, sentiment).
SENTENCES = [(1, "a gorgeous film .", 1, 0.9), (2, "dull and tired .", 1, 0.1),
             (3, "slow going .", 2, 0.3), (4, "pure joy .", 2, 0.95),
             (5, "bad .", 3, 0.0), (6, "great .", 3, 0.8)]


def _treebank_files() -> dict[str, str]:
  return {
      "datasetSentences.txt": "sentence_index\tsentence\n" + "".join(
          f"{i}\t{s}\n" for i, s, _, _ in SENTENCES),
      "datasetSplit.txt": "sentence_index,splitset_label\n" + "".join(
          f"{i},{split}\n" for i, _, split, _ in SENTENCES),
      "dictionary.txt": "".join(f"{s}|{100 + i}\n" for i, s, _, _ in SENTENCES),
      "sentiment_labels.txt": "phrase ids|sentiment values\n" + "".join(
          f"{100 + i}|{v}\n" for i, _, _, v in SENTENCES),
  }


def _treebank_zip() -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    for name, text in _treebank_files().items():
      z.writestr(f"stanfordSentimentTreebank/{name}", text)
  return buffer.getvalue()


def _imdb_tar_gz(per_folder: int = 3) -> bytes:
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    for official in ("train", "test"):
      for folder in ("neg", "pos"):
        for i in range(per_folder):
          body = f"{folder} review {official} {i} <br /><br />fine".encode()
          info = tarfile.TarInfo(f"aclImdb/{official}/{folder}/{i}_{7 if folder == 'pos' else 2}.txt")
          info.size = len(body)
          tar.addfile(info, io.BytesIO(body))
  return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
  def do_HEAD(self):  # pylint: disable=invalid-name
    self._send(body=False)

  def do_GET(self):  # pylint: disable=invalid-name
    self._send(body=True)

  def _send(self, body: bool):
    payload = self.server.files.get(self.path)
    if payload is None:
      self.send_error(404)
      return
    if body:
      self.server.gets.append(self.path)
    self.send_response(200)
    self.send_header("Content-Length", str(len(payload)))
    self.end_headers()
    if body:
      self.wfile.write(payload)

  def log_message(self, *args):  # quiet
    del args


@contextlib.contextmanager
def _server(files: dict[str, bytes]):
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  server.files, server.gets = files, []
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()


def _cfg(tmp_path, **overrides):
  """A small ``config.data``; ``group__field=value`` sets a nested field."""
  cfg = data.default_config()
  overrides = dict(max_len=16, vocab__min_freq=1, download__cache_dir=str(tmp_path / "cache"),
                   download__probe_timeout_s=2.0, max_examples=40, **overrides)
  for key, value in overrides.items():
    *path, last = key.split("__")
    node = cfg
    for part in path:
      node = node[part]
    node[last] = value
  return cfg


def _offline(url, timeout):
  del timeout
  return False, f"test: offline ({url})"


# --- SST-2 ----------------------------------------------------------------------


def test_auto_downloads_the_treebank_then_reads_the_cache_offline(tmp_path):
  with _server({"/sst.zip": _treebank_zip()}) as (server, address):
    cfg = _cfg(tmp_path, sst_treebank__url=f"{address}/sst.zip")
    bundle = data.load_dataset(cfg)
    assert server.gets == ["/sst.zip"]
  assert bundle.source == "sst_treebank" and bundle.info["fallback_reason"] is None
  assert bundle.info["obtained"] == f"downloaded from {address}/sst.zip"
  assert bundle.info["sizes"] == {"train": 2, "dev": 2, "test": 2}
  cached = tmp_path / "cache" / "stanfordSentimentTreebank"
  assert sorted(p.name for p in cached.iterdir()) == sorted(_treebank_files())
  # Server gone: the cache is enough, and nothing is probed.
  again = data.load_dataset(cfg, probe=_must_not_probe)
  assert again.info["obtained"] == "cache"
  for name in ("train", "dev", "test"):
    np.testing.assert_array_equal(again.splits[name].ids, bundle.splits[name].ids)


def _must_not_probe(url, timeout):
  raise AssertionError(f"probed {url} ({timeout} s) although the data is here")


def test_auto_falls_back_step_by_step_and_says_why(tmp_path):
  """Offline, nothing cached: the benchmark's stand-in, every step passed over
  named in order. GLUE's phrase-level SST-2 is never inside auto."""
  bundle = data.load_dataset(_cfg(tmp_path), probe=_offline)
  assert bundle.source == "rt_polarity"
  steps = bundle.info["auto_steps"]
  assert steps[0] == f"sst_treebank: not in {tmp_path / 'cache'}"
  assert steps[1].startswith("sst_treebank: cannot download https://nlp.stanford.edu/")
  assert len(steps) == 2 and bundle.info["fallback_reason"] == "; ".join(steps)
  assert not (tmp_path / "cache" / "stanfordSentimentTreebank").exists()


def test_auto_is_the_configs_benchmark_and_nothing_else(tmp_path):
  for name, stand_in in (("sst2", "rt_polarity"), ("imdb", "imdb_builtin")):
    cfg = configs.get_config(name).data
    cfg.download.cache_dir = str(tmp_path / "cache")
    resolution = acquire.resolve(config_lib.complete(cfg), probe=_offline)
    assert resolution.source.name == stand_in and resolution.reason
  with pytest.raises(data.DataError, match="config.data.benchmark must be one of "
                     r"\('sst_treebank', 'aclimdb'\), got 'glue/sst2'"):
    data.load_dataset(_cfg(tmp_path, benchmark="glue/sst2"), probe=_offline)


def test_a_corrupt_download_falls_back_and_leaves_nothing(tmp_path):
  with _server({"/sst.zip": b"this is not a zip"}) as (_, address):
    bundle = data.load_dataset(_cfg(tmp_path, sst_treebank__url=f"{address}/sst.zip"))
  assert bundle.source == "rt_polarity"
  assert f"{address}/sst.zip" in bundle.info["auto_steps"][1]
  assert not any(p.name.startswith("stanfordSentimentTreebank")
                 for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock"))


def _zip(files: dict[str, str]) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as z:
    for name, text in files.items():
      z.writestr(f"stanfordSentimentTreebank/{name}", text)
  return buffer.getvalue()


# Every file the treebank needs, none of which reads as it.
GARBAGE = {name: "\x7fELF not a treebank\n" for name in _treebank_files()}


@pytest.mark.parametrize("files, why", [
    (GARBAGE, r"datasetSentences\.txt, line 1: 1 field"),
    (dict(_treebank_files(), **{"dictionary.txt": ""}), r"dictionary\.txt is empty")],
    ids=["unparseable", "empty_dictionary"])
def test_a_download_that_does_not_read_is_never_cached(tmp_path, files, why):
  cache = tmp_path / "cache" / "stanfordSentimentTreebank"
  routes = {"/sst.zip": _zip(files)}
  with _server(routes) as (server, address):
    cfg = _cfg(tmp_path, source="sst_treebank", sst_treebank__url=f"{address}/sst.zip")
    with pytest.raises(data.DataError, match=rf"the download from {address}/sst\.zip is "
                       rf"not usable: {re.escape(str(cache))}/{why}"):
      data.load_dataset(cfg)
    assert not cache.exists()
    routes["/sst.zip"] = _treebank_zip()  # the next run, a good copy: downloaded
    assert data.load_dataset(cfg).info["obtained"] == f"downloaded from {address}/sst.zip"
    assert server.gets == ["/sst.zip"] * 2


def test_a_cached_copy_that_no_longer_reads_is_moved_aside(tmp_path, caplog):
  cache = tmp_path / "cache" / "stanfordSentimentTreebank"

  def garbage_in_the_cache():
    cache.mkdir(parents=True)
    for name, text in GARBAGE.items():
      (cache / name).write_text(text)

  garbage_in_the_cache()  # an explicit source downloads it again
  with _server({"/sst.zip": _treebank_zip()}) as (server, address):
    cfg = _cfg(tmp_path, source="sst_treebank", sst_treebank__url=f"{address}/sst.zip")
    with caplog.at_level("WARNING"):
      bundle = data.load_dataset(cfg)
  assert bundle.info["obtained"] == f"downloaded from {address}/sst.zip"
  (moved,) = (tmp_path / "cache").glob("stanfordSentimentTreebank.unusable-*")
  assert sorted(p.name for p in moved.iterdir()) == sorted(GARBAGE)
  said = [r.getMessage() for r in caplog.records if "moved aside" in r.getMessage()]
  assert len(said) == 1 and str(cache) in said[0] and str(moved) in said[0], said
  shutil.rmtree(cache)
  shutil.rmtree(moved)
  garbage_in_the_cache()  # auto, offline, falls back saying why
  bundle = data.load_dataset(_cfg(tmp_path), probe=_offline)
  assert bundle.source == "rt_polarity"
  first = bundle.info["auto_steps"][0]
  assert first.startswith(f"sst_treebank: the cached copy does not read ({cache}/"
                          "datasetSentences.txt, line 1: ") and "moved aside to" in first
  assert bundle.info["fallback_reason"].startswith(first)


# --- IMDB -----------------------------------------------------------------------


def test_imdb_auto_order(tmp_path):
  archive = tmp_path / "aclImdb_v1.tar.gz"
  archive.write_bytes(_imdb_tar_gz())
  imdb = dict(benchmark="aclimdb")
  resolve = lambda probe, **kw: acquire.resolve(config_lib.complete(_cfg(tmp_path, **imdb, **kw)), probe)
  given = resolve(_offline, aclimdb__dir=str(archive))
  assert (given.source.name, given.path, given.obtained) == (
      "aclimdb", archive, "config.data.aclimdb.dir")
  # Not given, not cached, offline: the builtin stand-in.
  fallback = resolve(_offline)
  assert fallback.source.name == "imdb_builtin" and "aclimdb: cannot download" in fallback.reason
  (tmp_path / "cache").mkdir(exist_ok=True)
  (tmp_path / "cache" / "aclImdb_v1.tar.gz").write_bytes(archive.read_bytes())
  cached = resolve(_must_not_probe)
  assert (cached.source.name, cached.obtained, cached.reason) == ("aclimdb", "cache", None)


def test_imdb_archive_is_downloaded_whole(tmp_path, monkeypatch):
  # The miniature archive has 3 reviews a class: 2 train, 1 dev.
  monkeypatch.setattr(aclimdb, "read_aclimdb",
                      functools.partial(aclimdb.read_aclimdb, train_per_class=2))
  archive = _imdb_tar_gz()  # once: gzip stamps the time into its header
  with _server({"/imdb.tar.gz": archive}) as (server, address):
    cfg = _cfg(tmp_path, benchmark="aclimdb", aclimdb__url=f"{address}/imdb.tar.gz")
    bundle = data.load_dataset(cfg, probe=lambda url, t: (
        (True, "test: up") if url.startswith(address) else (False, "test: offline")))
  assert server.gets == ["/imdb.tar.gz"]
  assert bundle.source == "aclimdb" and bundle.info["sizes"]["test"] == 6
  assert (tmp_path / "cache" / "aclImdb_v1.tar.gz").read_bytes() == archive
  # Texts as the authors read them: <br /> kept, case kept.
  assert "<br" in " ".join(bundle.splits["train"].texts)


# --- the paper's own files (beside the checkout) ---------------------------------


@pytest.mark.skipif(not SHARED_SST.is_dir(), reason=WHY_ABSENT)
def test_the_papers_sst2_sizes():
  bundle = data.load_dataset(dict(source="sst_treebank", sst_treebank={"dir": str(SHARED_SST)}))
  assert bundle.info["sizes"] == {"train": 6244, "dev": 825, "test": 1743}
  assert bundle.info["class_counts"] == {"train": [3122, 3122], "dev": [408, 417],
                                         "test": [873, 870]}
  dropped = {k: v["dropped_unmatched"]
             for k, v in bundle.info["sst_treebank"]["per_split"].items()}
  assert dropped == {"train": 427, "dev": 57, "test": 92}


@pytest.mark.skipif(not SHARED_SST.is_dir(), reason=WHY_ABSENT)
def test_train_py_trains_on_the_papers_sst2(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "train.py", "--config=configs/sst2.py:quick", f"--workdir={workdir}",
       f"--config.data.sst_treebank.dir={SHARED_SST}", "--config.train.num_epochs=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = json.loads((workdir / "results.json").read_text())
  assert results["source"] == "sst_treebank"
  assert results["dataset"]["requested_source"] == "auto"
  assert results["dataset"]["fallback_reason"] is None
  assert results["dataset"]["sst_treebank"]["per_split"]["train"]["kept"] == 6244
  assert "source='auto' could not use" not in proc.stderr


# --- free text, tokenised like the training texts ---------------------------------


def _unknown(bundle, text):
  vocab = bundle.vocab
  return [t for t in text.split() if vocab.encode(t) == [vocab.unk_id]]


def test_free_text_is_split_like_rt_polarity(tmp_path):
  bundle = data.load_dataset(dict(source="rt_polarity", max_len=64))
  typed = "It's not bad at all, a moving film!"
  assert "all," in _unknown(bundle, typed)  # whitespace alone: one unknown word
  prepared = data.prepare_text(typed, "rt_polarity")
  assert prepared == "it's not bad at all , a moving film !"
  assert _unknown(bundle, prepared) == []


@pytest.mark.skipif(not SHARED_SST.is_dir(), reason=WHY_ABSENT)
def test_free_text_is_split_like_the_treebank():
  bundle = data.load_dataset(dict(source="sst_treebank", sst_treebank={"dir": str(SHARED_SST)}))
  # (Brackets become -LRB-/-RRB-, as the treebank spells them, but the authors'
  # reader drops every sentence holding them: no train token to match.)
  typed = 'It isn\'t "great" at all, but it moves.'
  prepared = data.prepare_text(typed, "sst_treebank")
  assert prepared == "It is n't `` great '' at all , but it moves ."
  assert _unknown(bundle, prepared) == []
  assert _unknown(bundle, typed)
