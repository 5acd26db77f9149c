"""Writes README's results block and docs/RESULTS.md from run_grid.py's per-run
summaries: tables, intervals (``stats``) and fixed sentences filled with numbers,
no prose."""

from __future__ import annotations

import collections
import os
import pathlib
import re
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from experiments import frontier
from experiments.stats import (  # pylint: disable=unused-import (tests read them here)
    ACCURACY, MECHANISM, METHODS, POSTHOC, Effect, Metric, _gate, _get, _node, _number,
    _whole_split, aopc20, best_posthoc, effect, holm, keep_rate, load, mechanism, paired,
    seeds_only, welch)


def _wall_minutes(s) -> float | None:
  """The grid's wall time over all attempts, at least training's own step time."""
  seconds = _number(s.get("grid_wall_time_s"))
  return None if seconds is None else max(seconds, _get(s, "results", "train_seconds") or 0) / 60


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
    ("attention-pair − random-pair neuron overlap, SAFR (L_Inter aims > 0)", "safr", None,
     mechanism("attention_minus_random"), None),
)


def _runs(groups, group: str, label: str | None = None) -> list[dict]:
  rows = groups.get(group, {})
  return [s for l in ([label] if label else sorted(rows)) for s in rows.get(l, [])]


def contrasts(groups):
  """The effects table's cells in order, as ``(row, column's group, A's runs,
  B's runs (None: one arm), metric A, metric B, note)``."""
  for row, a, b, metric_a, metric_b in EFFECT_ROWS:
    for _, group in COLUMNS:
      note, mb = "", metric_b or metric_a
      if metric_b is BEST:
        best = best_posthoc(_runs(groups, group, "baseline"))
        mb, note = (aopc20(best[0]), f" (vs {best[0]})") if best else (GATE, "")
      yield (row, group, _runs(groups, group, a), b and _runs(groups, group, b), metric_a, mb,
             note)


def _effect_cells(groups) -> tuple[dict[tuple[str, str], str], int]:
  """``{(row, column's group): cell}`` with Holm's marks, and the family's size."""
  cells = [(effect(a, b, ma, mb), ma, note, group)
           for _, group, a, b, ma, mb, note in contrasts(groups)]
  tested = [i for i, (e, *_) in enumerate(cells) if e.p is not None]
  adjusted = dict(zip(tested, holm([cells[i][0].p for i in tested])))
  text = [_cell(e, m, adjusted.get(i, 1.0) < 0.05) + note if groups.get(g) else "not run"
          for i, (e, m, note, g) in enumerate(cells)]
  keys = [(row[0], g) for row in EFFECT_ROWS for _, g in COLUMNS]
  return dict(zip(keys, text)), len(tested)


def effects_table(groups) -> str:
  """The effects table, its Holm marks and its legend."""
  cells, tested = _effect_cells(groups)
  body = [[row[0]] + [cells[(row[0], g)] for _, g in COLUMNS] for row in EFFECT_ROWS]
  legend = (
      f"Δ = mean of A − mean of B over runs; accuracy in points (×100). "
      f"[95 % interval]: t with Welch–Satterthwaite df, over seeds and test examples (paired "
      f"by example; coverage simulated in `docs/METRICS.md`). * = significant at 5 % after "
      f"Holm over the table's {tested} intervals. \"seeds only\": some run lacks per-example "
      f"scores (for accuracy, of the whole test split); the interval is then Welch over run "
      f"summaries, without test-set sampling. The n counts runs with the metric, per arm.")
  return _table(["effect (A − B)"] + [c for c, _ in COLUMNS], body) + "\n\n" + legend


