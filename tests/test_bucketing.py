"""Tests of length-bucketed training batches (data.batching="bucketed")."""

import json

import numpy as np
import pytest

from conftest import split_with_lengths
from safr_jax import data

MAX_LEN = 120


def _split(n=1003, max_len=MAX_LEN, seed=0):
  """Rows whose first id encodes the row (row + 2); lengths spread widely
  (log-uniform 1 … max_len, like real text: many short, a few long)."""
  rng = np.random.default_rng(seed)
  lengths = np.exp(rng.uniform(0, np.log(max_len), size=n)).astype(np.int32)
  lengths = np.clip(lengths, 1, max_len)
  return split_with_lengths(lengths, rng, max_len)


@pytest.fixture(scope="module")
def split():
  return _split()


def _rows(batch):
  return (batch["ids"][:, 0] - 2).tolist()


def _bucketed(split, batch_size=16, seed=3, **kw):
  kw.setdefault("pad_to", "batch")
  kw.setdefault("bucket_window", 8)
  return data.train_iterator(split, batch_size=batch_size, seed=seed,
                             batching="bucketed", **kw)


def _epochs(it, steps, n_epochs):
  return [[next(it) for _ in range(steps)] for _ in range(n_epochs)]


def test_every_example_once_per_epoch_and_random_drops(split):
  batch = 16
  steps = data.steps_per_epoch(split, batch)
  assert steps == 62 and len(split) - steps * batch == 11  # 11 dropped
  epochs = _epochs(_bucketed(split, batch), steps, 4)
  dropped = []
  for batches in epochs:
    rows = [r for b in batches for r in _rows(b)]
    assert all(len(_rows(b)) == batch for b in batches)
    assert len(rows) == steps * batch == len(set(rows))
    dropped.append(frozenset(range(len(split))) - set(rows))
    assert len(dropped[-1]) == 11
  assert len(set(dropped)) == 4  # a different dropped set every epoch
  # Not always the shortest or the longest: the dropped examples' lengths
  # are spread, not at an end of the length order.
  all_dropped = sorted(set().union(*dropped))
  ranks = np.argsort(np.argsort(split.lengths, kind="stable"))[all_dropped]
  assert ranks.min() < len(split) // 4 and ranks.max() > 3 * len(split) // 4


def test_bucketed_batches_are_narrower_than_random(split):
  steps = data.steps_per_epoch(split, 16)
  width = {}
  for batching in ("random", "bucketed"):
    it = data.train_iterator(split, batch_size=16, seed=3, pad_to="batch",
                             batching=batching, bucket_window=8)
    widths = [next(it)["ids"].shape[1] for _ in range(3 * steps)]
    width[batching] = float(np.mean(widths))
  # Random: nearly every batch of 16 holds a row near max_len (~113 wide);
  # bucketed: most batches are short (~45).
  assert width["bucketed"] < 0.6 * width["random"], width


def test_batches_hold_similar_lengths(split):
  """Within a bucketed batch the lengths are close: the spread (max - min) is
  far below a random batch's."""
  it = _bucketed(split, 16, pad_to="max_len")
  spread = [np.ptp(split.lengths[_rows(next(it))]) for _ in range(62)]
  rnd = data.train_iterator(split, batch_size=16, seed=3, pad_to="max_len")
  rnd_spread = [np.ptp(split.lengths[_rows(next(rnd))]) for _ in range(62)]
  assert np.mean(spread) < 0.25 * np.mean(rnd_spread)


