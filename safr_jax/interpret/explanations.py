"""``explain``: per example, every token-importance method with its
faithfulness on that example, the strongest attention pairs and the FFN
neuron allocation, as PNG files and one HTML page (``html``).

The methods are ``attribution``'s (VMASK where the run has it, gradient ×
input, leave-one-out, attention received), each with the comprehensiveness
and sufficiency ``faithfulness`` gives it on the example alone. Attention
received is shown minus its mean over the example's tokens (that mean is 1
whenever no attention goes to padding, so the raw values say little): the
same ranking, so the same faithfulness. The neuron picture's token importance
is the VMASK keep-probability; a run without VMASK (the ``baseline`` variant)
has none, so its picture uses gradient × input instead and says so.

With ``compare_to`` the same examples go through a second run's model (it must
have the first's vocabulary, labels and text options): the page shows both
runs' scores row beside row, how far their top tokens agree, and their
pictures side by side, each pair on shared colour scales.

The default examples are a seeded, class-balanced sample of the split
(``splits.stratified_subsample``, as ``evaluate`` draws its subset).

Computing and writing are apart: ``explain`` returns an ``ExplanationSet``
(one frozen ``Explanation`` per example, no file touched); ``explain_files``
draws and writes it, and its ``explain_run`` (the command line's entry) does
both.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from safr_jax import runs
from safr_jax import workdir as workdir_lib
from safr_jax.data import splits as splits_lib
from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret import attribution, faithfulness, forward
from safr_jax.interpret import inputs, neurons
from safr_jax.errors import InterpretError

__all__ = ["explain", "check_comparable", "sample", "Explanation", "ExplanationSet",
           "MethodScores", "TokenNeurons", "METHODS"]

_STRONGEST = 5  # neurons listed per token
# The token-importance methods shown, in this order (``attribution.METHODS``
# without ``random``, the chance level; VMASK only where the run has it).
METHODS = ("vmask", "gradient_x_input", "occlusion", "attention")


@dataclasses.dataclass(frozen=True)
class MethodScores:
  """One token-importance method on one example of n tokens: its scores
  ``[n]`` and its faithfulness on the example alone (None without tokens)."""
  name: str                        # an ``attribution.METHODS`` name
  scores: tuple[float, ...]
  comprehensiveness: float | None
  sufficiency: float | None

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self) | {"scores": list(self.scores)}


@dataclasses.dataclass(frozen=True)
class TokenNeurons:
  """One token's FFN neurons (last layer): ``active`` = how many it activates
  (which: ``explanations.npz``'s activations above the threshold)."""
  token: str                       # "word (#position)"
  importance: float
  active: int
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
  methods: tuple[MethodScores, ...] = ()  # every METHODS entry the run has
  model_text: str = ""             # the text as tokenised for the model

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

  def to_json(self, image: str | None = None, attention_image: str | None = None,
              arrays: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``explanations.json`` record: ``image`` and ``attention_image`` are
    the PNGs' file names, ``arrays`` names this example's arrays in
    ``explanations.npz``."""
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
        "attention_image": attention_image, "arrays": dict(arrays or {}),
        "planted": None if self.planted is None else list(self.planted),
        "methods": [m.to_json() for m in self.methods], "model_text": self.model_text}

  def arrays(self) -> dict[str, np.ndarray]:
    """What ``explanations.npz`` keeps of this example (none without tokens)."""
    if self.hidden is None:
      return {}
    return {"hidden": np.asarray(self.hidden, np.float32),
            "strength": np.asarray(self.strength, np.float32)}


@dataclasses.dataclass(frozen=True)
class ExplanationSet:
  """Every explanation of one ``explain`` call, with the page's header (about
  the run), page-wide notes and the run's folder name."""
  title: str
  header: tuple[tuple[str, str], ...]
  notes: tuple[str, ...]
  explanations: tuple[Explanation, ...]
  has_vmask: bool
  run: str = ""

  def to_json(self, pictures: Mapping[str, Sequence[str]] | None = None,
              prefix: str = "") -> dict[str, Any]:
    """Header, notes, one record per example (``pictures``: id → its PNGs'
    names, neurons then attention); ``prefix`` + id + "/" names its arrays."""
    pictures = pictures or {}
    return {"header": dict(self.header), "notes": list(self.notes),
            "examples": [e.to_json(*pictures.get(e.id, ()), arrays={
                k: f"{prefix}{e.id}/{k}" for k in e.arrays()}) for e in self.explanations]}

  def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
    """Every example's arrays, keyed as its record's ``arrays`` names them."""
    return {f"{prefix}{e.id}/{k}": v for e in self.explanations
            for k, v in e.arrays().items()}


# ----------------------------------------------------------------------------
# Computing.


def _method_scores(predictor, ids, lengths, passed: forward.ForwardPass,
                   progress: Callable[[int], None] | None = None
                   ) -> list[tuple[MethodScores, ...]]:
  """Per example, each of ``METHODS`` the run has: scores and faithfulness;
  ``progress(k)`` after the k-th example.

  The scores are ``attribution.token_scores``, attention received minus its
  mean over the example's tokens; comprehensiveness and sufficiency are
  ``faithfulness.evaluate_faithfulness`` on the example alone (a mean over one
  example is that example's value).
  """
  scores = attribution.token_scores(
      predictor, ids, lengths, full_probs=passed.probs, keep_prob=passed.keep_prob,
      mean_attention=passed.attention, random_orders=1)
  shown = {m: scores[m][0] for m in METHODS if m in scores}
  out = []
  for k, n in enumerate(lengths):
    row = ids[k:k + 1]
    faith = faithfulness.evaluate_faithfulness(
        predictor.probs, row, {m: [s[k:k + 1]] for m, s in shown.items()},
        full_probs=passed.probs[k:k + 1], depths=(),
        deletion_fn=functools.partial(predictor.deletion_probs, row))["methods"]
    shift = {"attention": float(np.mean(shown["attention"][k, :n])) if n else 0.0}
    out.append(tuple(
        MethodScores(name=m, scores=tuple(float(v) - shift.get(m, 0.0) for v in s[k, :n]),
                     comprehensiveness=faith[m]["comprehensiveness"],
                     sufficiency=faith[m]["sufficiency"])
        for m, s in shown.items()))
    if progress is not None:
      progress(k + 1)
  return out


def _own_importance(methods: tuple[MethodScores, ...], has_vmask: bool
                    ) -> tuple[tuple[float, ...], str, bool]:
  """The picture's token importance: (scores, what they are, signed?)."""
  name, label = (("vmask", "VMASK keep-probability") if has_vmask else
                 ("gradient_x_input", "gradient × input (this run has no VMASK)"))
  return next(m.scores for m in methods if m.name == name), label, not has_vmask


def _token_neurons(tokens, importance, hidden, order, threshold):
  out = []
  for t, token in enumerate(tokens):
    strongest = np.argsort(-hidden[t], kind="stable")[:_STRONGEST]
    out.append(TokenNeurons(
        token=f"{token} (#{t})", importance=float(importance[t]),
        active=int(order.active_sets[t].size),
        exclusive=tuple(int(v) for v in order.exclusive_sets[t]),
        strongest=tuple(int(s) for s in strongest if hidden[t, s] > threshold)))
  return tuple(out)


def _explanation(k: int, ex: inputs.Example, *, probs, methods, has_vmask,
                 attention, hidden, names, d_ff, threshold, num_pairs) -> Explanation:
  n = len(ex.tokens)
  pred = int(np.argmax(probs))
  importance, label, signed = _own_importance(methods, has_vmask)
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
      importance=importance, importance_label=label,
      importance_signed=signed, pred=names[pred], confidence=float(probs[pred]),
      probs={names[c]: float(p) for c, p in enumerate(probs)},
      true=None if ex.label is None else names[ex.label], notes=tuple(ex.notes),
      pair_positions=pairs, neurons=token_neurons, d_ff=d_ff, threshold=threshold,
      planted=None if ex.planted is None else tuple(bool(v) for v in ex.planted[:n]),
      strength=strength, hidden=hidden, neuron_order=order, methods=methods,
      model_text=ex.model_text or ex.text)


