"""Intervals over seeds and test examples for run_grid.py's per-run summaries.

Intervals (``effect``) cover seeds and test examples. For a contrast A − B
over runs r with per-example vectors x_r, aligned on the examples' split
``index`` (the examples every run of both arms scored, nulls dropped):
Δ = mean_A m_r − mean_B m_r with m_r the run's mean over those examples;
seed terms a = var(m_A)/n_A, b = var(m_B)/n_B; example term
c = max(var(d_e) − σ²_A/n_A − σ²_B/n_B, 0)/|E| with d_e = mean_A x_r[e] −
mean_B x_r[e] (the examples are shared: paired) and σ² an arm's run × example
residual variance (two-way fit), which a and b already count;
SE = √(a + b + c), Welch–Satterthwaite df = SE⁴ / (a²/(n_A−1) + b²/(n_B−1) +
c²/(|E|−1)), the 95 % interval Δ ± t(0.975, df)·SE and a two-sided p from t.
One arm (A alone): Δ = mean m_r, a = var(m)/n, c from d_e = mean_r x_r[e].
``experiments/coverage.py`` checks by simulation that these intervals cover.
Runs without per-example scores fall back to ``welch`` over the runs' summary
values ("seeds only"). Fewer than 2 runs an arm: Δ without an interval.
``holm`` corrects a table's p-values (step-down, family = its intervals).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

# Reading summaries


def _number(node: Any) -> float | None:
  ok = isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)
  return float(node) if ok else None


def _node(node: Any, *keys: str) -> Any:
  for key in keys:
    node = node.get(key) if isinstance(node, dict) else None
  return node


def _get(summary: Mapping[str, Any], *keys: str) -> float | None:
  return _number(_node(summary, *keys))


def _gate(summary, *keys) -> float | None:
  """A VMASK gate number; None without VMASK (its gate is a constant 1)."""
  return None if _node(summary, "config", "model", "use_vmask") is False else _get(summary, *keys)


def keep_rate(summary) -> float | None:
  """The gate's mean keep-probability on real test tokens (None without VMASK)."""
  return _gate(summary, "results", "test", "keep_rate")



def load(results_dir: pathlib.Path) -> dict[str, dict[str, list[dict]]]:
  """``{group: {label: [summary, ...]}}``; each summary's per-example scores
  (``results_dir/examples/<same name>``) under ``"_examples"`` (None if absent)."""
  groups: Any = collections.defaultdict(lambda: collections.defaultdict(list))
  for path in sorted(pathlib.Path(results_dir).glob("*.json")):
    summary = json.loads(path.read_text())
    examples = path.parent / "examples" / path.name
    summary["_examples"] = json.loads(examples.read_text()) if examples.exists() else None
    groups[summary["group"]][summary["label"]].append(summary)
  return groups


@dataclasses.dataclass(frozen=True)
class Metric:
  """A number per run (``summary``) and, where the run has per-example scores,
  its per-example column (``example``: the examples file's key path)."""
  summary: Callable[[dict], float | None]
  example: tuple[str, ...] = ()
  scale: float = 1.0
  digits: int = 3
  # per example only over the whole split: its ``whole_split`` column (in split
  # order), or the scored examples where they are the whole split
  whole_split: bool = False

  def column(self, s: dict) -> dict[int, Any] | None:
    """``{split index: value}`` of run ``s``, or None without per-example scores."""
    node = s.get("_examples")
    whole = None if node is None else _node(node, "whole_split", *self.example)
    if self.whole_split and isinstance(whole, list):
      return dict(enumerate(float(v) for v in whole))
    if node is None or not self.example or (self.whole_split and not _whole_split(s)):
      return None
    index, values = node.get("index"), _node(node, *self.example)
    if not isinstance(values, list) or not isinstance(index, list) or len(values) != len(index):
      return None
    return dict(zip(index, (float(v) if isinstance(v, bool) else v for v in values)))


