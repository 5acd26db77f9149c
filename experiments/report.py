"""Writes README's results block and docs/RESULTS.md from run_grid.py's per-run
summaries: tables, intervals and fixed sentences filled with numbers, no prose.

Intervals (``effect``) cover seeds and test examples. For a contrast A − B
over runs r with per-example vectors x_r, aligned on the examples' split
``index`` (the examples every run of both arms scored, nulls dropped):
Δ = mean_A m_r − mean_B m_r with m_r the run's mean over those examples;
seed terms a = var(m_A)/n_A, b = var(m_B)/n_B; example term c = var(d_e)/|E|
with d_e = mean_A x_r[e] − mean_B x_r[e] (the examples are shared: paired);
SE = √(a + b + c), Welch–Satterthwaite df = SE⁴ / (a²/(n_A−1) + b²/(n_B−1) +
c²/(|E|−1)), the 95 % interval Δ ± t(0.975, df)·SE and a two-sided p from t.
One arm (A alone): Δ = mean m_r, a = var(m)/n, c = var(mean_r x_r[e])/|E|.
Runs without per-example scores fall back to ``welch`` over the runs' summary
values ("seeds only"). Fewer than 2 runs an arm: Δ without an interval.
``holm`` corrects a table's p-values (step-down, family = its intervals).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import pathlib
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

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


def _wall_minutes(s) -> float | None:
  """The grid's wall time over all attempts, at least training's own step time."""
  seconds = _number(s.get("grid_wall_time_s"))
  return None if seconds is None else max(seconds, _get(s, "results", "train_seconds") or 0) / 60


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
  whole_split: bool = False  # per example only where the whole split was scored

  def column(self, s: dict) -> dict[int, Any] | None:
    """``{split index: value}`` of run ``s``, or None without per-example scores."""
    node = s.get("_examples")
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


def paired(a: Sequence[Mapping[int, Any]],
           b: Sequence[Mapping[int, Any]] | None = None) -> Effect | None:
  """The contrast of the module docstring over runs given as ``{index: value}``;
  None without a shared example."""
  arms = [a] if b is None else [a, b]
  runs = [r for arm in arms for r in arm]
  index = sorted(set.intersection(*({i for i, v in r.items() if _number(v) is not None}
                                    for r in runs))) if all(arms) else []
  if not index:
    return None
  x = [np.asarray([[float(r[i]) for i in index] for r in arm]) for arm in arms]
  m = [xi.mean(axis=1) for xi in x]
  d = x[0].mean(axis=0) - (x[1].mean(axis=0) if b is not None else 0.0)
  delta = float(m[0].mean() - (m[1].mean() if b is not None else 0.0))
  n = tuple(len(arm) for arm in arms)
  if min(n) < 2:
    return Effect(delta, n, len(index))
  terms = [(mi.var(ddof=1) / mi.size, mi.size - 1) for mi in m]
  terms.append((d.var(ddof=1) / d.size, d.size - 1) if d.size > 1 else (0.0, 0))
  return _interval(delta, n, len(index), terms)


def effect(a_runs: Sequence[dict], b_runs: Sequence[dict] | None,
           metric_a: Metric, metric_b: Metric | None = None) -> Effect:
  """``metric_a`` over ``a_runs`` − ``metric_b`` over ``b_runs`` (None: one
  arm), over the runs that have the metric: per example where every such run
  has per-example scores, else seeds only."""
  sides = [(a_runs, metric_a)] + ([] if b_runs is None else [(b_runs, metric_b or metric_a)])
  have = [[s for s in runs if metric.summary(s) is not None] for runs, metric in sides]
  columns = [[metric.column(s) for s in runs] for runs, (_, metric) in zip(have, sides)]
  if all(have) and all(c is not None for arm in columns for c in arm):
    result = paired(*columns)
    if result is not None:
      return result
  values = [[metric.summary(s) for s in runs] for runs, (_, metric) in zip(have, sides)]
  return seeds_only(*values)


def holm(pvalues: Sequence[float]) -> list[float]:
  """Holm's step-down adjusted p-values, in the input order."""
  m, running, adjusted = len(pvalues), 0.0, [1.0] * len(pvalues)
  for j, i in enumerate(sorted(range(m), key=lambda k: pvalues[k])):
    running = max(running, min(1.0, (m - j) * pvalues[i]))
    adjusted[i] = running
  return adjusted


