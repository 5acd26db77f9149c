r"""Training and evaluation speed of a config: compile time, examples/s, memory, FLOPs.

    python benchmarks/throughput.py --config=configs/sst2.py              # SAFR, bucketed
    python benchmarks/throughput.py --config=configs/sst2.py:reference    # padded to 128
    python benchmarks/throughput.py --config=configs/imdb.py --steps=10 --repeats=3
    python benchmarks/throughput.py --config=configs/sst2.py --batch_size=64 \
        --config.model.dtype=bfloat16 --json=/tmp/bf16.json

Uses the trainer's own pieces (``trainer.make_trainer``: the same jitted, donated,
sharded ``train_step``/``eval_step``, the same data iterator), on the config's
real data: ``auto`` decides offline (``SAFR_JAX_OFFLINE=1``, nothing waits for the
network), so it measures the paper's data where ``--config.data`` points at a
copy (or the cache holds one) and the builtin stand-in (``rt_polarity`` /
``imdb_builtin``) otherwise; the result names the source used.

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
* matmul peak and efficiency (``--matmul_peak``, on by default): after the
  train timing, the same process times jitted matmuls of the model's own GEMM
  shapes at the batch's mean width, in the config's dtype, each as one dense
  layer's forward and backward GEMMs (``y = x·W``, ``dx = y·Wᵀ``,
  ``dW = xᵀ·y``; see ``gemm_shapes`` and ``matmul_peak``), on one device.
  The best of them is the machine's ``matmul_peak_flop_per_s``, and
  ``efficiency`` = achieved FLOP/s (analytic) ÷ (matmul peak × devices in
  the mesh): how much of what this machine's matmuls can do on these shapes
  the whole training step gets, a ratio comparable across machines.
* MFU: achieved FLOP/s (analytic) ÷ (devices × nominal dense peak of the
  device kind, ``NOMINAL_PEAK_TFLOPS``: vendor figures, not measurements);
  "n/a" for device kinds not in the table (e.g. CPUs) unless
  ``--nominal_peak_tflops`` gives one.
* machine: device kind and count, CPU model, load average at the start and the
  end (a loaded machine shows there).

``--num_devices=N`` builds the trainer's data-parallel mesh over the first N
devices only (default: all of them, as training does); the global batch must
be a multiple of N. ``--eval_repeats=0`` skips the eval timing.

Prints a summary and one JSON line (``--json`` also writes it to a file).
Numbers only; nothing is asserted.
"""

from __future__ import annotations

import collections
import functools
import math
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

