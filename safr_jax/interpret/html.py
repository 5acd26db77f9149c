"""The explanation page, rendered from one ``explanations.ExplanationSet`` (one
run) or two (``--compare_to``: the same examples through both models); this
module writes no file.

Made to be read on any screen: a viewport meta (a phone lays it out at its own
width), every wide table in a box that scrolls by itself, each token's scores
printed in a table rather than in hover tooltips, and the pictures linked
(``<a href=example_000.png><img src=example_000.png>``) at their natural
592 px, two side by side in a 1,200 px column, scaled down to the screen on a
phone (the link opens the full PNG). A ``Picture`` that carries its bytes is
inlined once instead (``--self_contained``). A comparison keeps an example to
about one screen and a half: both runs' neuron pictures side by side, their
attention pictures and neuron lists behind ``<details>``.

Every piece of text that comes from data or from the user goes through
``escape``: dataset text is untrusted, ``<script>`` in a review must show as
text, never run, and a right-to-left override must show as ``[U+202E]``,
never reorder the page.
"""

from __future__ import annotations

import base64
import dataclasses
import html as html_lib
import math
import struct
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
  from safr_jax.interpret.explanations import Explanation, ExplanationSet, MethodScores

__all__ = ["render_page", "render", "escape", "neutralise_bidi", "png_size",
           "BIDI_CONTROLS", "Picture", "METHOD_NAMES", "SHADES", "TAGS"]

# Unicode's bidirectional formatting characters: embeddings and overrides
# (U+202A–U+202E), isolates (U+2066–U+2069) and the marks (U+200E, U+200F,
# U+061C). Shown raw, one in a review reorders the text around it (a
# "Trojan Source" override makes "negative" read as "evitagen", and can
# reverse the rest of a page or terminal line).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                          "\u200e\u200f\u061c")
_BIDI_TABLE = {ord(c): f"[U+{ord(c):04X}]" for c in BIDI_CONTROLS}

# Row names of the token-score tables (``attribution`` computes the scores).
METHOD_NAMES = {"vmask": "VMASK", "gradient_x_input": "gradient × input",
                "occlusion": "leave-one-out", "attention": "attention"}
_METHOD_HELP = (
    ("VMASK", "the keep-probability q of SAFR's VMASK layer, 0 to 1 (runs with VMASK only)"),
    ("gradient × input", "Σ_d ∂ log p(ŷ)/∂e_d · e_d on the token's embedding: "
                         "positive for the predicted class ŷ, negative against it"),
    ("leave-one-out", "p(ŷ) − p(ŷ with the token deleted): how much the prediction "
                      "loses without it (negative: it gains)"),
    ("attention", "attention the token receives, Σ_i Ā_ij (Ā: mean over heads and "
                  "layers), minus its mean over the example's tokens, which is 1 when no "
                  "attention goes to padding: above 0, more than the average token"))
SHADES = 9          # shade steps of a score cell (0 = unshaded)
TAGS = ("A", "B")   # the runs of a comparison, in --workdir, --compare_to order
_SEGMENT = 18       # tokens per block of a token-score table: fits 1,200 px
_EXCLUSIVE_SHOWN = 10
_TOP_K = 3          # a comparison's agreement: top-k tokens in common


@dataclasses.dataclass(frozen=True)
class Picture:
  """A PNG of the page: its file name beside the page, and its bytes when it
  is to be inlined instead (``png``; None: linked to the file)."""
  file: str
  png: bytes | None = None
  width: int | None = None
  height: int | None = None


def png_size(png: bytes) -> tuple[int, int] | None:
  """(width, height) from a PNG's header, None if ``png`` is no PNG."""
  if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
    return None
  return struct.unpack(">II", png[16:24])


def neutralise_bidi(text: str) -> str:
  """``text`` with each bidi control shown as its code point (``[U+202E]``),
  for a page or a terminal; stored data (explanations.json) keeps it raw."""
  return text.translate(_BIDI_TABLE)


def escape(value: Any) -> str:
  """``str(value)`` escaped for HTML text and attribute values, bidi
  controls made visible."""
  return html_lib.escape(neutralise_bidi(str(value)), quote=True)


def _shade_css() -> str:
  # Orange for, blue against: alpha grows with the step, capped so that the
  # printed number stays readable on the darkest cell.
  rules = []
  for k in range(1, SHADES + 1):
    a = round(0.85 * k / SHADES, 2)
    rules.append(f".p{k}{{background:rgba(255,140,0,{a})}}"
                 f".n{k}{{background:rgba(60,130,235,{a})}}")
  return "".join(rules)


