"""``compare``: runs side by side, as a Markdown table and the frontier figure
(test accuracy against the faithfulness of the gate's explanation).

Runs that share their data (source and split sizes) and configuration
(``config.name``, ``config.variant``, λ_imp, λ_inter — typically the same
command with different seeds) form a group; runs on different data never share
one. Each number is the group's mean ± sample std (n − 1) over its runs, with
its n where fewer runs have it. The headline compares like with like: gradient
× input for every run, the VMASK gate's explanation in its own column. Every
numeric metric of ``results.json`` (test split of the best checkpoint, training
time) and ``interpretability.json`` is in the full table.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
from typing import Any, Iterable, Sequence

import numpy as np

from safr_jax import provenance
from safr_jax.interpret import attribution, plots
from safr_jax.errors import InterpretError

__all__ = ["compare_runs", "load_metrics", "flatten", "format_mean_std", "interval",
           "frontier", "Compared"]

# results.json entries that are metrics (the rest is provenance).
_RESULT_KEYS = ("test", "best_dev_accuracy", "best_epoch", "epochs_run",
                "train_seconds", "train_examples_per_s", "wall_time_s")
# interpretability.json entries that are not metrics.
_NOT_METRICS = ("run", "settings", "timing_s", "notes", "split", "provenance")
GATE = "vmask"          # the explanation a SAFR/VMASK model trains
POST_HOC = ("gradient_x_input", "occlusion", "attention")


@dataclasses.dataclass
class RunMetrics:
  workdir: pathlib.Path
  group: str                  # config and data: runs of one group are comparable
  data: str                   # e.g. "sst_treebank 6,244/825/1,743"
  seed: Any
  metrics: dict[str, float]   # flattened: "results.test.accuracy", ...
  has_vmask: bool
  evaluated: bool


@dataclasses.dataclass
class Compared:
  markdown: str
  table: pathlib.Path
  plot: pathlib.Path
  groups: dict[str, list[RunMetrics]]
  # One line per path given but not compared (a duplicate, not a run).
  notes: list[str] = dataclasses.field(default_factory=list)


def flatten(tree: Any, prefix: str = "") -> dict[str, float]:
  """Numeric leaves of nested dicts as ``{"a.b.c": value}`` (lists, strings,
  None and booleans left out)."""
  out = {}
  if isinstance(tree, dict):
    for k, v in tree.items():
      out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    if math.isfinite(tree):
      out[prefix] = float(tree)
  return out


def _read_json(path: pathlib.Path) -> dict:
  try:
    return json.loads(path.read_bytes().decode("utf-8"))
  except UnicodeDecodeError as e:
    raise InterpretError(f"{path} is not valid UTF-8 (byte {e.start}): the file is "
                         "damaged") from None
  except json.JSONDecodeError as e:
    raise InterpretError(f"{path} is not valid JSON: {e}") from None


def _runs_to_compare(workdirs: Sequence[str | pathlib.Path]
                     ) -> tuple[list[pathlib.Path], list[str]]:
  """The distinct finished runs among ``workdirs`` (in order) and one note per
  path left out: the same folder given twice (it would count as two seeds),
  or a path that holds no finished run (e.g. a log file a glob matched)."""
  kept, notes, seen = [], [], {}
  for w in map(pathlib.Path, workdirs):
    real = w.resolve()
    if real in seen:
      notes.append(f"{w} is the same run as {seen[real]}: counted once")
    elif not w.exists():
      notes.append(f"{w} does not exist: skipped")
    elif not w.is_dir():
      notes.append(f"{w} is a file, not a run folder: skipped")
    elif not (w / "results.json").exists():
      notes.append(f"{w} has no results.json (not a run, or its training has not "
                   "finished): skipped")
    else:
      seen[real] = w
      kept.append(w)
  return kept, notes


def load_metrics(workdir: str | pathlib.Path) -> RunMetrics:
  """Reads a run's results.json (required) and interpretability.json (if any)."""
  workdir = pathlib.Path(workdir)
  results_path = workdir / "results.json"
  if not results_path.exists():
    raise InterpretError(f"{workdir} has no results.json: not a finished training "
                         "run (train it with `python train.py --config=... "
                            f"--workdir={workdir}`)")
  results = _read_json(results_path)
  config = results.get("config", {})
  loss = config.get("loss", {})
  lam = lambda k: f"{loss[k]:g}" if isinstance(loss.get(k), (int, float)) else "?"
  dataset = results.get("dataset") or {}
  sizes = dataset.get("sizes") or {}
  data = " ".join([str(dataset.get("source") or config.get("data", {}).get("source", "?")),
                   "/".join(f"{sizes[k]:,}" for k in ("train", "dev", "test") if k in sizes)])
  group = (f"{config.get('name', '?')}:{config.get('variant', '?')} "
           f"λ_imp={lam('importance')} λ_inter={lam('interaction')} on {data.strip()}")
  metrics = {f"results.{k}": v for k, v in
             flatten({k: results[k] for k in _RESULT_KEYS if k in results}).items()}
  interp_path = workdir / "interpretability.json"
  evaluated = interp_path.exists()
  if evaluated:
    interp = _read_json(interp_path)
    metrics.update({f"interpretability.{k}": v for k, v in flatten(
        {k: v for k, v in interp.items() if k not in _NOT_METRICS}).items()})
  return RunMetrics(workdir=workdir, group=group, data=data.strip(), seed=config.get("seed"),
                    metrics=metrics,
                    has_vmask=bool(config.get("model", {}).get("use_vmask", True)),
                    evaluated=evaluated)


