"""Tests of the download cache against a real HTTP server on 127.0.0.1."""

import collections
import http.server
import io
import pathlib
import tarfile
import threading
import time
import zipfile

import pytest

from safr_jax.data.sources import aclimdb
from safr_jax.data import download
from safr_jax.data.sources import sst_treebank
from safr_jax.errors import DataError

SST_NAME = "stanfordSentimentTreebank"
IMDB_NAME = "aclImdb_v1.tar.gz"
# Tiny stand-ins for the four treebank files (the cache only checks presence).
SST_FILES = {name: f"contents of {name}\n".encode()
             for name in sst_treebank.FILES}


class Server:
  """Serves ``routes`` (path -> bytes); counts requests per (method, path).

  A path in ``cut`` is answered with its full Content-Length but only half
  its body, then the connection is closed (a download cut off mid-body). A GET
  may also hang before its headers (``hang_before_headers``), hang after
  ``hang_after`` bytes of its body, or send one byte every ``drip_s`` seconds,
  each until the server closes.
  """

  def __init__(self):
    self.routes: dict[str, bytes] = {}
    self.cut: set[str] = set()
    self.delay_s = 0.0
    self.hang_before_headers, self.hang_after, self.drip_s = False, None, 0.0
    self.released = threading.Event()
    self.requests = collections.Counter()
    lock = threading.Lock()
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):

      def _answer(self, body_too: bool):
        with lock:
          server.requests[(self.command, self.path)] += 1
        body = server.routes.get(self.path)
        if body is None:
          self.send_error(404)
          return
        if body_too:
          time.sleep(server.delay_s)
          if server.hang_before_headers:
            server.released.wait(60)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not body_too:
          return
        if server.drip_s:
          for i in range(len(body)):
            if server.released.wait(server.drip_s):
              return
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
          return
        if server.hang_after is not None:
          self.wfile.write(body[:server.hang_after])
          self.wfile.flush()
          server.released.wait(60)
          return
        if self.path in server.cut:
          self.wfile.write(body[:len(body) // 2])
          self.wfile.flush()
          self.close_connection = True
          return
        self.wfile.write(body)

      def do_HEAD(self):  # pylint: disable=invalid-name
        self._answer(body_too=False)

      def do_GET(self):  # pylint: disable=invalid-name
        self._answer(body_too=True)

      def log_message(self, *args):
        pass

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.httpd.daemon_threads = True
    self.thread = threading.Thread(target=self.httpd.serve_forever,
                                   kwargs={"poll_interval": 0.05}, daemon=True)
    self.thread.start()
    self.closed = False

  def url(self, path: str) -> str:
    return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

  def gets(self, path: str) -> int:
    return self.requests[("GET", path)]

  def close(self):
    self.released.set()
    if not self.closed:
      self.httpd.shutdown()
      self.httpd.server_close()
      self.closed = True


@pytest.fixture
def server():
  s = Server()
  yield s
  s.close()


def zip_bytes(members: dict[str, bytes]) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
    for name, data in members.items():
      zf.writestr(name, data)
  return buffer.getvalue()


def sst_zip(files=SST_FILES) -> bytes:
  """As stanfordSentimentTreebank.zip: one top folder, plus macOS litter."""
  members = {f"{SST_NAME}/{name}": data for name, data in files.items()}
  members[f"__MACOSX/{SST_NAME}/._dictionary.txt"] = b"\x00\x05"
  return zip_bytes(members)


def imdb_tar_gz() -> bytes:
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    for split in ("train", "test"):
      for cls in ("neg", "pos"):
        data = f"a {cls} review".encode()
        info = tarfile.TarInfo(f"aclImdb/{split}/{cls}/0_5.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


def get_sst(server, cache, path="/sst.zip", **kwargs):
  kwargs.setdefault("probe_timeout", 2.0)
  kwargs.setdefault("progress", False)
  return download.ensure_folder_from_zip(
      server.url(path), cache_dir=cache, name=SST_NAME,
      required_files=sst_treebank.FILES, **kwargs)


def get_imdb(server, cache, path="/imdb.tar.gz", **kwargs):
  kwargs.setdefault("probe_timeout", 2.0)
  kwargs.setdefault("progress", False)
  kwargs.setdefault("check", aclimdb.check_archive)
  return download.ensure_file(server.url(path), cache_dir=cache,
                              filename=IMDB_NAME, **kwargs)


def listing(cache: pathlib.Path) -> set[str]:
  return {p.name for p in cache.iterdir()} if cache.exists() else set()


def only_locks(cache: pathlib.Path) -> bool:
  """Nothing but (empty) lock files: no result, no temporary."""
  return all(name.endswith(".lock") for name in listing(cache))


def test_zip_download_fills_the_cache_once(server, tmp_path):
  server.routes["/sst.zip"] = sst_zip()
  cache = tmp_path / "cache"
  # The real probe (a HEAD request) and the progress setting of callers.
  folder = get_sst(server, cache, progress=True)
  assert folder == cache / SST_NAME
  assert {p.name: p.read_bytes() for p in folder.iterdir()} == SST_FILES
  assert listing(cache) == {SST_NAME, f"{SST_NAME}.lock"}
  assert get_sst(server, cache) == folder
  assert server.gets("/sst.zip") == 1


def test_zip_with_files_at_its_top_level(server, tmp_path):
  server.routes["/flat.zip"] = zip_bytes(SST_FILES)
  folder = get_sst(server, tmp_path, path="/flat.zip")
  assert {p.name for p in folder.iterdir()} == set(SST_FILES)


def test_file_download_is_checked_and_kept_whole(server, tmp_path):
  body = imdb_tar_gz()
  server.routes["/imdb.tar.gz"] = body
  path = get_imdb(server, tmp_path)
  assert path == tmp_path / IMDB_NAME and path.read_bytes() == body
  assert listing(tmp_path) == {IMDB_NAME, f"{IMDB_NAME}.lock"}


@pytest.mark.parametrize("get, path, body", [
    (get_sst, "/sst.zip", sst_zip()),
    (get_imdb, "/imdb.tar.gz", imdb_tar_gz())], ids=["zip", "file"])
def test_a_cut_off_download_leaves_nothing_and_the_next_one_works(
    server, tmp_path, get, path, body):
  server.routes[path] = body
  server.cut.add(path)
  with pytest.raises(download.DownloadUnavailable) as e:
    get(server, tmp_path)
  message = str(e.value)
  assert f"cut off after {len(body) // 2} of {len(body)} bytes" in message
  assert server.url(path) in message and "\n" not in message
  assert only_locks(tmp_path), listing(tmp_path)
  server.cut.clear()
  result = get(server, tmp_path)
  assert result.exists() and server.gets(path) == 2


@pytest.mark.parametrize("get, body, message", [
    (get_sst, b"this is not a zip file" * 10, "is not a readable zip file"),
    (get_sst, sst_zip()[:-30], "is not a readable zip file"),
    (get_imdb, b"this is not a gzip file" * 10, "not a gzip file"),
    (get_imdb, imdb_tar_gz()[:-5], "not a readable .tar.gz"),
], ids=["not_zip", "truncated_zip", "not_gzip", "truncated_tar_gz"])
def test_a_corrupt_archive_is_a_one_line_error(server, tmp_path, get, body,
                                               message):
  path = "/sst.zip" if get is get_sst else "/imdb.tar.gz"
  server.routes[path] = body
  with pytest.raises(DataError, match=message) as e:
    get(server, tmp_path)
  assert not isinstance(e.value, download.DownloadUnavailable)
  assert server.url(path) in str(e.value) and "\n" not in str(e.value)
  assert only_locks(tmp_path), listing(tmp_path)


def test_an_archive_without_the_needed_files_names_them(server, tmp_path):
  files = {k: v for k, v in SST_FILES.items() if k != "sentiment_labels.txt"}
  server.routes["/sst.zip"] = sst_zip(files)
  with pytest.raises(DataError, match="lacks sentiment_labels.txt") as e:
    get_sst(server, tmp_path)
  assert "\n" not in str(e.value)
  assert only_locks(tmp_path), listing(tmp_path)
  # The IMDB check: a tar.gz without test/pos reviews.
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
    info = tarfile.TarInfo("aclImdb/train/neg/0_1.txt")
    tar.addfile(info, io.BytesIO(b""))
  server.routes["/imdb.tar.gz"] = buffer.getvalue()
  with pytest.raises(DataError, match=f"not usable: {IMDB_NAME} has no review "
                     "files .*aclImdb/test/pos"):
    get_imdb(server, tmp_path)
  assert only_locks(tmp_path), listing(tmp_path)


def test_unsafe_zip_paths_are_refused(server, tmp_path):
  cache = tmp_path / "cache"
  for i, evil in enumerate(("../escaped.txt", "/abs/escaped.txt")):
    server.routes[f"/evil{i}.zip"] = zip_bytes({**SST_FILES, evil: b"x"})
    with pytest.raises(DataError, match="unsafe path"):
      get_sst(server, cache, path=f"/evil{i}.zip")
  assert not (tmp_path / "escaped.txt").exists()
  assert only_locks(cache), listing(cache)


def test_the_cache_needs_no_network(server, tmp_path):
  server.routes["/sst.zip"] = sst_zip()
  server.routes["/imdb.tar.gz"] = imdb_tar_gz()
  sst, imdb = get_sst(server, tmp_path), get_imdb(server, tmp_path)
  server.close()
  probed = []

  def probe(url, timeout):
    probed.append(url)
    return False, "offline"

  assert get_sst(server, tmp_path, probe=probe) == sst
  assert get_imdb(server, tmp_path, probe=probe) == imdb
  assert not probed


def test_an_unreachable_host_is_download_unavailable(server, tmp_path):
  server.routes["/sst.zip"] = sst_zip()
  cache = tmp_path / "cache"
  with pytest.raises(download.DownloadUnavailable, match="cannot download .*: "
                     "no route to the moon"):
    get_sst(server, cache, probe=lambda url, t: (False, "no route to the moon"))
  assert server.gets("/sst.zip") == 0 and not cache.exists()
  # The real probe against a closed port.
  server.close()
  with pytest.raises(download.DownloadUnavailable) as e:
    get_imdb(server, cache, probe=download.probe_url)
  assert "\n" not in str(e.value)
  assert not cache.exists()


def test_http_errors_are_download_unavailable(server, tmp_path):
  with pytest.raises(download.DownloadUnavailable, match="HTTP 404"):
    get_sst(server, tmp_path, path="/missing.zip",
            probe=lambda url, t: (True, "HTTP 404"))
  assert only_locks(tmp_path)


def test_two_callers_at_once_download_once(server, tmp_path):
  server.routes["/sst.zip"] = sst_zip()
  server.delay_s = 0.5  # the first download is still running when both look
  barrier = threading.Barrier(2)
  results, errors = [], []

  def call():
    barrier.wait()
    try:
      results.append(get_sst(server, tmp_path))
    except BaseException as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=call) for _ in range(2)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=20)
  assert not errors and results == [tmp_path / SST_NAME] * 2
  # Both probed (so neither found the folder before starting), one downloaded.
  assert server.requests[("HEAD", "/sst.zip")] == 2
  assert server.gets("/sst.zip") == 1
  assert listing(tmp_path) == {SST_NAME, f"{SST_NAME}.lock"}


def test_leftovers_of_a_killed_process_are_never_trusted(server, tmp_path):
  # What a process killed mid-download leaves: an empty download, a half
  # unpacked folder (with all required files, but not renamed into place).
  (tmp_path / f".{SST_NAME}.x1.part").touch()
  half = tmp_path / f".{SST_NAME}.x2.unpack" / SST_NAME
  half.mkdir(parents=True)
  for name in SST_FILES:
    (half / name).write_bytes(b"")
  (tmp_path / f".{IMDB_NAME}.x3.part").touch()
  server.routes["/sst.zip"] = sst_zip()
  server.routes["/imdb.tar.gz"] = imdb_tar_gz()
  folder = get_sst(server, tmp_path)
  assert (folder / "dictionary.txt").read_bytes() == SST_FILES["dictionary.txt"]
  get_imdb(server, tmp_path)
  assert server.gets("/sst.zip") == 1 and server.gets("/imdb.tar.gz") == 1
  assert listing(tmp_path) == {SST_NAME, f"{SST_NAME}.lock", IMDB_NAME,
                               f"{IMDB_NAME}.lock"}


def test_an_edited_cache_entry_is_not_overwritten(server, tmp_path):
  server.routes["/sst.zip"] = sst_zip()
  edited = tmp_path / SST_NAME
  edited.mkdir()
  (edited / "dictionary.txt").write_bytes(b"mine")
  with pytest.raises(DataError, match="exists but is not a complete download.*"
                     "delete it"):
    get_sst(server, tmp_path)
  assert (edited / "dictionary.txt").read_bytes() == b"mine"
  assert server.gets("/sst.zip") == 0


def test_an_interrupt_removes_the_temporaries(server, tmp_path):
  server.routes["/imdb.tar.gz"] = imdb_tar_gz()

  def interrupted(path):
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    get_imdb(server, tmp_path, check=interrupted)
  assert only_locks(tmp_path), listing(tmp_path)
  assert get_imdb(server, tmp_path).is_file()


@pytest.mark.parametrize("where", ["before_headers", "mid_body"])
def test_a_download_that_stalls_fails_saying_what_had_arrived(server, tmp_path, where):
  body = sst_zip()
  server.routes["/sst.zip"] = body
  if where == "mid_body":
    server.hang_after = len(body) // 2
  else:
    server.hang_before_headers = True
  start = time.monotonic()
  with pytest.raises(download.DownloadUnavailable) as e:
    get_sst(server, tmp_path, stall_s=0.5, limit_s=60)
  assert time.monotonic() - start < 10
  arrived = f"{len(body) // 2} of {len(body)} bytes" if where == "mid_body" else "0 bytes"
  assert (f"download of {server.url('/sst.zip')} stalled: no data for 0.5 s "
          f"(config.data.download.stall_s) after {arrived} (") in str(e.value)
  assert "\n" not in str(e.value) and only_locks(tmp_path), listing(tmp_path)


def test_a_download_that_trickles_fails_at_the_overall_limit(server, tmp_path):
  """One byte every 50 ms never stalls; the overall limit ends it."""
  body = imdb_tar_gz()
  server.routes["/imdb.tar.gz"] = body
  server.drip_s = 0.05
  start = time.monotonic()
  with pytest.raises(download.DownloadUnavailable, match=(
      rf"took over 1 s \(config\.data\.download\.timeout_s\) and was stopped after "
      rf"[1-9]\d* of {len(body)} bytes")):
    get_imdb(server, tmp_path, stall_s=5, limit_s=1)
  assert time.monotonic() - start < 10
  assert only_locks(tmp_path), listing(tmp_path)


def test_the_limits_come_from_the_config_and_are_checked(server, tmp_path):
  from safr_jax.data import acquire, config  # pylint: disable=g-import-not-at-top
  body = sst_zip()
  server.routes["/sst.zip"] = body
  server.hang_after = 100

  def cfg(**limits):
    c = config.default_config()
    c.download.update(cache_dir=str(tmp_path), **limits)
    c.sst_treebank.url = server.url("/sst.zip")
    return c

  up = lambda url, t: (True, "test")  # pylint: disable=unnecessary-lambda-assignment
  with pytest.raises(download.DownloadUnavailable, match=r"no data for 0\.5 s \(config"
                     rf"\.data\.download\.stall_s\) after 100 of {len(body)} bytes"):
    acquire.fetch(sst_treebank.SOURCE, cfg(stall_s=0.5), probe=up)
  for field, value in (("stall_s", 0), ("timeout_s", float("nan"))):
    with pytest.raises(DataError, match=rf"config\.data\.download\.{field} must be a "
                       r"number of seconds > 0, got"):
      acquire.fetch(sst_treebank.SOURCE, cfg(**{field: value}), probe=up)