def _header(run, importance_label: str, has_vmask: bool) -> tuple[tuple[str, str], ...]:
  c = run.config
  layers = int(c.model.num_layers)
  return (("run", str(run.workdir)),
          ("checkpoint", f"{run.which} (step {run.step})"),
          ("config", f"{c.get('name')}:{c.get('variant')}  λ_imp={c.loss.importance:g} "
                     f"λ_inter={c.loss.interaction:g}"),
          ("data", str(inputs.data_source(run) or "?")),
          ("model", f"d_model {c.model.d_model}, {c.model.num_heads} heads, {layers} "
                    f"layer(s), d_ff {c.model.d_ff}, VMASK {'on' if has_vmask else 'off'}"),
          ("picture's token importance", importance_label),
          ("generated", datetime.datetime.now().isoformat(timespec="seconds")))


def _page_notes(has_vmask: bool, layers: int) -> tuple[str, ...]:
  notes = []
  if not has_vmask:
    notes.append("This run has no VMASK layer (baseline): its picture's token importance "
                 "is gradient × input of log p(predicted class) instead of a "
                 "keep-probability.")
  if layers > 1:
    notes.append(f"The neuron pictures show the last of {layers} FFN layers; attention "
                 "is averaged over heads and layers.")
  return tuple(notes)


