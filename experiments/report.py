"""Writes docs/RESULTS.md from the per-run JSON summaries of run_grid.py.

The report opens with the paper's benchmarks (``PAPER_GROUPS``: SST-2 read as
the authors read it, padding-aware and under their numerics, and the official
IMDB test): the answer to "does SAFR improve interpretability without costing
accuracy?", one table, the two numerics side by side and each group's full
tables. The stand-in groups (``rt_polarity``, ``imdb_builtin`` and the
experiments on them) follow under their own heading. ``readme_summary`` renders
the paper's table and answer for README.md (``python -m experiments.report``).

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
KEEP_RATE = _gate("results", "test", "keep_rate")
KEEP_ABOVE_HALF = _gate("results", "test", "keep_above_half")

# Two tables per group: accuracy, losses and the gate, then interpretability.
COLUMNS: list[tuple[str, Getter]] = [
    ("test acc., best-dev checkpoint", ACCURACY),
    ("test acc., last epoch", ACCURACY_LAST),
    ("L_Imp (test)", IMPORTANCE),
    ("L_Inter (test)", _path("results", "test", "interaction")),
    ("mean keep-prob.", KEEP_RATE),
    ("share p > 0.5", KEEP_ABOVE_HALF),
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
# The paper's benchmarks first (in this order), then the stand-ins.
GROUP_TITLES = {
    "sst2": ("SST-2 (`sst_treebank`, the paper's benchmark), max_len 128, padding-aware "
             "defaults"),
    "sst2_reference": ("SST-2 (`sst_treebank`), the authors' numerics: PyTorch "
                       "initialisation, padding counted in pooling and both losses, every "
                       "row padded to 128"),
    "imdb_curve": ("IMDB (`aclimdb`, the official test), max_len 256: one SAFR run whose dev "
                   "curve chooses the IMDB group's epoch cap"),
    "imdb": ("IMDB (`aclimdb`, the official test, the paper's benchmark), max_len 256, "
             "padding-aware"),
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
# The groups on the paper's own data; every other group is a stand-in.
PAPER_GROUPS = ("sst2", "sst2_reference", "imdb_curve", "imdb")
IMDB_GROUPS = ("imdb_curve", "imdb")
# The paper's table: (group, dataset as the table names it, variants), and the
# seeds run_grid plans per variant (what "n of planned" counts against).
PAPER_ROWS = (
    ("sst2", "SST-2", ("baseline", "vmask", "safr", "safr_ib")),
    ("sst2_reference", "SST-2, authors' numerics", ("baseline", "vmask", "safr")),
    ("imdb", "IMDB", ("baseline", "vmask", "safr", "safr_ib")),
)
PLANNED_SEEDS = {"sst2": 5, "sst2_reference": 3, "imdb": 3, "imdb_curve": 1}
PAPER_COLUMNS: list[tuple[str, Getter]] = [
    ("test acc., best-dev checkpoint", ACCURACY),
    ("test acc., last epoch", ACCURACY_LAST),
    ("L_Imp (test)", IMPORTANCE),
    ("AOPC (VMASK)", AOPC_VMASK),
    ("AOPC (gradient × input)", AOPC_GXI),
    ("sharing among important tokens", SHARING_AMONG),
    ("mean keep-prob.", KEEP_RATE),
    ("share p > 0.5", KEEP_ABOVE_HALF),
]
# safr_jax/configs.py's train.num_epochs: early stopping's open-ended budget.
OPEN_ENDED_EPOCHS = 100
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
PAPER_QUESTION = ("## Does SAFR improve interpretability without costing accuracy, on the "
                  "paper's benchmarks?\n")
STANDIN_TITLE = "# Stand-in results (rt_polarity, imdb_builtin): not the paper's benchmarks\n"
STANDIN_QUESTION = "## Does this reproduce SAFR? (on `rt_polarity`, a stand-in)\n"

# How every table of the report was made; the parts that differ per group are
# read from the summaries (``_paper_data``) or said in ``STANDIN_HEADER``.
HEADER = """## How these numbers were made

"—" marks a number that does not exist for that run (e.g. VMASK metrics of the baseline,
which has no VMASK, or last-epoch accuracy of runs trained before `results.json` recorded
it) or has not been computed yet; "not run yet" marks a variant with no finished run.
Accuracy, losses and the gate cover the whole test split; the other interpretability
metrics a seeded, stratified subset of it (the class balance kept; `safr_jax.evaluate
--max_examples`, which `run_grid.py` sets per run, 400 unless said otherwise; its size is
given per group below). "Wall time" is `train.py`'s (training with dev evaluation each
epoch, then the test split), summed over resumed attempts, on 2 shared CPU cores (where an
attempt went unrecorded, training's own step time summed over every attempt stands in: a
lower bound); `safr_jax.evaluate` comes on top.

