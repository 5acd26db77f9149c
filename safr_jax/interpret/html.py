"""One self-contained HTML page of explanations (images inlined as base64),
rendered from an ``explanations.ExplanationSet``; this module writes no file.

Every piece of text that comes from data or from the user goes through
``escape``: dataset text is untrusted, ``<script>`` in a review must show as
text, never run, and a right-to-left override must show as ``[U+202E]``,
never reorder the page.
"""

from __future__ import annotations

import base64
import dataclasses
import html as html_lib
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
  from safr_jax.interpret.explanations import Explanation, ExplanationSet

__all__ = ["render_page", "escape", "neutralise_bidi", "BIDI_CONTROLS", "Picture"]

# Unicode's bidirectional formatting characters: embeddings and overrides
# (U+202A–U+202E), isolates (U+2066–U+2069) and the marks (U+200E, U+200F,
# U+061C). Shown raw, one in a review reorders the text around it (a
# "Trojan Source" override makes "negative" read as "evitagen", and can
# reverse the rest of a page or terminal line).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                          "\u200e\u200f\u061c")
_BIDI_TABLE = {ord(c): f"[U+{ord(c):04X}]" for c in BIDI_CONTROLS}


@dataclasses.dataclass(frozen=True)
class Picture:
  """A PNG to inline: its file name (beside the page) and its bytes."""
  file: str
  png: bytes


def neutralise_bidi(text: str) -> str:
  """``text`` with each bidi control shown as its code point (``[U+202E]``),
  for a page or a terminal; stored data (explanations.json) keeps it raw."""
  return text.translate(_BIDI_TABLE)


def escape(value: Any) -> str:
  """``str(value)`` escaped for HTML text and attribute values, bidi
  controls made visible."""
  return html_lib.escape(neutralise_bidi(str(value)), quote=True)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2.2em;border-top:1px solid #ccc;padding-top:1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#176d2d;font-weight:600}.bad{color:#b00020;font-weight:600}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.3em .7em;margin:.4em 0}