# Formatting


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def _mean_std(values: Iterable[Any], digits: int = 3, scale: float = 1.0) -> str:
  """mean ± sample std at fixed decimals (one value: itself; none: "—")."""
  x = [v * scale for v in map(_number, values) if v is not None]
  if len(x) < 2:
    return f"{x[0]:.{digits}f}" if x else "—"
  return f"{np.mean(x):.{digits}f} ± {np.std(x, ddof=1):.{digits}f}"


def _signed(x: float, digits: int) -> str:
  text = f"{x:+.{digits}f}"
  return text if float(text) != 0 else f"{0:.{digits}f}"


def _n(e: Effect) -> str:
  return "/".join(map(str, e.n))


def _cell(e: Effect, metric: Metric, mark: bool = False) -> str:
  """``Δ [low, high]* (n = a/b)``; "— (n = 0/b)" where an arm has no value."""
  if e.delta is None:
    return f"— (n = {_n(e)})"
  d, k = metric.digits, metric.scale
  if e.low is None:
    return f"{_signed(e.delta * k, d)} (n = {_n(e)}, n too small)"
  seeds = "" if e.examples is not None else ", seeds only"
  return (f"{_signed(e.delta * k, d)} [{_signed(e.low * k, d)}, {_signed(e.high * k, d)}]"
          f"{'*' if mark else ''} (n = {_n(e)}{seeds})")


# The answer: README's block (and the top of docs/RESULTS.md)

QUESTION = "Does SAFR make explanations more faithful without costing accuracy?"
COLUMNS = (("SST-2, padding-aware", "sst2"), ("SST-2, authors' numerics", "sst2_reference"),
           ("IMDB, padding-aware", "imdb"), ("IMDB, authors' numerics", "imdb_reference"))
TABLE_LABELS = ("safr", "baseline", "vmask")
GATE = aopc20("vmask")
BEST = Metric(lambda s: None)  # the baseline's best post-hoc explanation in that column
# (row, label A, label B (None: one arm), metric A, metric B (None: metric A))
EFFECT_ROWS = (
    ("accuracy (points): SAFR − baseline", "safr", "baseline", ACCURACY, None),
    ("accuracy (points): VMASK − baseline", "vmask", "baseline", ACCURACY, None),
    ("accuracy (points): SAFR − VMASK", "safr", "vmask", ACCURACY, None),
    ("gate AOPC@20 %: SAFR − VMASK", "safr", "vmask", GATE, None),
    ("gate AOPC@20 %: SAFR − baseline's best post-hoc explanation", "safr", "baseline", GATE,
     BEST),
    ("gradient × input AOPC@20 %: SAFR − baseline", "safr", "baseline",
     aopc20("gradient_x_input"), None),
    ("top-4 token neuron overlap (Jaccard): SAFR − VMASK", "safr", "vmask",
     mechanism("topk_jaccard"), None),
    ("attention-pair − random-pair neuron overlap: SAFR alone", "safr", None,
     mechanism("attention_minus_random"), None),
)


def _runs(groups, group: str, label: str | None = None) -> list[dict]:
  rows = groups.get(group, {})
  return [s for l in ([label] if label else sorted(rows)) for s in rows.get(l, [])]


def _best_posthoc(groups, group: str) -> str | None:
  """The baseline's method (``POSTHOC``) with the highest mean AOPC@20 %."""
  means = {m: np.mean(v) for m in POSTHOC
           if (v := [x for x in map(aopc20(m).summary, _runs(groups, group, "baseline"))
                     if x is not None])}
  return max(means, key=means.get) if means else None