Produced by `python experiments/run_grid.py` (see its docstring); every row can be
reproduced alone with `python experiments/run_grid.py --only=<group>/<label>/seed<k>`,
which runs `train.py` with the command stored in `experiments/results/<run>.json`.
Tables give mean ± sample standard deviation over the seeds that have finished (n = number
of seeds). Comparisons give the difference of two variants' means with a Welch 95 %
interval over seeds; "not separated by these seeds" means the interval contains 0, and
with one seed on either side no interval exists. Authors' hyper-parameters (d_model 256,
8 heads, 1 layer, Adam 1e-4, batch 32, early stopping on dev accuracy with patience 3,
λ = 1), CPU.

Test accuracy is reported for the checkpoint with the best dev accuracy (ours) and for the
last epoch's weights, which is what the authors' code tests. The VMASK gate is two
numbers: the mean keep-probability over real test tokens and the share of those tokens
with keep-probability p > 0.5. Superposition ("sharing") of the important tokens (p > 0.5)
is given pooled over all tokens of the example and among the important tokens only
(`docs/METRICS.md`). The paper's "SRS" score is not reproduced; the interpretability
columns are our metrics, defined in `docs/METRICS.md`.

Two numerics. *Padding-aware* (`sst2`, `imdb`): Flax initialisation, padding ignored in
pooling and in both SAFR losses, length-bucketed batches each padded to its longest row
(the defaults). *The authors'* (`sst2_reference`): PyTorch initialisation, padding counted
in pooling and both losses, every row padded to 128, random batches, as their code does.
`sst2` and `sst2_reference` read SST-2 as the authors do: `sst_treebank` on
`../shared/data/sst/stanfordSentimentTreebank`, the treebank's own sentence-level
train/dev/test, labels from the phrase dictionary, neutral sentences dropped, train
balanced. `imdb` reads the official IMDB archive as the authors split it (`aclimdb` on
`../shared/data/imdb/aclImdb_text.tar.gz`: train and dev from the official train, the
official test whole). The sizes each run read are below, from its summary. If CPU time
forces an epoch cap, one cap, chosen from the dev curve of `imdb_curve`'s run (early
stopping with patience 3 as the authors, at most 8 epochs so that it ends within one working
session), holds for every `imdb` run and is said beside every IMDB number.
"""

STANDIN_HEADER = """## How the stand-in numbers were made