_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1232px;padding:0 16px;color:#222;line-height:1.45;overflow-wrap:break-word}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2.2em;border-top:1px solid #ccc;padding-top:1em}
table{border-collapse:collapse;margin:.4em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#176d2d;font-weight:600}.bad{color:#b00020;font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
.kv td,.note,.raw{overflow-wrap:anywhere}
table.index td{white-space:nowrap}table.index td:last-child{white-space:normal;min-width:18em}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:.3em .7em;margin:.4em 0}
.raw{color:#555;font-size:.9em;white-space:pre-wrap}
p{margin:.5em 0}
table.m{font-size:.8em}table.m th,table.m td{white-space:nowrap;text-align:center;min-width:2.8em;padding:2px 3px}
table.m th.row{text-align:left;min-width:9em}table.m small{color:#555;font-weight:400}
table.m tr.b th.row{background:#ecf1f8}
.unk{outline:1px dashed #b00020;outline-offset:-3px}
.planted{text-decoration:underline 3px #176d2d}
figure{margin:.4em 0;max-width:592px}figcaption{font-size:.9em;color:#555}
.pics{display:flex;flex-wrap:wrap;column-gap:16px;align-items:flex-start}
figure img{display:block;max-width:100%;height:auto;outline:1px solid #eee}
code{font-size:.9em}summary{cursor:pointer}
""" + _shade_css()


# ----------------------------------------------------------------------------
# Pieces.


def _num(v: float | None) -> str:
  """A score in at most ~6 characters: two significant digits."""
  return "—" if v is None else f"{v:.2g}"


def _cell(v: float, top: float) -> str:
  """A score in a row whose largest |score| is ``top``, to the decimals that
  give ``top`` two significant digits (at least 2): one precision per row, so
  that a column stays narrow; "0" where it rounds to 0."""
  text = f"{v:.{max(2, 1 - math.floor(math.log10(top))) if top > 0 else 2}f}"
  return "0" if float(text) == 0 else text


def _shade(v: float, top: float) -> str:
  """The cell class of score ``v`` in a row whose largest |score| is ``top``."""
  k = round(SHADES * abs(v) / top) if top > 0 else 0
  return "" if k == 0 else f' class="{"p" if v > 0 else "n"}{min(k, SHADES)}"'


def _token_head(e: Explanation, k: int) -> str:
  classes, title = [], ""
  if e.tokens[k] == "<UNK>":
    classes.append("unk")
    title = f"unknown word {e.words[k]!r}" if k < len(e.words) else "unknown word"
  if e.planted and k < len(e.planted) and e.planted[k]:
    classes.append("planted")
    title = "; ".join(filter(None, [title, "planted"]))
  cls = f' class="{" ".join(classes)}"' if classes else ""
  tip = f' title="{escape(title)}"' if title else ""
  word = (f"<br><small>{escape(e.words[k])}</small>"
          if e.tokens[k] == "<UNK>" and k < len(e.words) else "")
  return f"<th{cls}{tip}>{escape(e.tokens[k])}{word}</th>"


def _row_head(tag: str, m: MethodScores) -> str:
  name = METHOD_NAMES.get(m.name, m.name)
  prefix = f"{tag} · " if tag else ""
  return (f'<th class="row">{escape(prefix + name)}<br><small>comp '
          f'{_num(m.comprehensiveness)} · suff {_num(m.sufficiency)}</small></th>')


def _score_tables(tagged: Sequence[tuple[str, Explanation]]) -> str:
  """The token-score table of one example: a token per column, a row per
  method (and run, methods of both runs next to each other), cut into blocks
  of ``_SEGMENT`` tokens that each scroll in their box."""
  names = [m.name for _, e in tagged for m in e.methods]
  order = [n for n in METHOD_NAMES if n in names] + sorted(set(names) - set(METHOD_NAMES))
  rows = []  # (css class, tag, MethodScores, largest |score|)
  for name in order:
    for s, (tag, e) in enumerate(tagged):
      for m in e.methods:
        if m.name == name:
          rows.append(("b" if s else "a", tag, m, max(map(abs, m.scores), default=0.0)))
  head = max(tagged, key=lambda te: len(te[1].tokens))[1]
  if not rows or not head.tokens:
    return ""
  blocks = []
  for start in range(0, len(head.tokens), _SEGMENT):
    cols = range(start, min(start + _SEGMENT, len(head.tokens)))
    lines = ["<tr><th></th>" + "".join(_token_head(head, k) for k in cols) + "</tr>"]
    for cls, tag, m, top in rows:
      cells = "".join(f"<td{_shade(m.scores[k], top)}>{_cell(m.scores[k], top)}</td>"
                      if k < len(m.scores) else "<td></td>" for k in cols)
      lines.append(f'<tr class="{cls}">{_row_head(tag, m)}{cells}</tr>')
    blocks.append(f'<div class="scroll"><table class="m">{"".join(lines)}</table></div>')
  return "\n".join(blocks)


def _neuron_tables(tagged: Sequence[tuple[str, Explanation]]) -> str:
  """One ``<details>``: per run, each token's active and exclusive neurons."""
  tables = []
  for tag, e in tagged:
    rows = []
    for t in e.neurons:
      excl = ", ".join(map(str, t.exclusive[:_EXCLUSIVE_SHOWN]))
      excl += " …" if len(t.exclusive) > _EXCLUSIVE_SHOWN else ""
      rows.append(f"<tr><td>{escape(t.token)}</td><td>{t.active}</td>"
                  f"<td>{len(t.exclusive)}</td><td><code>{escape(excl) or '—'}</code></td>"
                  f"<td><code>{escape(', '.join(map(str, t.strongest))) or '—'}</code></td></tr>")
    if rows:
      tables.append(
          f"<p>{escape(tag + ': ' if tag else '')}of {e.d_ff} neurons in the last FFN "
          f"layer, active = activation &gt; {e.threshold:g} (every activation: "
          'explanations.npz)</p><div class="scroll"><table><tr><th>token</th>'
          f"<th>active</th><th>exclusive</th><th>exclusive neurons (first "
          f"{_EXCLUSIVE_SHOWN})</th><th>strongest 5</th></tr>{''.join(rows)}</table></div>")
  who = f" ({', '.join(t for t, _ in tagged)})" if len(tagged) > 1 else ""
  return (f"<details><summary>neurons per token{who}</summary>{''.join(tables)}</details>"
          if tables else "")


def _pairs(e: Explanation, tag: str) -> str:
  who = f" ({escape(tag)})" if tag else ""
  shown = " · ".join(f"{escape(a)} – {escape(b)} {s:.3f}" for a, b, s in e.pairs)
  return f"<p>strongest attention pairs{who}, S: {shown}</p>"


def _top(scores: Sequence[float], k: int) -> set[int]:
  """The k highest-scored positions (ties: the earlier one, as in faithfulness)."""
  return set(sorted(range(len(scores)), key=lambda i: -scores[i])[:k])


def _agreement(a: Explanation, b: Explanation) -> str:
  """Per method both runs have: how many of A's top-k tokens are B's too."""
  theirs = {m.name: m.scores for m in b.methods}
  parts = []
  for m in a.methods:
    k = min(_TOP_K, len(m.scores))
    if m.name in theirs and k:
      shared = len(_top(m.scores, k) & _top(theirs[m.name], k))
      parts.append(f"{escape(METHOD_NAMES.get(m.name, m.name))} {shared}/{k}")
  return (f'<p class="agree">top-{_TOP_K} tokens in common, A and B: {" · ".join(parts)}</p>'
          if parts else "")


def _picture(p: Picture, alt: str, caption: str) -> str:
  size = (p.width, p.height) if p.width else (png_size(p.png) if p.png else None)
  dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
  if p.png is not None:  # inlined once, not linked: nothing beside the page
    data = base64.b64encode(p.png).decode("ascii")
    img = (f'<img src="data:image/png;base64,{data}"{dims} alt="{escape(alt)}" '
           f'data-file="{escape(p.file)}">')
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"
  href = escape(p.file)
  img = f'<img src="{href}"{dims} alt="{escape(alt)}" data-file="{href}">'
  return (f'<figure><a href="{href}">{img}</a><figcaption>{caption} '
          f'(<a href="{href}">{href}</a>)</figcaption></figure>')


def _verdict(e: Explanation, tag: str, run: str) -> str:
  who = f"<b>{escape(tag)}</b> ({escape(run)}): " if tag else ""
  true = ""
  if e.true is not None:
    ok = e.pred == e.true
    true = (f" · true <b>{escape(e.true)}</b> · "
            f'<span class="{"ok" if ok else "bad"}">{"✓ correct" if ok else "✗ wrong"}</span>')
  probs = ", ".join(f"{escape(k)} {v:.3f}" for k, v in e.probs.items())
  return (f"<p>{who}predicted <b>{escape(e.pred)}</b> with confidence "
          f'{e.confidence:.3f}{true} <span class="raw">({probs})</span></p>')


def _pictures(figures: Sequence[str]) -> str:
  return f'<div class="pics">{"".join(figures)}</div>' if figures else ""


def _example(k: int, sets: Sequence[ExplanationSet],
             pictures: Sequence[Mapping[str, Sequence[Picture]]]) -> str:
  items = [s.explanations[k] for s in sets]
  tags = TAGS if len(sets) > 1 else ("",)
  first = items[0]
  out = [f'<h2 id="{escape(first.id)}">{escape(first.title)}</h2>',
         f'<p class="raw">text: {escape(first.text)}</p>']
  if first.model_text and first.model_text != first.text:
    out.append(f'<p class="raw">as the model reads it: {escape(first.model_text)}</p>')
  notes = dict.fromkeys(n for e in items for n in e.notes)  # once, in order
  out += [f'<div class="note">{escape(note)}</div>' for note in notes]
  out += [_verdict(e, tag, s.run) for e, tag, s in zip(items, tags, sets)]
  if len(items) > 1:
    out.append(_agreement(*items))
  out.append(_score_tables(list(zip(tags, items))))
  figures = [[], []]  # neuron pictures, attention pictures
  for e, tag, s, pics in zip(items, tags, sets, pictures):
    who = f"{tag} ({s.run}): " if tag else ""
    for shown, p, what in zip(figures, pics.get(e.id, ()), ("neuron allocation",
                                                             "attention")):
      shown.append(_picture(p, f"{who}{what} of {e.name}", escape(f"{who}{what}")))
  pairs = "".join(_pairs(e, tag) for e, tag in zip(items, tags) if e.pairs)
  if len(items) == 1:
    out += [pairs, _pictures(figures[0] + figures[1])]
  else:  # both neuron pictures side by side; attention one click away
    out.append(_pictures(figures[0]))
    if pairs:
      out.append("<details><summary>attention: strongest pairs and pictures (A, B)"
                 f"</summary>{pairs}{_pictures(figures[1])}</details>")
  out.append(_neuron_tables(list(zip(tags, items))))
  out.append('<p><a href="#index">back to the index</a></p>')
  return "\n".join(filter(None, out))


def _snippet(text: str) -> str:
  return text if len(text) <= 90 else text[:89] + "…"


def _correct_cell(e: Explanation) -> str:
  if e.true is None:
    return "<td>—</td>"
  ok = e.pred == e.true
  return f'<td class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"}</td>'


def _count(s: ExplanationSet, tag: str) -> str:
  labelled = [e for e in s.explanations if e.true is not None]
  if not labelled:
    return ""
  right = sum(e.pred == e.true for e in labelled)
  who = f"{tag} ({s.run}): " if tag else ""
  return f"{escape(who)}{right} of {len(labelled)} correct"


def _index(sets: Sequence[ExplanationSet]) -> str:
  tags = TAGS if len(sets) > 1 else ("",)
  runs = "".join(f"<th>{escape(t + ' ' if t else '')}predicted (confidence)</th>"
                 f"<th>{escape(t + ' ' if t else '')}correct</th>" for t in tags)
  rows = []
  for k, first in enumerate(sets[0].explanations):
    cells = "".join(f"<td>{escape(s.explanations[k].pred)} "
                    f"({s.explanations[k].confidence:.2f})</td>"
                    + _correct_cell(s.explanations[k]) for s in sets)
    rows.append(f'<tr><td><a href="#{escape(first.id)}">{escape(first.name)}</a></td>'
                f'<td>{escape(first.true if first.true is not None else "—")}</td>'
                f"{cells}<td>{escape(_snippet(first.text))}</td></tr>")
  counts = "; ".join(filter(None, (_count(s, t) for s, t in zip(sets, tags))))
  return ('<h2 id="index">Index</h2>' + (f'<p class="count">{counts}</p>' if counts else "")
          + '<div class="scroll"><table class="index"><tr><th>example</th><th>true</th>'
          + runs + "<th>text</th></tr>" + "".join(rows) + "</table></div>")


def _header(sets: Sequence[ExplanationSet]) -> str:
  if len(sets) == 1:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                   for k, v in sets[0].header)
    return f'<div class="scroll"><table class="kv">{rows}</table></div>'
  keys = list(dict.fromkeys(k for s in sets for k, _ in s.header))
  values = [dict(s.header) for s in sets]
  head = "<tr><th></th>" + "".join(f"<th>{t}</th>" for t in TAGS[:len(sets)]) + "</tr>"
  rows = "".join(f"<tr><th>{escape(k)}</th>"
                 + "".join(f"<td>{escape(v.get(k, '—'))}</td>" for v in values) + "</tr>"
                 for k in keys)
  return f'<div class="scroll"><table class="kv">{head}{rows}</table></div>'


def _how_to_read(sets: Sequence[ExplanationSet]) -> str:
  methods = {m.name for s in sets for e in s.explanations for m in e.methods}
  if not methods:
    return ""
  names = {METHOD_NAMES.get(m, m) for m in methods}
  items = "".join(f"<li><b>{escape(n)}</b>: {escape(h)}</li>"
                  for n, h in _METHOD_HELP if n in names)
  both = (" Rows of A and B alternate, method by method (B's row names on blue); "
          f"above the table, per method both runs have, how many of A's top {_TOP_K} "
          f"tokens are among B's top {_TOP_K}." if len(sets) > 1 else "")
  return ("<details open><summary><b>How to read the token scores and pictures</b></summary>"
          f"<ul>{items}</ul><p>Each table row is one explanation of one run, a token "
          "per column, its score printed in the cell (one precision per row: the row's "
          "largest |score| to two significant digits, 0 for what rounds to 0; every digit "
          "is in explanations.json). One colour scale for every row: "
          "the cell's shade is the score divided by the largest |score| of its row, "
          f"in {SHADES} steps, orange for positive and blue for negative scores, so the "
          "darkest cell of a row is the token that method ranks first; compare rows by "
          f"their order, read magnitudes off the numbers.{both} Under each row's name: "
          "its faithfulness on this example alone (ERASER; deletion = the token "
          "replaced by &lt;PAD&gt;, averaged over the top 1, 5, 10, 20 and 50 % of "
          "the tokens): <b>comp</b>rehensiveness = p(ŷ) − p(ŷ without the top "
          "tokens), higher is more faithful; <b>suff</b>iciency = p(ŷ) − p(ŷ with only "
          "the top tokens), lower is more faithful (docs/METRICS.md). A dashed "
          "outline marks an unknown word (&lt;UNK&gt; to the model, the word under it), "
          "an underline a planted token.</p><p>The neuron picture, a row per token: "
          "its importance, the last FFN layer's neurons it shares with other tokens, "
          "then the neurons only it activates (exclusive), strongest first, with their "
          "count.</p></details>")


def render(sets: Sequence[ExplanationSet],
           pictures: Sequence[Mapping[str, Sequence[Picture]]] | None = None) -> str:
  """The whole page of one run's explanations, or of two runs' (a comparison:
  the same examples, in the same order): a header about the run(s), how to
  read it, an index, one section per example.

  Args:
    sets: one ``ExplanationSet``, or two of the same examples.
    pictures: per set, an explanation's id → its ``Picture``s: the neuron
      allocation, then the attention.
  """
  pictures = list(pictures or [{} for _ in sets])
  if len(sets) > 1 and len({len(s.explanations) for s in sets}) > 1:
    raise ValueError("the sets of a comparison must explain the same examples")
  title = (sets[0].title if len(sets) == 1 else "SAFR explanations: " + " vs ".join(
      f"{s.run} ({t})" for s, t in zip(sets, TAGS)))
  body = [f"<h1>{escape(title)}</h1>", _header(sets)]
  notes = [n if len(sets) == 1 else f"{t}: {n}" for s, t in zip(sets, TAGS)
           for n in s.notes]
  body += [f'<div class="note">{escape(n)}</div>' for n in notes]
  body += [_how_to_read(sets), _index(sets)]
  body += [_example(k, sets, pictures) for k in range(len(sets[0].explanations))]
  return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          '<meta name="viewport" content="width=device-width, initial-scale=1">'
          f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
          + "\n".join(body) + "\n</body></html>\n")


def render_page(explained: ExplanationSet,
                pictures: Mapping[str, Sequence[Picture]] | None = None) -> str:
  """The page of one run (``render`` with one set)."""
  return render([explained], [pictures or {}])
