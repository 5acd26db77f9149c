"""A 2-process jax.distributed job on 127.0.0.1 trains, checkpoints and resumes.

Runs ``benchmarks/multiprocess_demo.py``: two ``train.py`` processes (gloo CPU
collectives, ``SAFR_COORDINATOR``/``SAFR_NUM_PROCESSES``/``SAFR_PROCESS_ID``)
train one epoch and save checkpoints, are started again and both restore the
latest checkpoint to train a second epoch, and their per-step losses, test
metrics and final parameters are compared with one process on two devices.

Marked slow: five ``train.py`` start-ups take about two minutes on 2 busy
cores (``python -m pytest -m slow tests/test_multiprocess.py``).
"""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_job_trains_checkpoints_and_resumes(tmp_path):
  proc = subprocess.run(
      [sys.executable, "benchmarks/multiprocess_demo.py", "--num_processes=2",
       f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=900)
  summary = json.loads(proc.stdout.strip().splitlines()[-1])
  assert proc.returncode == 0 and summary["ok"], proc.stdout[-4000:] + proc.stderr[-2000:]
  assert summary["max_abs_loss_diff"] <= 1e-5
  assert (tmp_path / "2_processes" / "results.json").exists()