def _finite(values: Iterable[float | None]) -> np.ndarray:
  v = np.asarray([x for x in values if x is not None], np.float64)
  return v[np.isfinite(v)]


def _stats(values: Iterable[float | None]) -> tuple[float | None, float | None]:
  """Mean and sample std (n − 1) of the finite values; None where undefined."""
  v = _finite(values)
  if not v.size:
    return None, None
  return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def format_mean_std(values: Iterable[float | None], digits: int = 4, *,
                    std_digits: int | None = None, notation: str = "f",
                    missing: str = "—") -> str:
  """``"mean ± std"`` of the finite values (None, NaN and ±inf left out), std
  the sample standard deviation (n − 1); only ``"mean"`` for one value;
  ``missing`` for none.

  Args:
    values: the numbers, e.g. one metric over the seeds of a config.
    digits: digits of the mean: decimals for ``notation="f"``, significant
      digits for ``"g"``.
    std_digits: the same for the std (default ``digits``).
    notation: ``"f"`` (fixed point) or ``"g"`` (significant digits).
    missing: what stands for no value.

  ``format_mean_std([0.8, 0.9])`` → ``"0.8500 ± 0.0707"``;
  ``format_mean_std([0.8, 0.9], 4, std_digits=2, notation="g")`` →
  ``"0.85 ± 0.071"``.
  """
  if notation not in ("f", "g"):
    raise ValueError(f"notation must be 'f' or 'g', got {notation!r}")
  mean, std = _stats(values)
  if mean is None:
    return missing
  text = f"{mean:.{digits}{notation}}"
  if std is None:
    return text
  return f"{text} ± {std:.{digits if std_digits is None else std_digits}{notation}}"


def interval(values: Iterable[float | None], level: float = 0.95
             ) -> tuple[float | None, float | None]:
  """Mean and the half-width of its Student-t ``level`` interval over the
  finite values (None with fewer than two)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  v = _finite(values)
  if not v.size:
    return None, None
  if v.size < 2:
    return float(v.mean()), None
  half = stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return float(v.mean()), float(half)


def _faith_key(method: str, metric: str) -> str:
  """``metric`` "aopc@20%" is AOPC to a depth of 20 % of each text."""
  if metric.startswith("aopc@"):
    return f"interpretability.faithfulness.{method}.aopc_by_depth.{metric[5:]}"
  return f"interpretability.faithfulness.{method}.{metric}"


def _values(runs: Sequence[RunMetrics], key: str) -> list[float]:
  return [r.metrics[key] for r in runs if key in r.metrics]


def _cell(runs: Sequence[RunMetrics], key: str) -> str:
  """mean ± std, with its n where fewer than all of the group's runs have it."""
  values = _values(runs, key)
  n = "" if len(values) in (0, len(runs)) else f" (n={len(values)})"
  return format_mean_std(values) + n


_SUMMARY = (
    ("test accuracy", "results.test.accuracy"),
    ("gate AOPC@20% ↑", _faith_key(GATE, "aopc@20%")),
    ("grad×input AOPC@20% ↑", _faith_key("gradient_x_input", "aopc@20%")),
    ("grad×input comprehensiveness ↑", _faith_key("gradient_x_input", "comprehensiveness")),
    ("L_Imp", "results.test.importance"),
    ("L_Inter", "results.test.interaction"),
    ("planted R-precision (gate) ↑",
     "interpretability.planted.precision_recall.vmask.precision.@|P|"),
)


def frontier(groups: dict[str, list[RunMetrics]], *, method: str = GATE,
             metric: str = "aopc@20%") -> tuple[list[dict], list[dict]]:
  """The frontier figure's points and reference lines: each group whose runs
  have ``method``'s explanation is a point (test accuracy, its faithfulness;
  95 % intervals over the runs both ways); each other group (a plain
  Transformer) is a reference: its accuracy and its best post-hoc
  explanation's faithfulness."""
  points, references = [], []
  for label, runs in groups.items():
    x, xerr = interval(_values(runs, "results.test.accuracy"))
    y, yerr = interval(_values(runs, _faith_key(method, metric)))
    if y is not None:
      points.append({"label": label, "x": x, "y": y, "xerr": xerr, "yerr": yerr})
      continue
    best = max(((interval(_values(runs, _faith_key(m, metric)))[0], m) for m in POST_HOC),
               key=lambda t: -math.inf if t[0] is None else t[0])
    references.append({"label": label, "accuracy": x, "faithfulness": best[0],
                       "method": best[1]})
  return points, references


