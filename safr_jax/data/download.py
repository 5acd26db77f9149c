"""The download cache of the paper's benchmarks (docs/DATA.md, "Downloads"): an entry is
complete or absent. A download goes to a temporary ``.<name>.*.part`` (``.unpack``: a zip's
folder), is checked and renamed into place last; one process downloads, holding ``flock``
on ``<name>.lock``, while others wait. :class:`DownloadUnavailable`: the network did not
deliver (a caller may fall back); a plain DataError: what came is unusable, or the cache
cannot be written. Messages are one line."""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from absl import logging

from safr_jax.data.probe import probe_url
from safr_jax.errors import DataError

__all__ = ["DownloadUnavailable", "ensure_folder_from_zip", "ensure_file", "probe_url"]

Probe = Callable[[str, float], tuple[bool, str]]
Check = Callable[[pathlib.Path], object]


class DownloadUnavailable(DataError):
  """The network did not deliver the file; nothing was added to the cache."""


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _human(n: float) -> str:
  for unit in ("B", "KiB", "MiB"):
    if n < 1024:
      return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return f"{n:.1f} GiB"


def _cache_error(cache_dir: pathlib.Path, problem: str, e: OSError) -> DataError:
  return DataError(f"the download cache {cache_dir} {problem} ({_one_line(e)}); set "
                   "config.data.download.cache_dir to a writable folder")


def _download(url: str, out, *, stall_s: float, limit_s: float, progress: bool, desc: str) -> None:
  """Streams ``url`` into the binary file ``out``. A daemon thread transfers, watched from
  here, so both limits hold even while a read (or the headers) hangs."""
  state: dict[str, Any] = {"done": 0, "total": None, "error": None, "last": time.monotonic()}
  finished = threading.Event()

  def transfer():
    try:
      request = urllib.request.Request(url, headers={"User-Agent": "safr-jax"})
      with urllib.request.urlopen(request, timeout=stall_s) as response:
        length = response.headers.get("Content-Length")
        state["total"] = int(length) if length and length.isdigit() else None
        logging.info("Downloading %s (%s) ...", url, _human(state["total"])
                     if state["total"] is not None else "size unknown")
        import tqdm  # pylint: disable=g-import-not-at-top
        with tqdm.tqdm(total=state["total"], desc=desc, unit="B", unit_scale=True,
                       unit_divisor=1024, file=sys.stderr, leave=False,
                       disable=not (progress and sys.stderr.isatty())) as bar:
          # read1: what has arrived, so the count is right when a read fails.
          while not finished.is_set() and (chunk := response.read1(1 << 20)):
            try:
              out.write(chunk)
            except OSError as e:
              raise DataError(f"cannot write the download of {url} into the cache "
                              f"folder: {_one_line(e)}") from None
            state["done"] += len(chunk)
            state["last"] = time.monotonic()
            bar.update(len(chunk))
    except BaseException as e:  # pylint: disable=broad-except
      state["error"] = e
    finally:
      finished.set()

  def arrived() -> str:
    done, total = state["done"], state["total"]
    return f"{done}{'' if total is None else f' of {total}'} bytes ({_human(done)})"

  def stalled() -> DownloadUnavailable:
    return DownloadUnavailable(f"download of {url} stalled: no data for {stall_s:g} s "
                               f"(config.data.download.stall_s) after {arrived()}; run "
                               "again to retry")

  start = time.monotonic()
  threading.Thread(target=transfer, name="safr-download", daemon=True).start()
  try:
    while not finished.wait(0.05):
      now = time.monotonic()
      if now - state["last"] > stall_s:
        raise stalled()
      if now - start > limit_s:
        raise DownloadUnavailable(f"download of {url} took over {limit_s:g} s (config.data."
                                  f"download.timeout_s) and was stopped after {arrived()}; "
                                  "run again to retry, or raise the limit")
  finally:
    finished.set()  # the thread stops writing (a blocked read times out)
  e, done, total = state["error"], state["done"], state["total"]
  if isinstance(e, urllib.error.HTTPError):
    raise DownloadUnavailable(f"download of {url} failed: HTTP {e.code} {e.reason}")
  if isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
    raise stalled()
  if isinstance(e, (urllib.error.URLError, OSError, http.client.HTTPException)):
    raise DownloadUnavailable(f"download of {url} failed after {arrived()}: "
                              f"{_one_line(getattr(e, 'reason', e))}; run again to retry")
  if e is not None:
    raise e
  if total is not None and done < total:
    raise DownloadUnavailable(f"download of {url} was cut off after {done} of {total} "
                              "bytes; run again to retry")
  seconds = max(time.monotonic() - start, 1e-6)
  logging.info("Downloaded %s: %s in %.1f s (%s/s)", url, _human(done),
               seconds, _human(done / seconds))