def explain(run: runs.Run, examples: Sequence[inputs.Example], *,
            threshold: float = 0.0, num_pairs: int = 5,
            progress: Callable[[int], None] | None = None) -> ExplanationSet:
  """Explains ``examples`` with ``run``'s model; writes nothing.

  Args:
    run: a loaded run (``runs.load_run``).
    examples: from ``inputs.text_example`` or ``inputs.split_examples``
      (``inputs.for_run`` for examples built for another run).
    threshold: an FFN neuron is active for a token above this activation.
    num_pairs: strongest attention pairs listed per example.
    progress: called with k once k examples are explained.
  """
  if not examples:
    raise InterpretError("nothing to explain: no example given")
  predictor = forward.Predictor.for_run(run)
  lengths = np.array([len(e.tokens) for e in examples], np.int32)
  ids = np.stack([e.ids for e in examples])[:, :predictor.width(lengths)]
  last_layer = {}
  passed = forward.collect(predictor, ids, lengths,
                           lambda row, acts: last_layer.__setitem__(row, acts.ffn[-1]))
  methods = _method_scores(predictor, ids, lengths, passed, progress)
  has_vmask = passed.keep_prob is not None
  items = tuple(
      _explanation(k, ex, probs=passed.probs[k], methods=methods[k], has_vmask=has_vmask,
                   attention=passed.attention[k], hidden=last_layer.get(k),
                   names=run.label_names, d_ff=int(run.model.d_ff), threshold=threshold,
                   num_pairs=num_pairs)
      for k, ex in enumerate(examples))
  return ExplanationSet(
      title=f"SAFR explanations: {run.workdir.name}",
      header=_header(run, items[0].importance_label, has_vmask),
      notes=_page_notes(has_vmask, int(run.config.model.num_layers)),
      explanations=items, has_vmask=has_vmask, run=run.workdir.name)


def check_comparable(run: runs.Run, other: runs.Run) -> None:
  """Raises an InterpretError (one line) unless ``other`` reads text as ``run``
  does: the same vocabulary (vocab.txt), label names and text options."""
  differ = []
  mine, theirs = (workdir_lib.vocab_hash(list(r.vocab.tokens)) for r in (run, other))
  if mine != theirs:
    differ.append(f"vocab.txt (sha256 {mine[:12]}… with {len(run.vocab)} tokens vs "
                  f"{theirs[:12]}… with {len(other.vocab)})")
  if list(run.label_names) != list(other.label_names):
    differ.append(f"label names ({list(run.label_names)!r} vs {list(other.label_names)!r})")
  options = [f"{o} {getattr(run.vocab, o)} vs {getattr(other.vocab, o)}"
             for o in ("lowercase", "strip_html")
             if getattr(run.vocab, o) != getattr(other.vocab, o)]
  if options:
    differ.append(f"text options ({', '.join(options)})")
  if differ:
    raise InterpretError(
        f"--compare_to: {other.workdir} cannot be compared with {run.workdir}: their "
        f"{'; '.join(differ)} differ; compare runs trained on the same data")


def _check_sample(num: int, seed: int) -> None:
  if num < 1:
    raise InterpretError(f"num must be >= 1, got {num}")
  if seed < 0:
    raise InterpretError(f"seed must be >= 0, got {seed}")


def sample(labels: np.ndarray, num: int, seed: int) -> np.ndarray:
  """Sorted indices of ``num`` examples of a split with labels ``labels``: a
  seeded sample with every class in its share of the split (all of them when
  ``num`` >= the split's size), drawn as ``evaluate`` draws its subset. A
  split stored class by class (IMDB: negatives, then positives) gives both."""
  _check_sample(num, seed)
  return splits_lib.stratified_subsample(np.asarray(labels), num, seed)
