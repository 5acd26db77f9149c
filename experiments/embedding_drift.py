r"""How far training moves the token embedding from its initialisation.

For each run (a ``train.py`` workdir), the best checkpoint's embedding E and
the run's own initial one E₀ (rebuilt from its config and seed):
‖E − E₀‖ / ‖E₀‖ (Frobenius), the same for every other parameter together, and
the mean row norm of E₀. Under PyTorch's N(0, 1) embedding (row norm √d) Adam's
steps, of similar absolute size under either initialisation, are a far smaller
share of each token vector than under Flax's (row norm 1).

  python experiments/embedding_drift.py RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from flax import traverse_util
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from experiments import report  # pylint: disable=g-import-not-at-top
from safr_jax import runs, steps  # pylint: disable=g-import-not-at-top


def drift(workdir: str) -> list:
  """``[init, E₀ row norm, embedding drift, other parameters' drift]`` of one run."""
  run = runs.load_run(workdir)
  start = steps.create_train_state(run.model, optax.identity(), seed=run.config.seed,
                                   max_len=run.config.data.max_len).params
  flat0, flat1 = (traverse_util.flatten_dict(p, sep="/") for p in (start, run.params))
  key = "embedding/embedding"
  rel = lambda keys: (np.linalg.norm(np.concatenate([np.ravel(flat1[k] - flat0[k]) for k in keys]))
                      / np.linalg.norm(np.concatenate([np.ravel(flat0[k]) for k in keys])))
  return [run.config.model.init, f"{np.linalg.norm(flat0[key], axis=1).mean():.2f}",
          f"{rel([key]):.4f}", f"{rel([k for k in flat0 if k != key]):.4f}"]


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs", nargs="+")
  args = parser.parse_args(argv)
  print(report._table(  # pylint: disable=protected-access
      ["run", "model.init", "E₀ row norm", "‖E − E₀‖/‖E₀‖", "other parameters"],
      [[w] + drift(w) for w in args.runs]))


if __name__ == "__main__":
  main()
