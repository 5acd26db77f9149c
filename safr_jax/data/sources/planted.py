"""A synthetic sentiment task with known answers, for interpretability tests: filler tokens
``w0 … w{V-1}`` and 1 or 3 planted sentiment words (+1 ``POSITIVE``, -1 ``NEGATIVE``, the
opposite right after ``not``); label 1 when the sum is > 0 (an odd count: no ties). A
faithful explanation puts its importance on the planted positions and links each ``not``
to the word it flips."""

from __future__ import annotations

from typing import Sequence

import ml_collections
import numpy as np

from safr_jax.data.core import SPLITS, RawSplit, Source
from safr_jax.errors import DataError

POSITIVE = ("good", "great", "excellent", "wonderful", "superb", "brilliant")
NEGATIVE = ("bad", "awful", "terrible", "boring", "poor", "dreadful")
NEGATOR = "not"
MAX_PAIRS = 3
DESCRIPTION = (
    "Synthetic planted-evidence data (known answers): random filler tokens with 1 or 3 planted "
    "sentiment words, 'not' flips the next word; label = sign of the sum. Not real text.")


def rule_label(tokens: Sequence[str]) -> int:
  """The label the planting rule gives a token sequence (0 or 1)."""
  score = 0
  for i, tok in enumerate(tokens):
    sign = 1 if tok in POSITIVE else -1 if tok in NEGATIVE else 0
    if sign and i > 0 and tokens[i - 1] == NEGATOR:
      sign = -sign
    score += sign
  return int(score > 0)


def generate(n: int, *, seed: int, min_len: int = 8, max_len: int = 24,
             filler_vocab_size: int = 200, negation_prob: float = 0.3) -> RawSplit:
  """``n`` examples; extras ``planted`` bool [n, max_len] (sentiment words and their
  ``not``), ``planted_sign`` int8 [n, max_len] (the counted +1/-1 at each sentiment word),
  ``negation_pairs`` int32 [n, 3, 2] ((``not``, word) positions, -1 padded)."""
  if n < 0:
    raise DataError(f"a config.data.planted size must be >= 0, got {n}")
  if not 6 <= min_len <= max_len:
    raise DataError(f"need 6 <= config.data.planted.min_len <= planted.max_len, got "
                    f"{min_len}, {max_len}")
  if filler_vocab_size < 1:
    raise DataError("config.data.planted.filler_vocab_size must be >= 1")
  if not 0.0 <= negation_prob <= 1.0:
    raise DataError(f"config.data.planted.negation_prob must be in [0, 1], got {negation_prob}")
  rng = np.random.Generator(np.random.PCG64(seed))
  texts, labels = [], np.zeros((n,), np.int32)
  planted = np.zeros((n, max_len), bool)
  signs = np.zeros((n, max_len), np.int8)
  pairs = np.full((n, MAX_PAIRS, 2), -1, np.int32)
  for row in range(n):
    label = int(rng.integers(2))
    target = 1 if label else -1
    k = int(rng.choice([1, 3]))
    agree = k if k == 1 else int(rng.integers(2, 4))  # 2 or 3 of 3 agree
    effective = [target] * agree + [-target] * (k - agree)
    effective = [effective[i] for i in rng.permutation(k)]
    units = []  # (tokens, counted sign)
    for eff in effective:
      negated = bool(rng.random() < negation_prob)
      surface = -eff if negated else eff
      word = str(rng.choice(POSITIVE if surface > 0 else NEGATIVE))
      units.append(([NEGATOR, word] if negated else [word], eff))
    fillers = int(rng.integers(min_len, max_len + 1)) - sum(len(u[0]) for u in units)
    items = [([f"w{int(j)}"], 0) for j in rng.integers(filler_vocab_size, size=fillers)]
    items += units
    tokens, npair = [], 0
    for idx in rng.permutation(len(items)):
      toks, eff = items[idx]
      if eff:
        pos = len(tokens)
        planted[row, pos:pos + len(toks)] = True
        signs[row, pos + len(toks) - 1] = eff
        if len(toks) == 2:
          pairs[row, npair] = (pos, pos + 1)
          npair += 1
      tokens.extend(toks)
    assert rule_label(tokens) == label, (tokens, label)
    texts.append(" ".join(tokens))
    labels[row] = label
  return RawSplit(texts=texts, labels=labels, example_ids=np.arange(n, dtype=np.int64),
                  extras={"planted": planted, "planted_sign": signs, "negation_pairs": pairs})


def options() -> ml_collections.ConfigDict:
  """``config.data.planted``."""
  return ml_collections.ConfigDict(dict(
      train_size=2000, dev_size=500, test_size=500,  # examples per split
      min_len=8, max_len=24,  # example length range in tokens (<= config.data.max_len)
      filler_vocab_size=200,  # filler tokens w0 … w199
      negation_prob=0.3,      # P(a sentiment word is negated)
      seed=0))                # generator seed


def load(cfg, path=None) -> tuple[dict[str, RawSplit], dict]:
  """train/dev/test, each from its own seeded stream (seed*3 + 0, 1, 2)."""
  del path
  p, max_len = cfg.planted, int(cfg.max_len)
  if p.max_len > max_len:
    raise DataError(f"config.data.planted.max_len ({p.max_len}) must be <= "
                    f"max_len ({max_len}) so no planted token is truncated away")
  out = {}
  for k, name in enumerate(SPLITS):
    raw = generate(int(p[f"{name}_size"]), seed=int(p.seed) * 3 + k, min_len=int(p.min_len),
                   max_len=int(p.max_len), filler_vocab_size=int(p.filler_vocab_size),
                   negation_prob=float(p.negation_prob))
    for key in ("planted", "planted_sign"):
      raw.extras[key] = np.pad(raw.extras[key], ((0, 0), (0, max_len - p.max_len)))
    out[name] = raw
  return out, {}


SOURCE = Source("planted", DESCRIPTION, load, options=options)