def effects_table(groups) -> str:
  """The effects table, its Holm marks and its legend."""
  cells = []
  for _, a, b, metric_a, metric_b in EFFECT_ROWS:
    for _, group in COLUMNS:
      note, mb = "", metric_b or metric_a
      if metric_b is BEST:
        method = _best_posthoc(groups, group)
        mb, note = (aopc20(method), f" (vs {method})") if method else (GATE, "")
      e = effect(_runs(groups, group, a), b and _runs(groups, group, b), metric_a, mb)
      cells.append((e, metric_a, note, group))
  tested = [i for i, (e, *_) in enumerate(cells) if e.p is not None]
  adjusted = dict(zip(tested, holm([cells[i][0].p for i in tested])))
  text = [_cell(e, m, adjusted.get(i, 1.0) < 0.05) + note if groups.get(g) else "not run"
          for i, (e, m, note, g) in enumerate(cells)]
  k = len(COLUMNS)
  body = [[row[0]] + text[r * k:(r + 1) * k] for r, row in enumerate(EFFECT_ROWS)]
  legend = (
      f"Δ = mean of A − mean of B over runs; accuracy in points (×100). "
      f"[95 % interval]: t with Welch–Satterthwaite df, over seeds and test examples (paired "
      f"by example). * = significant at 5 % after Holm over the table's {len(tested)} "
      f"intervals. \"seeds only\": no per-example scores, Welch over the runs' summary values. "
      f"IMDB accuracy is seeds only: it is on 25,000 test reviews, so the example term is "
      f"negligible. n = runs per arm.")
  return _table(["effect (A − B)"] + [c for c, _ in COLUMNS], body) + "\n\n" + legend


def _bottom_line(groups) -> list[str]:
  """Three fixed sentences filled with numbers (a word depends on the sign)."""
  lines = []
  for name, a, b, what in (
      ("SST-2, authors' numerics", ("sst2_reference", "safr"), ("sst2_reference", "baseline"),
       "SAFR's test accuracy is {} than the authors' Transformer's"),
      ("SST-2, padding-aware", ("sst2", "safr"), ("sst2", "baseline"),
       "SAFR's test accuracy is {} than the padding-aware Transformer's"),
      ("SST-2", ("sst2", "baseline"), ("sst2_reference", "baseline"),
       "the padding-aware Transformer's test accuracy is {} than the authors'")):
    e = effect(_runs(groups, *a), _runs(groups, *b), ACCURACY)
    if e.delta is None:
      lines.append(f"{name}: not run (n = {_n(e)}).")
      continue
    size = f"{abs(e.delta) * 100:.1f} points {'higher' if e.delta >= 0 else 'lower'}"
    seeds = ", seeds only" if e.examples is None else ""
    tail = (f"n = {_n(e)}, too few runs for an interval" if e.low is None else
            f"95 % interval {_signed(e.low * 100, 1)} to {_signed(e.high * 100, 1)}{seeds}; "
            f"n = {_n(e)}")
    lines.append(f"{name}: {what.format(size)} ({tail}).")
  return lines


def _epoch_cap(summary) -> int | None:
  flag = re.search(r"--config\.train\.num_epochs=(\d+)", summary.get("command") or "")
  return int(flag.group(1)) if flag else None


def _caveats(groups) -> list[str]:
  out = []
  capped = [s for g in ("imdb", "imdb_reference") for s in _runs(groups, g) if _epoch_cap(s)]
  if capped:
    caps = "/".join(str(c) for c in sorted({_epoch_cap(s) for s in capped}))
    bound = sum(1 for s in capped if _get(s, "results", "best_epoch") ==
                _get(s, "results", "epochs_run") == _epoch_cap(s))
    names = ", ".join(f"`{g}`" for g in dict.fromkeys(s["group"] for s in capped))
    out.append(f"IMDB runs ({names}) are capped at {caps} epochs "
               f"(`--config.train.num_epochs`); the best dev epoch is the last, so the cap "
               f"binds, in {bound} of {len(capped)} runs.")
  scored = []
  for _, group in COLUMNS:
    counts = collections.Counter()
    for s in (s for l in TABLE_LABELS for s in _runs(groups, group, l)):
      interp = s.get("interpretability") or {}
      counts["not evaluated" if not interp else "whole test split" if _whole_split(s) else
             f"{interp.get('examples') or 0:,} of {interp.get('split_examples') or 0:,}"] += 1
    text = (next(iter(counts)) if len(counts) == 1 else ", ".join(
        f"{k} ({n} run{'s' * (n > 1)})" for k, n in sorted(counts.items()))) or "not run"
    scored.append(f"`{group}` {text}")
  out.append("Examples scored for interpretability: " + "; ".join(scored) + ".")
  out.append("Seeds per column (safr / baseline / vmask): " + "; ".join(
      f"`{g}` " + "/".join(str(len(_runs(groups, g, l))) for l in TABLE_LABELS)
      for _, g in COLUMNS) + ".")
  runs = [s for _, g in COLUMNS for l in TABLE_LABELS for s in _runs(groups, g, l)]
  done = sum(1 for s in runs if s.get("_examples") is not None)
  again = sum(1 for s in runs if s.get("retrained_from"))
  out.append(f"Runs with per-example scores (intervals over seeds and examples): {done} of "
             f"{len(runs)}, {again} of them retrained on another CPU kind (deterministic only "
             "within one): a column mixes both machines' runs until all are.")
  return out