As above ("—", mean ± std, Welch intervals, hyper-parameters, the gate, wall time, how to
rerun a row), with these differences. Interpretability metrics use a seeded, stratified
subset of 400 test examples (`--eval_examples`). `safr_jax.evaluate` comes on top of the
wall time (under a minute per padding-aware `rt_polarity` run, ~3 min per `reference` run,
whose rows are all padded to 128 (8 min with the pinned commit's unbatched evaluation),
12–14 min per `imdb_builtin` run; mostly occlusion). Last-epoch accuracy exists only for
runs trained since `results.json` recorded it.

Two numerics. *Padding-aware* (`rt_polarity`, `imdb_builtin`, `lambda`, `bottleneck`):
Flax initialisation, padding ignored in pooling and in both SAFR losses, random batches
(`batching` sets them against length-bucketed ones). *The authors'* (`reference`): PyTorch
initialisation, padding counted in pooling and both losses, every row padded to 128, as
their code does. `init_padding` crosses the two switches for SAFR (seed 0).

One deviation: `imdb_builtin` runs get a fixed budget of 3 epochs (1,875 steps; an epoch
takes ~12 min on the 2 CPU cores these ran on) instead of early stopping's open-ended 100
epochs; the test numbers still come from the checkpoint with the best dev accuracy. The
`rt_polarity` runs' best checkpoints came after 1,000–2,100 steps, so this is a comparable
number of updates, but IMDB models might improve with more.

**The numbers in this part are not SST-2 or IMDB benchmark numbers.** `rt_polarity` is the
Rotten Tomatoes sentence-polarity data SST-2 was built from, not SST-2 itself (different
sentences, splits and labels); `imdb_builtin`'s test set is carved from IMDB's *train*
split. Neither is comparable with published SST-2/IMDB figures (the paper's benchmarks are
above).
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
# The paper's benchmarks: the answer, one table, the two numerics side by side.


def _epoch_cap(summary: dict[str, Any]) -> int | None:
  """The epoch cap a run trained under (``config.train.num_epochs`` when its
  command sets it or it is below the open-ended default), None when early
  stopping alone ended it."""
  epochs = ((summary.get("config") or {}).get("train") or {}).get("num_epochs")
  flag = re.search(r"--config\.train\.num_epochs=(\d+)", summary.get("command") or "")
  if isinstance(epochs, int) and not isinstance(epochs, bool):
    return epochs if flag or epochs < OPEN_ENDED_EPOCHS else None
  return int(flag.group(1)) if flag else None


def _budget(runs: Iterable[dict]) -> str:
  """The epoch budget of ``runs``, to say beside their numbers: "capped at 3
  epochs", "no epoch cap (early stopping)", or each budget with its count when
  the runs disagree; "" for no runs."""
  caps = collections.Counter(_epoch_cap(s) for s in runs)
  name = lambda cap: (f"capped at {cap} epoch{'s' if cap != 1 else ''}" if cap
                      else "no epoch cap (early stopping)")
  if len(caps) <= 1:
    return name(next(iter(caps))) if caps else ""
  return "not one epoch budget: " + ", ".join(
      f"{name(cap)} ({_seeds(n).replace('seed', 'run')})" for cap, n in caps.items())


def _cut_short(summary: dict[str, Any]) -> bool:
  """Whether the epoch cap, not early stopping, ended a run at its best dev
  epoch: dev accuracy still rose, so more epochs might have changed it."""
  r, cap = summary.get("results", {}), _epoch_cap(summary)
  return bool(cap) and not r.get("stopped_early") and (
      r.get("best_epoch") == r.get("epochs_run") == cap)


def _cap_binding(runs: Sequence[dict]) -> str:
  """"the best dev epoch is the cap's last in 1 of 3 runs (`baseline` seed
  0): …", or that it is in none; "" for runs without a cap."""
  capped = [s for s in runs if _epoch_cap(s)]
  if not capped:
    return ""
  bound = [s for s in capped if _cut_short(s)]
  if not bound:
    return (f"no run's best dev epoch is the cap's last (0 of {len(capped)}), so the cap "
            "did not cut a rising dev curve short")
  who = ", ".join(f"`{s.get('label')}` seed {s.get('seed')}" for s in bound)
  return (f"the best dev epoch is the cap's last in {len(bound)} of {len(capped)} runs "
          f"({who}): those might gain from more epochs")


def _group_runs(groups, group: str) -> list[dict]:
  return [s for runs in groups.get(group, {}).values() for s in runs]


def _dataset_name(groups, group: str, name: str) -> str:
  """The table's dataset cell; IMDB's carries its epoch budget."""
  budget = _budget(_group_runs(groups, group)) if group in IMDB_GROUPS else ""
  return f"{name}, {budget}" if budget else name


def _paper_table(groups) -> str:
  """One row per dataset × variant of ``PAPER_ROWS``: n and mean ± std."""
  lines = ["| dataset | variant | n | " + " | ".join(c for c, _ in PAPER_COLUMNS) + " |",
           "|---" * (len(PAPER_COLUMNS) + 3) + "|"]
  for group, name, labels in PAPER_ROWS:
    dataset = _dataset_name(groups, group, name)
    for label in labels:
      runs = groups.get(group, {}).get(label, [])
      cells = ([_fmt([get(s) for s in runs]) for _, get in PAPER_COLUMNS] if runs
               else ["not run yet"] + ["—"] * (len(PAPER_COLUMNS) - 1))
      lines.append(f"| {dataset} | {label} | {len(runs)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _side(sign: int | None, below: str, level: str, above: str,
          none: str = "no interval is possible yet (fewer than 2 seeds a side)") -> str:
  """The phrase for the sign of a Welch interval (``_sign``)."""
  return {-1: below, 0: level, 1: above, None: none}[sign]


def _accuracy(groups, group: str, label: str, name: str, *, last: bool = True
              ) -> tuple[str, str]:
  """``label`` − baseline test accuracy in ``group`` (best-dev checkpoint and,
  with ``last``, the last epoch's weights): the comparisons ("with the
  best-dev checkpoint, A − baseline = …; with …") and the verdict without its
  subject ("is not separated from the baseline in accuracy")."""
  v = lambda l, get: _values(groups, group, l, get)
  pairs = [("with the best-dev checkpoint", v(label, ACCURACY), v("baseline", ACCURACY))]
  if last and (v(label, ACCURACY_LAST) or v("baseline", ACCURACY_LAST)):
    pairs.append(("with the last epoch's weights", v(label, ACCURACY_LAST),
                  v("baseline", ACCURACY_LAST)))
  text = "; ".join(f"{when}, {compare(name, 'baseline', a, b)}" for when, a, b in pairs)
  phrase = lambda sign: _side(
      sign, "is less accurate than the baseline (costs accuracy)",
      "is not separated from the baseline in accuracy",
      "is more accurate than the baseline",
      "has no accuracy interval yet (fewer than 2 seeds a side)")
  signs = [_sign(a, b) for _, a, b in pairs]
  if len(set(signs)) == 1:
    verdict = phrase(signs[0])
  else:
    verdict = " but ".join(f"{phrase(s)} {when}" for s, (when, _, _) in zip(signs, pairs))
  return text, verdict


def _gate_vs_vmask(groups, group: str) -> tuple[str, str, int | None] | None:
  """SAFR's gate against VMASK alone's in ``group`` by the AOPC of their
  explanations: the comparison, its meaning, and its sign (``_sign``); None
  while either has no run with interpretability metrics."""
  aopc = (_values(groups, group, "safr", AOPC_VMASK),
          _values(groups, group, "vmask", AOPC_VMASK))
  if not aopc[0] or not aopc[1]:
    return None
  sign = _sign(*aopc)
  return (f"the AOPC of the gate's explanation gives {compare('SAFR', 'vmask', *aopc, 3)}",
          _side(sign, "SAFR's explanation is less faithful than VMASK alone's",
                "the two explanations' faithfulness is not separated",
                "SAFR's explanation is more faithful than VMASK alone's"), sign)


def _gate_short(gate: tuple[str, str, int | None] | None) -> str:
  """"; its gate's explanation is more faithful than VMASK alone's", or ""."""
  if gate is None:
    return ""
  return "; its gate's explanation " + _side(
      gate[2], "is less faithful than VMASK alone's",
      "is not separated from VMASK alone's in faithfulness",
      "is more faithful than VMASK alone's", "has no interval yet")


def _missing(groups, group: str, labels: Sequence[str]) -> str:
  """"3 seeds of `safr` and 0 seeds of `baseline` have finished"."""
  counts = [f"{_seeds(len(groups.get(group, {}).get(l, [])))} of `{l}`" for l in labels]
  return ", ".join(counts[:-1]) + f" and {counts[-1]} have finished"


def _paper_answer(groups) -> list[str]:
  """At most five sentences, one a line: SST-2's accuracy and
  interpretability padding-aware, SST-2 under the authors' numerics, IMDB,
  and the answer in short."""
  v = lambda g, l, get: _values(groups, g, l, get)
  sentences = []
  sst = "On SST-2 (`sst2`, padding-aware)"

  # 1. SST-2 accuracy.
  if not v("sst2", "safr", ACCURACY) or not v("sst2", "baseline", ACCURACY):
    sentences.append(f"{sst}, SAFR against the plain Transformer is not run yet "
                     f"({_missing(groups, 'sst2', ('safr', 'baseline'))}).")
  else:
    text, verdict = _accuracy(groups, "sst2", "safr", "SAFR")
    sentence = f"{sst}, in test accuracy, {text}; so SAFR {verdict}"
    if v("sst2", "safr_ib", ACCURACY):
      ib_text, ib_verdict = _accuracy(groups, "sst2", "safr_ib", "`safr_ib`", last=False)
      sentence += (f"; with VMASK's information bottleneck and {ib_text.removeprefix('with ')}, "
                   f"so `safr_ib` {ib_verdict}")
    sentences.append(sentence + ".")

  # 2. SST-2 interpretability: SAFR's losses against VMASK alone.
  gate = _gate_vs_vmask(groups, "sst2")
  if gate is None:
    sentences.append("On SST-2, SAFR's interpretability against VMASK alone is not run yet "
                     f"({_missing(groups, 'sst2', ('safr', 'vmask'))} with interpretability "
                     "metrics).")
  else:
    share = v("sst2", "safr", SHARING_AMONG), v("sst2", "vmask", SHARING_AMONG)
    gxi = v("sst2", "safr", AOPC_GXI), v("sst2", "baseline", AOPC_GXI)
    parts, meaning = [gate[0]], [gate[1]]
    if share[0] and share[1]:
      parts.append("the sharing among important tokens gives "
                   f"{compare('SAFR', 'vmask', *share, 2)}")
      meaning.append(_side(_sign(*share), "SAFR lowers that sharing, as designed",
                           "the sharing is not separated",
                           "SAFR raises that sharing, against its design"))
    if gxi[0] and gxi[1]:
      parts.append("gradient × input's AOPC on the model gives "
                   f"{compare('SAFR', 'baseline', *gxi, 3)}")
      meaning.append(_side(_sign(*gxi), "gradient × input explains SAFR's model less "
                           "faithfully than the baseline's",
                           "gradient × input is not separated between the two models",
                           "gradient × input explains SAFR's model more faithfully"))
    sentences.append(f"On SST-2's interpretability, {'; '.join(parts)}; so "
                     f"{'; '.join(meaning)}.")

  # 3. SST-2 under the authors' numerics.
  ref = "On SST-2 under the authors' numerics (`sst2_reference`)"
  if not v("sst2_reference", "safr", ACCURACY) or not v("sst2_reference", "baseline",
                                                         ACCURACY):
    sentences.append(f"{ref}, SAFR against the plain Transformer is not run yet "
                     f"({_missing(groups, 'sst2_reference', ('safr', 'baseline', 'vmask'))}).")
  else:
    text, verdict = _accuracy(groups, "sst2_reference", "safr", "SAFR")
    sentence = f"{ref}, in test accuracy, {text}; so SAFR {verdict}"
    gate_ref = _gate_vs_vmask(groups, "sst2_reference")
    if gate_ref is not None:
      sentence += f"; {gate_ref[0]}, so {gate_ref[1]}"
    sentences.append(sentence + ".")

  # 4. IMDB.
  budget = _budget(_group_runs(groups, "imdb"))
  if not v("imdb", "safr", ACCURACY) or not v("imdb", "baseline", ACCURACY):
    done = (f" ({_missing(groups, 'imdb', ('baseline', 'vmask', 'safr', 'safr_ib'))}, {budget})"
            if "imdb" in groups else "")
    sentences.append("On IMDB (`imdb`: baseline, vmask, safr and safr_ib on the official test), "
                     f"SAFR against the plain Transformer is not run yet{done}, so this "
                     "report cannot yet answer on IMDB.")
  else:
    text, verdict = _accuracy(groups, "imdb", "safr", "SAFR")
    sentence = (f"On IMDB (`imdb`, official test, {budget}), in test accuracy, {text}; so "
                f"SAFR {verdict}")
    if v("imdb", "safr_ib", ACCURACY):
      ib_text, ib_verdict = _accuracy(groups, "imdb", "safr_ib", "`safr_ib`", last=False)
      sentence += (f"; with VMASK's information bottleneck and {ib_text.removeprefix('with ')}, "
                   f"so `safr_ib` {ib_verdict}")
    gxi = v("imdb", "safr", AOPC_GXI), v("imdb", "baseline", AOPC_GXI)
    if gxi[0] and gxi[1]:
      sentence += (f"; gradient × input's AOPC gives {compare('SAFR', 'baseline', *gxi, 3)}"
                   + ("" if _sign(*gxi) is None else ", so " + _side(
                       _sign(*gxi), "it explains SAFR's model less faithfully",
                       "it is not separated between the two models",
                       "it explains SAFR's model more faithfully")))
    gate_imdb = _gate_vs_vmask(groups, "imdb")
    if gate_imdb is not None:
      sentence += f"; {gate_imdb[0]}, so {gate_imdb[1]}"
    binding = _cap_binding(_group_runs(groups, "imdb"))
    sentence += f"; {binding}" if binding else ""
    sentences.append(sentence + ("." if gate_imdb else " (no `vmask` run on IMDB isolates what "
                                 "SAFR's losses add to the gate's explanation yet)."))

  # 5. The answer in short, then the question's yes or no.
  def short(group: str) -> str:
    if not v(group, "safr", ACCURACY) or not v(group, "baseline", ACCURACY):
      return "SAFR is not run yet"
    return "SAFR " + _accuracy(groups, group, "safr", "SAFR")[1]
  def costs(group: str) -> bool | None:
    """Whether SAFR costs accuracy in ``group`` by either checkpoint (None: no
    interval yet)."""
    signs = [_sign(v(group, "safr", get), v(group, "baseline", get))
             for get in (ACCURACY, ACCURACY_LAST)]
    return True if -1 in signs else None if signs[0] is None else False
  sst_short = short("sst2") + _gate_short(gate)
  imdb_short = ((f"({budget}) " if budget else "") + short("imdb")
                + _gate_short(_gate_vs_vmask(groups, "imdb")))
  gxi = v("imdb", "safr", AOPC_GXI), v("imdb", "baseline", AOPC_GXI)
  if gxi[0] and gxi[1] and _sign(*gxi) is not None:
    imdb_short += "; gradient × input " + _side(
        _sign(*gxi), "explains it less faithfully than the baseline",
        "does not separate it from the baseline in faithfulness",
        "explains it more faithfully than the baseline")
  costly = [name for name, group in (("SST-2 (padding-aware)", "sst2"),
                                                    ("IMDB", "imdb")) if costs(group)]
  if costly:
    answer = f"so the answer is no: SAFR costs accuracy on {' and '.join(costly)}"
  elif costs("sst2") is False and costs("imdb") is False and gate and gate[2] == 1:
    answer = ("so the answer is yes: SAFR's gate explains SST-2 more faithfully than VMASK "
              "alone's, and SAFR's accuracy is not separated from the baseline's on SST-2 or "
              "IMDB")
  else:
    answer = "so these seeds do not answer the question yet"
  sentences.append(f"In short, on these seeds: on SST-2 (padding-aware) {sst_short}; on IMDB "
                   f"{imdb_short}; {answer}.")
  return sentences


def _short_commit(summary) -> str:
  return str(summary.get("results", {}).get("git_commit") or "unknown")[:7]


def _numerics_section(groups) -> str:
  """SST-2 padding-aware (``sst2``) against the authors' numerics
  (``sst2_reference``), each variant beside itself, with the commits."""
  lines = ["## SST-2: padding-aware against the authors' numerics, each variant beside "
           "itself\n"]
  commits = {g: collections.Counter(_short_commit(s) for s in _group_runs(groups, g))
             for g in ("sst2", "sst2_reference")}
  if not commits["sst2"] or not commits["sst2_reference"]:
    labels = ("baseline", "vmask", "safr")
    lines.append(f"Not run yet: in `sst2`, {_missing(groups, 'sst2', labels)}; in "
                 f"`sst2_reference`, {_missing(groups, 'sst2_reference', labels)}.")
    return "\n".join(lines)
  every = commits["sst2"] + commits["sst2_reference"]
  if len(every) == 1:
    commit = next(iter(every))
    lines.append(f"Both groups were trained at the same commit, {commit} (`results.git_commit` "
                 f"of all {sum(every.values())} runs), on the same data, so a difference "
                 "below is the numerics (initialisation, padding in pooling and the losses, "
                 "rows padded to 128, random batches) and the seeds, not the code.")
  else:
    lines.append(f"Not one commit: `sst2` was trained at {_by_commit(commits['sst2'])}, "
                 f"`sst2_reference` at {_by_commit(commits['sst2_reference'])} "
                 "(`results.git_commit`), so a difference below also compares code.")
  lines.append("\nPadding-aware minus the authors' numerics, Welch 95 % intervals over seeds:\n")
  metrics = [("test accuracy, best-dev checkpoint", ACCURACY, 4),
             ("last epoch's weights", ACCURACY_LAST, 4),
             ("AOPC (VMASK)", AOPC_VMASK, 3),
             ("AOPC (gradient × input)", AOPC_GXI, 3),
             ("sharing among important tokens", SHARING_AMONG, 2)]
  for label in ("baseline", "vmask", "safr"):
    parts = []
    for what, get, digits in metrics:
      a, b = (_values(groups, g, label, get) for g in ("sst2", "sst2_reference"))
      if a or b or get is ACCURACY:
        parts.append(f"{what}: " + compare(f"`sst2/{label}`", f"`sst2_reference/{label}`",
                                           a, b, digits))
    lines.append(f"- `{label}`: " + "; ".join(parts) + ".")
  return "\n".join(lines)


def _thousands(n: Any) -> str:
  return f"{n:,}" if isinstance(n, int) else "?"


def _paper_data(groups) -> str:
  """Per paper group, read from its summaries: data source, path and sizes,
  the numerics, the epoch budget, the interpretability subset, evaluation time."""
  lines = ["Read from each group's summaries (`results.dataset`, `config`, "
           "`interpretability`):\n"]
  for group in PAPER_GROUPS:
    runs = _group_runs(groups, group)
    planned = sum(PLANNED_SEEDS.get(group, 0) * len(labels)
                  for g, _, labels in PAPER_ROWS if g == group) or PLANNED_SEEDS.get(group, 0)
    if not runs:
      if group != "imdb_curve":
        lines.append(f"- `{group}`: not run yet (0 of {planned} planned runs).")
      continue
    data = collections.Counter()
    numerics = collections.Counter()
    examples = collections.Counter()
    for s in runs:
      ds = s.get("results", {}).get("dataset") or {}
      cfg = s.get("config") or {}
      folder = (cfg.get("data") or {}).get(
          {"sst_treebank": "sst_dir", "aclimdb": "imdb_dir"}.get(ds.get("source"), ""), "")
      sizes = ds.get("sizes") or {}
      data[(f"`{ds.get('source', '?')}`" + (f" on `{folder}`" if folder else "")
            + ", train / dev / test " + " / ".join(_thousands(sizes.get(k))
                                                  for k in ("train", "dev", "test"))
            + f", max_len {ds.get('max_len', '?')}")] += 1
      model, loss, dcfg = (cfg.get(k) or {} for k in ("model", "loss", "data"))
      numerics[(f"`model.init={model.get('init', '?')}`, `model.pool={model.get('pool', '?')}`, "
                f"`loss.count_padding={loss.get('count_padding', '?')}`, "
                f"`data.batching={dcfg.get('batching', '?')}`, "
                f"`data.pad_to={dcfg.get('pad_to', '?')}`")] += 1
      interp = s.get("interpretability")
      examples["not evaluated yet" if interp is None
               else f"{interp.get('examples', '?')} test examples"] += 1
    counted = lambda c: "; ".join(k if len(c) == 1 else f"{k} ({_seeds(n).replace('seed', 'run')})"
                                  for k, n in c.items())
    evaluate_min = _mean((s.get("interpretability") or {}).get("timing_s", {}).get("total")
                         for s in runs)
    lines.append(
        f"- `{group}` ({len(runs)} of {planned} planned runs): {counted(data)}; "
        f"{counted(numerics)}; {_budget(runs)}; interpretability subset {counted(examples)}"
        + (f"; `safr_jax.evaluate` took {evaluate_min / 60:.1f} min per run on average"
           if evaluate_min is not None else "") + ".")
  return "\n".join(lines)


def _dev_curves(rows) -> str:
  """Each run's dev accuracy per epoch (what the IMDB epoch cap is chosen from)."""
  lines = []
  for label in sorted(rows):
    for s in sorted(rows[label], key=lambda s: s.get("seed", 0)):
      r = s.get("results", {})
      curve = ", ".join(f"{e}: {a:.4f}" for e, a in enumerate(r.get("dev_history") or [], 1)
                        if isinstance(a, (int, float)))
      ended = ("stopped early" if r.get("stopped_early")
               else "not stopped early (ran its budget)")
      lines.append(f"- `{label}` seed {s.get('seed')} ({_budget([s])}): dev accuracy after "
                   f"each epoch {curve or '—'}; best epoch {r.get('best_epoch', '?')}; {ended} "
                   f"after {r.get('epochs_run', '?')} epochs.")
  return "Dev accuracy per epoch (`results.dev_history`):\n\n" + "\n".join(lines)


def readme_summary(results_dir: pathlib.Path | str) -> str:
  """The paper's table and the answer sentences, as Markdown for README.md
  (``python -m experiments.report`` prints it)."""
  groups = load(pathlib.Path(results_dir))
  return (_paper_table(groups) + "\n\n"
          "Mean ± sample std over seeds (n); differences of means with Welch 95 % intervals "
          "(every number, the commits and the wall time per run: `docs/RESULTS.md`).\n\n"
          + "\n".join(_paper_answer(groups)) + "\n")


README_BEGIN = "<!-- results: written by experiments/report.py (run_grid.py --report_only) -->"
README_END = "<!-- results: end -->"


def update_readme(readme: pathlib.Path, results_dir: pathlib.Path) -> bool:
  """Replaces the README's block between ``README_BEGIN`` and ``README_END``
  with ``readme_summary``; False (and nothing written) without the markers."""
  text = readme.read_text(encoding="utf-8")
  if README_BEGIN not in text or README_END not in text:
    return False
  head, rest = text.split(README_BEGIN, 1)
  _, tail = rest.split(README_END, 1)
  readme.write_text(f"{head}{README_BEGIN}\n{readme_summary(results_dir)}{README_END}{tail}",
                    encoding="utf-8")
  return True


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
  if group == "imdb_curve":
    return [_dev_curves(rows)]
  # Under an epoch cap, whether it cut a rising dev curve short.
  binding = (_cap_binding([s for runs in rows.values() for s in runs])
             if group in IMDB_GROUPS else "")
  cap = [f"\nUnder the epoch cap, {binding}.\n", _dev_curves(rows)] if binding else []
  if "safr" not in rows or "baseline" not in rows:
    return ["SAFR and the baseline have not both finished in this group; no comparison is "
            "drawn."] + cap
  out.append(_bullet("Test accuracy, best-dev checkpoint",
                     compare("safr", "baseline", v("safr", ACCURACY), v("baseline", ACCURACY))))
  if v("safr", ACCURACY_LAST) or v("baseline", ACCURACY_LAST):
    out.append(_bullet("Test accuracy, last epoch's weights (the authors' protocol)",
                       compare("safr", "baseline", v("safr", ACCURACY_LAST),
                               v("baseline", ACCURACY_LAST))))
  if "safr_ib" in rows:
    out.append(_bullet("With VMASK's information bottleneck, test accuracy, best-dev checkpoint",
                       compare("safr_ib", "baseline", v("safr_ib", ACCURACY),
                               v("baseline", ACCURACY))))
    if v("safr_ib", ACCURACY_LAST) or v("baseline", ACCURACY_LAST):
      out.append(_bullet("With the bottleneck, test accuracy, last epoch's weights",
                         compare("safr_ib", "baseline", v("safr_ib", ACCURACY_LAST),
                                 v("baseline", ACCURACY_LAST))))
    out.append(_bullet("AOPC of the VMASK explanation, with the bottleneck against without",
                       compare("safr_ib", "safr", v("safr_ib", AOPC_VMASK),
                               v("safr", AOPC_VMASK), 3)))
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
  return out + cap


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


def _commits(groups, names: Sequence[str], intro: str) -> str:
  """Which commits the runs of each group in ``names`` were trained from
  (results.git_commit), after ``intro``; "" when none of them has runs."""
  parts = []
  for group in names:
    counts = collections.Counter(_short_commit(s) for s in _group_runs(groups, group))
    listed = _by_commit(counts)
    if group in REPRODUCTION_GROUPS or group in PAPER_GROUPS:
      listed = (f"pinned commit {listed}" if len(counts) == 1
                else f"{listed} (not one pinned commit)")
    parts.append(f"`{group}`: {listed}")
  if not parts:
    return ""
  return (f"Commits the runs were trained from (`results.git_commit`). {intro}"
          + "; ".join(parts) + "." + _evaluation_commits(groups, names) + "\n")


STANDIN_COMMITS = ("The reproduction groups (`reference`, `bottleneck`, `init_padding`) are "
                   "trained from one pinned commit, so code changes made while they run do "
                   "not reach them; the older groups were trained while the code evolved, so "
                   "comparisons across groups also compare commits. ")
PAPER_COMMITS = ("Each group is trained from a pinned worktree, so code changes made while "
                 "it runs do not reach it; a group whose runs span commits says so. ")


def _evaluation_commits(groups, names: Sequence[str]) -> str:
  """Which commits computed the interpretability metrics, where that differs
  from the training commit (``safr_jax.evaluate --reevaluate`` of older runs)."""
  parts = []
  for group in names:
    counts = collections.Counter()
    for s in _group_runs(groups, group):
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
          "since the training commit are filled in): " + "; ".join(parts) + "; the other "
          "runs were evaluated right after training, by the checkout that trained them.")


