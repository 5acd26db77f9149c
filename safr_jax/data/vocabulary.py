"""Text → token ids, as the authors do it (docs/DATA.md, "Text → ids"): whitespace tokens,
train-only vocabulary, ``<PAD>`` = 0, ``<UNK>`` = 1, then by descending train frequency,
ties by token. A literal ``<PAD>`` in text is ``<UNK>``, so ``ids != 0`` is the token mask."""

from __future__ import annotations

import collections
import itertools
import pathlib
import re
from typing import Iterable, Sequence

import numpy as np

from safr_jax import provenance
from safr_jax.errors import DataError

PAD = "<PAD>"
UNK = "<UNK>"

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def tokenize(text: str, *, lowercase: bool = False, strip_html: bool = False) -> list[str]:
  """Whitespace tokens of ``text``, after ``<br />`` → space, then lowercase (if asked)."""
  if strip_html:
    text = _BR.sub(" ", text)
  return (text.lower() if lowercase else text).split()


class Vocabulary:
  """A fixed token ↔ id map; ``encode`` applies ``lowercase``/``strip_html``, so text is
  normalised the same way at train and explain time."""

  pad_id = 0
  unk_id = 1

  def __init__(self, tokens: Sequence[str], *, lowercase: bool = False, strip_html: bool = False):
    tokens = list(tokens)
    if tokens[:2] != [PAD, UNK]:
      raise DataError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {tokens[:2]!r}")
    index = {}
    for i, tok in enumerate(tokens):
      if not tok or tok != tok.strip() or any(c.isspace() for c in tok):
        raise DataError(f"vocabulary entry {i} ({tok!r}) is empty or has whitespace")
      if tok in index:
        raise DataError(f"vocabulary token {tok!r} appears twice (ids {index[tok]} and {i})")
      index[tok] = i
    self._tokens = tokens
    self._lookup = {**index, PAD: self.unk_id}  # a literal "<PAD>" in text is unknown
    self.lowercase, self.strip_html = bool(lowercase), bool(strip_html)

  @classmethod
  def build(cls, texts: Iterable[str], *, min_freq: int = 2,
            lowercase: bool = False, strip_html: bool = False) -> Vocabulary:
    """Builds from (train) texts: tokens with count >= ``min_freq``."""
    if min_freq < 1:
      raise DataError(f"min_freq must be >= 1, got {min_freq}")
    counts = collections.Counter()
    for text in texts:
      counts.update(tokenize(text, lowercase=lowercase, strip_html=strip_html))
    kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in (PAD, UNK)),
                  key=lambda t: (-counts[t], t))
    return cls([PAD, UNK] + kept, lowercase=lowercase, strip_html=strip_html)

  @property
  def tokens(self) -> list[str]:
    """All tokens, index = id."""
    return list(self._tokens)

  def __len__(self) -> int:
    return len(self._tokens)

  def __eq__(self, other) -> bool:
    key = lambda v: (v._tokens, v.lowercase, v.strip_html)  # pylint: disable=protected-access
    return isinstance(other, Vocabulary) and key(self) == key(other)

  def __repr__(self) -> str:
    return (f"Vocabulary(size={len(self)}, lowercase={self.lowercase}, "
            f"strip_html={self.strip_html})")

  def token_to_id(self, token: str) -> int:
    """The id of one (already normalised) token; ``<UNK>`` if unknown."""
    return self._lookup.get(token, self.unk_id)

  def _ids(self, tokens: list[str]) -> list[int]:
    return list(map(self._lookup.get, tokens, itertools.repeat(self.unk_id, len(tokens))))

  def encode(self, text: str) -> list[int]:
    """Ids of ``text``'s whitespace tokens (no truncation, no padding)."""
    return self._ids(tokenize(text, lowercase=self.lowercase, strip_html=self.strip_html))

  def decode(self, ids: Iterable[int], *, skip_pad: bool = False) -> list[str]:
    """One token string per id (``skip_pad`` drops the ``<PAD>`` positions)."""
    out = []
    for i in map(int, ids):
      if not 0 <= i < len(self._tokens):
        raise DataError(f"id {i} is outside the vocabulary (size {len(self._tokens)})")
      if not (skip_pad and i == self.pad_id):
        out.append(self._tokens[i])
    return out

  def encode_batch(self, texts: Sequence[str], max_len: int, *, full_lengths: bool = False):
    """(ids int32 [N, max_len], lengths int32 [N]): the first ``max_len`` tokens, padded
    with 0; ``full_lengths=True`` adds the token counts before truncation."""
    if max_len < 1:
      raise DataError(f"max_len must be >= 1, got {max_len}")
    ids = np.zeros((len(texts), max_len), np.int32)
    lengths, full = np.zeros((len(texts),), np.int32), np.zeros((len(texts),), np.int32)
    for row, text in enumerate(texts):
      tokens = tokenize(text, lowercase=self.lowercase, strip_html=self.strip_html)
      full[row] = len(tokens)
      seq = self._ids(tokens[:max_len])
      ids[row, :len(seq)] = seq
      lengths[row] = len(seq)
    return (ids, lengths, full) if full_lengths else (ids, lengths)

  def save(self, path: str | pathlib.Path) -> None:
    """Writes one token per line (UTF-8, ``\\n``), line number = id."""
    provenance.write_text(path, "".join(tok + "\n" for tok in self._tokens))

  @classmethod
  def load(cls, path: str | pathlib.Path, *, lowercase: bool = False,
           strip_html: bool = False) -> Vocabulary:
    """Reads a file written by :meth:`save`."""
    path = pathlib.Path(path)
    if not path.exists():
      raise DataError(f"vocabulary file {path} does not exist")
    try:  # bytes, then decode: no newline translation
      content = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
      raise DataError(f"vocabulary file {path} is not valid UTF-8 ({e.reason} at byte "
                      f"offset {e.start})") from None
    # Split on "\n" only: str.splitlines() would also split on \x85, \u2028…
    lines = content.removesuffix("\n").split("\n") if content else []
    if not lines:
      raise DataError(f"vocabulary file {path} is empty")
    try:
      return cls(lines, lowercase=lowercase, strip_html=strip_html)
    except DataError as e:
      raise DataError(f"vocabulary file {path}: {e}") from None