FACTORS = (("the authors' baseline", "sst2_reference", "baseline"),
           ("+ Flax initialisation", "sst2_factors", "baseline_flax_init"),
           ("+ pooling over real tokens only", "sst2_factors", "baseline_pool_tokens"),
           ("+ batches padded to their longest row", "sst2_factors", "baseline_pad_batch"),
           ("+ length-bucketed batches", "sst2_factors", "baseline_bucketed"),
           ("the padding-aware baseline", "sst2", "baseline"))


def factor_table(groups) -> str:
  """The authors' SST-2 baseline, with one factor set to ours, and ours."""
  reference = _runs(groups, "sst2_reference", "baseline")
  rows = []
  for i, (name, group, label) in enumerate(FACTORS):
    runs = _runs(groups, group, label)
    delta = ("not run" if not runs else "(the reference)" if i == 0
             else _cell(effect(runs, reference, ACCURACY), ACCURACY))
    rows.append([f"{name} (`{group}/{label}`)", len(runs),
                 _mean_std((ACCURACY.summary(s) for s in runs), 1, 100) if runs else "not run",
                 delta])
  return _table(["SST-2 baseline", "n", "test accuracy (%)",
                 "Δ vs the authors' baseline, points [95 %]"], rows)


def padding_table(groups) -> str:
  """VMASK's keep-probability on padding under the authors' numerics."""
  rows = []
  for label in ("vmask", "safr"):
    runs = _runs(groups, "sst2_reference", label)
    rows.append([f"`sst2_reference/{label}`", len(runs) or "not run",
                 _mean_std(_gate(s, "results", "test", "keep_rate") for s in runs),
                 _mean_std(_get(s, "interpretability", "keep_rate_padding") for s in runs)])
  return _table(["run", "n", "keep-prob., real tokens", "keep-prob., padding positions"], rows)


def readme_summary(results_dir: pathlib.Path | str) -> str:
  """The question, bottom line, effects, caveats, baseline factors and padding."""
  return _summary(load(pathlib.Path(results_dir)))


def _summary(groups) -> str:
  parts = [f"**Question.** {QUESTION}", "**Bottom line** (test accuracy, best-dev checkpoint). "
           + " ".join(_bottom_line(groups)), effects_table(groups),
           "**Caveats.**\n\n" + "\n".join(f"- {c}" for c in _caveats(groups)),
           "**Why the authors' Transformer is weaker on SST-2**: the authors'-numerics "
           "baseline with one factor set to ours (3 seeds planned each).", factor_table(groups),
           "**The VMASK gate on padding under the authors' numerics** (mean keep-probability; "
           "padding is pooled there).", padding_table(groups),
           "Every number per group, the commits and the dev curves: `docs/RESULTS.md`."]
  return "\n\n".join(parts) + "\n"


README_BEGIN = "<!-- results: written by experiments/report.py (run_grid.py --report_only) -->"
README_END = "<!-- results: end -->"


def update_readme(readme: pathlib.Path, results_dir: pathlib.Path) -> bool:
  """Rewrites the README's block between its markers; False if it has none."""
  text = readme.read_text(encoding="utf-8")
  if README_BEGIN not in text or README_END not in text:
    return False
  head, rest = text.split(README_BEGIN, 1)
  _, tail = rest.split(README_END, 1)
  readme.write_text(f"{head}{README_BEGIN}\n{readme_summary(results_dir)}{README_END}{tail}",
                    encoding="utf-8")
  return True


# docs/RESULTS.md: every group's tables