def _plots(group: str, report: pathlib.Path,
           compare_dir: pathlib.Path | None) -> pathlib.Path | None:
  """Where ``group``'s ``safr_jax.compare`` table and plot are: ``compare_dir``
  (drawn by this call), else the committed ones beside the report
  (``docs/results/<group>``, e.g. when run_grid draws none)."""
  for folder in (compare_dir, report.parent / "results"):
    if folder is not None and (folder / group / "comparison.png").exists():
      return folder / group
  return None


def _group_section(group: str, groups, report: pathlib.Path,
                   compare_dir: pathlib.Path | None) -> list[str]:
  """A group's heading, its two tables, what they show and its plot's link."""
  rows = groups[group]
  title = GROUP_TITLES.get(group, group)
  if group in IMDB_GROUPS:  # the epoch budget goes beside every IMDB number
    title += f"; {_budget(_group_runs(groups, group))}"
  lines = [f"\n## {title}\n"]
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
  folder = _plots(group, report, compare_dir)
  if folder is not None:
    rel = os.path.relpath(folder, report.parent)
    lines.append("")
    lines.append(f"Every metric of every run: [`{rel}/comparison.md`]({rel}/comparison.md); "
                 "test accuracy against the faithfulness of each run's own explanation:\n\n"
                 f"![accuracy vs faithfulness, {group}]({rel}/comparison.png)")
  return lines