def _bottom_line(groups) -> list[str]:
  """Three sentences of numbers: SAFR's accuracy against both Transformers, the
  gap between them, and the gate's faithfulness (cells as in the effects table)."""
  acc = lambda a, b: _cell(effect(_runs(groups, *a), _runs(groups, *b), ACCURACY), ACCURACY)
  cells, _ = _effect_cells(groups)
  factors = [(name, effect(_runs(groups, g, l), _runs(groups, *FACTORS[0][1:]), ACCURACY), (g, l))
             for name, g, l in FACTORS[1:-1]]
  cause = max(((n, acc(k, FACTORS[0][1:]), e.delta) for n, e, k in factors if e.delta is not None),
              key=lambda t: t[2], default=None)
  cell = lambda name, group: cells[(next(r[0] for r in EFFECT_ROWS if r[0].startswith(name)),
                                    group)]
  return [f"SST-2 test accuracy, SAFR − Transformer (points): "
          f"{cell('accuracy (points): SAFR − baseline', 'sst2_reference')} under the "
          f"authors' numerics, {cell('accuracy (points): SAFR − baseline', 'sst2')} "
          f"padding-aware.",
          f"The padding-aware Transformer − the authors': "
          f"{acc(('sst2', 'baseline'), ('sst2_reference', 'baseline'))} points"
          + (f"; its largest single factor, {cause[0][2:]}: {cause[1]}." if cause else "."),
          f"Gate AOPC@20 %, SST-2 padding-aware: SAFR − VMASK "
          f"{cell('gate AOPC@20 %: SAFR − VMASK', 'sst2')}; SAFR − the Transformer's best "
          f"post-hoc explanation {cell('gate AOPC@20 %: SAFR − baseline', 'sst2')}."]


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
      counts[("not evaluated" if not interp else "whole test split" if _whole_split(s) else
              f"{interp.get('examples') or 0:,} of {interp.get('split_examples') or 0:,}")
             + ("" if not interp or aopc20("occlusion").summary(s) is not None
                else ", older evaluation")] += 1
    text = (next(iter(counts)) if len(counts) == 1 else ", ".join(
        f"{k} ({n} run{'s' * (n > 1)})" for k, n in sorted(counts.items()))) or "not run"
    scored.append(f"`{group}` {text}")
  out.append("Examples scored for interpretability: " + "; ".join(scored) + "." + (
      " The older evaluation has no AOPC@20 % or mechanism numbers (cells —)."
      if any("older" in t for t in scored) else ""))
  out.append("Seeds per column (safr / baseline / vmask): " + "; ".join(
      f"`{g}` " + "/".join(str(len(_runs(groups, g, l))) for l in TABLE_LABELS)
      for _, g in COLUMNS) + ".")
  runs = [s for _, g in COLUMNS for l in TABLE_LABELS for s in _runs(groups, g, l)]
  done = sum(1 for s in runs if s.get("_examples") is not None)
  again = sum(1 for s in runs if s.get("retrained_from"))
  out.append(f"Per-example scores: {done} of {len(runs)} runs; an interval covers test examples "
             f"only where every run in it has them. {again} runs were retrained, each a new "
             "measurement (training is bit-exact only on one CPU kind).")
  return out


FACTORS = (("the authors' baseline", "sst2_reference", "baseline"),
           ("+ Flax initialisation", "sst2_factors", "baseline_flax_init"),
           ("+ Flax initialisation of the embedding only", "sst2_factors",
            "baseline_flax_embedding"),
           ("+ Flax initialisation of the Dense layers only", "sst2_factors",
            "baseline_flax_dense"),
           ("+ pooling over real tokens only", "sst2_factors", "baseline_pool_tokens"),
           ("+ batches padded to their longest row", "sst2_factors", "baseline_pad_batch"),
           ("+ length-bucketed batches", "sst2_factors", "baseline_bucketed"),
           ("the padding-aware baseline", "sst2", "baseline"))
# Not a factor: tests why Flax's embedding helps (does it help once it cannot train?).
PROBES = (("Flax's embedding only, frozen at its draw (`train.frozen`)", "sst2_factors",
           "baseline_flax_embedding_frozen"),
          ("the authors' embedding, learning rate × 16 (`train.lr_scale`)", "sst2_factors",
           "baseline_embedding_lr16"))


