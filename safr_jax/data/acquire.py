"""Where the paper's two benchmarks are on disk: a path the user gave, the
cache, or a download into the cache.

* SST-2 (source ``sst_treebank``): the unzipped ``stanfordSentimentTreebank``
  folder, from ``config.data.sst_dir``, else ``<cache_dir>/stanfordSentimentTreebank``,
  else ``sst_url`` (``stanfordSentimentTreebank.zip``) unzipped into the cache.
* IMDB (source ``aclimdb``): ``aclImdb_v1.tar.gz`` or the unpacked ``aclImdb/``
  folder, from ``config.data.imdb_dir``, else ``<cache_dir>/aclImdb_v1.tar.gz``,
  else ``imdb_url`` downloaded into the cache (kept as the archive: the reader
  streams it without unpacking).

A download happens only after its host answered the probe, lands whole or not
at all, and is shared by processes started together (``download.py``).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

from safr_jax.data import aclimdb as aclimdb_lib
from safr_jax.data import config as config_lib
from safr_jax.data import download as download_lib
from safr_jax.data import sst_treebank as sst_lib
from safr_jax.errors import DataError

Probe = Callable[[str, float], tuple[bool, str]]


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """How one benchmark is found, cached and downloaded."""
  source: str      # the config.data.source that reads it
  path_field: str  # config.data field of a user-given path
  url_field: str   # config.data field of the download address
  cache_name: str  # file or folder name inside cache_dir
  archive: str     # "zip" (unpacked into a folder) or "tar.gz" (kept whole)


SST = Benchmark("sst_treebank", "sst_dir", "sst_url", "stanfordSentimentTreebank",
                "zip")
IMDB = Benchmark("aclimdb", "imdb_dir", "imdb_url", "aclImdb_v1.tar.gz", "tar.gz")
BY_SOURCE = {b.source: b for b in (SST, IMDB)}


def cache_dir(cfg) -> pathlib.Path:
  """``config.data.cache_dir`` with ``~`` expanded."""
  value = config_lib.get(cfg, "cache_dir")
  if not value:
    raise DataError("config.data.cache_dir is empty; give a folder for "
                    "downloaded data (default ~/.cache/safr_jax/data)")
  return pathlib.Path(str(value)).expanduser()


def given_path(bench: Benchmark, cfg) -> pathlib.Path | None:
  """The user's ``sst_dir`` / ``imdb_dir``, or None when unset."""
  value = config_lib.get(cfg, bench.path_field)
  return pathlib.Path(str(value)).expanduser() if value else None


def url(bench: Benchmark, cfg) -> str:
  return str(config_lib.get(cfg, bench.url_field))


def cached(bench: Benchmark, cfg) -> pathlib.Path | None:
  """The complete copy in the cache, or None (never touches the network).

  Only a finished download is ever at this path (``download.py`` renames it
  into place last), so its presence is enough.
  """
  path = cache_dir(cfg) / bench.cache_name
  if bench.archive == "zip":
    ok = download_lib.folder_complete(path, sst_lib.FILES)
  else:
    ok = path.is_file()
  return path if ok else None


def limits(cfg) -> tuple[float, float]:
  """(``download_stall_s``, ``download_timeout_s``), each checked."""
  out = []
  for field in ("download_stall_s", "download_timeout_s"):
    value = config_lib.get(cfg, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
      raise DataError(f"config.data.{field} must be a number of seconds > 0, got "
                      f"{value!r}")
    out.append(float(value))
  return out[0], out[1]


def move_aside(bench: Benchmark, cfg, why: str) -> pathlib.Path:
  """Renames the cached copy that no longer reads (``why``) out of the way."""
  return download_lib.move_aside(cache_dir(cfg) / bench.cache_name, why)


def download(bench: Benchmark, cfg, *, probe: Probe, timeout: float,
             progress: bool = True) -> pathlib.Path:
  """Downloads ``bench`` into the cache (or waits for another process that
  is doing so) and returns its path.

  Raises:
    download.DownloadUnavailable: the host did not answer the probe, or the
      download failed, stalled or took too long.
    DataError: the archive is corrupt, or its files do not read as the source
      reads them (nothing is left in the cache).
  """
  address = url(bench, cfg)
  stall_s, limit_s = limits(cfg)
  if bench.archive == "zip":
    return download_lib.ensure_folder_from_zip(
        address, cache_dir=cache_dir(cfg), name=bench.cache_name,
        required_files=sst_lib.FILES, probe_timeout=timeout, probe=probe,
        progress=progress, stall_s=stall_s, limit_s=limit_s,
        check=sst_lib.read_sst_treebank)
  return download_lib.ensure_file(
      address, cache_dir=cache_dir(cfg), filename=bench.cache_name,
      check=aclimdb_lib.check_archive, probe_timeout=timeout, probe=probe,
      progress=progress, stall_s=stall_s, limit_s=limit_s)


def locate(bench: Benchmark, cfg, *, probe: Probe, timeout: float
           ) -> tuple[pathlib.Path, str]:
  """(path, how it was obtained) for an explicitly requested source.

  The user's path when set (it must exist: a typo is an error, not a
  download), else the cache, else a download.
  """
  given = given_path(bench, cfg)
  if given is not None:
    if not given.exists():
      raise DataError(f"config.data.{bench.path_field} {given} does not exist")
    return given, f"config.data.{bench.path_field}"
  hit = cached(bench, cfg)
  if hit is not None:
    return hit, "cache"
  try:
    path = download(bench, cfg, probe=probe, timeout=timeout)
  except download_lib.DownloadUnavailable as e:
    raise DataError(
        f"source {bench.source!r} needs its data: set config.data."
        f"{bench.path_field}, or put it in {cache_dir(cfg) / bench.cache_name}; "
        f"downloading it failed: {e}") from None
  return path, f"downloaded from {url(bench, cfg)}"