def test_widths_are_multiples_of_8_and_fit(split):
  it = _bucketed(split, 16)
  shapes = set()
  for _ in range(124):
    batch = next(it)
    width = batch["ids"].shape[1]
    longest = int(split.lengths[_rows(batch)].max())
    assert width == min(MAX_LEN, max(8, -(-longest // 8) * 8))
    assert width % 8 == 0  # MAX_LEN = 120 is a multiple of 8 too
    assert batch["ids"].dtype == np.int32 and batch["labels"].dtype == np.int32
    shapes.add(width)
  assert len(shapes) > 5  # the widths really vary


def test_epochs_and_seeds_differ(split):
  steps = data.steps_per_epoch(split, 16)
  epochs = [[tuple(_rows(b)) for b in e]
            for e in _epochs(_bucketed(split, 16), steps, 3)]
  assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
  # Not just the batch order: the batches themselves (their row sets) change.
  sets = [{frozenset(b) for b in e} for e in epochs]
  assert len(sets[0] & sets[1]) < steps // 4
  other = _bucketed(split, 16, seed=4)
  assert [tuple(_rows(next(other))) for _ in range(steps)] not in epochs
  # The same seed gives the same batches.
  again = _bucketed(split, 16)
  assert [tuple(_rows(next(again))) for _ in range(steps)] == epochs[0]


def test_resume_mid_epoch_is_exact(split):
  steps = data.steps_per_epoch(split, 16)
  it = _bucketed(split, 16)
  for _ in range(steps + 17):  # mid epoch 1
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  want = [next(it) for _ in range(2 * steps)]  # the rest of 1, all of 2, part of 3
  restored = _bucketed(split, 16)
  next(restored)  # a used iterator (epoch 0 cached) must jump too
  restored.set_state(state)
  for w, g in zip(want, [next(restored) for _ in range(2 * steps)]):
    for key in ("ids", "labels"):
      np.testing.assert_array_equal(w[key], g[key])


def test_state_mismatch_is_an_error(split):
  state = _bucketed(split, 16).get_state()
  with pytest.raises(data.DataError, match="bucket_window"):
    _bucketed(split, 16, bucket_window=9).set_state(state)
  with pytest.raises(data.DataError, match="batching"):
    data.train_iterator(split, batch_size=16, seed=3,
                        pad_to="batch").set_state(state)
  # A state written before `batching` existed is a random-batching state.
  old = data.train_iterator(split, batch_size=16, seed=3).get_state()
  del old["batching"], old["bucket_window"]
  data.train_iterator(split, batch_size=16, seed=3).set_state(old)
  with pytest.raises(data.DataError, match="batching"):
    _bucketed(split, 16).set_state(old)
  with pytest.raises(data.DataError, match="batching must be"):
    data.train_iterator(split, batch_size=16, seed=3, batching="sorted")
  for bad in (0, -1, 2.5, True):
    with pytest.raises(data.DataError, match="bucket_window"):
      _bucketed(split, 16, bucket_window=bad)


@pytest.mark.parametrize("pad_to", ["max_len", "batch"])
def test_two_processes_make_up_the_global_batches(split, pad_to):
  whole = _bucketed(split, 16, pad_to=pad_to)
  shares = [_bucketed(split, 16, pad_to=pad_to, process_index=p,
                      process_count=2) for p in range(2)]
  for _ in range(70):  # crosses an epoch boundary (62 steps)
    want = next(whole)
    got = [next(s) for s in shares]
    assert got[0]["ids"].shape == got[1]["ids"].shape == (
        8, want["ids"].shape[1])
    for key in ("ids", "labels"):
      np.testing.assert_array_equal(
          np.concatenate([g[key] for g in got]), want[key])


def test_bucketed_epoch_windows():
  lengths = np.arange(100)[::-1] % 37
  batches = data.bucketed_epoch(lengths, 10, 2, seed=0, epoch=0)
  assert batches.shape == (10, 10)
  assert sorted(batches.ravel().tolist()) == list(range(100))
  # Windows of 2 batches: each window of 20 random examples is sorted and
  # halved, so a batch's length spread (max - min) is about half a random
  # batch's (measured: 16.6 vs 28.3 for window 1, 3.2 for one window).
  def spread(b):
    return np.mean([np.ptp(lengths[rows]) for rows in b])
  one = data.bucketed_epoch(lengths, 10, 1, seed=0, epoch=0)
  everything = data.bucketed_epoch(lengths, 10, 10, seed=0, epoch=0)
  assert spread(one) > 24 and spread(batches) < 20 and spread(everything) < 5
  # The window does not change which examples are kept.
  assert sorted(one.ravel()) == sorted(everything.ravel())
  # A whole-epoch window: the batches split the sorted lengths into tiers.
  tiers = sorted(tuple(sorted(lengths[b])) for b in everything)
  flat = [x for t in tiers for x in t]
  assert flat == sorted(flat)
