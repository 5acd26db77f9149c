r"""Memory of one SAFR training step on long sequences (CPU).

    python benchmarks/memory_long_seq.py                       # L=2048, batch 8: auto, none
    python benchmarks/memory_long_seq.py --length=1024 --query_block_sizes=none,128,256
    python benchmarks/memory_long_seq.py --analysis_only       # compile, no step

For each ``loss.query_block_size`` it starts a fresh process that builds the
authors' IMDB-sized model (d_model 256, 8 heads, d_ff 1024, VMASK 1024, the
``imdb_builtin`` vocabulary size), compiles ``steps.train_step`` exactly as
the trainer jits it, runs ONE step on a batch of random full-length rows (no
padding: the worst case) and reports

* peak RSS of that process (``ru_maxrss``: everything -- Python, jax,
  parameters, Adam state, XLA's buffers), and the RSS before the step;
* XLA's compiled memory analysis (``temp``: every intermediate buffer of the
  step at its peak; ``arguments``/``outputs``: state and batch);
* compile and step seconds.

The attention weights alone are ``B·H·L²·4`` bytes (1 GiB at L=2048, B=8, H=8).
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
GiB = 2**30
IMDB_BUILTIN_VOCAB = 95_588  # len(vocab) of imdb_builtin at min_freq=2


def _child(args) -> dict:
  sys.path.insert(0, str(ROOT))
  from safr_jax import runtime  # pylint: disable=g-import-not-at-top
  # train.py's malloc settings keep freed memory in the process: measure with
  # them, as a user's run has them (--nomalloc_tuning: glibc's defaults).
  malloc_tuned = not args.nomalloc_tuning and runtime.tune_malloc()
  from safr_jax import configs  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safr_jax import steps  # pylint: disable=g-import-not-at-top

  config = configs.get_config("imdb", "safr")
  config.data.max_len = args.length
  config.model.dtype = args.dtype
  # "auto" (the default config's value) is resolved as the trainer does.
  qb = steps.resolve_query_block(args.query_block_size, batch=args.batch,
                                 heads=config.model.num_heads, length=args.length)
  model = steps.build_model(config.model, vocab_size=args.vocab_size, num_classes=2)
  tx = steps.make_optimizer(config.train, 1000)
  weights = steps.loss_weights(config)
  step = jax.jit(lambda s, b: steps.train_step(
      s, b, model=model, tx=tx, weights=weights, count_padding=False,
      query_block_size=qb), donate_argnums=0)
  rng = np.random.default_rng(0)
  batch = {"ids": jnp.asarray(rng.integers(2, args.vocab_size, (args.batch, args.length)),
                              jnp.int32),
           "labels": jnp.asarray(rng.integers(0, 2, (args.batch,)), jnp.int32)}
  state = jax.jit(lambda: steps.create_train_state(model, tx, seed=0, max_len=8))()
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  analysis = compiled.memory_analysis()
  out = {"length": args.length, "batch": args.batch,
         "query_block_size": args.query_block_size, "query_block_rows": qb,
         "dtype": args.dtype, "malloc_tuning": malloc_tuned, "compile_s": round(compile_s, 1),
         "xla_temp_gib": analysis.temp_size_in_bytes / GiB,
         "xla_arguments_gib": analysis.argument_size_in_bytes / GiB,
         "xla_outputs_gib": analysis.output_size_in_bytes / GiB,
         "xla_aliased_gib": analysis.alias_size_in_bytes / GiB,
         "attention_weights_gib": args.batch * 8 * args.length**2 * 4 / GiB,
         "rss_before_step_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
  if not args.analysis_only:
    start = time.perf_counter()
    state, sums = compiled(state, batch)
    jax.block_until_ready(sums)
    out["step_s"] = round(time.perf_counter() - start, 1)
    out["loss"] = float(sums["loss_sum"] / sums["count"])
    out["interaction"] = float(sums["interaction_sum"] / sums["count"])
  out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  return out


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--length", type=int, default=2048)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--query_block_sizes", default="auto,none",
                      help="comma-separated loss.query_block_size values ('auto' = the "
                      "default config's, 'none' = all at once)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--vocab_size", type=int, default=IMDB_BUILTIN_VOCAB)
  parser.add_argument("--analysis_only", action="store_true",
                      help="compile and report XLA's memory analysis, run no step")
  parser.add_argument("--nomalloc_tuning", action="store_true",
                      help="glibc's default malloc settings instead of train.py's")
  parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--query_block_size", default="none", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(_child(args)))
    return 0

  rows = []
  for qb in args.query_block_sizes.split(","):
    cmd = [sys.executable, __file__, "--child", f"--query_block_size={qb}",
           f"--length={args.length}", f"--batch={args.batch}", f"--dtype={args.dtype}",
           f"--vocab_size={args.vocab_size}"] + (["--analysis_only"] if args.analysis_only else [])
    cmd += ["--nomalloc_tuning"] if args.nomalloc_tuning else []
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
      print(f"query_block_size={qb}: failed (exit {proc.returncode}; killed for memory?)\n"
            + proc.stderr[-2000:])
      rows.append({"query_block_size": qb, "failed": proc.returncode})
      continue
    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    row = rows[-1]
    print(f"L={row['length']} B={row['batch']} {row['dtype']} malloc tuning "
          f"{'on' if row['malloc_tuning'] else 'off'}, query_block_size="
          f"{row['query_block_size']} ({row['query_block_rows'] or 'all'} rows): "
          f"peak RSS {row['peak_rss_gib']:.2f} GiB "
          f"(before the step {row['rss_before_step_gib']:.2f}) | XLA temp "
          f"{row['xla_temp_gib']:.2f} GiB, args {row['xla_arguments_gib']:.2f} GiB | "
          f"attention weights {row['attention_weights_gib']:.2f} GiB | compile "
          f"{row['compile_s']} s" + (f", step {row['step_s']} s" if "step_s" in row else ""),
          flush=True)
  print(json.dumps(rows))
  return 0 if all("failed" not in r for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
