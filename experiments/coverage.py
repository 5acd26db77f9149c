r"""Do the effects table's intervals hold the true effect 95 % of the time?

For each cell of the README's effects table whose runs all have per-example
scores (and ≥ 2 runs an arm), fit the two-way model of that cell's data,
x[r, e] = μ + s_r + v_e + ε[r, e] (seed effect s, the contrast's example
effect v shared by the arms, residual ε; moments, clipped at 0), draw `--sims`
data sets from it (normal; the same runs and examples; true Δ = 0) and count
how often each interval covers 0:

* two-level t: ``stats.paired_arrays``, what the tables print;
* bootstrap: percentile, runs resampled within each arm and examples resampled
  once for both arms (the hierarchical bootstrap);
* seeds only: Welch over the runs' means (``stats.seeds_only``).

  python experiments/coverage.py [--results_dir=experiments/results] [--sims=300]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from experiments import report, stats  # pylint: disable=g-import-not-at-top


def fit(x: list[np.ndarray]) -> dict[str, np.ndarray | float]:
  """Variance components of arms ``x`` ([runs, examples] each, shared examples):
  ``seed`` and ``noise`` per arm, ``example`` of the contrast (A − B, or A)."""
  noise = [stats.residual_variance(xi) for xi in x]
  seed = [max(xi.mean(1).var(ddof=1) - v / xi.shape[1], 0.0) for xi, v in zip(x, noise)]
  d = x[0].mean(0) - (x[1].mean(0) if len(x) > 1 else 0.0)
  example = max(d.var(ddof=1) - sum(v / len(xi) for v, xi in zip(noise, x)), 0.0)
  return {"seed": np.asarray(seed), "noise": np.asarray(noise), "example": example}


def draw(shape: list[tuple[int, int]], c, rng) -> list[np.ndarray]:
  """One data set from components ``c`` (true Δ = 0)."""
  v = rng.normal(0, np.sqrt(c["example"]), shape[0][1])
  return [rng.normal(0, np.sqrt(s), (n, 1)) + rng.normal(0, np.sqrt(e), (n, k))
          + (v if i == 0 else 0)
          for i, ((n, k), s, e) in enumerate(zip(shape, c["seed"], c["noise"]))]


def bootstrap(x: list[np.ndarray], rng, resamples: int = 999) -> tuple[float, float]:
  """Hierarchical percentile interval: examples resampled once for both arms,
  runs within each arm."""
  k = x[0].shape[1]
  draws = rng.integers(k, size=(resamples, k)) + k * np.arange(resamples)[:, None]
  weights = np.bincount(draws.ravel(), minlength=resamples * k).reshape(resamples, k).T / k
  deltas = 0.0
  for i, xi in enumerate(x):
    means = xi @ weights  # [runs, B]
    pick = rng.integers(len(xi), size=(len(xi), resamples))
    deltas = deltas + (1 if i == 0 else -1) * np.take_along_axis(means, pick, 0).mean(0)
  return tuple(np.quantile(deltas, [0.025, 0.975]))


def coverage(c, shape: list[tuple[int, int]], sims: int, seed: int = 0) -> dict[str, float]:
  """Share of ``sims`` data sets drawn from components ``c`` (``fit``'s) with
  arms of ``shape`` whose interval holds the true Δ, per interval."""
  rng = np.random.default_rng(seed)
  hits = {"two-level t": 0, "bootstrap": 0, "seeds only": 0}
  for _ in range(sims):
    y = draw(shape, c, rng)
    e = stats.paired_arrays(*y)
    hits["two-level t"] += e.low <= 0 <= e.high
    low, high = bootstrap(y, rng)
    hits["bootstrap"] += low <= 0 <= high
    e = stats.seeds_only(*[yi.mean(1) for yi in y])
    hits["seeds only"] += e.low <= 0 <= e.high
  return {k: float(v) / sims for k, v in hits.items()}


def table(results_dir: pathlib.Path, sims: int) -> str:
  groups = stats.load(results_dir)
  rows = []
  for row, group, a, b, ma, mb, _ in report.contrasts(groups):
    x = stats.per_example(a, b, ma, mb)
    if x is None or min(len(xi) for xi in x) < 2:
      continue
    seed_share = sum(xi.mean(1).var(ddof=1) / len(xi) for xi in x) / stats.paired_arrays(*x).se ** 2
    cov = coverage(fit(x), [xi.shape for xi in x], sims)
    rows.append([row, group, "/".join(str(len(xi)) for xi in x), x[0].shape[1],
                 f"{seed_share:.2f}"] + [f"{100 * v:.1f}" for v in cov.values()])
  return report._table(  # pylint: disable=protected-access
      ["effect", "group", "n", "examples", "seed share of SE²",
       "coverage, two-level t (%)", "bootstrap (%)", "seeds only (%)"], rows)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--results_dir", type=pathlib.Path,
                      default=pathlib.Path(__file__).parent / "results")
  parser.add_argument("--sims", type=int, default=300)
  args = parser.parse_args(argv)
  print(table(args.results_dir, args.sims))


if __name__ == "__main__":
  main()
