r"""Training and evaluation speed of a config: compile time, examples/s, memory, FLOPs.

    python benchmarks/throughput.py --config=configs/sst2.py              # SAFR, bucketed
    python benchmarks/throughput.py --config=configs/sst2.py:reference    # padded to 128
    python benchmarks/throughput.py --config=configs/imdb.py --steps=10 --repeats=3
    python benchmarks/throughput.py --config=configs/sst2.py --batch_size=64 \
        --config.model.dtype=bfloat16 --json=/tmp/bf16.json

Uses the trainer's own pieces (``trainer.make_trainer``: the same jitted, donated,
sharded ``train_step``/``eval_step``, the same data iterator), on the config's
real data (``auto`` is replaced by its builtin fallback, ``rt_polarity`` /
``imdb_builtin``, so nothing waits for the network).

* compile: trace + lower and XLA compile time of the train step for the first
  batch width, and for all widths the timed batches need (``pad_to="batch"``
  compiles one program per width, a multiple of 8);
* train examples/s: ``--repeats`` passes over the same ``--steps`` real batches
  (host batch → ``shard_batch`` → ``train_step``), after one warm-up pass that
  compiles every width; the median pass counts, min and max are printed too;
* eval examples/s: the whole dev split through ``eval_step``, median of
  ``--eval_repeats`` passes;
* peak memory: the process's peak RSS, and XLA's memory analysis of the widest
  train step;
* FLOPs per step: counted analytically (matmul FLOPs, 2·M·N·K, backward = 2×
  forward; see ``analytic_flops``) and as XLA's ``cost_analysis()`` (which
  also counts elementwise ops); achieved FLOP/s = FLOPs of a pass / its time;
* cores used: process CPU time / wall time during the timed passes (2 = both
  cores of a 2-core machine; less when other processes compete).

Prints a summary and one JSON line (``--json`` also writes it to a file).
Numbers only; nothing is asserted.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import platform
import resource
import statistics
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file[:variant], e.g. configs/sst2.py:reference.",
    lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch (default: the config's).")
_STEPS = flags.DEFINE_integer("steps", 30, "Training batches per timed pass.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed training passes (median reported).")
_EVAL_REPEATS = flags.DEFINE_integer("eval_repeats", 3, "Timed passes over the dev split.")
_JSON = flags.DEFINE_string("json", None, "Also write the JSON result here.")
flags.mark_flags_as_required(["config"])

GiB = 2**30


def analytic_flops(model_config, *, batch: int, width: int, train: bool) -> dict[str, float]:
  """Matmul FLOPs (2·M·N·K) of one step on a ``[batch, width]`` batch.

  Forward, per example of L = ``width`` tokens (d = d_model, H heads, F = d_ff,
  V = VMASK hidden width, per layer where it says so):

  * VMASK: ``2·L·d·V + 2·L·V·2``
  * per layer: Q, K, V, output projections ``4 · 2·L·d²``; scores and context
    ``2 · 2·L²·d``; FFN ``2 · 2·L·d·F``
  * L_Imp interference ``2·L²·d``; L_Inter ``A Aᵀ`` per layer ``2·H·L³``
  * classifier ``2·d·classes`` (negligible)

  A training step is 3× the forward (each matmul's backward is two matmuls of
  the same size); softmax, layer norm, dropout, Adam and other elementwise work
  is not counted.
  """
  d, h, f = model_config.d_model, model_config.num_heads, model_config.d_ff
  v, n_layers, length = model_config.vmask_hidden_dim, model_config.num_layers, width
  parts = {
      "vmask": (2 * length * d * v + 4 * length * v) if model_config.use_vmask else 0,
      "projections": n_layers * 8 * length * d * d,
      "attention": n_layers * 4 * length * length * d,
      "ffn": n_layers * 4 * length * d * f,
      "importance_loss": 2 * length * length * d,
      "interaction_loss": n_layers * 2 * h * length**3,
      "classifier": 2 * d * 2,
  }
  factor = 3 if train else 1
  out = {k: float(factor * batch * x) for k, x in parts.items()}
  out["total"] = float(sum(out.values()))
  return out


def _xla_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost["flops"]) if cost and "flops" in cost else None


def _median_rate(times: list[float], examples: float) -> dict[str, float]:
  med = statistics.median(times)
  return {"examples_per_s": examples / med, "min_examples_per_s": examples / max(times),
          "max_examples_per_s": examples / min(times), "median_pass_s": med}


def run(config) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safr_jax import configs, data, sharding, trainer  # pylint: disable=g-import-not-at-top

  if config.data.source == "auto":
    config.data.source = config.data.auto_fallback  # real text, no network probe
  if _BATCH.value:
    config.train.batch_size = _BATCH.value
  configs.validate_config(config)
  batch_size = config.train.batch_size
  result = {"config": f"{config.name}:{config.variant}", "source": config.data.source,
            "max_len": config.data.max_len, "pad_to": config.data.pad_to,
            "batch_size": batch_size, "dtype": config.model.dtype,
            "query_block_size": config.loss.query_block_size,
            "model": {k: config.model[k] for k in ("d_model", "num_heads", "num_layers",
                                                   "d_ff", "use_vmask", "vmask_hidden_dim")}}
  start = time.perf_counter()
  setup = trainer.make_trainer(config)
  result["data_and_setup_s"] = round(time.perf_counter() - start, 2)
  result["vocab_size"] = len(setup.bundle.vocab)
  state = setup.init_state()

  # The batches every pass uses: real, shuffled training batches.
  it = data.train_iterator(setup.bundle.splits["train"], batch_size=batch_size,
                           seed=config.seed, pad_to=config.data.pad_to)
  start = time.perf_counter()
  batches = [next(it) for _ in range(_STEPS.value)]
  result["host_batching_ms_per_batch"] = 1e3 * (time.perf_counter() - start) / len(batches)
  widths = [b["ids"].shape[1] for b in batches]
  result["train_widths"] = dict(sorted(collections.Counter(widths).items()))
  result["mean_width"] = float(np.mean(widths))
  dev = setup.bundle.splits["dev"]
  eval_batches = list(data.eval_batches(dev, batch_size=config.train.eval_batch_size,
                                        pad_to=config.data.pad_to))

  # Compile every train width (timed), then a warm-up pass.
  compile_s, lower_s, xla_flops, memory = {}, {}, {}, None
  for width in sorted(set(widths)):
    example = sharding.shard_batch(next(b for b in batches if b["ids"].shape[1] == width),
                                   setup.mesh)
    start = time.perf_counter()
    lowered = setup.train_step.lower(state, example)
    lower_s[width] = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s[width] = time.perf_counter() - start
    xla_flops[width] = _xla_flops(compiled)
    if width == max(widths):
      m = compiled.memory_analysis()
      memory = {"xla_temp_gib": m.temp_size_in_bytes / GiB,
                "xla_arguments_gib": m.argument_size_in_bytes / GiB,
                "xla_outputs_gib": m.output_size_in_bytes / GiB}
  first = widths[0]
  result["compile"] = {
      "first_width": first, "trace_and_lower_s": round(lower_s[first], 2),
      "compile_s": round(compile_s[first], 2),
      "all_widths_s": round(sum(lower_s.values()) + sum(compile_s.values()), 1),
      "programs": len(compile_s)}
  for b in batches:
    state, sums = setup.train_step(state, setup.shard(b))
  jax.block_until_ready(state)

  # Timed training passes.
  times, cores, faults = [], [], []
  for _ in range(_REPEATS.value):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    c0, t0 = time.process_time(), time.perf_counter()
    for b in batches:
      state, sums = setup.train_step(state, setup.shard(b))
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
    cores.append((time.process_time() - c0) / times[-1])
    faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / len(batches))
  examples = len(batches) * batch_size
  result["train"] = _median_rate(times, examples)
  result["train"]["ms_per_step"] = 1e3 * result["train"]["median_pass_s"] / len(batches)
  result["train"]["cores_used"] = statistics.median(cores)
  result["train"]["minor_page_faults_per_step"] = statistics.median(faults)
  analytic = [analytic_flops(config.model, batch=batch_size, width=w, train=True)
              for w in widths]
  flops_pass = sum(a["total"] for a in analytic)
  xla_pass = (sum(xla_flops[w] for w in widths)
              if all(xla_flops[w] is not None for w in widths) else None)
  result["flops_per_step"] = {
      "analytic": flops_pass / len(widths),
      "analytic_parts": {k: sum(a[k] for a in analytic) / len(widths)
                         for k in analytic[0] if k != "total"},
      "xla_cost_analysis": None if xla_pass is None else xla_pass / len(widths)}
  result["achieved_flop_per_s"] = {
      "analytic": flops_pass / result["train"]["median_pass_s"],
      "xla_cost_analysis": None if xla_pass is None
      else xla_pass / result["train"]["median_pass_s"]}

  # Eval: warm-up (compiles), then timed passes over the dev split.
  def eval_pass():
    sums = None
    for b in eval_batches:
      out = setup.eval_step(state.params, setup.shard(b))
      sums = out if sums is None else jax.tree.map(lambda x, y: x + y, sums, out)
    jax.block_until_ready(sums)
  start = time.perf_counter()
  eval_pass()
  result["eval_first_pass_s"] = round(time.perf_counter() - start, 2)
  eval_times = []
  for _ in range(_EVAL_REPEATS.value):
    t0 = time.perf_counter()
    eval_pass()
    eval_times.append(time.perf_counter() - t0)
  result["eval"] = _median_rate(eval_times, float(len(dev)))
  result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  result["memory"] = memory
  result["machine"] = {"cpu": _cpu_name(), "cores": os.cpu_count(),
                       "devices": jax.device_count(),
                       "device_kind": jax.devices()[0].device_kind,
                       "jax": jax.__version__, "python": platform.python_version(),
                       "loadavg_1min": os.getloadavg()[0],
                       "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
  return result


def _cpu_name() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def _print(r: dict) -> None:
  t, e, c = r["train"], r["eval"], r["compile"]
  fl = r["flops_per_step"]
  xla = fl["xla_cost_analysis"]
  print(f"{r['config']} on {r['source']}: max_len {r['max_len']}, pad_to={r['pad_to']}, "
        f"batch {r['batch_size']}, {r['dtype']}; widths {r['train_widths']} "
        f"(mean {r['mean_width']:.1f})")
  print(f"  compile: first width {c['first_width']}: trace+lower {c['trace_and_lower_s']} s"
        f" + compile {c['compile_s']} s; all {c['programs']} widths {c['all_widths_s']} s")
  print(f"  train: {t['examples_per_s']:.1f} examples/s median (min {t['min_examples_per_s']:.1f},"
        f" max {t['max_examples_per_s']:.1f}); {t['ms_per_step']:.1f} ms/step; "
        f"cores used {t['cores_used']:.2f}; page faults/step {t['minor_page_faults_per_step']:.0f}")
  print(f"  eval:  {e['examples_per_s']:.1f} examples/s median (dev split)")
  print(f"  FLOPs/step: analytic {fl['analytic'] / 1e9:.2f} G"
        + (f", XLA cost analysis {xla / 1e9:.2f} G" if xla else "")
        + f"; achieved {r['achieved_flop_per_s']['analytic'] / 1e9:.1f} GFLOP/s (analytic)")
  m = r["memory"]
  print(f"  memory: peak RSS {r['peak_rss_gib']:.2f} GiB; widest step XLA temp "
        f"{m['xla_temp_gib']:.3f} GiB, args {m['xla_arguments_gib']:.3f} GiB")


def main(argv) -> None:
  del argv
  config = _CONFIG.value
  result = run(config)
  _print(result)
  line = json.dumps(result, default=str)
  if _JSON.value:
    pathlib.Path(_JSON.value).write_text(line + "\n")
  print(line)


if __name__ == "__main__":
  app.run(main)
