"""``explain``: per example, token importance, the strongest attention pairs
and the FFN neuron allocation, as PNG files and one self-contained HTML page.

Token importance is the VMASK keep-probability; a run without VMASK (the
``baseline`` variant) has none, so its pages use gradient × input instead and
say so.

Computing and writing are apart: ``explain`` returns an ``ExplanationSet``
(one frozen ``Explanation`` per example, no file touched); ``write_pictures``,
``write_json`` and ``write_html`` write it; ``explain_run`` (the command line's
entry) does both.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from safr_jax import provenance, runs
from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret import forward
from safr_jax.interpret import html as html_lib
from safr_jax.interpret import inputs, neurons, plots
from safr_jax.errors import InterpretError

__all__ = ["explain_run", "explain", "write_explanations", "write_pictures",
           "write_json", "write_html", "Explained", "Explanation", "ExplanationSet",
           "TokenNeurons", "INDEX_FILE", "JSON_FILE"]

INDEX_FILE = "index.html"
JSON_FILE = "explanations.json"
_PNG = "example_{:03d}.png"
_STRONGEST = 5  # neurons listed per token


@dataclasses.dataclass(frozen=True)
class TokenNeurons:
  """One token's FFN neurons (last layer): ``active`` = how many it activates."""
  token: str                       # "word (#position)"
  importance: float
  active: int
  active_neurons: tuple[int, ...]
  exclusive: tuple[int, ...]       # active for this token only
  strongest: tuple[int, ...]       # its strongest active neurons, strongest first


@dataclasses.dataclass(frozen=True, eq=False)
class Explanation:
  """One example explained. The JSON record is ``to_json``; ``strength``,
  ``hidden`` and ``neuron_order`` are the arrays behind the picture (None for
  an example without tokens)."""
  id: str
  name: str
  title: str
  text: str
  tokens: tuple[str, ...]
  words: tuple[str, ...]
  importance: tuple[float, ...]
  importance_label: str
  importance_signed: bool          # signed scores (gradient × input), not in [0, 1]
  pred: str
  confidence: float
  probs: Mapping[str, float]
  true: str | None
  notes: tuple[str, ...]
  pair_positions: tuple[tuple[int, int, float], ...]  # strongest attention pairs (i, j, S_ij)
  neurons: tuple[TokenNeurons, ...]
  d_ff: int
  threshold: float
  planted: tuple[bool, ...] | None
  strength: np.ndarray | None      # [n, n] attention pair strength
  hidden: np.ndarray | None        # [n, d_ff] last FFN layer's activations
  neuron_order: neurons.NeuronOrder | None

  @property
  def pairs(self) -> tuple[tuple[str, str, float], ...]:
    """The strongest attention pairs as ("token (#i)", "token (#j)", S_ij)."""
    return tuple((self._label(i), self._label(j), s) for i, j, s in self.pair_positions)

  def _label(self, position: int) -> str:
    return f"{self.tokens[position]} (#{position})"

  @property
  def figure_title(self) -> str:
    true = "" if self.true is None else f", true {self.true}"
    return f"{self.name}: predicted {self.pred} ({self.confidence:.2f}){true}"

  def to_json(self, image: str | None = None) -> dict[str, Any]:
    """The ``explanations.json`` record; ``image`` is the PNG's file name."""
    return {
        "id": self.id, "name": self.name, "title": self.title, "text": self.text,
        "tokens": list(self.tokens), "words": list(self.words),
        "importance": list(self.importance), "importance_label": self.importance_label,
        "importance_signed": self.importance_signed, "pred": self.pred,
        "confidence": self.confidence, "probs": dict(self.probs), "true": self.true,
        "notes": list(self.notes), "pairs": [list(p) for p in self.pairs],
        "neurons": [{k: list(v) if isinstance(v, tuple) else v
                     for k, v in dataclasses.asdict(t).items()} for t in self.neurons],
        "d_ff": self.d_ff, "threshold": self.threshold, "image": image,
        "planted": None if self.planted is None else list(self.planted)}


@dataclasses.dataclass(frozen=True)
class ExplanationSet:
  """Every explanation of one ``explain`` call, with the page's header (about
  the run) and page-wide notes."""
  title: str
  header: tuple[tuple[str, str], ...]
  notes: tuple[str, ...]
  explanations: tuple[Explanation, ...]
  has_vmask: bool