def _whole_split(s) -> bool:
  k = _get(s, "interpretability", "examples")
  return k is not None and k == _get(s, "interpretability", "split_examples")


ACCURACY = Metric(lambda s: _get(s, "results", "test", "accuracy"), ("correct",), 100, 1, True)
POSTHOC = ("gradient_x_input", "occlusion", "attention")
METHODS = ("vmask", "attention", "gradient_x_input", "occlusion", "random")
MECHANISM = ("topk_cos2_embeddings", "topk_cos2_ffn", "topk_jaccard", "attention_jaccard",
             "random_jaccard", "attention_minus_random")


def aopc20(method: str) -> Metric:
  return Metric(lambda s: _get(s, "interpretability", "faithfulness", method, "aopc_by_depth",
                               "20%"), ("faithfulness", method, "aopc@20%"))


def mechanism(name: str) -> Metric:
  return Metric(lambda s: _get(s, "interpretability", "mechanism", name), ("mechanism", name))


# Intervals


@dataclasses.dataclass(frozen=True)
class Effect:
  """A contrast: Δ (None: an arm has no value), and where n allows its interval
  (se, df, low, high, p). ``examples``: the aligned examples, None: seeds only."""
  delta: float | None
  n: tuple[int, ...]
  examples: int | None = None
  se: float | None = None
  df: float | None = None
  low: float | None = None
  high: float | None = None
  p: float | None = None


def _interval(delta: float, n: tuple[int, ...], examples: int | None,
              terms: Sequence[tuple[float, int]], level: float = 0.95) -> Effect:
  """Δ with SE² = Σ terms' variances, Welch–Satterthwaite df over (variance, dof)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  se2 = float(sum(v for v, _ in terms))
  if se2 == 0:
    df = float(sum(k for _, k in terms))
    return Effect(delta, n, examples, 0.0, df, delta, delta, 1.0 if delta == 0 else 0.0)
  df = se2 ** 2 / sum(v ** 2 / k for v, k in terms if v > 0)
  se = math.sqrt(se2)
  half = float(stats.t.ppf(0.5 + level / 2, df)) * se
  p = float(2 * stats.t.sf(abs(delta) / se, df))
  return Effect(delta, n, examples, se, float(df), delta - half, delta + half, p)


def seeds_only(a: Sequence[Any], b: Sequence[Any] | None = None,
               level: float = 0.95) -> Effect:
  """Welch over the runs' summary values (one arm: a one-sample t)."""
  arms = [np.asarray([x for x in map(_number, arm) if x is not None])
          for arm in ([a] if b is None else [a, b])]
  n = tuple(arm.size for arm in arms)
  if min(n) == 0:
    return Effect(None, n)
  delta = float(arms[0].mean() - (arms[1].mean() if b is not None else 0.0))
  if min(n) < 2:
    return Effect(delta, n)
  return _interval(delta, n, None, [(arm.var(ddof=1) / arm.size, arm.size - 1)
                                    for arm in arms], level)


def welch(a: Sequence[Any], b: Sequence[Any],
          level: float = 0.95) -> tuple[float, float, float, float] | None:
  """``(mean(a) − mean(b), low, high, df)`` over seeds; None below 2 values a side."""
  e = seeds_only(a, b, level)
  return None if e.low is None else (e.delta, e.low, e.high, e.df)


def aligned(a: Sequence[Mapping[int, Any]],
            b: Sequence[Mapping[int, Any]] | None = None) -> list[np.ndarray] | None:
  """Each arm's runs as an array [runs, examples] over the examples every run
  scored (nulls dropped), in split order; None without a shared example."""
  arms = [a] if b is None else [a, b]
  runs = [r for arm in arms for r in arm]
  index = sorted(set.intersection(*({i for i, v in r.items() if _number(v) is not None}
                                    for r in runs))) if all(arms) else []
  if not index:
    return None
  return [np.asarray([[float(r[i]) for i in index] for r in arm]) for arm in arms]


