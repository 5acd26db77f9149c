"""One self-contained HTML page of explanations (images inlined as base64).

Every piece of text that comes from data or from the user goes through
``html.escape``: dataset text is untrusted, and ``<script>`` in a review must
show as text, never run.
"""

from __future__ import annotations

import html as html_lib
from typing import Any, Sequence

__all__ = ["render_page", "escape"]


def escape(value: Any) -> str:
  """``str(value)`` escaped for HTML text and attribute values."""
  return html_lib.escape(str(value), quote=True)


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


def _token_spans(record: dict) -> str:
  scores = record["importance"]
  signed = record["importance_signed"]
  scale = max((abs(s) for s in scores), default=0.0) or 1.0
  planted = record.get("planted") or []
  spans = []
  for k, (tok, word, score) in enumerate(zip(record["tokens"], record["words"], scores)):
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


def _example(record: dict) -> str:
  out = [f'<h2 id="{escape(record["id"])}">{escape(record["title"])}</h2>']
  verdict = ""
  if record["true"] is not None:
    ok = record["pred"] == record["true"]
    verdict = (f' · true <b>{escape(record["true"])}</b> '
               f'<span class="{"ok" if ok else "bad"}">{"✓" if ok else "✗"}</span>')
  probs = ", ".join(f"{escape(k)} {v:.3f}" for k, v in record["probs"].items())
  out.append(f'<p>predicted <b>{escape(record["pred"])}</b> with confidence '
             f'{record["confidence"]:.3f}{verdict} <span class="raw">({probs})</span></p>')
  for note in record["notes"]:
    out.append(f'<div class="note">{escape(note)}</div>')
  out.append(f'<p class="raw">text: {escape(record["text"])}</p>')
  if record["tokens"]:
    out.append(f'<p>token importance ({escape(record["importance_label"])}; hover a '
               f'token for its score):</p><div class="text">{_token_spans(record)}</div>')
    legend = ["darker = more important" + ("; orange for, blue against the "
                                             "predicted class" if record["importance_signed"] else "")]
    if any(t == "<UNK>" for t in record["tokens"]):
      legend.append("dashed outline = unknown word")
    if any(record.get("planted") or []):
      legend.append("underlined = planted token (the known answer)")
    out.append(f'<p class="raw">{escape("; ".join(legend))}</p>')
  if record["pairs"]:
    rows = "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{s:.4f}</td></tr>"
                   for a, b, s in record["pairs"])
    out.append("<p>strongest attention pairs (what L_Inter pulls together):</p>"
               f"<table><tr><th>token</th><th>token</th><th>strength S</th></tr>{rows}</table>")
  if record["neurons"]:
    rows = []
    for t in record["neurons"]:
      excl = ", ".join(map(str, t["exclusive"][:20])) + (" …" if len(t["exclusive"]) > 20 else "")
      rows.append(f'<tr><td>{escape(t["token"])}</td><td>{t["importance"]:.3f}</td>'
                  f'<td>{t["active"]}</td><td>{len(t["exclusive"])}</td>'
                  f'<td><code>{escape(excl) or "—"}</code></td>'
                  f'<td><code>{escape(", ".join(map(str, t["strongest"])))}</code></td>'
                  f'<td><details><summary>{t["active"]}</summary><code>'
                  f'{escape(", ".join(map(str, t["active_neurons"])))}</code></details></td></tr>')
    out.append(f'<p>neurons per token (of {record["d_ff"]} in the last FFN layer; active = '
               f'activation &gt; {record["threshold"]:g}):</p><table><tr><th>token</th>'
               '<th>importance</th><th>active</th><th>exclusive</th><th>exclusive neurons</th>'
               f'<th>strongest 5 neurons</th><th>all active neurons</th></tr>{"".join(rows)}</table>')
  if record.get("image_base64"):
    out.append(f'<p><img src="data:image/png;base64,{record["image_base64"]}" '
               f'alt="{escape(record["image"])}" data-file="{escape(record["image"])}"></p>')
  out.append('<p><a href="#index">back to the index</a></p>')
  return "\n".join(out)


def render_page(*, title: str, header: Sequence[tuple[str, Any]],
                notes: Sequence[str], records: Sequence[dict]) -> str:
  """The whole page: a header about the run, an index, one section per record."""
  head = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in header)
  index = []
  for r in records:
    ok = "" if r["true"] is None else ("✓" if r["pred"] == r["true"] else "✗")
    snippet = r["text"] if len(r["text"]) <= 90 else r["text"][:89] + "…"
    index.append(f'<tr><td><a href="#{escape(r["id"])}">{escape(r["name"])}</a></td>'
                 f'<td>{escape(r["pred"])} ({r["confidence"]:.2f})</td>'
                 f'<td>{escape(r["true"] if r["true"] is not None else "—")} {ok}</td>'
                 f'<td>{escape(snippet)}</td></tr>')
  body = [f"<h1>{escape(title)}</h1>", f"<table>{head}</table>"]
  body += [f'<div class="note">{escape(n)}</div>' for n in notes]
  body.append('<h2 id="index">Index</h2><table><tr><th>example</th><th>predicted '
              '(confidence)</th><th>true</th><th>text</th></tr>' + "".join(index) + "</table>")
  body += [_example(r) for r in records]
  return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
          + "\n".join(body) + "\n</body></html>\n")
