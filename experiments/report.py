"""Writes docs/RESULTS.md from the per-run JSON summaries of run_grid.py."""

from __future__ import annotations

import collections
import json
import math
import os
import pathlib
from typing import Any, Callable

import numpy as np

# (column title, getter on one run's summary). A getter returns None when the
# number is not there (e.g. the run has not been evaluated yet).
Getter = Callable[[dict[str, Any]], Any]


def _path(*keys: str) -> Getter:
  def get(summary):
    node = summary
    for key in keys:
      if not isinstance(node, dict) or key not in node:
        return None
      node = node[key]
    return node if isinstance(node, (int, float)) else None
  return get


# Two tables per dataset: accuracy and losses, then interpretability metrics.
COLUMNS: list[tuple[str, Getter]] = [
    ("test accuracy", _path("results", "test", "accuracy")),
    ("L_Imp (test)", _path("results", "test", "importance")),
    ("L_Inter (test)", _path("results", "test", "interaction")),
    ("VMASK keep-rate", _path("results", "test", "keep_rate")),
    ("epochs", _path("results", "epochs_run")),
    ("wall time / run (min)", lambda s: (s.get("grid_wall_time_s") or math.nan) / 60),
]
INTERPRETABILITY: list[tuple[str, Getter]] = [
    ("sharing, important tokens", _path("interpretability", "superposition", "embeddings",
                                        "important", "sharing")),
    ("sharing, all tokens", _path("interpretability", "superposition", "embeddings",
                                  "all", "sharing")),
    ("neuron overlap, important pairs",
     _path("interpretability", "neuron_overlap", "important_pairs")),
    ("neuron overlap, attention − random pairs",
     _path("interpretability", "neuron_overlap", "attention_minus_random")),
    ("AOPC (VMASK)", _path("interpretability", "faithfulness", "vmask", "aopc")),
    ("comprehensiveness (VMASK)",
     _path("interpretability", "faithfulness", "vmask", "comprehensiveness")),
    ("sufficiency (VMASK)", _path("interpretability", "faithfulness", "vmask", "sufficiency")),
    ("AOPC (gradient × input)",
     _path("interpretability", "faithfulness", "gradient_x_input", "aopc")),
    ("AOPC (attention)", _path("interpretability", "faithfulness", "attention", "aopc")),
    ("AOPC (random)", _path("interpretability", "faithfulness", "random", "aopc")),
]

GROUP_TITLES = {
    "rt_polarity": "`rt_polarity` (the offline SST-2 substitute), max_len 128",
    "imdb_builtin": ("`imdb_builtin` (IMDB train reviews, test carved from train), max_len 256, "
                     "3 epochs"),
    "lambda": "λ sweep on `rt_polarity` (λ_imp = λ_inter = λ), seed 0",
    "quick": "quick grid (tiny models, a few hundred examples; a smoke test, not a result)",
}
ORDER = ["baseline", "vmask", "imp", "inter", "safr"]

HEADER = """# Results

"—" marks a number that does not exist for that run (e.g. VMASK metrics of the baseline,
which has no VMASK) or has not been computed yet. Interpretability metrics use the first
400 test examples (`--eval_examples`); accuracy and losses the whole test split. "Wall time"
is `train.py`'s (training with dev evaluation each epoch, then the test split), summed over
resumed attempts, on 2 shared CPU cores; `safr_jax.evaluate` comes on top (under a minute per
`rt_polarity` run, 12 min per `imdb_builtin` run, mostly occlusion at width 256).

Produced by `python experiments/run_grid.py` (see its docstring); every row can be
reproduced alone with `python experiments/run_grid.py --only=<group>/<variant>/seed<k>`,
which runs `train.py` with the command stored in `experiments/results/<run>.json`.
Mean ± standard deviation over the seeds that have finished (n = number of seeds).
Authors' hyper-parameters (d_model 256, 8 heads, 1 layer, Adam 1e-4, batch 32, early
stopping on dev accuracy with patience 3, λ = 1), padding-aware mode, CPU. One deviation:
`imdb_builtin` runs get a fixed budget of 3 epochs (1,875 steps; an epoch takes ~12 min
on the 2 CPU cores these ran on) instead of early stopping's open-ended 100 epochs; the
test numbers still come from the checkpoint with the best dev accuracy. The `rt_polarity`
runs' best checkpoints came after 1,000–2,100 steps, so this is a comparable number of
updates, but IMDB models might improve with more.

**These are not SST-2 or IMDB benchmark numbers.** `rt_polarity` is the Rotten Tomatoes
sentence-polarity data SST-2 was built from, not SST-2 itself (different sentences, splits
and labels); `imdb_builtin`'s test set is carved from IMDB's *train* split. Neither is
comparable with published SST-2/IMDB figures. The paper's "SRS" score is not reproduced;
the interpretability columns are our metrics, defined in `docs/METRICS.md`.
"""