def factor_table(groups) -> str:
  """The authors' SST-2 baseline, with one factor set to ours, and ours."""
  reference = _runs(groups, "sst2_reference", "baseline")
  rows = []
  probes = tuple(p for p in PROBES if _runs(groups, *p[1:]))
  for i, (name, group, label) in enumerate(FACTORS + probes):
    runs = _runs(groups, group, label)
    delta = ("not run" if not runs else "(the reference)" if i == 0
             else _cell(effect(runs, reference, ACCURACY), ACCURACY))
    rows.append([f"{name} (`{group}/{label}`)", len(runs),
                 _mean_std((ACCURACY.summary(s) for s in runs), 1, 100) if runs else "not run",
                 delta])
  return _table(["SST-2 baseline", "n", "test accuracy (%)",
                 "Δ vs the authors' baseline, points [95 %]"], rows)


def cap_table(groups) -> str:
  """IMDB's epoch cap against the authors' early stopping, SAFR − baseline."""
  rows = []
  for name, group in (("3-epoch cap", "imdb"), ("early stopping", "imdb_early")):
    safr, base = _runs(groups, group, "safr"), _runs(groups, group, "baseline")
    best = sorted(int(e) for s in safr + base if (e := _get(s, "results", "best_epoch")))
    posthoc = best_posthoc(base)
    rows.append([f"{name} (`{group}`)", f"{len(safr)}/{len(base)}",
                 f"{best[0]}–{best[-1]}" if best else "—",
                 _cell(effect(safr, base, ACCURACY), ACCURACY),
                 _cell(effect(safr, base, GATE, aopc20(posthoc[0])), GATE)
                 + f" (vs {posthoc[0]})" if posthoc else "—"])
  return _table(["IMDB, padding-aware", "n (safr/baseline)", "best epochs",
                 "accuracy (points): SAFR − baseline",
                 "gate AOPC@20 %: SAFR − baseline's best post-hoc"], rows)


def padding_table(groups) -> str:
  """VMASK's keep-probability on padding under the authors' numerics."""
  rows = []
  for label in ("vmask", "safr"):
    runs = _runs(groups, "sst2_reference", label)
    padding = [v for s in runs if (v := _get(s, "interpretability", "keep_rate_padding"))
               is not None]  # measured by the newer evaluation only: its own n
    rows.append([f"`sst2_reference/{label}`", len(runs) or "not run",
                 _mean_std(map(keep_rate, runs)),
                 _mean_std(padding) + (f" (n = {len(padding)}: "  # few: show the modes
                                       f"{', '.join(f'{v:.4f}' for v in padding)})"
                                       if len(padding) < len(runs) or len(padding) <= 3
                                       else "")])
  return _table(["run", "n", "keep-prob., real tokens", "keep-prob., padding positions"], rows)


def frontier_table(groups) -> str:
  """The figure's points as rows, most accurate first: accuracy against the
  Transformer, the gate's AOPC against SAFR (λ = 1), the gate's keep-probability."""
  baseline, safr = _runs(groups, *frontier.BASELINE), _runs(groups, *frontier.SAFR)
  rows = []
  for p in frontier.points(groups):
    runs = _runs(groups, *p["key"])
    acc = effect(runs, baseline, ACCURACY)
    rows.append((acc.delta, [p["label"], p["n"], _cell(acc, ACCURACY), f"{p['y']:.3f}",
                             "(the reference)" if p["key"] == frontier.SAFR
                             else _cell(effect(runs, safr, GATE), GATE),
                             _mean_std(map(keep_rate, runs))]))
  rows.sort(key=lambda r: -r[0])
  return _table(["setting", "n", "accuracy − Transformer (points)", "gate AOPC@20 %",
                 "gate AOPC − SAFR λ = 1", "keep-prob."], (r for _, r in rows)) + (
      "\n\nSettings: jointλ sets λ_imp = λ_inter = λ; impλ and interλ keep one loss only. "
      "The others use λ = 1 unless named: scale_invariant normalises L_Imp on both sides, "
      "warmup3 sets λ = 0 for 3 epochs, safr_ib adds VMASK's information bottleneck. The vmask "
      "row is the gate alone.")