@dataclasses.dataclass(frozen=True)
class Explained:
  """What ``explain_run`` wrote: the page, the JSON records (one per example,
  as in ``explanations.json``), the page-wide notes and the computed set."""
  index: pathlib.Path
  records: list[dict]
  notes: list[str]
  explanations: ExplanationSet


# ----------------------------------------------------------------------------
# Computing.


def _importance(predictor, ids, lengths, passed: forward.ForwardPass):
  """(scores [N, W], what they are, signed?)."""
  if passed.keep_prob is not None:
    return passed.keep_prob, "VMASK keep-probability", False
  return (predictor.grad_x_input(ids, lengths, np.argmax(passed.probs, -1)),
          "gradient × input (this run has no VMASK)", True)


def _token_neurons(tokens, importance, hidden, order, threshold):
  out = []
  for t, token in enumerate(tokens):
    strongest = np.argsort(-hidden[t], kind="stable")[:_STRONGEST]
    out.append(TokenNeurons(
        token=f"{token} (#{t})", importance=float(importance[t]),
        active=int(order.active_sets[t].size),
        active_neurons=tuple(int(v) for v in order.active_sets[t]),
        exclusive=tuple(int(v) for v in order.exclusive_sets[t]),
        strongest=tuple(int(s) for s in strongest if hidden[t, s] > threshold)))
  return tuple(out)


def _explanation(k: int, ex: inputs.Example, *, probs, importance, label, signed,
                 attention, hidden, names, d_ff, threshold, num_pairs) -> Explanation:
  n = len(ex.tokens)
  pred = int(np.argmax(probs))
  strength = order = None
  pairs, token_neurons = (), ()
  if n:
    strength = attention_lib.pair_strength(attention[:n, :n])
    pairs = tuple(attention_lib.top_pairs(strength, num_pairs))
    order = neurons.NeuronOrder(hidden, threshold)
    token_neurons = _token_neurons(ex.tokens, importance, hidden, order, threshold)
  return Explanation(
      id=f"ex-{k}", name=ex.name, title=f"{k + 1}. {ex.name}", text=ex.text,
      tokens=tuple(ex.tokens), words=tuple(ex.words),
      importance=tuple(float(v) for v in importance[:n]), importance_label=label,
      importance_signed=signed, pred=names[pred], confidence=float(probs[pred]),
      probs={names[c]: float(p) for c, p in enumerate(probs)},
      true=None if ex.label is None else names[ex.label], notes=tuple(ex.notes),
      pair_positions=pairs, neurons=token_neurons, d_ff=d_ff, threshold=threshold,
      planted=None if ex.planted is None else tuple(bool(v) for v in ex.planted[:n]),
      strength=strength, hidden=hidden, neuron_order=order)


def _header(run, importance_label: str, has_vmask: bool) -> tuple[tuple[str, str], ...]:
  c = run.config
  layers = int(c.model.num_layers)
  return (("run", str(run.workdir)),
          ("checkpoint", f"{run.which} (step {run.step})"),
          ("config", f"{c.get('name')}:{c.get('variant')}  λ_imp={c.loss.importance:g} "
                     f"λ_inter={c.loss.interaction:g}"),
          ("data", str(run.dataset_info.get("source", "?"))),
          ("model", f"d_model {c.model.d_model}, {c.model.num_heads} heads, {layers} "
                    f"layer(s), d_ff {c.model.d_ff}, VMASK {'on' if has_vmask else 'off'}"),
          ("token importance", importance_label),
          ("generated", datetime.datetime.now().isoformat(timespec="seconds")))


def _page_notes(has_vmask: bool, layers: int) -> tuple[str, ...]:
  notes = []
  if not has_vmask:
    notes.append("This run has no VMASK layer (baseline): token importance is "
                 "gradient × input of log p(predicted class) instead of a keep-probability.")
  if layers > 1:
    notes.append(f"The neuron pictures show the last of {layers} FFN layers; attention "
                 "is averaged over heads and layers.")
  return tuple(notes)


