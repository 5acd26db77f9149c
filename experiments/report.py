"""Writes docs/RESULTS.md from the per-run JSON summaries of run_grid.py.

Every comparison of two variants is the difference of their means over seeds
with a Welch 95 % interval (``welch``, ``compare``); where the interval
contains zero the report says the seeds do not separate the two, and where a
side has fewer than two seeds it says no interval is possible. No verdict is
drawn beyond what the interval supports.
"""

from __future__ import annotations

import collections
import json
import math
import os
import pathlib
import re
from typing import Any, Callable, Iterable, Sequence

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
    return node if isinstance(node, (int, float)) and not isinstance(node, bool) else None
  return get


def _gate(*keys: str) -> Getter:
  """A VMASK gate number: None for a run without VMASK (its gate is a constant
  1 by convention, not a measurement)."""
  inner = _path(*keys)
  def get(summary):
    model = (summary.get("config") or {}).get("model") or {}
    return None if model.get("use_vmask") is False else inner(summary)
  return get


def _wall_minutes(summary):
  seconds = summary.get("grid_wall_time_s")
  if not isinstance(seconds, (int, float)):
    return None
  # An attempt killed with the grid itself went unrecorded (before the grid kept
  # stopped attempts' time); training's own step time, summed over every
  # attempt in its checkpoints, is then the better (lower) bound.
  steps = summary.get("results", {}).get("train_seconds")
  return max(seconds, steps if isinstance(steps, (int, float)) else 0.0) / 60


ACCURACY = _path("results", "test", "accuracy")
ACCURACY_LAST = _path("results", "test_last_epoch", "accuracy")
IMPORTANCE = _path("results", "test", "importance")
AOPC_VMASK = _path("interpretability", "faithfulness", "vmask", "aopc")
AOPC_GXI = _path("interpretability", "faithfulness", "gradient_x_input", "aopc")
# What L_Imp lowers, measured among the important tokens only (docs/METRICS.md).
SHARING_AMONG = _path("interpretability", "superposition", "embeddings",
                      "important_among_important", "sharing")
SHARING_AMONG_BULLET = "Sharing among important tokens (embeddings; L_Imp lowers it)"

# Two tables per group: accuracy, losses and the gate, then interpretability.
COLUMNS: list[tuple[str, Getter]] = [
    ("test acc., best-dev checkpoint", ACCURACY),
    ("test acc., last epoch", ACCURACY_LAST),
    ("L_Imp (test)", IMPORTANCE),
    ("L_Inter (test)", _path("results", "test", "interaction")),
    ("mean keep-prob.", _gate("results", "test", "keep_rate")),
    ("share p > 0.5", _gate("results", "test", "keep_above_half")),
    ("epochs", _path("results", "epochs_run")),
    ("wall time / run (min)", _wall_minutes),
]
INTERPRETABILITY: list[tuple[str, Getter]] = [
    ("sharing, important tokens, pooled over all tokens",
     _path("interpretability", "superposition", "embeddings", "important", "sharing")),
    ("sharing, important among important", SHARING_AMONG),
    ("sharing, all tokens", _path("interpretability", "superposition", "embeddings",
                                  "all", "sharing")),
    ("neuron overlap, important pairs",
     _path("interpretability", "neuron_overlap", "important_pairs")),
    ("neuron overlap, attention − random pairs",
     _path("interpretability", "neuron_overlap", "attention_minus_random")),
    ("AOPC (VMASK)", AOPC_VMASK),
    ("comprehensiveness (VMASK)",
     _path("interpretability", "faithfulness", "vmask", "comprehensiveness")),
    ("sufficiency (VMASK)", _path("interpretability", "faithfulness", "vmask", "sufficiency")),
    ("AOPC (gradient × input)", AOPC_GXI),
    ("AOPC (attention)", _path("interpretability", "faithfulness", "attention", "aopc")),
    ("AOPC (random)", _path("interpretability", "faithfulness", "random", "aopc")),
]

REFERENCE_TITLE = ("`rt_polarity`, the authors' numerics: PyTorch initialisation, padding "
                   "counted in pooling and both losses, every row padded to 128")
