"""The benchmark scripts still run against today's package (they are not
imported by anything else, so a renamed field breaks them silently)."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_throughput_measures_the_data_it_is_given():
  out = subprocess.run(
      [sys.executable, "benchmarks/throughput.py", "--config=configs/planted.py:quick",
       "--steps=2", "--repeats=1", "--eval_repeats=0", "--peak_repeats=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result["source"] == "planted" and result["config"] == "planted:quick"
  assert result["train"]["examples_per_s"] > 0
