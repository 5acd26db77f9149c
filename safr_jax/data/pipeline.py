"""Batches (docs/DATA.md, "Batches"): a checkpointable grain iterator for training, a plain
one for eval, both in-process (a batch is a numpy gather). Every process builds the same
global batch and keeps rows ``[p*b, (p+1)*b)``, ``b = batch_size // process_count`` (what
``jax.make_array_from_process_local_data`` expects); with ``pad_to="batch"`` the width
comes from the global batch, so all processes agree."""

from __future__ import annotations

from typing import Any, Iterator

import grain
import numpy as np

from safr_jax.data.dataset import EncodedSplit
from safr_jax.errors import DataError

PAD_MULTIPLE = 8
BATCHING = ("random", "bucketed")
_STATE_VERSION = 1
# Distinct SeedSequence streams of an epoch of bucketed batches.
_EXAMPLES, _BATCH_ORDER, _ROWS = 0, 1, 2


def _check(split: EncodedSplit, batch_size: int, pad_to: str, process_index: int,
           process_count: int) -> int:
  """The per-process batch size, of valid arguments."""
  if pad_to not in ("max_len", "batch"):
    raise DataError(f"pad_to must be 'max_len' or 'batch', got {pad_to!r}")
  if batch_size < 1:
    raise DataError(f"batch_size must be >= 1, got {batch_size}")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise DataError(f"process_index {process_index} is not in [0, process_count={process_count})")
  if batch_size % process_count:
    raise DataError(f"the global batch_size {batch_size} is not divisible by "
                    f"process_count {process_count}")
  if len(split) == 0:
    raise DataError("the split has zero examples")
  return batch_size // process_count


def batch_width(lengths: np.ndarray, max_len: int, pad_to: str) -> int:
  """``max_len``, or for ``pad_to="batch"`` the longest row rounded up to a multiple of 8
  (at least 8), capped at ``max_len``."""
  if pad_to == "max_len":
    return max_len
  longest = int(np.max(lengths, initial=0))
  return min(max(PAD_MULTIPLE, -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE), max_len)


def steps_per_epoch(split: EncodedSplit, batch_size: int) -> int:
  """Full global batches per epoch (the last partial batch is dropped)."""
  if batch_size < 1:
    raise DataError(f"batch_size must be >= 1, got {batch_size}")
  return len(split) // batch_size


def _raw_permutation(n: int, seed: int, epoch: int, stream: int) -> np.ndarray:
  """As ``splits.stable_permutation``, seeded by (seed, epoch, stream)."""
  keys = np.random.PCG64([seed, epoch, stream]).random_raw(n)
  return np.argsort(keys, kind="stable").astype(np.int64)


def bucketed_epoch(lengths: np.ndarray, batch_size: int, bucket_window: int,
                   seed: int, epoch: int) -> np.ndarray:
  """An epoch's global batches under ``batching="bucketed"`` (docs/DATA.md): int64
  [N // batch_size, batch_size] example indices, a function of these arguments alone. Rows
  are shuffled inside each batch so a process' share is not always the shortest rows."""
  lengths = np.asarray(lengths)
  steps = len(lengths) // batch_size
  kept = _raw_permutation(len(lengths), seed, epoch, _EXAMPLES)[:steps * batch_size]
  window = bucket_window * batch_size
  for start in range(0, len(kept), window):
    part = kept[start:start + window]
    kept[start:start + window] = part[np.argsort(lengths[part], kind="stable")]
  batches = kept.reshape(steps, batch_size)
  row_keys = np.random.PCG64([seed, epoch, _ROWS]).random_raw(
      steps * batch_size).reshape(steps, batch_size)
  batches = np.take_along_axis(batches, np.argsort(row_keys, axis=1, kind="stable"), axis=1)
  return batches[_raw_permutation(steps, seed, epoch, _BATCH_ORDER)]