@contextlib.contextmanager
def _locked(cache_dir: pathlib.Path, name: str) -> Iterator[None]:
  path = cache_dir / f"{name}.lock"
  try:
    handle = open(path, "a")  # pylint: disable=consider-using-with
  except OSError as e:
    raise _cache_error(cache_dir, "is not writable", e) from None
  with handle:
    try:
      fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.info("Waiting for another process downloading %s (lock %s)", name, path)
      fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove(path: pathlib.Path) -> None:
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path, ignore_errors=True)
  else:
    with contextlib.suppress(OSError):
      path.unlink(missing_ok=True)


def _ensure(url: str, cache_dir: str | os.PathLike, name: str,
            complete: Callable[[pathlib.Path], bool],
            install: Callable[[pathlib.Path, pathlib.Path], None], *,
            probe: Probe = probe_url, probe_timeout: float = 5.0, progress: bool = True,
            stall_s: float = 60.0, limit_s: float = 3600.0) -> pathlib.Path:
  """Cached -> return it; ``probe(url, probe_timeout)``; lock; re-check; download (a progress
  bar on a terminal; :func:`_download`'s limits, by default config.data.download's) to a
  temporary file, which ``install(temp, final)`` checks and puts in place."""
  if (not name or name != pathlib.Path(name).name or name.startswith(".")
      or name.endswith(".lock")):
    raise ValueError(f"cache entry name {name!r} must be a plain file name")
  cache_dir = pathlib.Path(cache_dir).expanduser()
  final = cache_dir / name
  if complete(final):
    return final
  reachable, why = probe(url, probe_timeout)
  if not reachable:
    raise DownloadUnavailable(f"cannot download {url}: {why}")
  try:
    cache_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise _cache_error(cache_dir, "cannot be created", e) from None
  with _locked(cache_dir, name):
    if complete(final):  # another process finished it while we waited
      logging.info("%s was downloaded by another process", final)
      return final
    if final.exists() or final.is_symlink():
      raise DataError(f"{final} exists but is not a complete download (was it "
                      "edited?); delete it and run again")
    for path in cache_dir.glob(f".{name}.*"):  # only made under the lock
      if path.name.endswith((".part", ".unpack")):
        logging.info("Removing %s, left by an interrupted download", path)
        _remove(path)
    try:
      fd, temp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".part")
    except OSError as e:
      raise _cache_error(cache_dir, "is not writable", e) from None
    temp = pathlib.Path(temp)
    try:
      with os.fdopen(fd, "wb") as out:
        _download(url, out, stall_s=stall_s, limit_s=limit_s, progress=progress, desc=name)
        try:
          out.flush()
          os.fsync(out.fileno())  # whole on disk before it can be renamed
        except OSError as e:
          raise DataError(f"cannot write the download of {url} into "
                          f"{cache_dir}: {_one_line(e)}") from None
      install(temp, final)
    finally:
      _remove(temp)
  return final


def _checked(check: Check, temp: pathlib.Path, url: str, final: str | pathlib.Path) -> None:
  """``check(temp)``; its DataError names ``final``, not the temporary name."""
  try:
    check(temp)
  except DataError as e:
    why = str(e).replace(str(temp), str(final))
    raise DataError(f"the download from {url} is not usable: {why}") from None


