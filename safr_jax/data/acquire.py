"""Where a benchmark's data is (its ``dir``, the cache, or a download into it), and what
``source="auto"`` means (docs/DATA.md, "auto"). Local answers come first; the one host
still needed is probed, so an offline machine decides within seconds.
"""

from __future__ import annotations

import pathlib
from typing import Callable, NamedTuple

from absl import logging

from safr_jax.data import download
from safr_jax.data import probe as probe_lib
from safr_jax.data import sources as sources_lib
from safr_jax.data.core import Source
from safr_jax.errors import DataError

Probe = Callable[[str, float], tuple[bool, str]]


class Resolution(NamedTuple):
  """What a requested source resolved to."""
  source: Source  # never "auto"
  reason: str | None  # None, else why auto fell back to the stand-in
  path: pathlib.Path | None = None  # where a benchmark's data is
  obtained: str | None = None  # "config.data.<group>.dir", "cache", "downloaded from URL"
  steps: tuple[str, ...] = ()  # every step auto passed over, with its reason


def cache_path(src: Source, cfg) -> pathlib.Path:
  """``<download.cache_dir>/<cache_name>`` with ``~`` expanded."""
  value = cfg.download.cache_dir
  if not value:
    raise DataError("config.data.download.cache_dir is empty; give a folder for "
                    "downloaded data (default ~/.cache/safr_jax/data)")
  return pathlib.Path(str(value)).expanduser() / src.acquire.cache_name


def _given(src: Source, cfg) -> pathlib.Path | None:
  value = cfg[src.config_group].dir
  return pathlib.Path(str(value)).expanduser() if value else None


def _cached(src: Source, cfg) -> pathlib.Path | None:
  """The complete copy in the cache, or None."""
  path, files = cache_path(src, cfg), src.acquire.required_files
  ok = download.folder_complete(path, files) if files else path.is_file()
  return path if ok else None


def _limits(cfg) -> tuple[float, float]:
  for field in ("stall_s", "timeout_s"):
    value = cfg.download[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
      raise DataError(f"config.data.download.{field} must be a number of seconds > 0, "
                      f"got {value!r}")
  return float(cfg.download.stall_s), float(cfg.download.timeout_s)


def fetch(src: Source, cfg, *, probe: Probe, progress: bool = True) -> pathlib.Path:
  """Downloads ``src`` into the cache (or waits for the process doing so); raises
  ``download.DownloadUnavailable`` or, when what came does not read, DataError."""
  url, final = str(cfg[src.config_group].url), cache_path(src, cfg)
  stall_s, limit_s = _limits(cfg)
  common = dict(cache_dir=final.parent, probe_timeout=probe_lib.probe_timeout(cfg),
                probe=probe, progress=progress, stall_s=stall_s, limit_s=limit_s,
                check=src.acquire.check)
  if src.acquire.required_files:
    return download.ensure_folder_from_zip(
        url, name=final.name, required_files=src.acquire.required_files, **common)
  return download.ensure_file(url, filename=final.name, **common)


def move_aside(src: Source, cfg, why: str) -> pathlib.Path:
  """Renames the cached copy that no longer reads (``why``) out of the way."""
  return download.move_aside(cache_path(src, cfg), why)


def _locate(src: Source, cfg, probe: Probe) -> Resolution:
  """An explicitly requested benchmark: its dir (which must exist: a typo is an
  error, not a download), else the cache, else a download."""
  field = f"config.data.{src.config_group}.dir"
  given = _given(src, cfg)
  if given is not None:
    if not given.exists():
      raise DataError(f"{field} {given} does not exist")
    return Resolution(src, None, given, field)
  hit = _cached(src, cfg)
  if hit is not None:
    return Resolution(src, None, hit, "cache")
  try:
    path = fetch(src, cfg, probe=probe)
  except download.DownloadUnavailable as e:
    raise DataError(f"source {src.name!r} needs its data: set {field}, or put it in "
                    f"{cache_path(src, cfg)}; downloading it failed: {e}") from None
  return Resolution(src, None, path, f"downloaded from {cfg[src.config_group].url}")


def resolve(cfg, probe: Probe) -> Resolution:
  """``config.data.source``, and where its data is (see the module doc)."""
  if cfg.source != "auto":
    src = sources_lib.get(cfg.source)
    return _locate(src, cfg, probe) if src.acquire else Resolution(src, None)
  bench = sources_lib.get(cfg.benchmark, "config.data.benchmark")
  if bench.acquire is None or bench.stand_in is None:
    raise DataError(f"config.data.benchmark must be one of {sources_lib.benchmarks()}, "
                    f"got {cfg.benchmark!r}")
  steps = []
  given = _given(bench, cfg)
  if given is not None:
    if given.exists():
      return Resolution(bench, None, given, f"config.data.{bench.config_group}.dir")
    steps.append(f"config.data.{bench.config_group}.dir {given} does not exist")
    logging.warning("data: %s; auto tries the next source.", steps[-1])
  hit = _cached(bench, cfg)
  if hit is not None:
    return Resolution(bench, None, hit, "cache", tuple(steps))
  steps.append(f"{bench.name}: not in {cache_path(bench, cfg).parent}")
  try:
    path = fetch(bench, cfg, probe=probe)
    return Resolution(bench, None, path,
                      f"downloaded from {cfg[bench.config_group].url}", tuple(steps))
  except DataError as e:  # no network, or a download that failed
    steps.append(f"{bench.name}: {e}")
  return Resolution(sources_lib.get(bench.stand_in), "; ".join(steps), steps=tuple(steps))