def _fmt(values: list[float]) -> str:
  values = [v for v in values if v is not None and not math.isnan(v)]
  if not values:
    return "—"
  mean = float(np.mean(values))
  if all(float(v).is_integer() for v in values) and len(values) == 1:
    return f"{mean:.0f}"
  if len(values) == 1:
    return f"{mean:.4g}"
  return f"{mean:.4g} ± {float(np.std(values, ddof=1)):.2g}"


def _mean(values):
  values = [v for v in values if v is not None and not math.isnan(v)]
  return float(np.mean(values)) if values else None


def load(results_dir: pathlib.Path) -> dict[str, dict[str, list[dict]]]:
  groups: dict[str, dict[str, list[dict]]] = collections.defaultdict(
      lambda: collections.defaultdict(list))
  for path in sorted(results_dir.glob("*.json")):
    summary = json.loads(path.read_text())
    groups[summary["group"]][summary["label"]].append(summary)
  return groups


def _sentence(group: str, rows: dict[str, list[dict]],
              groups: dict[str, dict[str, list[dict]]] | None = None) -> str:
  """What the table shows, in one sentence, computed from the numbers."""
  acc = {label: _mean([COLUMNS[0][1](s) for s in runs]) for label, runs in rows.items()}
  if group == "lambda":
    done = sorted((float(l.removeprefix("lambda")), a) for l, a in acc.items() if a is not None)
    if len(done) < 2:
      return "Too few λ values have finished to say how accuracy depends on λ."
    best = max(done, key=lambda x: x[1])
    sentence = (f"Test accuracy ranges from {min(a for _, a in done):.4f} to "
                f"{max(a for _, a in done):.4f} over λ ∈ "
                f"{{{', '.join(f'{l:g}' for l, _ in done)}}}; the best is λ = {best[0]:g} "
                "(one seed each, so differences below about two standard deviations of the "
                "seed spread in the first table are noise)")
    base_runs = (groups or {}).get("rt_polarity", {}).get("baseline", [])
    base = [COLUMNS[0][1](s) for s in base_runs]
    base = [b for b in base if b is not None]
    if len(base) >= 2:
      mean, std = float(np.mean(base)), float(np.std(base, ddof=1))
      near = [f"{l:g}" for l, a in done if a >= mean - 2 * std]
      sentence += (f". Against the plain Transformer's {mean:.4f} ± {std:.4f} on `rt_polarity`, "
                   + (f"λ ∈ {{{', '.join(near)}}} stay within two of its standard deviations"
                      if near else "every λ tried costs accuracy beyond two of its standard "
                      "deviations"))
    return sentence + "."
  base, safr = acc.get("baseline"), acc.get("safr")
  if base is None or safr is None:
    return "SAFR and the baseline have not both finished yet; no comparison is drawn."
  spread = [COLUMNS[0][1](s) for s in rows.get("baseline", []) + rows.get("safr", [])]
  diff = safr - base
  verdict = ("keeps accuracy" if diff >= -0.01 else "costs accuracy")
  sentence = (f"SAFR's test accuracy is {safr:.4f} against the plain Transformer's {base:.4f} "
              f"({diff:+.4f}): on this data SAFR {verdict}")
  imp_b = _mean([COLUMNS[1][1](s) for s in rows.get("baseline", [])])
  imp_s = _mean([COLUMNS[1][1](s) for s in rows.get("safr", [])])
  if imp_b is not None and imp_s is not None:
    sentence += (f"; L_Imp on test is {imp_s:.4f} with SAFR vs {imp_b:.4f} without "
                 "(note the baseline has no VMASK gate, so its L_Imp is on ungated embeddings)")
  n = min(len(rows.get("baseline", [])), len(rows.get("safr", [])))
  sentence += f". Seeds per variant: {n}."
  del spread
  metric = lambda label, col: _mean([dict(INTERPRETABILITY)[col](s) for s in rows.get(label, [])])
  safr_aopc, vmask_aopc = metric("safr", "AOPC (VMASK)"), metric("vmask", "AOPC (VMASK)")
  base_gxi = metric("baseline", "AOPC (gradient × input)")
  safr_gxi = metric("safr", "AOPC (gradient × input)")
  if safr_gxi is not None and base_gxi is not None:
    sentence += (f" Gradient × input is {'more' if safr_gxi > base_gxi else 'less'} "
                 f"faithful on the SAFR model than on the baseline (AOPC {safr_gxi:.3f} vs "
                 f"{base_gxi:.3f}).")
  if safr_aopc is not None and vmask_aopc is None and base_gxi is not None:
    relation = "below" if safr_aopc < base_gxi else "above"
    sentence += (f" SAFR's VMASK explanation has AOPC {safr_aopc:.3f}, {relation} gradient × "
                 f"input on the baseline ({base_gxi:.3f}); there is no `vmask` run on this "
                 "data to isolate what the two losses add.")
  if safr_aopc is not None and vmask_aopc is not None:
    better = "more" if safr_aopc > vmask_aopc else "less"
    sentence += (f" The VMASK explanation is {better} faithful with SAFR's losses than without "
                 f"(AOPC {safr_aopc:.3f} vs {vmask_aopc:.3f} for the `vmask` variant)")
    if base_gxi is not None:
      relation = "still below" if safr_aopc < base_gxi else "above"
      sentence += (f", but {relation} plain gradient × input on the baseline "
                   f"(AOPC {base_gxi:.3f}), so SAFR does not make the best available "
                   "explanation more faithful here" if safr_aopc < base_gxi else
                   f", and {relation} gradient × input on the baseline (AOPC {base_gxi:.3f})")
    sentence += "."
  return sentence


