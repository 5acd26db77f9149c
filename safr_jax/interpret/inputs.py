"""What gets explained or evaluated: a run's own split, rebuilt exactly, or a
user's text tokenised as the run's training texts were (``data.prepare_text``)
and encoded with the run's vocabulary (truncated, unknown words and empty
text noted, never an error)."""

from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from safr_jax import data
from safr_jax import workdir as workdir_lib

__all__ = ["Example", "load_split", "data_source", "text_example", "split_examples",
           "for_run"]


@dataclasses.dataclass
class Example:
  """One input, ready for the model.

  Attributes:
    name: where it comes from ("test[12]", "text 1").
    text: the raw text.
    ids: int32 ``[max_len]`` (0 = padding).
    tokens: the n tokens the model sees, as shown (``<UNK>`` for unknown words).
    words: the n words of the text behind them (after normalisation).
    label: the true label id, or None (user text).
    notes: what the user should know (truncation, unknown words, empty text).
    planted: bool ``[max_len]`` planted positions (``planted`` data), or None.
    model_text: the text as the vocabulary reads it: typed text with its
      tokens separated as the training texts' are; a split's text as stored.
  """
  name: str
  text: str
  ids: np.ndarray
  tokens: list[str]
  words: list[str]
  label: int | None = None
  notes: list[str] = dataclasses.field(default_factory=list)
  planted: np.ndarray | None = None
  model_text: str = ""

  @property
  def unknown(self) -> list[bool]:
    return [t == data.UNK for t in self.tokens]


def load_split(run, split: str) -> data.EncodedSplit:
  """``split`` ("train", "dev" or "test") of the data ``run`` was trained on.

  The source is the one the run actually used (``auto`` is not probed again),
  and the rebuilt vocabulary must equal the run's ``vocab.txt`` and the
  rebuilt ids and labels the ones the run was trained on (the fingerprint in
  ``run_identity.json``).
  """
  if split not in data.SPLITS:
    raise data.DataError(f"unknown split {split!r}; one of {', '.join(data.SPLITS)}")
  cfg = ml_collections.ConfigDict(run.config.data.to_dict())
  used = run.dataset_info.get("source")
  if used and cfg.get("source") == "auto":
    cfg.source = used
  bundle = data.load_dataset(cfg)
  if bundle.vocab != run.vocab:
    raise data.DataError(
        f"the {cfg.source!r} data rebuild a vocabulary that differs from "
        f"{run.workdir / 'vocab.txt'}: the data changed since the run was trained")
  trained = ((run.identity or {}).get("data") or {}).get("fingerprint")
  if trained and workdir_lib.data_fingerprint(bundle) != trained:
    raise data.DataError(
        f"the {cfg.source!r} data rebuild other examples or labels than the run was "
        f"trained on ({run.workdir / workdir_lib.IDENTITY_FILE}): the data files "
        "changed since; point config.data at the files it was trained on")
  return bundle.splits[split]


def data_source(run) -> str | None:
  """The data source ``run`` was trained on ("rt_polarity", "sst_treebank",
  ...): its ``dataset.json``, else its ``run_identity.json``, else its config
  (None when that says ``auto`` and no file tells what it became)."""
  trained = ((run.identity or {}).get("data") or {}).get("source")
  configured = run.config.data.get("source")
  return (run.dataset_info.get("source") or trained
          or (configured if configured != "auto" else None))


def _example(run, name: str, text: str, ids_row: np.ndarray, n: int,
             label: int | None, planted: np.ndarray | None,
             model_text: str | None = None) -> Example:
  vocab = run.vocab
  model_text = text if model_text is None else model_text
  words = data.tokenize(model_text, lowercase=vocab.lowercase,
                        strip_html=vocab.strip_html)
  tokens = vocab.decode(ids_row[:n])
  notes = []
  if not words:
    notes.append("empty text: there is no token to explain; the prediction is "
                 "the model's answer to an all-padding row")
  if len(words) > len(ids_row):
    notes.append(f"truncated: the text has {len(words)} tokens, the model reads "
                 f"the first {len(ids_row)} (max_len)")
  unknown = sorted({w for w, t in zip(words, tokens) if t == data.UNK})
  if unknown:
    shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
    notes.append(f"{len(unknown)} word(s) not in the run's vocabulary, shown as "
                 f"<UNK>: {shown}")
  return Example(name=name, text=text, ids=np.asarray(ids_row, np.int32),
                 tokens=tokens, words=words[:n], label=label, notes=notes,
                 planted=planted, model_text=model_text)


def _encoded(run, name: str, text: str, model_text: str, label: int | None,
             planted: np.ndarray | None) -> Example:
  """``model_text`` through ``run``'s vocabulary, cut to its max_len."""
  max_len = int(run.config.data.max_len)
  ids, lengths = run.vocab.encode_batch([model_text], max_len)
  if planted is not None:
    planted = np.pad(planted[:max_len], (0, max(0, max_len - len(planted))))
  return _example(run, name, text, ids[0], int(lengths[0]), label, planted, model_text)


def text_example(run, text: str, name: str = "text") -> Example:
  """``text`` tokenised as the run's training texts were (``data.prepare_text``
  for the run's data source: ``all,`` becomes ``all`` ``,`` where the training
  sentences have punctuation apart), then encoded as they were."""
  return _encoded(run, name, text, data.prepare_text(text, data_source(run)), None,
                  None)


def for_run(run, example: Example) -> Example:
  """``example`` (built for another run) encoded for ``run``: the same text
  as the other run read it, through ``run``'s vocabulary and max_len."""
  return _encoded(run, example.name, example.text, example.model_text or example.text,
                  example.label, example.planted)


def split_examples(run, split: data.EncodedSplit, name: str,
                   indices: np.ndarray) -> list[Example]:
  """The examples ``indices`` of ``split`` (called ``name``)."""
  return [_example(run, f"{name}[{i}]", split.texts[i], split.ids[i],
                   int(split.lengths[i]), int(split.labels[i]),
                   None if split.planted is None else split.planted[i])
          for i in np.asarray(indices, np.int64)]
