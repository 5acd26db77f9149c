r"""Padded batch widths of random vs length-bucketed training batches (no model).

    python benchmarks/batch_widths.py
    python benchmarks/batch_widths.py --batch_size=64 --bucket_window=25 --epochs=1

For the builtin train splits (``rt_polarity`` with the SST-2 config's max_len
128, ``imdb_builtin`` with the IMDB config's 256), ``pad_to="batch"``, it walks
``--epochs`` epochs of ``data.train_iterator`` under ``batching="random"`` and
``"bucketed"`` and prints per epoch: the mean padded width, padded tokens
(batch rows × width, what the model computes on), real tokens, the padding
share, and the distinct widths (one compiled program each). Pure numpy; it
reads the data only.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safr_jax import configs, data  # pylint: disable=wrong-import-position


def measure(split, batch_size: int, batching: str, bucket_window: int,
            epochs: int, seed: int) -> dict:
  it = data.train_iterator(split, batch_size=batch_size, seed=seed,
                           pad_to="batch", batching=batching,
                           bucket_window=bucket_window)
  steps = data.steps_per_epoch(split, batch_size)
  widths, real = [], 0
  for _ in range(epochs * steps):
    ids = next(it)["ids"]
    widths.append(ids.shape[1])
    real += int((ids != 0).sum())
  widths = np.asarray(widths)
  padded = int(widths.sum()) * batch_size
  return {"mean_width": float(widths.mean()),
          "padded_tokens": padded / epochs, "real_tokens": real / epochs,
          "padding": 1 - real / padded, "widths": len(set(widths.tolist()))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--bucket_window", type=int, default=100)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  print(f"batch {args.batch_size}, pad_to=batch, bucket_window "
        f"{args.bucket_window}, mean over {args.epochs} epoch(s), seed "
        f"{args.seed}; tokens are per epoch")
  print(f"{'data':<14}{'max_len':>8}{'batching':>10}{'mean width':>12}"
        f"{'padded tok':>12}{'real tok':>11}{'padding':>9}{'widths':>8}")
  for name, source in (("sst2", "rt_polarity"), ("imdb", "imdb_builtin")):
    cfg = configs.get_config(name)
    cfg.data.source = source
    split = data.load_dataset(cfg.data).splits["train"]
    base = None
    for batching in ("random", "bucketed"):
      m = measure(split, args.batch_size, batching, args.bucket_window,
                  args.epochs, args.seed)
      base = base or m
      ratio = m["padded_tokens"] / base["padded_tokens"]
      print(f"{source:<14}{cfg.data.max_len:>8}{batching:>10}"
            f"{m['mean_width']:>12.1f}{m['padded_tokens']:>12,.0f}"
            f"{m['real_tokens']:>11,.0f}{m['padding']:>9.1%}"
            f"{m['widths']:>8}  (x{ratio:.2f} padded tokens)")


if __name__ == "__main__":
  main()
