"""Metrics as a small pytree of sums + count, and where they are written.

Steps return ``{"name": sum, ..., "count": n}``; sums add across steps and
devices and are divided by ``count`` only when reported, so averages over an
epoch are exact whatever the batch sizes. Writers: ``metrics.jsonl`` (one JSON
object per line) and TensorBoard event files (tensorboardX).
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np

from safr_jax import provenance
from safr_jax.errors import RunError

__all__ = ["add", "means", "MetricWriter"]

Sums = dict[str, Any]


def add(a: Sums | None, b: Sums) -> Sums:
  """Elementwise sum of two metric pytrees (``a`` may be None)."""
  return b if a is None else jax.tree.map(lambda x, y: x + y, a, b)


def means(sums: Mapping[str, Any]) -> dict[str, float]:
  """Host floats: every ``*_sum``/plain sum divided by ``count``."""
  sums = jax.device_get(dict(sums))
  count = float(sums.pop("count"))
  out = {}
  for key, value in sums.items():
    name = key.removesuffix("_sum")
    out[name] = float(value) / count if count else math.nan
  out["count"] = count
  return out


class MetricWriter:
  """Writes scalars to ``<workdir>/metrics.jsonl`` and TensorBoard events.

  Only process 0 writes; other processes get a writer that does nothing.
  """

  def __init__(self, workdir: str | pathlib.Path, *, enabled: bool = True,
               tensorboard: bool = True, start_step: int | None = None):
    """``start_step``: the step training (re)starts from; records of later
    steps, written before a kill, are dropped so no step appears twice.

    Raises:
      RunError: the existing ``metrics.jsonl`` holds a damaged line.
    """
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "metrics.jsonl"
    if start_step is not None and path.exists():
      _truncate_after(path, start_step)
    self._jsonl = open(path, "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      # purge_step: TensorBoard hides events at and after it from older files.
      self._tb = SummaryWriter(
          str(workdir / "tensorboard"),
          purge_step=None if start_step is None else start_step + 1)

  def write(self, step: int, split: str, scalars: Mapping[str, float],
            **extra: Any) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "split": split, **extra}
    record.update({k: _json_number(v) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for key, value in scalars.items():
        if isinstance(value, (int, float, np.floating, np.integer)):
          self._tb.add_scalar(f"{split}/{key}", float(value), int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def _truncate_after(path: pathlib.Path, step: int) -> None:
  """Keeps the records of steps <= ``step`` (test records go as well: a
  finished run writes them anew).

  A torn last line (no newline: the writer was killed mid-write) is dropped
  with a warning, as a kill leaves it. Any other line that is not a record
  (invalid UTF-8, not JSON, no step or split) is damage this code never
  writes: a ``RunError`` naming the file and line, and the file is left as is.
  """
  data = path.read_bytes()
  lines = data.split(b"\n")
  torn = lines.pop()  # b"" when the file ends with a newline
  kept = []
  for number, raw in enumerate(lines, start=1):
    record = _record(raw)
    if isinstance(record, str):
      raise RunError(
          f"{path} line {number} is damaged ({record}); it is this run's metric log: "
          "delete that line (or move the file aside) and run the same command again")
    if record["step"] <= step and not record["split"].startswith("test"):
      kept.append(raw.decode("utf-8"))
  if torn:
    record = _record(torn)
    if isinstance(record, str):
      logging.warning("Dropped the torn last line of %s (%d bytes, written when the "
                      "run was killed).", path, len(torn))
    elif record["step"] <= step and not record["split"].startswith("test"):
      kept.append(torn.decode("utf-8"))
  provenance.write_text(path, "".join(f"{line}\n" for line in kept))


def _record(raw: bytes) -> dict[str, Any] | str:
  """A metrics.jsonl line as a record, or what is wrong with it."""
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    return f"invalid UTF-8 at byte {e.start}"
  try:
    record = json.loads(text)
  except ValueError as e:
    return f"not JSON: {e}"
  if (not isinstance(record, dict) or not isinstance(record.get("step"), int)
      or not isinstance(record.get("split"), str)):
    return "not a record with a step and a split"
  return record


def _json_number(value: Any) -> Any:
  """NaN/inf are not JSON: write them as strings so the file stays valid."""
  if isinstance(value, (float, np.floating)) and not math.isfinite(value):
    return str(float(value))
  if isinstance(value, np.generic):
    return value.item()
  return value