def paired_arrays(xa: np.ndarray, xb: np.ndarray | None = None) -> Effect:
  """The contrast of the module docstring over arrays [runs, examples] that
  share their examples (columns)."""
  x = [xa] if xb is None else [xa, xb]
  m = [xi.mean(axis=1) for xi in x]
  d = x[0].mean(axis=0) - (x[1].mean(axis=0) if xb is not None else 0.0)
  delta = float(m[0].mean() - (m[1].mean() if xb is not None else 0.0))
  n = tuple(len(xi) for xi in x)
  if min(n) < 2:
    return Effect(delta, n, d.size)
  terms = [(mi.var(ddof=1) / mi.size, mi.size - 1) for mi in m]
  if d.size > 1:  # var(d) less the run × example noise the seed terms already hold
    example = d.var(ddof=1) - sum(residual_variance(xi) / len(xi) for xi in x)
    terms.append((max(example, 0.0) / d.size, d.size - 1))
  return _interval(delta, n, d.size, terms)


def residual_variance(x: np.ndarray) -> float:
  """Residual variance of the two-way (run + example) fit of ``x`` [runs, examples]."""
  resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0) + x.mean()
  return float((resid ** 2).sum() / ((x.shape[0] - 1) * (x.shape[1] - 1)))


def paired(a: Sequence[Mapping[int, Any]],
           b: Sequence[Mapping[int, Any]] | None = None) -> Effect | None:
  """The contrast of the module docstring over runs given as ``{index: value}``;
  None without a shared example."""
  x = aligned(a, b)
  return None if x is None else paired_arrays(*x)


def _sides(a_runs, b_runs, metric_a, metric_b):
  """Each arm's runs that have the metric, with that metric."""
  sides = [(a_runs, metric_a)] + ([] if b_runs is None else [(b_runs, metric_b or metric_a)])
  return [([s for s in runs if metric.summary(s) is not None], metric) for runs, metric in sides]


def per_example(a_runs: Sequence[dict], b_runs: Sequence[dict] | None,
                metric_a: Metric, metric_b: Metric | None = None) -> list[np.ndarray] | None:
  """``effect``'s per-example arrays ([runs, shared examples] an arm), or None
  where some run lacks per-example scores or the runs share no example."""
  sides = _sides(a_runs, b_runs, metric_a, metric_b)
  columns = [[metric.column(s) for s in runs] for runs, metric in sides]
  if not all(runs for runs, _ in sides) or any(c is None for arm in columns for c in arm):
    return None
  return aligned(*columns)


def effect(a_runs: Sequence[dict], b_runs: Sequence[dict] | None,
           metric_a: Metric, metric_b: Metric | None = None) -> Effect:
  """``metric_a`` over ``a_runs`` − ``metric_b`` over ``b_runs`` (None: one
  arm), over the runs that have the metric: per example where every such run
  has per-example scores, else seeds only."""
  x = per_example(a_runs, b_runs, metric_a, metric_b)
  if x is not None:
    return paired_arrays(*x)
  return seeds_only(*[[metric.summary(s) for s in runs]
                      for runs, metric in _sides(a_runs, b_runs, metric_a, metric_b)])


def best_posthoc(runs: Sequence[dict]) -> tuple[str, float] | None:
  """The post-hoc method (``POSTHOC``) with the highest mean AOPC@20 % over
  ``runs``, and that mean; None if no run has one."""
  means = [(d, m) for m in POSTHOC if (d := effect(runs, None, aopc20(m)).delta) is not None]
  return (max(means)[1], max(means)[0]) if means else None


def holm(pvalues: Sequence[float]) -> list[float]:
  """Holm's step-down adjusted p-values, in the input order."""
  m, running, adjusted = len(pvalues), 0.0, [1.0] * len(pvalues)
  for j, i in enumerate(sorted(range(m), key=lambda k: pvalues[k])):
    running = max(running, min(1.0, (m - j) * pvalues[i]))
    adjusted[i] = running
  return adjusted