from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file[:variant], e.g. configs/sst2.py:reference.",
    lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch (default: the config's).")
_STEPS = flags.DEFINE_integer("steps", 30, "Training batches per timed pass.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed training passes (median reported).")
_EVAL_REPEATS = flags.DEFINE_integer(
    "eval_repeats", 3, "Timed passes over the dev split (0: no eval timing).")
_JSON = flags.DEFINE_string("json", None, "Also write the JSON result here.")
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", None, "Data-parallel mesh over the first N devices (default: all).")
_MATMUL_PEAK = flags.DEFINE_bool(
    "matmul_peak", True, "Also time the model's GEMM shapes and report efficiency.")
_PEAK_REPEATS = flags.DEFINE_integer(
    "peak_repeats", 5, "Timed rounds per GEMM shape (the best round counts).")
_NOMINAL_PEAK = flags.DEFINE_float(
    "nominal_peak_tflops", None, "Nominal dense peak TFLOP/s of one device for MFU "
    "(default: NOMINAL_PEAK_TFLOPS by device kind; n/a if unknown).")
_MALLOC = flags.DEFINE_bool(
    "malloc_tuning", True, "Apply train.py's glibc malloc settings first, so the "
    "numbers are what train.py gets (--nomalloc_tuning: glibc's defaults).")
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


# Nominal dense (no sparsity) peak TFLOP/s of ONE device, from the vendors'
# data sheets: nominal figures, not measurements, used only for MFU. "tf32" is
# the tensor-core TF32 rate (float32 matmuls at JAX's default precision on
# these GPUs), "float32" the plain FP32 rate (default_matmul_precision=highest).
# TPUs run float32 matmuls at default precision as one bfloat16 pass.
NOMINAL_PEAK_TFLOPS = {
    "H100 SXM": {"bfloat16": 989.0, "tf32": 495.0, "float32": 67.0},
    "H100 PCIe": {"bfloat16": 756.0, "tf32": 378.0, "float32": 51.0},
    "H200 SXM (H100 SXM compute)": {"bfloat16": 989.0, "tf32": 495.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
    "TPU v4": {"bfloat16": 275.0},
    "TPU v5e": {"bfloat16": 197.0},
    "TPU v5p": {"bfloat16": 459.0},
}


def nominal_entry(device_kind: str) -> str | None:
  """The ``NOMINAL_PEAK_TFLOPS`` row of a ``jax.Device.device_kind``, or None."""
  k = device_kind.upper().strip()
  if "NVL" in k:  # H100/H200 NVL: other clocks and power; not in the table
    return None
  if "H100" in k:  # "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe"
    return "H100 PCIe" if "PCIE" in k else "H100 SXM"
  if "H200" in k:  # "NVIDIA H200"
    return "H200 SXM (H100 SXM compute)"
  if "A100" in k:  # SXM4 and PCIe: same nominal compute
    return "A100"
  return {"TPU V4": "TPU v4", "TPU V5 LITE": "TPU v5e", "TPU V5E": "TPU v5e",
          "TPU V5": "TPU v5p", "TPU V5P": "TPU v5p"}.get(k)


def nominal_peak(device_kind: str, platform_name: str, dtype: str,
                 precision: str | None) -> tuple[float | None, str]:
  """(nominal peak FLOP/s of one device or None, what it is) for matmuls in
  ``dtype`` at JAX's ``default_matmul_precision`` ``precision``."""
  entry = nominal_entry(device_kind)
  if entry is None:
    return None, f"n/a: no nominal peak for device kind {device_kind!r}"
  rates = NOMINAL_PEAK_TFLOPS[entry]
  key = dtype
  if dtype == "float32":
    default = precision in (None, "default", "fastest", "bfloat16", "tensorfloat32")
    if platform_name == "gpu" and default and "tf32" in rates:
      key = "tf32"
    elif platform_name == "tpu" and default:
      key = "bfloat16"
  if key not in rates:
    return None, f"n/a: no nominal {key} peak for {entry}"
  basis = f"{entry} nominal dense {key} ({rates[key]:g} TFLOP/s)"
  if key != dtype:
    basis += (f"; float32 matmuls at JAX's default precision run as {key} here "
              "(jax_default_matmul_precision=highest: true float32)")
  return rates[key] * 1e12, basis


def gemm_shapes(model_config, *, rows: int, width: int, dtype: str) -> dict[str, dict]:
  """The model's matmuls on ``rows`` examples of ``width`` tokens (one device):
  ``groups`` independent ``[m, k] × [k, n]`` products (d = d_model, F = d_ff,
  V = VMASK hidden, H heads of d/H). The attention weights (and so L_Inter's
  ``A Aᵀ``) are float32 in every dtype, as in ``safr_jax.model``."""
  d, h, f = model_config.d_model, model_config.num_heads, model_config.d_ff
  m = rows * width
  shapes = {
      "qkv_out_proj [BL,d]x[d,d]": dict(groups=1, m=m, k=d, n=d, dtype=dtype),
      "ffn_in [BL,d]x[d,F]": dict(groups=1, m=m, k=d, n=f, dtype=dtype),
      "ffn_out [BL,F]x[F,d]": dict(groups=1, m=m, k=f, n=d, dtype=dtype),
  }
  if model_config.use_vmask:
    v = model_config.vmask_hidden_dim
    shapes["vmask [BL,d]x[d,V]"] = dict(groups=1, m=m, k=d, n=v, dtype=dtype)
  shapes["scores [BH: L,d/H]x[d/H,L]"] = dict(groups=rows * h, m=width, k=d // h,
                                              n=width, dtype=dtype)
  shapes["inter_AAt [BH: L,L]x[L,L]"] = dict(groups=rows * h, m=width, k=width,
                                             n=width, dtype="float32")
  return shapes


def matmul_peak(shapes: dict[str, dict], *, repeats: int, accelerator: bool) -> dict:
  """Times each shape as one layer's forward and backward GEMMs on one device.

  One jitted program runs ``unroll`` chained iterations of ``y = x·W``,
  ``dx = y·Wᵀ`` (the next ``x``), ``dW = xᵀ·y`` (summed): 6·g·m·k·n FLOPs
  each, nothing XLA can hoist or drop. On accelerators ``unroll`` makes a
  program ≥ ~50 GFLOP (at most 32 iterations); a round runs programs back to
  back for ≥ 20 ms, so dispatch hardly counts; the best of ``repeats`` rounds
  is reported.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  def program(unroll):
    def f(x, w):
      acc = jnp.zeros(w.shape, w.dtype)
      for _ in range(unroll):
        y = jnp.einsum("gmk,gkn->gmn", x, w)
        acc = acc + jnp.einsum("gmk,gmn->gkn", x, y)
        x = jnp.einsum("gmn,gkn->gmk", y, w)
      return x, acc
    return jax.jit(f)

  out, rng = {}, np.random.default_rng(0)
  for name, s in shapes.items():
    g, m, k, n = s["groups"], s["m"], s["k"], s["n"]
    flops_iter = 6.0 * g * m * k * n
    unroll = min(32, max(1, math.ceil(5e10 / flops_iter))) if accelerator else 1
    dt = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[s["dtype"]]
    # w·wᵀ has its largest eigenvalue near 1, so the chain stays finite.
    x = jnp.asarray(rng.standard_normal((g, m, k), np.float32), dt)
    w = jnp.asarray(rng.standard_normal((g, k, n), np.float32)
                    / (math.sqrt(k) + math.sqrt(n)), dt)
    f = program(unroll)
    start = time.perf_counter()
    jax.block_until_ready(f(x, w))  # compile + first run
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(f(x, w))
    once = time.perf_counter() - start
    calls = min(1000, max(1, math.ceil(0.02 / max(once, 1e-9))))
    best = math.inf
    for _ in range(max(1, repeats)):
      start = time.perf_counter()
      for _ in range(calls):
        r = f(x, w)
      jax.block_until_ready(r)
      best = min(best, (time.perf_counter() - start) / calls)
    out[name] = {**s, "flop_per_s": unroll * flops_iter / best,
                 "gflop_per_program": unroll * flops_iter / 1e9, "unroll": unroll,
                 "calls_per_round": calls, "compile_s": round(compile_s, 2)}
    del x, w, r
  best_name = max(out, key=lambda n: out[n]["flop_per_s"])
  return {"matmul_peak_flop_per_s": out[best_name]["flop_per_s"],
          "best_shape": best_name, "shapes": out}


def _flops(x: float | None) -> str:
  if x is None:
    return "n/a"
  return f"{x / 1e12:.2f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.1f} GFLOP/s"


def run(config) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safr_jax import configs, data, sharding, trainer  # pylint: disable=g-import-not-at-top

  loadavg_start = os.getloadavg()
  if _NUM_DEVICES.value:  # the trainer builds its mesh with sharding.make_mesh()
    if not 1 <= _NUM_DEVICES.value <= jax.device_count():
      raise app.UsageError(f"--num_devices={_NUM_DEVICES.value}: this machine has "
                           f"{jax.device_count()} device(s)")
    sharding.make_mesh = functools.partial(sharding.make_mesh,
                                           devices=jax.devices()[:_NUM_DEVICES.value])
  # "auto" without the network probe: the paper's data from a directory given
  # on the command line or the cache, else the source's builtin stand-in. The
  # source actually used is reported (bundle.source), not the config's.
  os.environ.setdefault("SAFR_JAX_OFFLINE", "1")
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
  n_dev = int(setup.mesh.devices.size)
  result["mesh_devices"] = n_dev
  result["data_and_setup_s"] = round(time.perf_counter() - start, 2)
  result["vocab_size"] = len(setup.bundle.vocab)
  result["source"] = setup.bundle.source  # what "auto" chose
  state = setup.init_state()

  # The batches every pass uses: real, shuffled training batches.
  batching = {k: config.data[k] for k in ("batching", "bucket_window") if k in config.data}
  result["batching"] = batching.get("batching", "random")
  it = data.train_iterator(setup.bundle.splits["train"], batch_size=batch_size,
                           seed=config.seed, pad_to=config.data.pad_to, **batching)
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
  # Exactly the program training runs (the trainer's jitted, donated step).
  step_jit = setup.jitted_train_step
  # (state, batch, β of the bottleneck, the λ warm-up's scale), as Trainer.train_step calls it.
  extra_args = (jax.numpy.float32(config.loss.vmask_kl), jax.numpy.float32(1.0))
  lowered_what = "Trainer.jitted_train_step"
  for width in sorted(set(widths)):
    example = sharding.shard_batch(next(b for b in batches if b["ids"].shape[1] == width),
                                   setup.mesh)
    start = time.perf_counter()
    lowered = step_jit.lower(state, example, *extra_args)
    lower_s[width] = time.perf_counter() - start
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s[width] = time.perf_counter() - start
    xla_flops[width] = _xla_flops(compiled)
    if width == max(widths):
      m = compiled.memory_analysis()
      memory = None if m is None else {"xla_temp_gib": m.temp_size_in_bytes / GiB,
                "xla_arguments_gib": m.argument_size_in_bytes / GiB,
                "xla_outputs_gib": m.output_size_in_bytes / GiB}
  first = widths[0]
  result["compile"] = {
      "first_width": first, "trace_and_lower_s": round(lower_s[first], 2),
      "compile_s": round(compile_s[first], 2),
      "all_widths_s": round(sum(lower_s.values()) + sum(compile_s.values()), 1),
      "programs": len(compile_s), "lowered": lowered_what}
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

  # The machine's own matmul peak on the model's shapes, and MFU.
  dev0 = jax.devices()[0]
  achieved = result["achieved_flop_per_s"]["analytic"]
  if _MATMUL_PEAK.value:
    shapes = gemm_shapes(config.model, rows=batch_size // n_dev,
                         width=max(1, round(result["mean_width"])), dtype=config.model.dtype)
    start = time.perf_counter()
    peak = matmul_peak(shapes, repeats=_PEAK_REPEATS.value,
                       accelerator=dev0.platform != "cpu")
    peak["seconds"] = round(time.perf_counter() - start, 1)
    peak["width"] = max(1, round(result["mean_width"]))
    peak["rows_per_device"] = batch_size // n_dev
    result["matmul_peak"] = peak
    result["matmul_peak_flop_per_s"] = peak["matmul_peak_flop_per_s"]
    result["efficiency"] = achieved / (n_dev * peak["matmul_peak_flop_per_s"])
  else:
    result["matmul_peak"] = result["matmul_peak_flop_per_s"] = result["efficiency"] = None
  precision = jax.config.jax_default_matmul_precision
  if _NOMINAL_PEAK.value:
    nominal = _NOMINAL_PEAK.value * 1e12
    basis = f"--nominal_peak_tflops={_NOMINAL_PEAK.value:g} TFLOP/s"
  else:
    nominal, basis = nominal_peak(dev0.device_kind, dev0.platform, config.model.dtype,
                                  precision)
  result["nominal_peak_flop_per_s"] = nominal
  result["nominal_peak_basis"] = basis
  result["mfu"] = None if nominal is None else achieved / (n_dev * nominal)
  result["matmul_peak_vs_nominal"] = (
      None if nominal is None or result["matmul_peak_flop_per_s"] is None
      else result["matmul_peak_flop_per_s"] / nominal)

  # Eval: warm-up (compiles), then timed passes over the dev split.
  def eval_pass():
    sums = None
    for b in eval_batches:
      out = setup.eval_step(state.params, setup.shard(b))
      sums = out if sums is None else jax.tree.map(lambda x, y: x + y, sums, out)
    jax.block_until_ready(sums)
  result["eval_first_pass_s"] = result["eval"] = None
  if _EVAL_REPEATS.value > 0:
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
  loadavg_end = os.getloadavg()
  result["machine"] = {"cpu": common.cpu_name(), "cores": os.cpu_count(),
                       "devices": jax.device_count(), "mesh_devices": n_dev,
                       "platform": dev0.platform, "device_kind": dev0.device_kind,
                       "default_matmul_precision": precision,
                       "jax": jax.__version__, "python": platform.python_version(),
                       "loadavg_1min": loadavg_end[0],
                       "loadavg_start": [round(x, 2) for x in loadavg_start],
                       "loadavg_end": [round(x, 2) for x in loadavg_end],
                       "glibc_tunables": os.environ.get("GLIBC_TUNABLES")}
  return result


def _print(r: dict) -> None:
  t, e, c = r["train"], r["eval"], r["compile"]
  fl = r["flops_per_step"]
  xla = fl["xla_cost_analysis"]
  mc = r["machine"]
  print(f"machine: {mc['devices']} x {mc['device_kind']} ({mc['platform']}; mesh over "
        f"{mc['mesh_devices']}); CPU {mc['cpu']}, {mc['cores']} cores; load average "
        f"{' '.join(f'{x:.2f}' for x in mc['loadavg_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in mc['loadavg_end'])} at end; malloc tuning "
        f"{'on' if mc.get('malloc_tuning') else 'off'}")
  print(f"{r['config']} on {r['source']}: max_len {r['max_len']}, pad_to={r['pad_to']}, "
        f"batch {r['batch_size']}, {r['dtype']}; widths {r['train_widths']} "
        f"(mean {r['mean_width']:.1f})")
  print(f"  compile: first width {c['first_width']}: trace+lower {c['trace_and_lower_s']} s"
        f" + compile {c['compile_s']} s; all {c['programs']} widths {c['all_widths_s']} s")
  print(f"  train: {t['examples_per_s']:.1f} examples/s median (min {t['min_examples_per_s']:.1f},"
        f" max {t['max_examples_per_s']:.1f}); {t['ms_per_step']:.1f} ms/step; "
        f"cores used {t['cores_used']:.2f}; page faults/step {t['minor_page_faults_per_step']:.0f}")
  if e is not None:
    print(f"  eval:  {e['examples_per_s']:.1f} examples/s median (dev split)")
  print(f"  FLOPs/step: analytic {fl['analytic'] / 1e9:.2f} G"
        + (f", XLA cost analysis {xla / 1e9:.2f} G" if xla else "")
        + f"; achieved {_flops(r['achieved_flop_per_s']['analytic'])} (analytic)")
  pk = r["matmul_peak"]
  if pk is not None:
    print(f"  matmul peak (model's GEMMs, fwd+bwd, {r['dtype']}, width {pk['width']}, "
          f"{pk['rows_per_device']} rows/device, one device):")
    for name, x in pk["shapes"].items():
      groups = f"{x['groups']} x " if x["groups"] > 1 else ""
      print(f"    {name:28s} {groups}[{x['m']},{x['k']}]x[{x['k']},{x['n']}] {x['dtype']}:"
            f" {_flops(x['flop_per_s'])}")
    print(f"  efficiency: {100 * r['efficiency']:.1f} % = achieved "
          f"{_flops(r['achieved_flop_per_s']['analytic'])} / ({r['mesh_devices']} x "
          f"matmul peak {_flops(r['matmul_peak_flop_per_s'])}, {pk['best_shape']})")
  if r["mfu"] is None:
    print(f"  MFU: n/a ({r['nominal_peak_basis']})")
  else:
    vs = r["matmul_peak_vs_nominal"]
    print(f"  MFU: {100 * r['mfu']:.2f} % of {r['mesh_devices']} x {r['nominal_peak_basis']}"
          + ("" if vs is None else f"; measured matmul peak = {100 * vs:.0f} % of nominal"))
  m = r["memory"]
  if m is not None:
    print(f"  memory: peak RSS {r['peak_rss_gib']:.2f} GiB; widest step XLA temp "
          f"{m['xla_temp_gib']:.3f} GiB, args {m['xla_arguments_gib']:.3f} GiB")


def main(argv) -> None:
  del argv
  config = _CONFIG.value
  from safr_jax import runtime  # pylint: disable=g-import-not-at-top
  malloc_tuned = _MALLOC.value and runtime.tune_malloc()
  result = run(config)
  result["machine"]["malloc_tuning"] = malloc_tuned
  common.emit(result, show=_print, json_path=_JSON.value)


if __name__ == "__main__":
  app.run(main)
