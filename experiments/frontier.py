"""The accuracy–faithfulness frontier on the paper's SST-2, padding-aware: every
setting of ``GROUPS`` is a point (test accuracy, the gate's AOPC@20 %; 95 %
intervals over seeds and test examples, as in the effects table), the plain
Transformer's accuracy and its best post-hoc explanation are reference lines;
``answer`` is the one sentence on whether a setting keeps both."""

from __future__ import annotations

import pathlib

import numpy as np

from experiments import stats
from safr_jax.interpret import plots

GROUPS = ("sst2", "sst2_lambda", "sst2_candidates")
BASELINE = ("sst2", "baseline")
SAFR = ("sst2", "safr")  # λ = 1, the paper's setting
GATE = stats.aopc20("vmask")
WITHIN = 0.005  # "without the cost": within 0.5 points of the baseline's accuracy
FIGURE = "frontier_sst2.png"  # in docs/results/


def _half(e: stats.Effect) -> float | None:
  return None if e.low is None else (e.high - e.low) / 2


def points(groups) -> list[dict]:
  """One point per setting with the gate's explanation (plain models have none);
  the authors'-numerics λ rows are left out: their baseline is another model."""
  out = []
  for group in GROUPS:
    for label, runs in sorted(groups.get(group, {}).items()):
      x, y = stats.effect(runs, None, stats.ACCURACY), stats.effect(runs, None, GATE)
      if y.delta is None or x.delta is None or label.startswith("reference_"):
        continue
      out.append({"label": f"{label} (λ=1)" if (group, label) == SAFR else label,
                  "key": (group, label), "n": len(runs), "x": x.delta * 100,
                  "xerr": _half(x) and _half(x) * 100, "y": y.delta, "yerr": _half(y)})
  return out


def _reference(groups) -> dict | None:
  runs = groups.get(BASELINE[0], {}).get(BASELINE[1], [])
  accuracy = stats.effect(runs, None, stats.ACCURACY).delta
  if accuracy is None:
    return None
  method, value = stats.best_posthoc(runs) or (None, None)
  return {"label": "Transformer", "accuracy": accuracy * 100, "faithfulness": value,
          "method": method}


def _joint_lambda(p) -> float | None:
  """λ of a joint-λ point (SAFR's own is λ = 1), else None."""
  if p["key"] == SAFR:
    return 1.0
  label = p["key"][1]
  return float(label[len("joint"):]) if label.startswith("joint") else None


def write_figure(groups, path: pathlib.Path) -> pathlib.Path:
  pts = points(groups)
  fig = plots.comparison_figure(
      pts, references=[r for r in [_reference(groups)] if r],
      xlabel="test accuracy (%)", ylabel="AOPC@20 % of the gate's explanation",
      title="SST-2, padding-aware: mean and 95 % interval (as in the README's table)\n"
            "lines: the Transformer's accuracy and its best post-hoc explanation; "
            "grey: joint λ in order")
  curve = sorted((lam, p["x"], p["y"]) for p in pts if (lam := _joint_lambda(p)) is not None)
  if len(curve) > 1:  # the joint-λ points in order of λ: the sweep's path
    fig.axes[0].plot([c[1] for c in curve], [c[2] for c in curve], color="0.6", lw=1,
                     zorder=0)
  return plots.save(fig, path)


def answer(groups) -> str:
  """Is there a setting within ``WITHIN`` of the baseline's accuracy whose gate
  AOPC@20 % is at least SAFR's (λ = 1)? One sentence with its numbers."""
  baseline = groups.get(BASELINE[0], {}).get(BASELINE[1], [])
  safr = groups.get(SAFR[0], {}).get(SAFR[1], [])
  gate = stats.effect(safr, None, GATE)
  bar = gate.delta
  if not baseline or bar is None:
    return "**Frontier.** Not run yet: it needs the `sst2` group's baseline and safr."
  rows = [(p, stats.effect(groups[p["key"][0]][p["key"][1]], baseline, stats.ACCURACY))
          for p in points(groups) if p["key"] != SAFR]

  def what(p, e) -> str:
    ci = "" if e.low is None else f" [{e.low * 100:+.1f}, {e.high * 100:+.1f}]"
    return (f"{p['label']} (n = {p['n']}), accuracy {e.delta * 100:+.1f}{ci} points against "
            f"the Transformer, gate AOPC@20 % {p['y']:.3f}")

  good = [(p, e) for p, e in rows if e.delta >= -WITHIN and p["y"] >= bar]
  if good:
    best = max(good, key=lambda t: t[1].delta)
    return f"**Frontier.** Yes: {what(*best)} (SAFR λ = 1: {bar:.3f}, n = {gate.n[0]})."
  text = [f"**Frontier.** No: by point estimate, none of the {len(rows)} other settings is "
          f"within {WITHIN * 100:.1f} points of the Transformer's accuracy with a gate "
          f"AOPC@20 % at least SAFR's (SAFR λ = 1: {bar:.3f}, n = {gate.n[0]})."]
  close = [(p, e) for p, e in rows if p["y"] >= bar]
  if close:
    text.append(f"Closest: {what(*max(close, key=lambda t: t[1].delta))}.")
  best = max(rows, key=lambda t: t[1].delta, default=None)
  if best is not None and best not in close:
    text.append(f"Most accurate: {what(*best)}.")
  return " ".join(text)


def keep_line(groups) -> str:
  """The gate-closing hypothesis over the figure's settings: Spearman ρ of the
  gate's mean keep-probability with its AOPC@20 % and with accuracy."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  rows = []
  for p in points(groups):
    runs = groups[p["key"][0]][p["key"][1]]
    keep = [k for s in runs if (k := stats.keep_rate(s)) is not None]
    if keep:
      rows.append((float(np.mean(keep)), p["y"], p["x"]))
  if len(rows) < 4:
    return ""
  keep, gate, accuracy = np.array(rows).T
  rho = lambda a, b: scipy_stats.spearmanr(a, b).statistic  # pylint: disable=unnecessary-lambda-assignment
  return (f"Over these {len(rows)} settings, Spearman ρ of the gate's mean keep-probability "
          f"with its AOPC@20 %: {rho(keep, gate):+.2f}; with accuracy: {rho(keep, accuracy):+.2f}.")
