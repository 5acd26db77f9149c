"""Free text (``explain --text``) split the way a source's training texts are: the
vocabulary splits on whitespace only, so ``all,`` would be one unknown word where training
saw ``all`` and ``,``. A ``Source``'s ``prepare_text`` is built from these."""

from __future__ import annotations

import re

_PUNCT = re.compile(r"([,.!?;:()\[\]{}]|\.\.\.|--)")
_QUOTE = re.compile(r'"')
_PTB_CLITIC = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_PTB_BRACKETS = {"(": "-LRB-", ")": "-RRB-"}


def ptb(text: str) -> str:
  """Penn-Treebank tokens, as the treebank's sentences (``-LRB-``, ``n't`` apart).

  >>> ptb("It's great (really)!")
  "It 's great -LRB- really -RRB- !"
  """
  quotes = iter(("``", "''") * (text.count('"') // 2 + 1))
  text = _QUOTE.sub(lambda m: f" {next(quotes)} ", text)
  text = _PTB_CLITIC.sub(r"\1 \2", _PUNCT.sub(r" \1 ", text))
  return " ".join(_PTB_BRACKETS.get(tok, tok) for tok in text.split())


def rt(text: str) -> str:
  """Pang & Lee's sentences: lowercased, punctuation apart, contractions whole.

  >>> rt("It's great, really")
  "it's great , really"
  """
  return " ".join(_PUNCT.sub(r" \1 ", _QUOTE.sub(' " ', text.lower())).split())
