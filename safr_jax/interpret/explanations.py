"""``explain``: per example, token importance, the strongest attention pairs
and the FFN neuron allocation, as PNG files and one self-contained HTML page.

Token importance is the VMASK keep-probability; a run without VMASK (the
``baseline`` variant) has none, so its pages use gradient × input instead and
say so.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import pathlib

import numpy as np

from safr_jax import runs
from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret import html as html_lib
from safr_jax.interpret import inputs, neurons, plots
from safr_jax.interpret.errors import InterpretError
from safr_jax.interpret.forward import Predictor

__all__ = ["explain_run", "Explained", "INDEX_FILE"]

INDEX_FILE = "index.html"
JSON_FILE = "explanations.json"
_PNG = "example_{:03d}.png"


@dataclasses.dataclass
class Explained:
  index: pathlib.Path      # the HTML page
  records: list[dict]      # one per example (also in explanations.json)
  notes: list[str]         # page-wide notes


def _importance(run, predictor, ids, lengths, probs, keep):
  if keep is not None:
    return keep, "VMASK keep-probability", False
  return (predictor.grad_x_input(ids, lengths, np.argmax(probs, -1)),
          "gradient × input (this run has no VMASK)", True)


def explain_run(workdir, *, texts: list[str] | None = None, split: str = "test",
                num: int = 20, out=None, which: str = "best",
                threshold: float = 0.0, num_pairs: int = 5) -> Explained:
  """Explains ``texts`` (or the first ``num`` examples of ``split``) with the
  run in ``workdir``; writes ``out`` (default ``<workdir>/explanations``)."""
  run = runs.load_run(workdir, which=which)
  if texts:
    examples = [inputs.text_example(run, t, f"text {k + 1}") for k, t in enumerate(texts)]
  else:
    if num < 1:
      raise InterpretError(f"num must be >= 1, got {num}")
    encoded = inputs.load_split(run, split)
    examples = inputs.split_examples(run, encoded, split,
                                     np.arange(min(num, len(encoded))))
  out = pathlib.Path(out) if out else run.workdir / "explanations"
  out.mkdir(parents=True, exist_ok=True)
  for old in out.glob("example_*.png"):  # a previous, longer explain
    old.unlink()

  predictor = Predictor(run.model, run.params, max_len=run.config.data.max_len,
                        pad_to=run.config.data.get("pad_to", "max_len"))
  lengths = np.array([len(e.tokens) for e in examples], np.int32)
  width = predictor.width(lengths)
  ids = np.stack([e.ids for e in examples])[:, :width]
  probs = np.zeros((len(examples), len(run.label_names)))
  keep = np.zeros(ids.shape) if predictor.has_vmask else None
  attn = np.zeros((len(examples), width, width))
  ffn = None
  for part, ins in predictor.insides(ids, lengths):
    probs[part], attn[part] = ins.probs, ins.attention
    if keep is not None:
      keep[part] = ins.keep_prob
    if ffn is None:
      ffn = np.zeros((len(examples), width, ins.ffn.shape[-1]))
    ffn[part] = ins.ffn[-1]
  importance, importance_label, signed = _importance(run, predictor, ids, lengths,
                                                     probs, keep)
  names = run.label_names
  layers = int(run.config.model.num_layers)

  records = []
  for k, ex in enumerate(examples):
    n = len(ex.tokens)
    pred = int(np.argmax(probs[k]))
    record = {
        "id": f"ex-{k}", "name": ex.name, "title": f"{k + 1}. {ex.name}",
        "text": ex.text, "tokens": ex.tokens, "words": ex.words,
        "importance": [float(v) for v in importance[k, :n]],
        "importance_label": importance_label, "importance_signed": signed,
        "pred": names[pred], "confidence": float(probs[k, pred]),
        "probs": {names[c]: float(p) for c, p in enumerate(probs[k])},
        "true": None if ex.label is None else names[ex.label],
        "notes": list(ex.notes), "pairs": [], "neurons": [],
        "d_ff": int(ffn.shape[-1]), "threshold": threshold, "image": None,
        "planted": None if ex.planted is None else [bool(v) for v in ex.planted[:n]],
    }
    if n:
      strength = attention_lib.pair_strength(attn[k, :n, :n])
      pairs = attention_lib.top_pairs(strength, num_pairs)
      record["pairs"] = [(f"{ex.tokens[i]} (#{i})", f"{ex.tokens[j]} (#{j})", s)
                         for i, j, s in pairs]
      hidden = ffn[k, :n]
      order = neurons.NeuronOrder(hidden, threshold)
      for t in range(n):
        strongest = np.argsort(-hidden[t], kind="stable")[:5]
        record["neurons"].append({
            "token": f"{ex.tokens[t]} (#{t})", "importance": float(importance[k, t]),
            "active": int(order.active_sets[t].size),
            "active_neurons": order.active_sets[t].tolist(),
            "exclusive": order.exclusive_sets[t].tolist(),
            "strongest": [int(s) for s in strongest if hidden[t, s] > threshold]})
      fig = plots.explanation_figure(
          tokens=ex.tokens, importance=importance[k, :n],
          importance_label=importance_label, strength=strength, pairs=pairs,
          hidden=hidden[:, order.order], neuron_ids=order.order,
          num_shared=order.num_shared, num_silent=order.num_silent,
          unit_interval=not signed,
          title=f"{ex.name}: predicted {names[pred]} ({probs[k, pred]:.2f})"
                + ("" if ex.label is None else f", true {names[ex.label]}"))
      path = plots.save(fig, out / _PNG.format(k))
      record["image"] = path.name
      record["image_base64"] = base64.b64encode(path.read_bytes()).decode("ascii")
    records.append(record)

  c = run.config
  notes = []
  if keep is None:
    notes.append("This run has no VMASK layer (baseline): token importance is "
                 "gradient × input of log p(predicted class) instead of a keep-probability.")
  if layers > 1:
    notes.append(f"The neuron pictures show the last of {layers} FFN layers; attention "
                 "is averaged over heads and layers.")
  header = [("run", str(run.workdir)),
            ("checkpoint", f"{run.which} (step {run.step})"),
            ("config", f"{c.get('name')}:{c.get('variant')}  λ_imp={c.loss.importance:g} "
                       f"λ_inter={c.loss.interaction:g}"),
            ("data", run.dataset_info.get("source", "?")),
            ("model", f"d_model {c.model.d_model}, {c.model.num_heads} heads, {layers} "
                      f"layer(s), d_ff {c.model.d_ff}, VMASK {'on' if keep is not None else 'off'}"),
            ("token importance", importance_label),
            ("generated", datetime.datetime.now().isoformat(timespec="seconds"))]
  page = html_lib.render_page(title=f"SAFR explanations: {run.workdir.name}",
                              header=header, notes=notes, records=records)
  index = out / INDEX_FILE
  index.write_text(page, encoding="utf-8")
  slim = [{k: v for k, v in r.items() if k != "image_base64"} for r in records]
  (out / JSON_FILE).write_text(json.dumps({"header": dict(header), "notes": notes,
                                           "examples": slim}, indent=1) + "\n",
                               encoding="utf-8")
  return Explained(index=index, records=records, notes=notes)