class TrainIterator(Iterator[dict[str, np.ndarray]]):
  """Infinite training batches ``dict(ids=int32 [b, L], labels=int32 [b])``, ``b =
  batch_size // process_count`` (``batch_size`` is global), ``L`` from :func:`batch_width`;
  ``seed`` in [0, 2**32); ``batching`` "random" (slices of shuffled epochs) or "bucketed"
  (:func:`bucketed_epoch`); resumable from ``get_state()``."""

  def __init__(self, split: EncodedSplit, *, batch_size: int, seed: int,
               pad_to: str = "max_len", process_index: int = 0, process_count: int = 1,
               batching: str = "random", bucket_window: int = 100):
    self._local = _check(split, batch_size, pad_to, process_index, process_count)
    if not 0 <= seed < 2**32:
      raise DataError(f"seed must be in [0, 2**32), got {seed}")
    if batching not in BATCHING:
      raise DataError(f"batching must be one of {BATCHING}, got {batching!r}")
    if (isinstance(bucket_window, bool) or not isinstance(bucket_window, (int, np.integer))
        or bucket_window < 1):
      raise DataError(f"bucket_window must be an integer >= 1, got {bucket_window!r}")
    self._steps = steps_per_epoch(split, batch_size)
    if self._steps == 0:
      raise DataError(f"batch_size {batch_size} is larger than the split "
                      f"({len(split)} examples): no full batch per epoch")
    self._split, self._batch_size, self._seed = split, batch_size, int(seed)
    self._pad_to, self._process_index = pad_to, process_index
    self._batching, self._bucket_window = batching, int(bucket_window)
    self._epoch_cache: tuple[int, np.ndarray] | None = None
    if batching == "random":
      # Spread seeds apart: grain shuffles epoch e with seed + e, so seeds 0, 1, 2
      # would give runs whose epoch orders are shifted copies.
      dataset = (grain.MapDataset.range(len(split))
                 .shuffle(seed=(self._seed * 0x9E3779B1 + 0x7F4A7C15) % 2**32)
                 .batch(batch_size, drop_remainder=True)  # per epoch
                 .repeat(None)
                 .map(self._make_batch))
    else:
      # Element i of the infinite dataset is batch i % steps of epoch
      # i // steps, so grain's position (next_index) is the whole state.
      dataset = (grain.MapDataset.range(self._steps)
                 .repeat(None)
                 .map_with_index(self._bucketed_rows)
                 .map(self._make_batch))
    self._iterator = dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)).__iter__()

  def _bucketed_rows(self, index: int, step: int) -> np.ndarray:
    epoch = index // self._steps
    if self._epoch_cache is None or self._epoch_cache[0] != epoch:
      self._epoch_cache = (epoch, bucketed_epoch(
          self._split.lengths, self._batch_size, self._bucket_window, self._seed, epoch))
    return self._epoch_cache[1][step]

  def _make_batch(self, rows: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.asarray(rows, np.int64)
    width = batch_width(self._split.lengths[rows], self._split.max_len, self._pad_to)
    mine = rows[self._process_index * self._local:(self._process_index + 1) * self._local]
    return {"ids": np.ascontiguousarray(self._split.ids[mine, :width]),
            "labels": self._split.labels[mine].astype(np.int32)}

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._iterator)

  def get_state(self) -> dict[str, Any]:
    """A JSON-serialisable dict; the position plus what must match on restore."""
    return {"version": _STATE_VERSION, "grain": self._iterator.get_state(),
            "num_examples": len(self._split), "batch_size": self._batch_size, "seed": self._seed,
            "batching": self._batching, "bucket_window": self._bucket_window}

  def set_state(self, state: dict[str, Any]) -> None:
    """Restores ``get_state()``: the next batch is the one that would follow."""
    if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
      raise DataError(f"not a TrainIterator state: {state!r}")
    # States from before `batching` existed are random batching; the window
    # only matters to bucketed batching.
    batching = state.get("batching", "random")
    mine = {"batching": self._batching, "num_examples": len(self._split),
            "batch_size": self._batch_size, "seed": self._seed}
    if batching == "bucketed":
      mine["bucket_window"] = self._bucket_window
    for key, value in mine.items():
      theirs = batching if key == "batching" else int(state[key])
      if theirs != value:
        raise DataError(f"iterator state has {key}={theirs!r} but this iterator has {key}="
                        f"{value!r}; the checkpoint belongs to a different data configuration")
    self._iterator.set_state({k: int(v) for k, v in dict(state["grain"]).items()})


train_iterator = TrainIterator


def num_eval_batches(split: EncodedSplit, batch_size: int) -> int:
  """Batches :func:`eval_batches` yields: ceil(N / batch_size)."""
  return -(-len(split) // batch_size)


def eval_batches(split: EncodedSplit, *, batch_size: int, pad_to: str = "max_len",
                 process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Every example once, in order: ``dict(ids, labels, weights=float32 [b])`` as in
  :func:`train_iterator`; every process yields ceil(N / batch_size) batches, and the
  filler rows of the last (ids 0, label 0) have weight 0."""
  local = _check(split, batch_size, pad_to, process_index, process_count)
  for start in range(0, len(split), batch_size):
    rows = np.arange(start, min(len(split), start + batch_size))
    width = batch_width(split.lengths[rows], split.max_len, pad_to)
    mine = rows[process_index * local:(process_index + 1) * local]
    ids, labels = np.zeros((local, width), np.int32), np.zeros((local,), np.int32)
    ids[:len(mine)], labels[:len(mine)] = split.ids[mine, :width], split.labels[mine]
    weights = (np.arange(local) < len(mine)).astype(np.float32)
    yield {"ids": ids, "labels": labels, "weights": weights}
