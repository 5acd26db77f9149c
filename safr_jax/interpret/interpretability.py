"""``evaluate``: every interpretability metric of a trained run, in
``<workdir>/interpretability.json``.

Accuracy, the regularizer values and the VMASK gate (``keep_rate``,
``keep_above_half``) cover the whole split (computed exactly as
``results.json`` computes them); the per-token metrics cover a seeded,
stratified subset of at most ``max_examples`` examples. Definitions: the
modules ``superposition``, ``neurons``, ``attention``, ``attribution``,
``faithfulness``, ``planted_recovery`` and ``token_stats``, and
``docs/METRICS.md``. Beside the summary, ``interpretability.examples.json``
holds every per-example score (with the example's index in the split), so
intervals can cover the examples as well as the seeds.

``measure`` computes an ``InterpretabilityReport`` (writes nothing);
``write_report`` writes it; ``evaluate_run`` (the command line's entry) does
both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any, Mapping

import jax
import numpy as np

from safr_jax import data, metrics, provenance, runs, steps
from safr_jax.data import splits as splits_lib
from safr_jax.interpret import attribution, faithfulness, forward, inputs
from safr_jax.interpret import planted_recovery
from safr_jax.errors import InterpretError
from safr_jax.interpret.token_stats import IMPORTANT, TokenStats

__all__ = ["evaluate_run", "measure", "write_report", "split_losses", "examples_path",
           "InterpretabilityReport", "OUTPUT_FILE", "IMPORTANT"]

OUTPUT_FILE = "interpretability.json"
_DIGITS = 6  # per-example values: ample for means and intervals, a third of the bytes
_SRS_NOTE = ("SRS (the paper's score) is not computed: its definition and code are "
             "not available. Every number here is ours (docs/METRICS.md).")
_NO_VMASK_NOTE = ("no VMASK in this run: no 'vmask' explanation, no important/other "
                  "token split and no keep_rate/keep_above_half (keep-probability "
                  "undefined)")


@dataclasses.dataclass(frozen=True)
class InterpretabilityReport:
  """Everything ``interpretability.json`` holds; ``to_json`` gives the file's
  dict (these fields, in this order; ``planted`` only for planted data)."""
  run: Mapping[str, Any]
  split: str
  split_examples: int
  accuracy: float
  cross_entropy: float
  importance_loss: float
  interaction_loss: float
  keep_rate: float | None          # mean VMASK keep-probability over real tokens
  keep_above_half: float | None    # share of real tokens with keep-probability > 0.5
  # Mean keep-probability on the subset's padding positions where padding is
  # pooled (model.pool="all", the authors'): can the gate help by closing on it?
  keep_rate_padding: float | None
  examples: int
  subset_accuracy: float
  superposition: Mapping[str, Any]
  neuron_overlap: Mapping[str, Any]
  mechanism: Mapping[str, Any]     # token_stats.MATCHED means: same top-k for every model
  faithfulness: Mapping[str, Any]
  planted: Mapping[str, Any] | None
  settings: Mapping[str, Any]
  timing_s: Mapping[str, float]
  notes: tuple[str, ...]
  # The code that measured (git commit, package versions): a run trained at one
  # commit may be evaluated at a later one, e.g. when a metric is added.
  provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # Per example (``examples_path``'s file): each column a list over the subset;
  # ``whole_split``'s over the whole split, in split order.
  per_example: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict[str, Any]:
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
           if f.name != "per_example"}
    if self.planted is None:
      del out["planted"]
    out["notes"] = list(self.notes)
    return out

  def per_example_json(self) -> dict[str, Any]:
    return {"run": self.run, "split": self.split, "provenance": self.provenance,
            **self.per_example}


def _column(values: np.ndarray) -> list:
  """A JSON list: integers as they are, floats rounded, NaN as null."""
  values = np.asarray(values)
  if values.dtype.kind in "iub":
    return values.tolist()
  return [round(float(v), _DIGITS) if np.isfinite(v) else None for v in values]


def split_losses(run: runs.Run, split: data.EncodedSplit
                 ) -> tuple[dict[str, float], np.ndarray]:
  """Accuracy, cross-entropy, L_Imp, L_Inter, keep_rate and keep_above_half on
  the whole split, eval mode, batched as training evaluates (the numbers of
  results.json); and whether each example is classified correctly (bool [N],
  in split order: accuracy intervals then cover the whole split's examples)."""
  c = run.config
  step = jax.jit(functools.partial(
      steps.eval_step, model=run.model, weights=steps.loss_weights(c),
      count_padding=bool(c.loss.count_padding),
      query_block_size=c.loss.query_block_size,
      # as train.py decides: extra compiled branches only where they pay
      cut_padded_keys=bool(c.loss.count_padding) and steps.cut_pays(
          split.lengths, split.max_len, int(c.train.eval_batch_size)),
      per_example=True))
  sums, correct = None, []
  for batch in data.eval_batches(split, batch_size=int(c.train.eval_batch_size),
                                 pad_to=c.data.get("pad_to", "max_len")):
    batch_sums, ok = step(run.params, batch)
    sums = metrics.add(sums, batch_sums)
    correct.append((ok, batch["weights"] > 0))  # read back once, at the end
  return metrics.means(sums), np.concatenate([np.asarray(ok)[real] for ok, real in correct])


def _run_info(run: runs.Run) -> dict[str, Any]:
  c = run.config
  return {"workdir": str(run.workdir), "checkpoint": run.which, "step": run.step,
          "name": c.get("name"), "variant": c.get("variant"), "seed": c.get("seed"),
          "lambda_importance": float(c.loss.importance),
          "lambda_interaction": float(c.loss.interaction),
          "use_vmask": bool(c.model.use_vmask),
          "source": run.dataset_info.get("source")}


class _Timer:
  """Seconds per named phase; ``earlier`` phases were timed before it started."""

  def __init__(self, earlier: Mapping[str, float] | None = None):
    self.seconds: dict[str, float] = dict(earlier or {})
    self.start = time.monotonic() - sum(self.seconds.values())

  def __call__(self, name: str, fn, *args, **kwargs):
    t = time.monotonic()
    out = fn(*args, **kwargs)
    self.seconds[name] = time.monotonic() - t
    return out

  def rounded(self) -> dict[str, float]:
    total = dict(self.seconds, total=time.monotonic() - self.start)
    return {k: round(v, 3) for k, v in total.items()}


def _check(max_examples: int | None, random_orders: int) -> None:
  if max_examples is not None and max_examples < 1:
    raise InterpretError(f"max_examples must be >= 1, got {max_examples}")
  if random_orders < 1:
    raise InterpretError(f"random_orders must be >= 1, got {random_orders}")


def _token_metrics(predictor, ids, lengths, *, active_threshold, pairs_per_example, seed):
  """One forward pass over the subset: per-row arrays and the token statistics."""
  stats = TokenStats(active_threshold, pairs_per_example, seed)
  passed = forward.collect(predictor, ids, lengths, lambda row, acts: stats.add(acts, row))
  return passed, stats


def _planted(encoded, idx, passed: forward.ForwardPass, scores) -> dict:
  planted = encoded.planted[idx, :passed.width]
  mask = encoded.ids[idx, :passed.width] != 0
  return {"precision_recall": {name: planted_recovery.precision_recall(s, planted, mask)
                               for name, s in scores.items()},
          "negation_pairs": planted_recovery.negation_pairs(
              passed.attention, mask, encoded.negation_pairs[idx])}


def _padding_keep(run: runs.Run, passed: forward.ForwardPass, ids: np.ndarray) -> float | None:
  padding = ids[:, :passed.width] == 0
  if passed.keep_prob is None or run.config.model.pool != "all" or not padding.any():
    return None
  return float(passed.keep_prob[padding].mean())


def measure(run: runs.Run, encoded: data.EncodedSplit, *, split: str = "test",
            max_examples: int | None = 500, random_orders: int = 3,
            active_threshold: float = 0.0, pairs_per_example: int = 3,
            seed: int = 0, timing: Mapping[str, float] | None = None
            ) -> InterpretabilityReport:
  """Every metric of ``run`` on ``encoded`` (its split called ``split``);
  ``timing``: seconds spent before (e.g. ``{"load": 2.0}``), kept in ``timing_s``."""
  _check(max_examples, random_orders)
  timer = _Timer(timing)
  losses, split_correct = timer("split_losses", split_losses, run, encoded)
  idx = splits_lib.stratified_subsample(encoded.labels, max_examples or len(encoded), seed)
  lengths = encoded.lengths[idx]
  predictor = forward.Predictor.for_run(run)
  ids = encoded.ids[idx, :predictor.width(lengths)]
  passed, stats = timer(
      "forward_superposition_neurons", _token_metrics, predictor, ids, lengths,
      active_threshold=active_threshold, pairs_per_example=pairs_per_example, seed=seed)
  scores = timer("explanations", attribution.token_scores, predictor, ids, lengths,
                 full_probs=passed.probs, keep_prob=passed.keep_prob,
                 mean_attention=passed.attention, random_orders=random_orders, seed=seed)
  faith = timer("faithfulness", faithfulness.evaluate_faithfulness, predictor.probs,
                ids, scores, full_probs=passed.probs,
                deletion_fn=functools.partial(predictor.deletion_probs, ids))
  planted = (None if encoded.planted is None else
             timer("planted", _planted, encoded, idx, passed, scores))
  has_vmask = passed.keep_prob is not None
  predicted = np.argmax(passed.probs, -1)
  rows = faith["example_rows"]
  per_example = {k: _column(v) for k, v in (
      ("index", np.asarray(idx)[rows]), ("label", encoded.labels[idx][rows]),
      ("tokens", lengths[rows]), ("correct", (predicted == encoded.labels[idx])[rows]),
      ("p_predicted", passed.probs.max(-1)[rows]))}
  per_example["whole_split"] = {"correct": _column(split_correct.astype(np.int8))}
  per_example["faithfulness"] = {m: {k: _column(v) for k, v in cols.items()}
                                 for m, cols in faith["per_example"].items()}
  per_example["mechanism"] = {k: _column(v[rows])
                              for k, v in stats.per_example(len(idx)).items()}
  return InterpretabilityReport(
      run=_run_info(run), split=split, split_examples=len(encoded),
      accuracy=losses["accuracy"], cross_entropy=losses["ce"],
      importance_loss=losses["importance"], interaction_loss=losses["interaction"],
      keep_rate=losses["keep_rate"] if has_vmask else None,
      keep_above_half=losses["keep_above_half"] if has_vmask else None,
      keep_rate_padding=_padding_keep(run, passed, ids),
      examples=int(len(idx)),
      subset_accuracy=float(np.mean(predicted == encoded.labels[idx])),
      superposition=stats.superposition_summary(), neuron_overlap=stats.overlap_summary(),
      mechanism=stats.matched_summary(len(idx)),
      faithfulness=faith["methods"], planted=planted,
      settings={"max_examples": max_examples, "random_orders": random_orders,
                "important_keep_prob": IMPORTANT, "seed": seed,
                "width": passed.width,
                "faithfulness": {k: v for k, v in faith.items()
                                 if k not in ("methods", "example_rows", "per_example")}},
      timing_s=timer.rounded(),
      notes=(_SRS_NOTE,) + (() if has_vmask else (_NO_VMASK_NOTE,)),
      provenance={"git_commit": provenance.git_commit(), "versions": provenance.versions()},
      per_example=per_example)


def examples_path(path: str | pathlib.Path) -> pathlib.Path:
  """Where the per-example scores of the summary at ``path`` go:
  ``interpretability.json`` → ``interpretability.examples.json``."""
  path = pathlib.Path(path)
  return path.with_name(f"{path.stem}.examples.json")


def write_report(report: InterpretabilityReport, path: str | pathlib.Path) -> pathlib.Path:
  """Writes ``report`` as JSON to ``path`` and its per-example scores to
  ``examples_path(path)``, each whole or not at all (strict JSON: no NaN;
  ``provenance.write_file``); the summary last, so a summary is never newer
  than its examples."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  provenance.write_file(examples_path(path), json.dumps(
      report.per_example_json(), separators=(",", ":"), allow_nan=False) + "\n")
  return provenance.write_file(path, json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")


def evaluate_run(workdir: str | pathlib.Path, *, split: str = "test",
                 max_examples: int | None = 500, random_orders: int = 3,
                 active_threshold: float = 0.0, pairs_per_example: int = 3,
                 seed: int = 0, which: str = "best",
                 out: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Computes every metric and writes ``out`` (default
  ``<workdir>/interpretability.json``). Returns what it wrote."""
  _check(max_examples, random_orders)  # before the (slow) loading
  start = time.monotonic()
  run = runs.load_run(workdir, which=which)
  encoded = inputs.load_split(run, split)
  report = measure(run, encoded, split=split, max_examples=max_examples,
                   random_orders=random_orders, active_threshold=active_threshold,
                   pairs_per_example=pairs_per_example, seed=seed,
                   timing={"load": time.monotonic() - start})
  write_report(report, pathlib.Path(out) if out else run.workdir / OUTPUT_FILE)
  return report.to_json()
