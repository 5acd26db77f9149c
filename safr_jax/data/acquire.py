"""Where a benchmark's data is (its ``dir``, the cache, or a download into it), and what
``source="auto"`` means (docs/DATA.md, "auto"). Local answers come first; the one host
still needed is probed, so an offline machine decides within seconds."""

from __future__ import annotations

import pathlib
from typing import NamedTuple

from absl import logging

from safr_jax.data import download
from safr_jax.data import probe as probe_lib
from safr_jax.data import sources as sources_lib
from safr_jax.data.core import Source
from safr_jax.errors import DataError


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


def fetch(src: Source, cfg, *, probe: download.Probe, progress: bool = True) -> pathlib.Path:
  """Downloads ``src`` into the cache (or waits for the process doing so); raises
  ``download.DownloadUnavailable`` or, when what came does not read, DataError."""
  url, final = str(cfg[src.config_group].url), cache_path(src, cfg)
  for field in ("stall_s", "timeout_s"):
    value = cfg.download[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
      raise DataError(f"config.data.download.{field} must be a number of seconds > 0, "
                      f"got {value!r}")
  common = dict(cache_dir=final.parent, probe_timeout=probe_lib.probe_timeout(cfg),
                probe=probe, progress=progress, stall_s=float(cfg.download.stall_s),
                limit_s=float(cfg.download.timeout_s), check=src.acquire.check)
  if src.acquire.required_files:
    return download.ensure_folder_from_zip(
        url, name=final.name, required_files=src.acquire.required_files, **common)
  return download.ensure_file(url, filename=final.name, **common)


def move_aside(src: Source, cfg, why: str) -> pathlib.Path:
  """Renames the cached copy that no longer reads (``why``) out of the way."""
  return download.move_aside(cache_path(src, cfg), why)


def resolve(cfg, probe: download.Probe) -> Resolution:
  """``config.data.source``, and where its data is. An explicitly requested benchmark
  fails where ``auto`` takes its next step: a ``dir`` that does not exist (a typo is an
  error, not a download), or no data at all."""
  auto = cfg.source == "auto"
  if not auto:
    src = sources_lib.get(cfg.source)
    if src.acquire is None:
      return Resolution(src, None)
  else:
    src = sources_lib.get(cfg.benchmark, "config.data.benchmark")
    if src.acquire is None or src.stand_in is None:
      raise DataError(f"config.data.benchmark must be one of {sources_lib.benchmarks()}, "
                      f"got {cfg.benchmark!r}")
  field, steps = f"config.data.{src.config_group}.dir", []
  if value := cfg[src.config_group].dir:
    given = pathlib.Path(str(value)).expanduser()
    if given.exists():
      return Resolution(src, None, given, field)
    if not auto:
      raise DataError(f"{field} {given} does not exist")
    steps.append(f"{field} {given} does not exist")
    logging.warning("data: %s; auto tries the next source.", steps[-1])
  cached, files = cache_path(src, cfg), src.acquire.required_files
  if download.folder_complete(cached, files) if files else cached.is_file():
    return Resolution(src, None, cached, "cache", tuple(steps))
  if auto:
    steps.append(f"{src.name}: not in {cached.parent}")
  try:
    path = fetch(src, cfg, probe=probe)
  # auto passes over a download that failed in any way; an explicit source reports no
  # network, and what came but does not read, as they are.
  except (DataError if auto else download.DownloadUnavailable) as e:
    if not auto:
      raise DataError(f"source {src.name!r} needs its data: set {field}, or put it in "
                      f"{cached}; downloading it failed: {e}") from None
    steps.append(f"{src.name}: {e}")
    return Resolution(sources_lib.get(src.stand_in), "; ".join(steps), steps=tuple(steps))
  return Resolution(src, None, path, f"downloaded from {cfg[src.config_group].url}", tuple(steps))
