r"""A simulated multi-host job on one machine: N local processes, one jax job.

    python benchmarks/multiprocess_demo.py [--num_processes=2] [--workdir=DIR]

What it does (each step is the user's own command, ``train.py``):

1. starts N processes of ``train.py --config=configs/sst2.py:quick`` that join
   one ``jax.distributed`` job on 127.0.0.1 (gloo CPU collectives) through
   ``SAFR_COORDINATOR`` / ``SAFR_NUM_PROCESSES`` / ``SAFR_PROCESS_ID``; each has
   one CPU device and feeds its own share of every global batch. They train 1
   epoch, save checkpoints (every process calls orbax) and test the best one;
2. starts N processes again with ``num_epochs=2`` in the same workdir: every
   process restores the latest checkpoint and training continues;
3. runs the same 2 epochs as ONE process with N devices
   (``--xla_force_host_platform_device_count=N``) in another workdir;
4. compares: per-step training losses and test metrics of the N-process job
   against the 1-process job, the final parameters, and that only process 0
   wrote metrics and results.

Prints a JSON summary as its last line and exits non-zero if a check fails.
``tests/test_multiprocess.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The quick variant made smaller still: 96 examples (6 steps of 16 per epoch),
# one padded width (so one compilation), a checkpoint every 4 steps.
CONFIG = ["--config=configs/sst2.py:quick", "--config.data.source=rt_polarity",
          "--config.data.max_examples=96", "--config.data.max_len=32",
          "--config.data.pad_to=max_len", "--config.train.checkpoint_every_steps=4",
          "--config.train.log_every_steps=1", "--config.train.progress_bar=False"]


def _env(devices: int, **extra: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items() if not k.startswith("SAFR_")}
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
             XLA_FLAGS=" ".join(flags + [f"--xla_force_host_platform_device_count={devices}"]),
             **extra)
  return env


def _launch_job(workdir: pathlib.Path, epochs: int, num_processes: int,
                timeout: float) -> list[subprocess.CompletedProcess]:
  import portpicker  # pylint: disable=g-import-not-at-top
  port = portpicker.pick_unused_port()
  argv = [sys.executable, "train.py", *CONFIG, f"--config.train.num_epochs={epochs}",
          f"--workdir={workdir}"]
  procs = []
  logs = []
  for i in range(num_processes):
    log = tempfile.TemporaryFile(mode="w+")
    logs.append(log)
    procs.append(subprocess.Popen(
        argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env=_env(1, SAFR_COORDINATOR=f"127.0.0.1:{port}",
                 SAFR_NUM_PROCESSES=str(num_processes), SAFR_PROCESS_ID=str(i))))
  deadline = time.monotonic() + timeout
  results = []
  for p, log in zip(procs, logs):
    try:
      p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      for q in procs:  # a stuck job: end every process we started
        q.kill()
      p.wait()
    log.seek(0)
    results.append(subprocess.CompletedProcess(p.args, p.returncode, log.read(), ""))
    log.close()
  return results


def _train_records(workdir: pathlib.Path) -> list[dict]:
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["split"] == "train"]


def _final_params(workdir: pathlib.Path):
  from safr_jax import checkpointing  # pylint: disable=g-import-not-at-top
  ckpts = checkpointing.Checkpoints(workdir / "checkpoints")
  try:
    step = ckpts.latest_step()
    return step, ckpts.restore(step).state["params"]
  finally:
    ckpts.close()


def _tail(text: str) -> str:
  """The lines that tell the story: resume point, epochs, test result."""
  keep = [l.split("] ", 1)[-1] for l in text.splitlines()
          if re.search(r"Connecting to JAX distributed|Resuming from|epoch \d+ \(step|Test accuracy|Error", l)]
  return "\n".join("    " + l for l in keep)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_processes", type=int, default=2)
  parser.add_argument("--workdir", default=None,
                      help="where the runs go (default: a temporary folder, removed)")
  parser.add_argument("--timeout", type=float, default=300.0,
                      help="seconds each job may take")
  args = parser.parse_args()
  n = args.num_processes
  tmp = None
  if args.workdir is None:
    tmp = tempfile.TemporaryDirectory()
    base = pathlib.Path(tmp.name)
  else:
    base = pathlib.Path(args.workdir).absolute()
  multi, single = base / f"{n}_processes", base / "1_process"
  checks: dict[str, bool] = {}
  timings: dict[str, float] = {}

  def job(name, workdir, epochs):
    start = time.monotonic()
    out = _launch_job(workdir, epochs, n, args.timeout)
    timings[name] = round(time.monotonic() - start, 1)
    for i, p in enumerate(out):
      print(f"--- {name}: process {i} exited {p.returncode}:\n{_tail(p.stdout)}")
    checks[f"{name}: every process exited 0"] = all(p.returncode == 0 for p in out)
    return out

  # 1. N processes, 1 epoch, checkpoints on every process.
  first = job("train 1 epoch", multi, 1)
  if not all(p.returncode == 0 for p in first):
    print(json.dumps({"ok": False, "checks": checks, "seconds": timings}))
    return 1
  steps_1 = sorted(int(p.name) for p in (multi / "checkpoints").iterdir() if p.name.isdigit())
  checks["checkpoints written"] = bool(steps_1)
  # 2. N processes again: each restores the latest checkpoint and goes on.
  second = job("resume to 2 epochs", multi, 2)
  latest = steps_1[-1] if steps_1 else -1
  checks["every process resumed from the checkpoint"] = all(
      f"Resuming from {multi / 'checkpoints'} at step {latest}" in p.stdout for p in second)
  # 3. The same training in one process with N devices.
  start = time.monotonic()
  ref = subprocess.run(
      [sys.executable, "train.py", *CONFIG, "--config.train.num_epochs=2",
       f"--workdir={single}"], cwd=ROOT, env=_env(n), capture_output=True, text=True,
      timeout=args.timeout)
  timings["1 process, N devices"] = round(time.monotonic() - start, 1)
  checks["1-process reference exited 0"] = ref.returncode == 0
  if ref.returncode != 0:
    print(ref.stderr[-3000:])
    print(json.dumps({"ok": False, "checks": checks, "seconds": timings}))
    return 1

  # 4. Compare.
  a, b = _train_records(multi), _train_records(single)
  steps_a = [r["step"] for r in a]
  checks["metrics written once per step (process 0 only)"] = (
      len(steps_a) == len(set(steps_a)) == len(b))
  loss_diff = max(abs(x[k] - y[k]) for x, y in zip(a, b)
                  for k in ("loss", "ce", "importance", "interaction"))
  checks["per-step losses agree with 1 process to 1e-5"] = loss_diff <= 1e-5
  res_a = json.loads((multi / "results.json").read_text())
  res_b = json.loads((single / "results.json").read_text())
  test_diff = max(abs(res_a["test"][k] - res_b["test"][k])
                  for k in ("loss", "accuracy", "importance", "interaction"))
  checks["test metrics agree to 1e-5"] = test_diff <= 1e-5
  checks["results.json says N processes"] = res_a["devices"]["processes"] == n

  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  step_a, params_a = _final_params(multi)
  step_b, params_b = _final_params(single)
  flat_a = jax.tree_util.tree_flatten_with_path(params_a)[0]
  flat_b = dict(jax.tree_util.tree_flatten_with_path(params_b)[0])
  # Softmax ignores the attention key bias, so its gradient is rounding noise
  # that Adam turns into full-size steps: it is not compared.
  param_diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(flat_b[path]))))
                   for path, x in flat_a if "key" not in jax.tree_util.keystr(path)
                   or "bias" not in jax.tree_util.keystr(path))
  checks["final checkpoints at the same step"] = step_a == step_b
  checks["final parameters agree to 1e-4"] = param_diff <= 1e-4
  summary = {"ok": all(checks.values()), "num_processes": n, "checks": checks,
             "train_steps": len(a), "max_abs_loss_diff": loss_diff,
             "max_abs_test_metric_diff": test_diff, "max_abs_param_diff": param_diff,
             "test_accuracy": res_a["test"]["accuracy"], "seconds": timings}
  for name, ok in checks.items():
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
  print(json.dumps(summary))
  if tmp is not None:
    tmp.cleanup()
  return 0 if summary["ok"] else 1


if __name__ == "__main__":
  sys.exit(main())