def explain(run: runs.Run, examples: Sequence[inputs.Example], *,
            threshold: float = 0.0, num_pairs: int = 5) -> ExplanationSet:
  """Explains ``examples`` with ``run``'s model (one forward pass); writes nothing.

  Args:
    run: a loaded run (``runs.load_run``).
    examples: from ``inputs.text_example`` or ``inputs.split_examples``.
    threshold: an FFN neuron is active for a token above this activation.
    num_pairs: strongest attention pairs listed per example.
  """
  if not examples:
    raise InterpretError("nothing to explain: no example given")
  predictor = forward.Predictor.for_run(run)
  lengths = np.array([len(e.tokens) for e in examples], np.int32)
  ids = np.stack([e.ids for e in examples])[:, :predictor.width(lengths)]
  last_layer = {}
  passed = forward.collect(predictor, ids, lengths,
                           lambda row, acts: last_layer.__setitem__(row, acts.ffn[-1]))
  importance, label, signed = _importance(predictor, ids, lengths, passed)
  has_vmask = passed.keep_prob is not None
  items = tuple(
      _explanation(k, ex, probs=passed.probs[k], importance=importance[k], label=label,
                   signed=signed, attention=passed.attention[k],
                   hidden=last_layer.get(k), names=run.label_names,
                   d_ff=int(run.model.d_ff), threshold=threshold, num_pairs=num_pairs)
      for k, ex in enumerate(examples))
  return ExplanationSet(
      title=f"SAFR explanations: {run.workdir.name}",
      header=_header(run, label, has_vmask),
      notes=_page_notes(has_vmask, int(run.config.model.num_layers)),
      explanations=items, has_vmask=has_vmask)


# ----------------------------------------------------------------------------
# Writing.


def write_pictures(explained: ExplanationSet, out: str | pathlib.Path
                   ) -> dict[str, pathlib.Path]:
  """One PNG per explanation with tokens (``example_NNN.png``); removes the
  pictures of an earlier, longer explain in ``out``. Returns id → file."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  for old in out.glob("example_*.png"):
    old.unlink()
  files = {}
  for k, e in enumerate(explained.explanations):
    if e.neuron_order is None:
      continue
    order = e.neuron_order
    fig = plots.explanation_figure(
        tokens=tuple(map(html_lib.neutralise_bidi, e.tokens)),
        importance=np.asarray(e.importance),
        importance_label=e.importance_label, strength=e.strength,
        pairs=e.pair_positions, hidden=e.hidden[:, order.order], neuron_ids=order.order,
        num_shared=order.num_shared, num_silent=order.num_silent,
        unit_interval=not e.importance_signed,
        title=html_lib.neutralise_bidi(e.figure_title))
    files[e.id] = provenance.write_file(out / _PNG.format(k),
                                  functools.partial(plots.save, fig))
  return files


def _records(explained: ExplanationSet, pictures: Mapping[str, pathlib.Path]) -> list[dict]:
  return [e.to_json(pictures[e.id].name if e.id in pictures else None)
          for e in explained.explanations]


def write_json(explained: ExplanationSet, out: str | pathlib.Path,
               pictures: Mapping[str, pathlib.Path]) -> pathlib.Path:
  """``out/explanations.json``: header, notes, one record per example."""
  return provenance.write_file(
      pathlib.Path(out) / JSON_FILE,
      json.dumps({"header": dict(explained.header), "notes": list(explained.notes),
                  "examples": _records(explained, pictures)}, indent=1) + "\n")


def write_html(explained: ExplanationSet, out: str | pathlib.Path,
               pictures: Mapping[str, pathlib.Path]) -> pathlib.Path:
  """``out/index.html``, self-contained (the pictures inlined)."""
  images = {k: html_lib.Picture(file=p.name, png=p.read_bytes()) for k, p in pictures.items()}
  return provenance.write_file(pathlib.Path(out) / INDEX_FILE,
                         html_lib.render_page(explained, images))


def write_explanations(explained: ExplanationSet, out: str | pathlib.Path) -> Explained:
  """Pictures, ``explanations.json`` and ``index.html`` in ``out``.

  Each file is written whole or not at all, and the page last: the page and
  JSON of an earlier explain are removed first, so a folder whose writing was
  stopped (SIGINT, full disk) has no index.html that could pass for this
  one's.
  """
  for name in (INDEX_FILE, JSON_FILE):
    (pathlib.Path(out) / name).unlink(missing_ok=True)
  pictures = write_pictures(explained, out)
  write_json(explained, out, pictures)
  index = write_html(explained, out, pictures)
  return Explained(index=index, records=_records(explained, pictures),
                   notes=list(explained.notes), explanations=explained)


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
  explained = explain(run, examples, threshold=threshold, num_pairs=num_pairs)
  return write_explanations(explained, pathlib.Path(out) if out else
                            run.workdir / "explanations")