def write(results_dir: pathlib.Path, report: pathlib.Path, *,
          compare_dir: pathlib.Path | None = None) -> None:
  """Writes ``report`` from the summaries in ``results_dir``: the paper's
  benchmarks first, then the stand-ins under their own heading. Links each
  group's ``safr_jax.compare`` plot and full table found in
  ``compare_dir/<group>`` or beside the report (``results/<group>``)."""
  groups = load(results_dir)
  order = _group_order(groups)
  paper = [g for g in order if g in PAPER_GROUPS]
  standin = [g for g in order if g not in PAPER_GROUPS]
  lines = [TITLE, PAPER_QUESTION, "\n".join(_paper_answer(groups)), "",
           "## The paper's benchmarks in one table\n",
           "Mean ± sample std over seeds (n); IMDB's epoch budget beside its name. The "
           "columns are defined below; every number of every group follows in its own "
           "section.\n", _paper_table(groups), "", _numerics_section(groups), "", HEADER,
           _paper_data(groups), ""]
  commits = _commits(groups, paper, PAPER_COMMITS)
  if commits:
    lines.append(commits)
  for group in PAPER_GROUPS:
    if group in groups:
      lines += _group_section(group, groups, report, compare_dir)
    elif group != "imdb_curve":
      lines += [f"\n## {GROUP_TITLES[group]}\n", "Not run yet."]
  if standin:
    lines += ["", STANDIN_TITLE, STANDIN_QUESTION, "\n".join(_answer(groups)), "",
              STANDIN_HEADER]
    commits = _commits(groups, standin, STANDIN_COMMITS)
    if commits:
      lines.append(commits)
    for group in standin:
      lines += _group_section(group, groups, report, compare_dir)
  note = _rerun_note(groups)
  if note:
    lines += ["", "## Reruns", "", note]
  report.parent.mkdir(parents=True, exist_ok=True)
  report.write_text("\n".join(lines) + "\n")


def answer_section(text: str) -> str:
  """The stand-in "Does this reproduce SAFR?" section of a written report (for tests)."""
  match = re.search(r"## Does this reproduce SAFR\?[^\n]*\n\n(.*?)\n\n", text, re.S)
  return match.group(1) if match else ""


def paper_answer_section(text: str) -> str:
  """The answer on the paper's benchmarks in a written report (for tests)."""
  match = re.search(re.escape(PAPER_QUESTION) + r"\n(.*?)\n\n", text, re.S)
  return match.group(1) if match else ""


if __name__ == "__main__":
  # python -m experiments.report [RESULTS_DIR]: the README's results, as Markdown.
  import sys  # pylint: disable=g-import-not-at-top
  print(readme_summary(sys.argv[1] if len(sys.argv) > 1 else
                       pathlib.Path(__file__).resolve().parent / "results"), end="")