GROUP_TITLES = {
    "reference": REFERENCE_TITLE,
    "bottleneck": ("`rt_polarity`, padding-aware, with VMASK's annealed information "
                   "bottleneck (β = 1, −0.099 every 10 epochs)"),
    "init_padding": ("`rt_polarity`, SAFR, initialisation × padding (2×2, seed 0)"),
    "rt_polarity": "`rt_polarity` (the offline SST-2 substitute), max_len 128, padding-aware",
    "imdb_builtin": ("`imdb_builtin` (IMDB train reviews, test carved from train), max_len 256, "
                     "3 epochs, padding-aware"),
    "lambda": "λ sweep on `rt_polarity` (λ_imp = λ_inter = λ), padding-aware, seed 0",
    "batching": ("`rt_polarity`, SAFR, padding-aware: length-bucketed against random "
                 "batches (`data.batching`)"),
    "quick": "quick grid (tiny models, a few hundred examples; a smoke test, not a result)",
}
REPRODUCTION_GROUPS = ("reference", "bottleneck", "init_padding")
ORDER = ["baseline", "vmask", "vmask_ib", "imp", "inter", "safr", "safr_ib",
         "flax_init_ignored", "torch_init_ignored", "flax_init_counted",
         "safr_random", "safr_bucketed"]
# init_padding's cells: (init, padding) -> (group, label); torch × counted is
# the reference group's SAFR run (the same configuration, not trained twice).
INIT_PADDING_CELLS = {
    ("flax", "ignored"): ("init_padding", "flax_init_ignored"),
    ("flax", "counted"): ("init_padding", "flax_init_counted"),
    ("torch", "ignored"): ("init_padding", "torch_init_ignored"),
    ("torch", "counted"): ("reference", "safr"),
}

TITLE = "# Results\n"

HEADER = """## How these numbers were made

"—" marks a number that does not exist for that run (e.g. VMASK metrics of the baseline,
which has no VMASK, or last-epoch accuracy of runs trained before `results.json` recorded
it) or has not been computed yet. Interpretability metrics use the first 400 test examples
(`--eval_examples`); accuracy and losses the whole test split. "Wall time" is `train.py`'s
(training with dev evaluation each epoch, then the test split), summed over resumed
attempts, on 2 shared CPU cores (where an attempt went unrecorded, training's own step time
summed over every attempt stands in: a lower bound); `safr_jax.evaluate` comes on top (under a minute per
padding-aware `rt_polarity` run, ~3 min per `reference` run, whose rows are all padded to
128 (8 min with the pinned commit's unbatched evaluation), 12–14 min per `imdb_builtin` run; mostly occlusion).

Produced by `python experiments/run_grid.py` (see its docstring); every row can be
reproduced alone with `python experiments/run_grid.py --only=<group>/<label>/seed<k>`,
which runs `train.py` with the command stored in `experiments/results/<run>.json`.
Tables give mean ± sample standard deviation over the seeds that have finished (n = number
of seeds). Comparisons give the difference of two variants' means with a Welch 95 %
interval over seeds; "not separated by these seeds" means the interval contains 0, and
with one seed on either side no interval exists. Authors' hyper-parameters (d_model 256,
8 heads, 1 layer, Adam 1e-4, batch 32, early stopping on dev accuracy with patience 3,
λ = 1), CPU.

Two numerics. *Padding-aware* (`rt_polarity`, `imdb_builtin`, `lambda`, `bottleneck`):
Flax initialisation, padding ignored in pooling and in both SAFR losses. *The authors'*
(`reference`): PyTorch initialisation, padding counted in pooling and both losses, every
row padded to 128, as their code does. `init_padding` crosses the two switches for SAFR
(seed 0). Test accuracy is reported for the checkpoint with the best dev accuracy (ours)
and, for runs trained since it was recorded, for the last epoch's weights, which is what
the authors' code tests. The VMASK gate is two numbers: the mean keep-probability over
real test tokens and the share of those tokens with keep-probability p > 0.5.
Superposition ("sharing") of the important tokens (p > 0.5) is given pooled over all
tokens of the example and among the important tokens only (`docs/METRICS.md`).

One deviation: `imdb_builtin` runs get a fixed budget of 3 epochs (1,875 steps; an epoch
takes ~12 min on the 2 CPU cores these ran on) instead of early stopping's open-ended 100
epochs; the test numbers still come from the checkpoint with the best dev accuracy. The
`rt_polarity` runs' best checkpoints came after 1,000–2,100 steps, so this is a comparable
number of updates, but IMDB models might improve with more.

**These are not SST-2 or IMDB benchmark numbers.** `rt_polarity` is the Rotten Tomatoes
sentence-polarity data SST-2 was built from, not SST-2 itself (different sentences, splits
and labels); `imdb_builtin`'s test set is carved from IMDB's *train* split. Neither is
comparable with published SST-2/IMDB figures. The paper's "SRS" score is not reproduced;
the interpretability columns are our metrics, defined in `docs/METRICS.md`.
"""