GROUP_TITLES = {
    "sst2": "SST-2 (`sst_treebank`), max_len 128, padding-aware",
    "sst2_reference": ("SST-2 (`sst_treebank`), the authors' numerics: PyTorch initialisation, "
                       "padding pooled and counted in both losses, rows padded to 128"),
    "sst2_factors": "SST-2, the authors' baseline with one of its numerics set to ours",
    "sst2_lambda": "SST-2, λ: joint, each loss alone, and joint under the authors' numerics",
    "sst2_candidates": "SST-2, candidate fixes: scale-invariant L_Imp, a 3-epoch λ warm-up",
    "imdb_curve": "IMDB (`aclimdb`, official test): the SAFR run whose dev curve set the cap",
    "imdb": "IMDB (`aclimdb`, the official test), max_len 256, padding-aware, epoch cap",
    "imdb_reference": "IMDB (`aclimdb`, the official test), the authors' numerics, epoch cap",
    "rt_polarity": "`rt_polarity` (the offline SST-2 substitute), padding-aware",
    "imdb_builtin": "`imdb_builtin` (test carved from IMDB's train split), 3 epochs",
    "lambda": "λ sweep on `rt_polarity` (λ_imp = λ_inter = λ), seed 0",
    "reference": "`rt_polarity`, the authors' numerics",
    "bottleneck": "`rt_polarity`, padding-aware, with VMASK's annealed information bottleneck",
    "init_padding": "`rt_polarity`, SAFR, initialisation × padding (seed 0)",
    "batching": "`rt_polarity`, SAFR: length-bucketed against random batches",
    "quick": "quick grid (tiny models; a smoke test, not a result)",
}
PAPER_GROUPS = ("sst2", "sst2_reference", "sst2_factors", "sst2_lambda", "sst2_candidates",
                "imdb_curve", "imdb", "imdb_reference")  # the paper's data; the rest are stand-ins
CURVE_GROUPS = ("imdb_curve", "imdb", "imdb_reference")
ORDER = ("baseline", "vmask", "vmask_ib", "imp", "inter", "safr", "safr_ib")
METHOD_NAMES = {"vmask": "VMASK gate", "attention": "attention", "random": "random",
                "gradient_x_input": "gradient × input", "occlusion": "occlusion"}
# (caption, [(column, getter, decimals, scale)], shown without any value)
TABLES: tuple[tuple[str, list[tuple[str, Callable[[dict], Any], int, float]], bool], ...] = (
    ("Test accuracy (%), epochs, and minutes of `train.py` per run", [
        ("best-dev checkpoint", ACCURACY.summary, 2, 100),
        ("last epoch", lambda s: _get(s, "results", "test_last_epoch", "accuracy"), 2, 100),
        ("best epoch", lambda s: _get(s, "results", "best_epoch"), 1, 1),
        ("epochs run", lambda s: _get(s, "results", "epochs_run"), 1, 1),
        ("minutes", _wall_minutes, 1, 1)], True),
    ("AOPC@20 % of each text's length, per explanation method",
     [(METHOD_NAMES[m], aopc20(m).summary, 3, 1) for m in METHODS], False),
    ("AOPC over the first 10 tokens (the earlier measure), per explanation method",
     [(METHOD_NAMES[m], lambda s, m=m: _get(s, "interpretability", "faithfulness", m, "aopc"),
       3, 1) for m in METHODS], False),
    ("Mechanism, the 4 tokens of highest keep-probability per text (cos², Jaccard)",
     [(name, mechanism(name).summary, 3, 1) for name in MECHANISM], False),
    ("VMASK gate: mean keep-probability", [
        ("real tokens", lambda s: _gate(s, "results", "test", "keep_rate"), 3, 1),
        ("share p > 0.5", lambda s: _gate(s, "results", "test", "keep_above_half"), 3, 1),
        ("padding positions", lambda s: _get(s, "interpretability", "keep_rate_padding"), 3, 1)],
     False),
)

HOW = """## How these numbers were made

Tables give mean ± sample std over seeds; n counts the runs with a value in that table.
"—" means no value: a metric the run's evaluation predates, or a gate number of a model
without VMASK. Accuracy is on the whole test split. Interpretability metrics use the examples
each run's `safr_jax.evaluate` scored (the caveats give their number). AOPC@20 %: the mean drop
in the predicted class's probability as the top 20 % of a text's tokens are deleted in 10
steps. Mechanism: per text the 4 tokens of highest keep-probability; cos² between their
vectors, Jaccard of their active FFN neurons. Definitions: `docs/METRICS.md`. One run reruns
with `python experiments/run_grid.py --only=<group>/<label>/seed<k>`.
"""
STANDIN = ("# Stand-in results: not SST-2 or IMDB benchmark numbers\n\n`rt_polarity` is the "
           "Rotten Tomatoes data SST-2 was built from, not SST-2 itself. `imdb_builtin`'s test "
           "set is carved from IMDB's train split.\n")