def compare_runs(workdirs: Sequence[str | pathlib.Path], out: str | pathlib.Path, *,
                 method: str = GATE, metric: str = "aopc@20%") -> Compared:
  """Writes ``out/comparison.md`` and ``out/comparison.png``.

  Args:
    workdirs: run folders (each with results.json; interpretability.json from
      ``safr_jax.evaluate`` adds the interpretability metrics).
    out: output folder.
    method: the explanation on the figure's y axis (default the VMASK gate's);
      groups without it are drawn as reference lines (``frontier``).
    metric: its faithfulness metric: aopc@10%, aopc@20%, aopc@50%,
      comprehensiveness, sufficiency, aopc, aopc_minus_random, aopc_over_random.
  """
  if not workdirs:
    raise InterpretError("give at least one run folder")
  if method not in attribution.METHODS:
    raise InterpretError(f"unknown explanation method {method!r}; one of "
                         f"{', '.join(attribution.METHODS)}")
  kept, notes = _runs_to_compare(workdirs)
  if not kept:
    raise InterpretError("no run to compare: " + "; ".join(notes))
  loaded = [load_metrics(w) for w in kept]
  groups: dict[str, list[RunMetrics]] = {}
  for r in loaded:
    groups.setdefault(r.group, []).append(r)
  names = list(groups)
  if len({r.data for r in loaded}) > 1:
    notes.append("these runs were trained on different data ("
                 + "; ".join(sorted({r.data for r in loaded}))
                 + "): each group holds one dataset's runs only")

  lines = ["# Run comparison", "",
           "Mean ± sample std over the runs of a group (runs sharing data, config "
           "name, variant and λs; typically seeds), with (n=k) where fewer runs have "
           "a number. Test split of each run's best checkpoint. ↑: higher is better "
           "(docs/METRICS.md). AOPC@20%: the area over the deletion curve to 20 % of "
           "each text; the gate's explanation exists only for runs with VMASK, "
           "gradient × input for every run.", ""]
  lines.append("| group | data | runs | seeds | examples scored | "
               + " | ".join(h for h, _ in _SUMMARY) + " |")
  lines.append("|---|---|---|---|---|" + "---|" * len(_SUMMARY))
  for g in names:
    rs = groups[g]
    seeds = ", ".join(str(r.seed) for r in rs)
    cells = [_cell(rs, key) for _, key in _SUMMARY]
    # The interpretability columns' examples per run (evaluate's --max_examples).
    scored = ", ".join(str(int(v)) for v in sorted(set(
        _values(rs, "interpretability.examples")))) or "—"
    lines.append(f"| {g.split(' on ')[0]} | {rs[0].data} | {len(rs)} | {seeds} | {scored} | "
                 + " | ".join(cells) + " |")
  missing = [str(r.workdir) for r in loaded if not r.evaluated]
  if missing:
    lines += ["", "Not evaluated (no interpretability.json; run `python -m "
              "safr_jax.evaluate --workdir=RUN`): " + ", ".join(missing)]
  lines += ["", "## Every metric", "",
            "| metric | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names)]
  keys = sorted({k for r in loaded for k in r.metrics})
  for k in keys:
    lines.append(f"| {k} | " + " | ".join(_cell(groups[g], k) for g in names) + " |")
  lines += ["", "Runs: " + ", ".join(f"{r.workdir} ({r.group}, seed {r.seed})"
                                      for r in loaded), ""]
  markdown = "\n".join(lines)

  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  table = provenance.write_file(out / "comparison.md", markdown)
  points, references = frontier(groups, method=method, metric=metric)
  if len({r.data for r in loaded}) == 1:  # one dataset: say it once, in the title
    for p in points + references:
      p["label"] = p["label"].split(" on ")[0]
  fig = plots.comparison_figure(
      points, references=references, xlabel="test accuracy",
      ylabel=f"{metric} of the {'gate' if method == GATE else method}'s explanation",
      title=f"accuracy vs faithfulness on {' / '.join(sorted({r.data for r in loaded}))}\n"
            "mean and 95 % interval over seeds" + ("; lines: models without it (accuracy, "
                                                    "best post-hoc)" if references else ""))
  plot = provenance.write_file(out / "comparison.png", functools.partial(plots.save, fig))
  return Compared(markdown=markdown, table=table, plot=plot, groups=groups, notes=notes)
