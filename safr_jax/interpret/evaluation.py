"""``evaluate``: every interpretability metric of a trained run, in
``<workdir>/interpretability.json``.

Accuracy and the regularizer values cover the whole split (computed exactly as
``results.json`` computes them); the per-token metrics cover a seeded,
stratified subset of at most ``max_examples`` examples. Definitions: the
modules ``superposition``, ``neurons``, ``attention``, ``attribution``,
``faithfulness`` and ``planted``, and ``docs/METRICS.md``.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time
from typing import Any

import jax
import numpy as np

from safr_jax import data, metrics, runs
from safr_jax.data import splits as splits_lib
from safr_jax.interpret import attention as attention_lib
from safr_jax.interpret import attribution, faithfulness, inputs, neurons
from safr_jax.interpret import planted as planted_lib
from safr_jax.interpret import superposition
from safr_jax.interpret.errors import InterpretError
from safr_jax.interpret.forward import Predictor

__all__ = ["evaluate_run", "OUTPUT_FILE"]

OUTPUT_FILE = "interpretability.json"
IMPORTANT = 0.5  # keep-probability above which a token counts as important


def split_losses(run, split: data.EncodedSplit) -> dict[str, float]:
  """Accuracy, cross-entropy, L_Imp, L_Inter, keep rate on the whole split,
  eval mode, batched as training evaluates (same numbers as results.json)."""
  from safr_jax import train_lib  # pylint: disable=g-import-not-at-top
  c = run.config
  step = jax.jit(functools.partial(
      train_lib.eval_step, model=run.model, weights=train_lib.loss_weights(c),
      count_padding=bool(c.loss.count_padding),
      query_block_size=c.loss.get("query_block_size")))
  sums = None
  for batch in data.eval_batches(split, batch_size=int(c.train.eval_batch_size),
                                 pad_to=c.data.get("pad_to", "max_len")):
    sums = metrics.add(sums, step(run.params, batch))
  return metrics.means(sums)


def _mean(values) -> float | None:
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return float(values.mean()) if values.size else None


class _TokenStats:
  """Per-token superposition and neuron-overlap values, pooled over examples."""

  def __init__(self, threshold: float, pairs_per_example: int, seed: int):
    self.threshold = threshold
    self.k = pairs_per_example
    self.rng = np.random.default_rng(seed)
    self.group: list[np.ndarray] = []  # per token: 1 important, 0 other, -1 n/a
    self.values = {k: [] for k in ("emb_sharing", "emb_dim", "ffn_sharing",
                                   "ffn_dim", "active_fraction")}
    # Mean Jaccard of the active-neuron sets of each kind of token pair.
    self.pairs = {k: [] for k in ("important_pairs", "important_other_pairs",
                                  "other_pairs", "attention_pairs", "random_pairs")}

  def add(self, emb, ffn, keep, attn) -> None:
    """One example's real tokens: emb [n, D], ffn [layers, n, F], keep [n] or
    None, attn [n, n]."""
    n = emb.shape[0]
    group = np.full(n, -1) if keep is None else (keep > IMPORTANT).astype(int)
    self.group.append(group)
    s, d = superposition.token_superposition(emb)
    self.values["emb_sharing"].append(s)
    self.values["emb_dim"].append(d)
    per_layer = [superposition.token_superposition(h) for h in ffn]
    self.values["ffn_sharing"].append(np.mean([p[0] for p in per_layer], axis=0))
    self.values["ffn_dim"].append(np.mean([p[1] for p in per_layer], axis=0))
    on = neurons.active(ffn, self.threshold)             # [layers, n, F]
    self.values["active_fraction"].append(on.mean(axis=(0, 2)))
    if n < 2:
      return
    jac = np.mean([neurons.pairwise_jaccard(a) for a in on], axis=0)
    i, j = np.triu_indices(n, k=1)
    if keep is not None:
      gi, gj = group[i], group[j]
      self.pairs["important_pairs"].append(jac[i, j][(gi == 1) & (gj == 1)])
      self.pairs["other_pairs"].append(jac[i, j][(gi == 0) & (gj == 0)])
      self.pairs["important_other_pairs"].append(jac[i, j][gi != gj])
    top = attention_lib.top_pairs(attention_lib.pair_strength(attn), self.k)
    self.pairs["attention_pairs"].append(np.array([jac[a, b] for a, b, _ in top]))
    pick = self.rng.choice(len(i), size=min(self.k, len(i)), replace=False)
    self.pairs["random_pairs"].append(jac[i[pick], j[pick]])

  def summary(self) -> tuple[dict, dict]:
    group = np.concatenate(self.group) if self.group else np.zeros(0, int)
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.values.items()}
    masks = {"all": np.ones_like(group, bool), "important": group == 1,
             "other": group == 0}
    sup = {}
    for space, prefix in (("embeddings", "emb"), ("ffn", "ffn")):
      sup[space] = {g: {"sharing": _mean(cat[f"{prefix}_sharing"][m]),
                        "dimensionality": _mean(cat[f"{prefix}_dim"][m]),
                        "tokens": int(np.isfinite(cat[f"{prefix}_dim"][m]).sum())}
                    for g, m in masks.items()}
    sup["zero_norm_tokens"] = {space: int(np.isnan(cat[f"{prefix}_dim"]).sum())
                               for space, prefix in (("embeddings", "emb"), ("ffn", "ffn"))}
    pairs = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.pairs.items()}
    overlap = {k: _mean(v) for k, v in pairs.items()}
    a, r = overlap["attention_pairs"], overlap["random_pairs"]
    overlap["attention_minus_random"] = None if a is None or r is None else a - r
    overlap["pair_counts"] = {k: int(v.size) for k, v in pairs.items()}
    overlap["active_fraction"] = {g: _mean(cat["active_fraction"][m])
                                  for g, m in masks.items()}
    overlap["active_threshold"] = self.threshold
    overlap["pairs_per_example"] = self.k
    return sup, overlap


def evaluate_run(workdir: str | pathlib.Path, *, split: str = "test",
                 max_examples: int | None = 500, random_orders: int = 3,
                 active_threshold: float = 0.0, pairs_per_example: int = 3,
                 seed: int = 0, which: str = "best",
                 out: str | pathlib.Path | None = None) -> dict[str, Any]:
  """Computes every metric and writes ``out`` (default
  ``<workdir>/interpretability.json``). Returns what it wrote."""
  if max_examples is not None and max_examples < 1:
    raise InterpretError(f"max_examples must be >= 1, got {max_examples}")
  if random_orders < 1:
    raise InterpretError(f"random_orders must be >= 1, got {random_orders}")
  timing = {}
  start = t = time.monotonic()
  run = runs.load_run(workdir, which=which)
  encoded = inputs.load_split(run, split)
  timing["load"] = time.monotonic() - t

  t = time.monotonic()
  losses_ = split_losses(run, encoded)
  timing["split_losses"] = time.monotonic() - t

  idx = splits_lib.stratified_subsample(encoded.labels, max_examples or len(encoded), seed)
  lengths = encoded.lengths[idx]
  predictor = Predictor(run.model, run.params, max_len=run.config.data.max_len,
                        pad_to=run.config.data.get("pad_to", "max_len"))
  width = predictor.width(lengths)
  ids = encoded.ids[idx, :width]
  mask = ids != 0

  t = time.monotonic()
  stats = _TokenStats(active_threshold, pairs_per_example, seed)
  probs = np.zeros((len(idx), len(run.label_names)))
  keep = np.zeros(ids.shape) if predictor.has_vmask else None
  attn = np.zeros((len(idx), width, width))
  for part, ins in predictor.insides(ids, lengths):
    probs[part] = ins.probs
    attn[part] = ins.attention
    if keep is not None:
      keep[part] = ins.keep_prob
    for x, e in enumerate(part):
      n = int(lengths[e])
      if n:
        stats.add(ins.embeddings[x, :n], ins.ffn[:, x, :n],
                  None if keep is None else keep[e, :n], attn[e, :n, :n])
  superposition_, overlap = stats.summary()
  timing["forward_superposition_neurons"] = time.monotonic() - t

  t = time.monotonic()
  scores = attribution.token_scores(predictor, ids, lengths, full_probs=probs,
                                    keep_prob=keep, mean_attention=attn,
                                    random_orders=random_orders, seed=seed)
  timing["explanations"] = time.monotonic() - t
  t = time.monotonic()
  faith = faithfulness.evaluate_faithfulness(predictor.probs, ids, scores,
                                             full_probs=probs)
  timing["faithfulness"] = time.monotonic() - t

  c = run.config
  notes = ["SRS (the paper's score) is not computed: its definition and code are "
           "not available. Every number here is ours (docs/METRICS.md)."]
  if keep is None:
    notes.append("no VMASK in this run: no 'vmask' explanation, and no "
                 "important/other token split (keep-probability undefined)")
  result = {
      "run": {"workdir": str(run.workdir), "checkpoint": run.which, "step": run.step,
              "name": c.get("name"), "variant": c.get("variant"), "seed": c.get("seed"),
              "lambda_importance": float(c.loss.importance),
              "lambda_interaction": float(c.loss.interaction),
              "use_vmask": bool(c.model.use_vmask),
              "source": run.dataset_info.get("source")},
      "split": split,
      "split_examples": len(encoded),
      "accuracy": losses_["accuracy"],
      "cross_entropy": losses_["ce"],
      "importance_loss": losses_["importance"],
      "interaction_loss": losses_["interaction"],
      "keep_rate": losses_["keep_rate"] if keep is not None else None,
      "examples": int(len(idx)),
      "subset_accuracy": float(np.mean(np.argmax(probs, -1) == encoded.labels[idx])),
      "superposition": superposition_,
      "neuron_overlap": overlap,
      "faithfulness": faith["methods"],
  }
  if encoded.planted is not None:
    t = time.monotonic()
    planted = encoded.planted[idx, :width]
    result["planted"] = {
        "precision_recall": {name: planted_lib.precision_recall(s, planted, mask)
                             for name, s in scores.items()},
        "negation_pairs": planted_lib.negation_pairs(attn, mask,
                                                     encoded.negation_pairs[idx]),
    }
    timing["planted"] = time.monotonic() - t
  timing["total"] = time.monotonic() - start
  result["settings"] = {"max_examples": max_examples, "random_orders": random_orders,
                        "important_keep_prob": IMPORTANT, "seed": seed,
                        "width": int(width),
                        "faithfulness": {k: v for k, v in faith.items() if k != "methods"}}
  result["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
  result["notes"] = notes
  path = pathlib.Path(out) if out else run.workdir / OUTPUT_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
  tmp.replace(path)
  return result