def _labels(rows) -> list[str]:
  return sorted(rows, key=lambda l: (ORDER.index(l) if l in ORDER else 99, l))


def _group_tables(rows) -> list[str]:
  out = []
  for caption, columns, always in TABLES:
    body = []
    for label in _labels(rows):
      runs = [s for s in rows[label] if any(get(s) is not None for _, get, *_ in columns)]
      if runs or always:
        body.append([label, len(runs)] + [_mean_std(map(get, runs), digits, scale)
                                          for _, get, digits, scale in columns])
    if any(c != "—" for row in body for c in row[2:]) or always:
      out += [f"*{caption}.*", "", _table(["variant", "n"] + [c[0] for c in columns], body), ""]
  return out


def _dev_curves(rows) -> str:
  body = []
  for label in _labels(rows):
    for s in sorted(rows[label], key=lambda s: s.get("seed", 0)):
      r = s.get("results", {})
      curve = ", ".join(f"{a * 100:.1f}" for a in map(_number, r.get("dev_history") or [])
                        if a is not None)
      body.append([label, s.get("seed"), curve or "—", r.get("best_epoch", "—"),
                   r.get("epochs_run", "—"), _epoch_cap(s) or "—",
                   "yes" if r.get("stopped_early") else "no"])
  return _table(["variant", "seed", "dev accuracy (%) after each epoch", "best epoch",
                 "epochs run", "epoch cap", "stopped early"], body)


def _plots(group: str, report: pathlib.Path,
           compare_dir: pathlib.Path | None) -> pathlib.Path | None:
  """``compare_dir/<group>`` if it has the plot, else ``results/<group>`` beside ``report``."""
  for folder in (compare_dir, report.parent / "results"):
    if folder is not None and (folder / group / "comparison.png").exists():
      return folder / group
  return None


def _section(group: str, rows, report: pathlib.Path, compare_dir) -> list[str]:
  out = [f"## {GROUP_TITLES.get(group, group)} (`{group}`)", ""] + _group_tables(rows)
  if group in CURVE_GROUPS:
    out += ["*Dev accuracy per epoch (`results.dev_history`).*", "", _dev_curves(rows), ""]
  folder = _plots(group, report, compare_dir)
  if folder is not None:
    rel = os.path.relpath(folder, report.parent)
    out += [f"Every metric: [`{rel}/comparison.md`]({rel}/comparison.md).", "",
            f"![accuracy vs faithfulness, {group}]({rel}/comparison.png)", ""]
  return out


def _commits_table(groups, order) -> str:
  def counted(runs, *keys):
    c = collections.Counter(str(_node(s, *keys) or "—")[:7] for s in runs)
    return ", ".join(f"{k} ({n})" for k, n in sorted(c.items()))
  return _table(["group", "runs", "trained at (runs)", "evaluated at (runs)"], [
      [f"`{g}`", len(_runs(groups, g)), counted(_runs(groups, g), "results", "git_commit"),
       counted(_runs(groups, g), "interpretability", "provenance", "git_commit")]
      for g in order])


def write(results_dir: pathlib.Path, report: pathlib.Path, *,
          compare_dir: pathlib.Path | None = None) -> None:
  """Writes ``report``: the answer (``readme_summary``), then each group's tables
  (the paper's benchmarks first) with its ``safr_jax.compare`` plot (``_plots``)."""
  groups = load(pathlib.Path(results_dir))
  titles = list(GROUP_TITLES)
  order = sorted(groups, key=lambda g: (titles.index(g) if g in titles else 99, g))
  standin = [g for g in order if g not in PAPER_GROUPS]
  lines = ["# Results", "", f"## {QUESTION}", "", _summary(groups), HOW]
  for group in [g for g in order if g in PAPER_GROUPS] + standin:
    lines += ([STANDIN] if group == standin[0] else []) + _section(
        group, groups[group], report, compare_dir)
  lines += ["## Commits", "", "Training commit (`results.git_commit`) and the commit whose "
            "`safr_jax.evaluate` measured (`interpretability.provenance.git_commit`; "
            "\"—\": not recorded, or not evaluated yet).", "",
            _commits_table(groups, order)]
  report.parent.mkdir(parents=True, exist_ok=True)
  report.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  # python -m experiments.report [RESULTS_DIR]: the README's results, as Markdown.
  import sys  # pylint: disable=g-import-not-at-top
  print(readme_summary(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parent / "results"), end="")
