"""Free text (``explain --text``) split the way the run's training texts are.

The vocabulary splits on whitespace only, so a run learns the tokens its
source's texts already contain. Typed text must be brought to that form first,
or ``all,`` becomes one unknown word where training saw ``all`` and ``,``:

* ``"ptb"`` — ``sst_treebank``, ``glue/sst2``: Penn-Treebank tokens, as the
  treebank's sentences are (punctuation apart, ``n't`` and ``'s`` split off,
  ``"`` as `````` / ``''``, brackets as ``-LRB-`` / ``-RRB-``). SST keeps case;
  GLUE's SST-2 sentences are lowercased.
* ``"rt"`` — ``rt_polarity``: Pang & Lee's sentence files are lowercased with
  punctuation apart but contractions whole (``he's``).
* ``"raw"`` — IMDB (``aclimdb``, ``imdb_reviews``, ``imdb_builtin``), ``files``,
  ``planted``: the texts are read as written, so is typed text.

The run's own ``lowercase``/``strip_html`` options are applied afterwards by
the vocabulary, as for training text.
"""

from __future__ import annotations

import re

__all__ = ["STYLE_OF_SOURCE", "style_of", "prepare"]

STYLE_OF_SOURCE = {
    "sst_treebank": "ptb",
    "glue/sst2": "ptb_lower",
    "rt_polarity": "rt",
    "aclimdb": "raw", "imdb_reviews": "raw", "imdb_builtin": "raw",
    "files": "raw", "planted": "raw",
}

_PUNCT = re.compile(r"([,.!?;:()\[\]{}]|\.\.\.|--)")
_QUOTE = re.compile(r'"')
_PTB_CLITIC = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_PTB_BRACKETS = {"(": "-LRB-", ")": "-RRB-"}


def style_of(source: str | None) -> str:
  """How ``source``'s texts are tokenised (``"raw"`` for an unknown source)."""
  return STYLE_OF_SOURCE.get(source or "", "raw")


def _apart(text: str) -> str:
  return _PUNCT.sub(r" \1 ", text)


def _ptb(text: str) -> str:
  quotes = iter(("``", "''") * (text.count('"') // 2 + 1))
  text = _QUOTE.sub(lambda m: f" {next(quotes)} ", text)
  text = _PTB_CLITIC.sub(r"\1 \2", _apart(text))
  return " ".join(_PTB_BRACKETS.get(tok, tok) for tok in text.split())


def prepare(text: str, source: str | None) -> str:
  """``text`` with its tokens separated as ``source``'s training texts are.

  >>> prepare("not bad at all, a moving film", "sst_treebank")
  'not bad at all , a moving film'
  >>> prepare("It's great (really)!", "sst_treebank")
  "It 's great -LRB- really -RRB- !"
  >>> prepare("It's great, really", "rt_polarity")
  "it's great , really"
  """
  style = style_of(source)
  if style == "raw":
    return text
  if style == "rt":
    return " ".join(_apart(_QUOTE.sub(' " ', text.lower())).split())
  prepared = _ptb(text)
  return prepared.lower() if style == "ptb_lower" else prepared