def _rerun_note(groups: dict[str, dict[str, list[dict]]]) -> str | None:
  """The λ = 1 sweep run repeats rt_polarity/safr/seed0's command; says how far
  apart the two ended (they differ only when the code changed in between)."""
  first = [s for s in groups.get("rt_polarity", {}).get("safr", []) if s["seed"] == 0]
  again = [s for s in groups.get("lambda", {}).get("lambda1.0", []) if s["seed"] == 0]
  if not first or not again:
    return None
  a, b = first[0]["results"], again[0]["results"]
  dev = lambda r: (r.get("dev_history") or [math.nan])[0]
  commits = (str(a.get("git_commit", "?"))[:7], str(b.get("git_commit", "?"))[:7])
  same = "the same code" if commits[0] == commits[1] else f"code {commits[0]} → {commits[1]}"
  return (f"`lambda/lambda1.0/seed0` repeats `rt_polarity/safr/seed0`'s command ({same}). "
          f"Dev accuracy after one epoch: {dev(a):.4f} vs {dev(b):.4f}; test accuracy "
          f"{a['test']['accuracy']:.4f} vs {b['test']['accuracy']:.4f}."
          + (" Rerunning a command with unchanged code reproduces it exactly on the same "
             "machine; between these two runs the attention softmax's derivative was "
             "rewritten (equal up to rounding), so their gap shows how far a rounding-level "
             "change moves one run." if commits[0] != commits[1] else ""))


def write(results_dir: pathlib.Path, report: pathlib.Path, *,
          compare_dir: pathlib.Path | None = None) -> None:
  """Writes ``report`` from the summaries in ``results_dir``; links each group's
  ``safr_jax.compare`` plot and full table when ``compare_dir/<group>`` has them."""
  groups = load(results_dir)
  lines = [HEADER]
  for group in sorted(groups, key=lambda g: list(GROUP_TITLES).index(g)
                      if g in GROUP_TITLES else 99):
    rows = groups[group]
    lines.append(f"\n## {GROUP_TITLES.get(group, group)}\n")
    labels = sorted(rows, key=lambda l: (ORDER.index(l) if l in ORDER else 99, l))
    for columns in (COLUMNS, INTERPRETABILITY):
      lines.append("| run | n | " + " | ".join(c for c, _ in columns) + " |")
      lines.append("|---" * (len(columns) + 2) + "|")
      for label in labels:
        runs = rows[label]
        cells = [_fmt([get(s) for s in runs]) for _, get in columns]
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
      lines.append("")
    lines.append("")
    lines.append(_sentence(group, rows, groups))
    if compare_dir is not None and (compare_dir / group / "comparison.png").exists():
      rel = os.path.relpath(compare_dir / group, report.parent)
      lines.append("")
      lines.append(f"Every metric of every run: [`{rel}/comparison.md`]({rel}/comparison.md); "
                   "test accuracy against the faithfulness of each run's own explanation:\n\n"
                   f"![accuracy vs faithfulness, {group}]({rel}/comparison.png)")
  note = _rerun_note(groups)
  if note:
    lines += ["", "## Reruns", "", note]
  if not groups:
    lines.append("\nNo run has finished yet.")
  report.parent.mkdir(parents=True, exist_ok=True)
  report.write_text("\n".join(lines) + "\n")