# ----------------------------------------------------------------------------
# Numbers


def _finite(values: Iterable[Any]) -> list[float]:
  return [float(v) for v in values
          if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _fmt(values: Iterable[Any]) -> str:
  """mean ± sample std (one value: the value; none: "—")."""
  # Imported here: run_grid.py imports this module before it needs jax.
  from safr_jax.interpret.comparison import format_mean_std  # pylint: disable=g-import-not-at-top
  return format_mean_std(list(values), 4, std_digits=2, notation="g")


def _mean(values) -> float | None:
  values = _finite(values)
  return float(np.mean(values)) if values else None


def welch(a: Sequence[float], b: Sequence[float],
          level: float = 0.95) -> tuple[float, float, float, float] | None:
  """Difference of means ``mean(a) − mean(b)`` with its Welch interval.

  Returns ``(difference, low, high, df)`` — the ``level`` two-sided interval
  from Student's t with the Welch–Satterthwaite degrees of freedom — or None
  when either side has fewer than two finite values. When both samples have
  zero variance the interval is the point itself (df = n_a + n_b − 2).
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  a, b = np.asarray(_finite(a)), np.asarray(_finite(b))
  if a.size < 2 or b.size < 2:
    return None
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  diff = float(a.mean() - b.mean())
  se2 = float(va + vb)
  if se2 == 0:
    return diff, diff, diff, float(a.size + b.size - 2)
  df = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(se2)
  return diff, diff - half, diff + half, float(df)


def _sign(a, b) -> int | None:
  """-1 / +1 when the Welch interval of a − b lies below / above 0, 0 when it
  contains 0, None when there is no interval."""
  w = welch(a, b)
  if w is None:
    return None
  _, low, high, _ = w
  return -1 if high < 0 else 1 if low > 0 else 0


def compare(name_a: str, name_b: str, a, b, digits: int = 4) -> str:
  """``"A − B = +x.xxxx [low, high] (Welch 95 %, n = na/nb)"``, followed by
  ", not separated by these seeds" when the interval contains 0; with fewer
  than two values on a side, the difference and "n too small for an interval";
  with none on a side, "not run yet"."""
  a, b = _finite(a), _finite(b)
  if not a or not b:
    missing = " and ".join(n for n, v in ((name_a, a), (name_b, b)) if not v)
    return f"{name_a} − {name_b}: not run yet (no finished {missing})"
  n = f"n = {len(a)}/{len(b)}"
  w = welch(a, b)
  if w is None:
    diff = float(np.mean(a) - np.mean(b))
    return f"{name_a} − {name_b} = {diff:+.{digits}f} ({n}: n too small for an interval)"
  diff, low, high, _ = w
  text = (f"{name_a} − {name_b} = {diff:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}] "
          f"(Welch 95 %, {n})")
  if low <= 0 <= high:
    text += ", not separated by these seeds"
  return text


def _values(groups, group: str, label: str, get: Getter) -> list[float]:
  return _finite(get(s) for s in groups.get(group, {}).get(label, []))


def load(results_dir: pathlib.Path) -> dict[str, dict[str, list[dict]]]:
  groups: dict[str, dict[str, list[dict]]] = collections.defaultdict(
      lambda: collections.defaultdict(list))
  for path in sorted(results_dir.glob("*.json")):
    summary = json.loads(path.read_text())
    groups[summary["group"]][summary["label"]].append(summary)
  return groups


# ----------------------------------------------------------------------------
# "Does this reproduce SAFR?": three sentences.


def _seeds(n: int) -> str:
  return f"{n} seed{'s' if n != 1 else ''}"


def _answer(groups) -> list[str]:
  """Three sentences, one line each: accuracy under the authors' numerics,
  interpretability under them, and whether the bottleneck closes the
  padding-aware accuracy gap."""
  v = lambda g, l, get: _values(groups, g, l, get)
  numerics = "Under the authors' numerics (`reference`: PyTorch initialisation, padding counted)"

  # 1. Accuracy, reference group.
  safr, base = v("reference", "safr", ACCURACY), v("reference", "baseline", ACCURACY)
  safr_last = v("reference", "safr", ACCURACY_LAST)
  base_last = v("reference", "baseline", ACCURACY_LAST)
  if not safr or not base:
    first = (f"{numerics}, SAFR against the plain Transformer is not run yet "
             f"({_seeds(len(safr))} of SAFR and {_seeds(len(base))} of the baseline have "
             "finished), so this report cannot yet say whether SAFR keeps accuracy.")
  elif min(len(safr), len(base)) < 2:
    first = (f"{numerics}, only {_seeds(len(safr))} of SAFR and {_seeds(len(base))} of the "
             "plain Transformer have finished, so no interval is possible yet: test accuracy "
             f"is {np.mean(safr):.4f} vs {np.mean(base):.4f} with the best-dev checkpoint"
             + (f" and {np.mean(safr_last):.4f} vs {np.mean(base_last):.4f} with the last "
                "epoch's weights (the authors' protocol)." if safr_last and base_last else "."))
  else:
    best_sign, last_sign = _sign(safr, base), _sign(safr_last, base_last)
    signs = [s for s in (best_sign, last_sign) if s is not None]
    low = min(w[1] for w in (welch(safr, base), welch(safr_last, base_last)) if w)
    phrase = {-1: "costs accuracy", 0: "is not separated from the baseline",
              1: "is more accurate", None: "has no interval yet"}
    if signs and all(s == -1 for s in signs):
      verdict = ("so SAFR costs accuracy under the authors' own numerics and the paper's "
                 "\"without compromising prediction performance\" does not reproduce here")
    elif signs and all(s == 0 for s in signs):
      verdict = ("so these seeds show no accuracy cost, which is consistent with the paper's "
                 "claim but does not confirm it: the intervals still allow a loss of "
                 f"{-low:.4f}")
    elif signs and all(s == 1 for s in signs):
      verdict = "so SAFR is more accurate than the plain Transformer here"
    else:
      verdict = (f"so SAFR {phrase[best_sign]} with the best-dev checkpoint but "
                 f"{phrase[last_sign]} with the last epoch's weights")
    first = (f"{numerics}, the test accuracy of SAFR against the plain Transformer is "
             f"{compare('SAFR', 'baseline', safr, base)} with the best-dev checkpoint and "
             f"{compare('SAFR', 'baseline', safr_last, base_last)} with the last epoch's "
             f"weights (the authors' protocol), {verdict}.")

  # 2. Interpretability, reference group: SAFR against VMASK alone.
  imp_s, imp_v = v("reference", "safr", IMPORTANCE), v("reference", "vmask", IMPORTANCE)
  aopc_s, aopc_v = v("reference", "safr", AOPC_VMASK), v("reference", "vmask", AOPC_VMASK)
  if not (imp_s or aopc_s) or not (imp_v or aopc_v):
    second = ("Whether SAFR's losses make the VMASK explanation more faithful than VMASK "
              "alone under the authors' numerics is not run yet "
              f"({_seeds(len(aopc_s))} of SAFR and {_seeds(len(aopc_v))} of `vmask` have "
              "interpretability metrics in `reference`).")
  else:
    faithfulness = {
        1: "SAFR's losses make the gate's own explanation more faithful than VMASK alone",
        -1: "SAFR's losses make the gate's own explanation less faithful than VMASK alone",
        0: "these seeds do not show that SAFR's losses change the explanation's faithfulness",
        None: "no interval is possible until two seeds of each have finished",
    }[_sign(aopc_s, aopc_v)]
    # L_Imp counts padding here; sharing among important tokens does not, so it
    # says whether the mechanism SAFR targets moved (docs/METRICS.md).
    share_s, share_v = v("reference", "safr", SHARING_AMONG), v("reference", "vmask", SHARING_AMONG)
    mechanism = {
        -1: "SAFR's losses lower the sharing among important tokens, as designed",
        0: "these seeds do not separate the sharing among important tokens",
        1: "SAFR's losses raise the sharing among important tokens, against their design",
        None: None,
    }[_sign(share_s, share_v)]
    sharing = (f", sharing among important tokens (padding excluded) gives "
               f"{compare('SAFR', 'vmask', share_s, share_v, 2)}"
               if share_s and share_v else "")
    meaning = f"so {mechanism}, and {faithfulness}" if mechanism else f"so {faithfulness}"
    second = (f"On interpretability in `reference`, L_Imp on test gives "
              f"{compare('SAFR', 'vmask', imp_s, imp_v)} (SAFR minimises it directly, so lower "
              f"is expected by construction){sharing} and the VMASK explanation's AOPC gives "
              f"{compare('SAFR', 'vmask', aopc_s, aopc_v, 3)}, {meaning}.")

  # 3. Bottleneck: does safr_ib close the padding-aware accuracy gap?
  ib = v("bottleneck", "safr_ib", ACCURACY)
  pa_base, pa_safr = v("rt_polarity", "baseline", ACCURACY), v("rt_polarity", "safr", ACCURACY)
  name_ib, name_base = "`safr_ib`", "`rt_polarity/baseline`"
  without = compare("`rt_polarity/safr`", name_base, pa_safr, pa_base)
  if not ib or not pa_base:
    third = ("Whether VMASK's annealed information bottleneck (`bottleneck/safr_ib`) closes "
             "SAFR's accuracy gap to the padding-aware plain Transformer is not run yet "
             f"({_seeds(len(ib))} of `safr_ib` and {_seeds(len(pa_base))} of "
             f"{name_base} have finished); the gap to close is {without}.")
  else:
    sign = _sign(ib, pa_base)
    w = welch(ib, pa_base)
    meaning = {
        -1: "so the bottleneck does not close the gap",
        0: ("so the gap may be closed but is not shown to be: the interval still allows a "
            f"loss of {-w[1]:.4f}" if w else ""),
        1: "so with the bottleneck SAFR is more accurate than the baseline",
        None: "and no interval is possible until two seeds of each have finished",
    }[sign]
    before = f" (without the bottleneck: {without})" if pa_safr else ""
    third = (f"With VMASK's annealed information bottleneck (padding-aware), the test accuracy "
             f"of SAFR against the padding-aware plain Transformer is "
             f"{compare(name_ib, name_base, ib, pa_base)}, {meaning}{before}.")
  return [first, second, third]


# ----------------------------------------------------------------------------
# Per-group comparisons.


def _bullet(what: str, text: str) -> str:
  return f"- {what}: {text}."


def _lambda_findings(rows, groups) -> list[str]:
  acc = {label: _mean(ACCURACY(s) for s in runs) for label, runs in rows.items()}
  done = sorted((float(l.removeprefix("lambda")), a) for l, a in acc.items() if a is not None)
  if len(done) < 2:
    return ["Too few λ values have finished to say how accuracy depends on λ."]
  best = max(done, key=lambda x: x[1])
  lam = lambda values: "{" + ", ".join(f"{l:g}" for l, _ in values) + "}"
  text = (f"One seed per λ, so no interval is possible and these runs do not separate λ values "
          f"from each other: test accuracy ranges from {min(a for _, a in done):.4f} to "
          f"{max(a for _, a in done):.4f} over λ ∈ {lam(done)} (highest at λ = {best[0]:g})")
  safr = _values(groups, "rt_polarity", "safr", ACCURACY)
  if len(safr) >= 2:
    text += (f"; for scale, the {len(safr)} `rt_polarity/safr` seeds at λ = 1 alone span "
             f"{min(safr):.4f}–{max(safr):.4f}")
  base = _values(groups, "rt_polarity", "baseline", ACCURACY)
  if base:
    below = [(l, a) for l, a in done if a < min(base)]
    inside = [(l, a) for l, a in done if min(base) <= a <= max(base)]
    above = [(l, a) for l, a in done if a > max(base)]
    parts = []
    if below:
      parts.append(f"λ ∈ {lam(below)} lie below")
    if inside:
      parts.append(f"λ ∈ {lam(inside)} lie within")
    if above:
      parts.append(f"λ ∈ {lam(above)} lie above")
    text += (f". Against the {_seeds(len(base))} of the plain Transformer on `rt_polarity` "
             f"({min(base):.4f}–{max(base):.4f}), " + ", ".join(parts)
             + " that range; with one run per λ this describes these runs and is not a test")
  return [text + "."]


def _findings(group: str, rows, groups) -> list[str]:
  """The comparisons a group's tables support, one bullet each."""
  if group == "lambda":
    return _lambda_findings(rows, groups)
  v = lambda label, get, g=group: _values(groups, g, label, get)
  out = []
  if group == "bottleneck":
    ib = "`safr_ib`"
    out.append(_bullet("Test accuracy, best-dev checkpoint",
                       compare(ib, "`vmask_ib`", v("safr_ib", ACCURACY), v("vmask_ib", ACCURACY))))
    if v("safr_ib", ACCURACY_LAST) or v("vmask_ib", ACCURACY_LAST):
      out.append(_bullet("Test accuracy, last epoch", compare(
          ib, "`vmask_ib`", v("safr_ib", ACCURACY_LAST), v("vmask_ib", ACCURACY_LAST))))
    out.append(_bullet(
        "Against the padding-aware runs without the bottleneck (other commits), test accuracy",
        compare(ib, "`rt_polarity/baseline`", v("safr_ib", ACCURACY),
                v("baseline", ACCURACY, "rt_polarity"))
        + "; " + compare(ib, "`rt_polarity/safr`", v("safr_ib", ACCURACY),
                         v("safr", ACCURACY, "rt_polarity"))
        + "; " + compare("`vmask_ib`", "`rt_polarity/vmask`", v("vmask_ib", ACCURACY),
                         v("vmask", ACCURACY, "rt_polarity"))))
    out.append(_bullet("AOPC of the VMASK explanation", compare(
        ib, "`vmask_ib`", v("safr_ib", AOPC_VMASK), v("vmask_ib", AOPC_VMASK), 3)
        + "; " + compare(ib, "`rt_polarity/safr`", v("safr_ib", AOPC_VMASK),
                         v("safr", AOPC_VMASK, "rt_polarity"), 3)))
    out.append(_bullet(SHARING_AMONG_BULLET,
                       compare(ib, "`vmask_ib`", v("safr_ib", SHARING_AMONG),
                               v("vmask_ib", SHARING_AMONG), 2)))
    return out
  if group == "init_padding":
    return [_init_padding_table(groups)]
  if group == "batching":
    return [_bullet(name, compare("bucketed", "random", v("safr_bucketed", get),
                                  v("safr_random", get), digits))
            for name, get, digits in (
                ("Test accuracy, best-dev checkpoint", ACCURACY, 4),
                ("Test accuracy, last epoch", ACCURACY_LAST, 4),
                ("AOPC of the VMASK explanation", AOPC_VMASK, 3))]
  if "safr" not in rows or "baseline" not in rows:
    return ["SAFR and the baseline have not both finished in this group; no comparison is "
            "drawn."]
  out.append(_bullet("Test accuracy, best-dev checkpoint",
                     compare("safr", "baseline", v("safr", ACCURACY), v("baseline", ACCURACY))))
  if v("safr", ACCURACY_LAST) or v("baseline", ACCURACY_LAST):
    out.append(_bullet("Test accuracy, last epoch's weights (the authors' protocol)",
                       compare("safr", "baseline", v("safr", ACCURACY_LAST),
                               v("baseline", ACCURACY_LAST))))
  if "vmask" in rows:
    out.append(_bullet("L_Imp on test (SAFR minimises it, so lower is by construction)",
                       compare("safr", "vmask", v("safr", IMPORTANCE), v("vmask", IMPORTANCE))))
    out.append(_bullet("AOPC of the VMASK explanation, what SAFR's losses add to VMASK",
                       compare("safr", "vmask", v("safr", AOPC_VMASK), v("vmask", AOPC_VMASK),
                               3)))
    if v("safr", SHARING_AMONG) or v("vmask", SHARING_AMONG):
      out.append(_bullet(SHARING_AMONG_BULLET,
                         compare("safr", "vmask", v("safr", SHARING_AMONG),
                                 v("vmask", SHARING_AMONG), 2)))
  else:
    out.append(_bullet("L_Imp on test (the baseline has no VMASK gate, so its L_Imp is on "
                       "ungated embeddings)",
                       compare("safr", "baseline", v("safr", IMPORTANCE),
                               v("baseline", IMPORTANCE))))
    out.append("- No `vmask` run on this data isolates what SAFR's losses add to the VMASK "
               "explanation.")
  out.append(_bullet("AOPC of gradient × input, SAFR's model against the baseline's",
                     compare("safr", "baseline", v("safr", AOPC_GXI), v("baseline", AOPC_GXI),
                             3)))
  out.append(_bullet("SAFR's own explanation (VMASK) against the baseline's best available "
                     "one (gradient × input), AOPC",
                     compare("safr VMASK", "baseline gradient × input", v("safr", AOPC_VMASK),
                             v("baseline", AOPC_GXI), 3)))
  if group == "reference" and "rt_polarity" in groups:
    # Whether "SAFR keeps accuracy" here is SAFR holding up or the others falling.
    out.append(_bullet(
        "Each variant under the authors' numerics against itself padding-aware "
        "(other commits), test accuracy",
        "; ".join(compare(f"`reference/{l}`", f"`rt_polarity/{l}`", v(l, ACCURACY),
                          v(l, ACCURACY, "rt_polarity"))
                  for l in ("baseline", "vmask", "safr") if l in rows)))
  return out


def _sentence(group: str, rows: dict[str, list[dict]],
              groups: dict[str, dict[str, list[dict]]] | None = None) -> str:
  """What the group's tables show, computed from the numbers."""
  groups = groups if groups is not None else {group: rows}
  lines = _findings(group, rows, groups)
  if lines and lines[0].startswith("- "):
    lines.insert(0, "Differences of means with Welch 95 % intervals over seeds:\n")
  return "\n".join(lines)


def _init_padding_table(groups) -> str:
  """Test accuracy of SAFR at seed 0, init × padding."""
  def cell(init, padding):
    group, label = INIT_PADDING_CELLS[(init, padding)]
    runs = [s for s in groups.get(group, {}).get(label, []) if s.get("seed") == 0]
    if not runs or ACCURACY(runs[0]) is None:
      return "not run yet"
    best, last = ACCURACY(runs[0]), ACCURACY_LAST(runs[0])
    return f"{best:.4f}" + (f" ({last:.4f})" if last is not None else "")
  lines = ["Test accuracy of SAFR, seed 0: best-dev checkpoint (last epoch's weights).", "",
           "| init \\ padding | ignored | counted |", "|---|---|---|"]
  for init in ("flax", "torch"):
    lines.append(f"| {init} | {cell(init, 'ignored')} | {cell(init, 'counted')} |")
  lines.append("")
  ref = _values(groups, "reference", "safr", ACCURACY)
  safr = _values(groups, "rt_polarity", "safr", ACCURACY)
  scale = []
  if len(ref) >= 2:
    scale.append(f"the {len(ref)} `reference/safr` seeds span {min(ref):.4f}–{max(ref):.4f}")
  if len(safr) >= 2:
    scale.append(f"the {len(safr)} `rt_polarity/safr` seeds span {min(safr):.4f}–"
                 f"{max(safr):.4f}")
  lines.append("The torch × counted cell is `reference/safr/seed0` (that configuration, not "
               "trained twice); the other three cells are this group's runs. The counted "
               "column pads every row to 128 as the authors do, the ignored column pads each "
               "batch to its longest row. One seed per cell, so no interval is possible and "
               "these cells do not separate the effect of init from that of padding"
               + (f"; for scale, {' and '.join(scale)}." if scale else "."))
  return "\n".join(lines)


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


def _group_order(groups) -> list[str]:
  return sorted(groups, key=lambda g: (list(GROUP_TITLES).index(g)
                                       if g in GROUP_TITLES else 99, g))


def _by_commit(counts: collections.Counter) -> str:
  """``"577dbc6 (3 runs), b8ccb7c (1 run)"``, in first-seen order."""
  return ", ".join(f"{c} ({_seeds(n).replace('seed', 'run')})" for c, n in counts.items())


def _commits(groups) -> str:
  """Which commits each group's runs were trained from (results.git_commit)."""
  parts = []
  for group in _group_order(groups):
    counts = collections.Counter(
        str(s.get("results", {}).get("git_commit") or "unknown")[:7]
        for runs in groups[group].values() for s in runs)
    listed = _by_commit(counts)
    if group in REPRODUCTION_GROUPS:
      listed = (f"pinned commit {listed}" if len(counts) == 1
                else f"{listed} (not one pinned commit)")
    parts.append(f"`{group}`: {listed}")
  if not parts:
    return ""
  evaluated = _evaluation_commits(groups)
  return ("Commits the runs were trained from (`results.git_commit`). The reproduction groups "
          "(`reference`, `bottleneck`, `init_padding`) are trained from one pinned commit, so "
          "code changes made while they run do not reach them; the older groups were trained "
          "while the code evolved, so comparisons across groups also compare commits. "
          + "; ".join(parts) + "." + evaluated + "\n")


def _evaluation_commits(groups) -> str:
  """Which commits computed the interpretability metrics, where that differs
  from the training commit (``safr_jax.evaluate --reevaluate`` of older runs)."""
  parts = []
  for group in _group_order(groups):
    counts = collections.Counter()
    for runs in groups[group].values():
      for s in runs:
        trained = str(s.get("results", {}).get("git_commit") or "")[:7]
        interp = s.get("interpretability")
        if interp is None:
          continue
        evaluated = str((interp.get("provenance") or {}).get("git_commit") or "")[:7]
        if evaluated and evaluated != trained:
          counts[evaluated] += 1
    if counts:
      parts.append(f"`{group}`: {_by_commit(counts)}")
  if not parts:
    return ""
  return (" Interpretability metrics computed by a later commit's `safr_jax.evaluate` "
          "(`interpretability.provenance.git_commit`; training untouched, so metrics added "
          "since the training commit are filled in): " + "; ".join(parts) + "; the other runs were evaluated "
          "right after training, by the checkout that trained them.")


def write(results_dir: pathlib.Path, report: pathlib.Path, *,
          compare_dir: pathlib.Path | None = None) -> None:
  """Writes ``report`` from the summaries in ``results_dir``; links each group's
  ``safr_jax.compare`` plot and full table when ``compare_dir/<group>`` has them."""
  groups = load(results_dir)
  lines = [TITLE, "## Does this reproduce SAFR?\n", "\n".join(_answer(groups)), "", HEADER]
  commits = _commits(groups)
  if commits:
    lines.append(commits)
  for group in _group_order(groups):
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


def answer_section(text: str) -> str:
  """The "Does this reproduce SAFR?" section of a written report (for tests)."""
  match = re.search(r"## Does this reproduce SAFR\?\n\n(.*?)\n\n", text, re.S)
  return match.group(1) if match else ""