def _unzip(url: str, archive: pathlib.Path, into: pathlib.Path) -> None:
  try:
    with zipfile.ZipFile(archive) as zf:
      for name in zf.namelist():  # refused, not silently renamed as extractall would
        if (name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/")
            or (len(name) > 1 and name[1] == ":")):
          raise DataError(f"the archive from {url} holds the unsafe path {name!r} "
                          "(absolute or with '..'); refused")
      zf.extractall(into)
  except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
    raise DataError(f"the archive from {url} is not a readable zip file "
                    f"({_one_line(e)}); run again to download it anew") from None
  except OSError as e:
    raise DataError(f"cannot unpack the archive from {url} into {into.parent}: "
                    f"{_one_line(e)}") from None


def _holding_folder(url: str, root: pathlib.Path, required: Sequence[str]) -> pathlib.Path:
  """The unpack root or the one top-level folder that holds all ``required``."""
  candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
  missing = {c: [f for f in required if not (c / f).is_file()] for c in candidates}
  if complete := [c for c in candidates if not missing[c]]:
    return complete[0]
  best = min(candidates, key=lambda c: len(missing[c]))
  where = "its top level" if best == root else f"folder {best.name}/"
  raise DataError(f"the archive from {url} lacks {', '.join(missing[best])} (looked in "
                  f"{where} and each top-level folder; expected {', '.join(required)})")


def folder_complete(folder: pathlib.Path, required_files: Sequence[str]) -> bool:
  """Whether ``folder`` is a folder holding every one of ``required_files``."""
  return folder.is_dir() and all((folder / f).is_file() for f in required_files)


def ensure_folder_from_zip(url: str, *, cache_dir: str | os.PathLike, name: str,
                           required_files: Sequence[str], check: Check | None = None,
                           **options) -> pathlib.Path:
  """``<cache_dir>/<name>``, a folder holding ``required_files`` (at the zip's top level or in
  one top-level folder; other members are dropped): the zip at ``url``, downloaded and unpacked
  when not cached. ``check(folder)`` reads it as its source does; ``options``: :func:`_ensure`'s."""
  def install(archive: pathlib.Path, final: pathlib.Path) -> None:
    unpack = pathlib.Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}.", suffix=".unpack"))
    try:
      _unzip(url, archive, unpack)
      found = _holding_folder(url, unpack, required_files)
      if check is not None:
        _checked(check, found, url, final)
      os.rename(found, final)
      logging.info("Unpacked %s into %s", url, final)
    finally:
      _remove(unpack)

  return _ensure(url, cache_dir, name, lambda f: folder_complete(f, required_files),
                 install, **options)


def ensure_file(url: str, *, cache_dir: str | os.PathLike, filename: str, check: Check,
                **options) -> pathlib.Path:
  """``<cache_dir>/<filename>``, as :func:`ensure_folder_from_zip`, the file kept whole;
  ``check(path)`` vets it before it is renamed into place."""
  def install(temp: pathlib.Path, final: pathlib.Path) -> None:
    _checked(check, temp, url, filename)
    os.rename(temp, final)

  return _ensure(url, cache_dir, filename, pathlib.Path.is_file, install, **options)


def move_aside(final: pathlib.Path, why: str) -> pathlib.Path:
  """Renames a cached ``final`` that no longer reads (``why``) to
  ``<name>.unusable-<time>`` (kept for a look, never read); one warning line."""
  target = final.with_name(f"{final.name}.unusable-{time.strftime('%Y%m%d-%H%M%S')}")
  with _locked(final.parent, final.name):
    try:
      os.rename(final, target)
    except FileNotFoundError:  # another process moved it first
      pass
    except OSError as e:
      raise DataError(f"{final} does not read ({why}) and cannot be moved aside "
                      f"({_one_line(e)}); delete it and run again") from None
  logging.warning("The cached %s does not read (%s); moved aside to %s.", final,
                  " ".join(why.split()), target)
  return target