def readme_summary(results_dir: pathlib.Path | str, docs: str = "docs/") -> str:
  """The question, bottom line, effects, caveats, frontier, baseline factors and
  padding; figures linked from ``docs`` (the folder of docs/RESULTS.md)."""
  return _summary(load(pathlib.Path(results_dir)), docs)


def _summary(groups, docs: str) -> str:
  parts = [f"**Question.** {QUESTION}", "**Bottom line** (best-dev checkpoint; Δ [95 %] and * as in the table). "
           + " ".join(_bottom_line(groups)), effects_table(groups),
           "**Caveats.**\n\n" + "\n".join(f"- {c}" for c in _caveats(groups)),
           frontier.answer(groups) + f"\n\n![accuracy vs the gate's AOPC]({docs}results/"
           f"{frontier.FIGURE})",
           # every point's row in docs/RESULTS.md only: the README stays a short first read
           (frontier_table(groups) + "\n\n" if not docs else "") + frontier.keep_line(groups),
           "**Why the authors' Transformer is weaker on SST-2**: the authors'-numerics "
           "baseline with one factor set to ours (3 seeds each; n: those run).",
           factor_table(groups),
           "**The VMASK gate on padding under the authors' numerics** (mean keep-probability; "
           "padding is pooled there).", padding_table(groups),
           ] + (["**Does IMDB's 3-epoch cap change the answer?** Early stopping as the authors "
                 "stop (patience 3, at most 10 epochs) beside the cap.", cap_table(groups)]
                if groups.get("imdb_early") else []) + (
               ["Every number per group, the commits and the dev curves: `docs/RESULTS.md`."]
               if docs else [])  # not in docs/RESULTS.md itself
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
    "sst2_lambda": ("SST-2, λ: joint and each loss alone, padding-aware; `reference_joint*`: "
                    "joint under the authors' numerics"),
    "sst2_candidates": "SST-2, candidate fixes: scale-invariant L_Imp, a 3-epoch λ warm-up",
    "imdb_curve": "IMDB (`aclimdb`, official test): the SAFR run whose dev curve set the cap",
    "imdb": "IMDB (`aclimdb`, the official test), max_len 256, padding-aware, epoch cap",
    "imdb_reference": "IMDB (`aclimdb`, the official test), the authors' numerics, epoch cap",
    "imdb_early": ("IMDB (`aclimdb`, the official test), padding-aware, early stopping "
                   "(patience 3, at most 10 epochs) instead of the cap"),
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
                "imdb_curve", "imdb", "imdb_reference", "imdb_early")  # the paper's data
CURVE_GROUPS = ("imdb_curve", "imdb", "imdb_reference", "imdb_early")
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
        ("real tokens", keep_rate, 3, 1),
        ("share p > 0.5", lambda s: _gate(s, "results", "test", "keep_above_half"), 3, 1),
        ("padding positions", lambda s: _get(s, "interpretability", "keep_rate_padding"), 3, 1)],
     False),
)

HOW = """## How these numbers were made

Tables give mean ± sample std over seeds; n counts the runs with a value in that table.
"—" means no value: a metric the run's evaluation predates, or a gate number of a model
without VMASK. Accuracy is on the whole test split. Interpretability metrics use the examples
each run's `safr_jax.evaluate` scored (the caveats give their number). AOPC@20 %: the drop in the
predicted class's probability averaged over 0, 2, …, 20 % of a text's tokens deleted, most
important first (11 points). Mechanism: per text the 4 tokens of highest keep-probability; cos² between their
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
  frontier.write_figure(groups, report.parent / "results" / frontier.FIGURE)
  lines = ["# Results", "", f"## {QUESTION}", "", _summary(groups, ""), HOW]
  for group in [g for g in order if g in PAPER_GROUPS] + standin:
    lines += ([STANDIN] if standin and group == standin[0] else []) + _section(
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