.text{font-size:1.05em;line-height:2.1em}.tok{padding:2px 3px;border-radius:3px;margin:0 1px}
.unk{outline:1px dashed #b00020}.planted{border-bottom:3px solid #176d2d}
.raw{color:#555;font-size:.9em;white-space:pre-wrap;word-break:break-word}
img{max-width:100%;border:1px solid #eee}code{font-size:.9em}
"""


def _token_spans(e: Explanation) -> str:
  scores = e.importance
  signed = e.importance_signed
  scale = max((abs(s) for s in scores), default=0.0) or 1.0
  planted = e.planted or ()
  spans = []
  for k, (tok, word, score) in enumerate(zip(e.tokens, e.words, scores)):
    if signed:
      alpha = abs(score) / scale
      rgb = "255,140,0" if score >= 0 else "30,110,220"
    else:
      alpha, rgb = max(0.0, min(1.0, score)), "255,140,0"
    classes = ["tok"]
    title = f"#{k} importance {score:.4f}"
    if tok == "<UNK>":
      classes.append("unk")
      title += f"; unknown word {word!r}"
    if k < len(planted) and planted[k]:
      classes.append("planted")
      title += "; planted"
    spans.append(f'<span class="{" ".join(classes)}" style="background:rgba({rgb},'
                 f'{alpha:.2f})" title="{escape(title)}">{escape(tok)}</span>')
  return " ".join(spans)


def _neuron_table(e: Explanation) -> str:
  rows = []
  for t in e.neurons:
    excl = ", ".join(map(str, t.exclusive[:20])) + (" …" if len(t.exclusive) > 20 else "")
    rows.append(f'<tr><td>{escape(t.token)}</td><td>{t.importance:.3f}</td>'
                f'<td>{t.active}</td><td>{len(t.exclusive)}</td>'
                f'<td><code>{escape(excl) or "—"}</code></td>'
                f'<td><code>{escape(", ".join(map(str, t.strongest)))}</code></td>'
                f'<td><details><summary>{t.active}</summary><code>'
                f'{escape(", ".join(map(str, t.active_neurons)))}</code></details></td></tr>')
  return (f'<p>neurons per token (of {e.d_ff} in the last FFN layer; active = '
          f'activation &gt; {e.threshold:g}):</p><table><tr><th>token</th>'
          '<th>importance</th><th>active</th><th>exclusive</th><th>exclusive neurons</th>'
          f'<th>strongest 5 neurons</th><th>all active neurons</th></tr>{"".join(rows)}</table>')


def _importance_text(e: Explanation) -> list[str]:
  legend = ["darker = more important" + ("; orange for, blue against the "
                                           "predicted class" if e.importance_signed else "")]
  if any(t == "<UNK>" for t in e.tokens):
    legend.append("dashed outline = unknown word")
  if any(e.planted or ()):
    legend.append("underlined = planted token (the known answer)")
  return [f'<p>token importance ({escape(e.importance_label)}; hover a '
          f'token for its score):</p><div class="text">{_token_spans(e)}</div>',
          f'<p class="raw">{escape("; ".join(legend))}</p>']


def _example(e: Explanation, picture: Picture | None) -> str:
  out = [f'<h2 id="{escape(e.id)}">{escape(e.title)}</h2>']
  verdict = ""
  if e.true is not None:
    ok = e.pred == e.true
    verdict = (f' · true <b>{escape(e.true)}</b> '
               f'<span class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"}</span>')
  probs = ", ".join(f"{escape(k)} {v:.3f}" for k, v in e.probs.items())
  out.append(f'<p>predicted <b>{escape(e.pred)}</b> with confidence '
             f'{e.confidence:.3f}{verdict} <span class="raw">({probs})</span></p>')
  out += [f'<div class="note">{escape(note)}</div>' for note in e.notes]
  out.append(f'<p class="raw">text: {escape(e.text)}</p>')
  if e.tokens:
    out += _importance_text(e)
  if e.pairs:
    rows = "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{s:.4f}</td></tr>"
                   for a, b, s in e.pairs)
    out.append("<p>strongest attention pairs (what L_Inter pulls together):</p>"
               f"<table><tr><th>token</th><th>token</th><th>strength S</th></tr>{rows}</table>")
  if e.neurons:
    out.append(_neuron_table(e))
  if picture is not None:
    data = base64.b64encode(picture.png).decode("ascii")
    out.append(f'<p><img src="data:image/png;base64,{data}" '
               f'alt="{escape(picture.file)}" data-file="{escape(picture.file)}"></p>')
  out.append('<p><a href="#index">back to the index</a></p>')
  return "\n".join(out)


def render_page(explained: ExplanationSet, pictures: Mapping[str, Picture] | None = None
                ) -> str:
  """The whole page: a header about the run, an index, one section per
  explanation; ``pictures`` maps an explanation's id to its inlined PNG."""
  pictures = pictures or {}
  head = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                 for k, v in explained.header)
  index = []
  for e in explained.explanations:
    ok = "" if e.true is None else ("✓" if e.pred == e.true else "✗")
    snippet = e.text if len(e.text) <= 90 else e.text[:89] + "…"
    index.append(f'<tr><td><a href="#{escape(e.id)}">{escape(e.name)}</a></td>'
                 f'<td>{escape(e.pred)} ({e.confidence:.2f})</td>'
                 f'<td>{escape(e.true if e.true is not None else "—")} {ok}</td>'
                 f'<td>{escape(snippet)}</td></tr>')
  body = [f"<h1>{escape(explained.title)}</h1>", f"<table>{head}</table>"]
  body += [f'<div class="note">{escape(n)}</div>' for n in explained.notes]
  body.append('<h2 id="index">Index</h2><table><tr><th>example</th><th>predicted '
              '(confidence)</th><th>true</th><th>text</th></tr>' + "".join(index) + "</table>")
  body += [_example(e, pictures.get(e.id)) for e in explained.explanations]
  return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<title>{escape(explained.title)}</title><style>{_CSS}</style></head><body>\n"
          + "\n".join(body) + "\n</body></html>\n")
