"""experiments/run_grid.py --quick: the whole grid pipeline on two tiny runs."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_grid_trains_evaluates_and_reports(tmp_path):
  report = tmp_path / "RESULTS.md"
  results = tmp_path / "results"
  argv = [sys.executable, "experiments/run_grid.py", "--quick", f"--root={tmp_path / 'runs'}",
          f"--results_dir={results}", f"--report={report}", "--eval_examples=40",
          f"--compare_dir={tmp_path / 'compare'}"]
  proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  summaries = sorted(results.glob("*.json"))
  assert [p.name for p in summaries] == ["quick__baseline__seed0.json",
                                         "quick__safr__seed0.json"]
  for path in summaries:
    summary = json.loads(path.read_text())
    assert "accuracy" in summary["results"]["test"]
    assert "interpretability" in summary  # evaluate ran
    assert "train.py" in summary["command"]
  text = report.read_text()
  assert "| baseline | 1 |" in text and "| safr | 1 |" in text
  assert "not SST-2" in text
  # safr_jax.compare drew the group; the report links its table and plot.
  compared = (tmp_path / "compare" / "quick" / "comparison.md").read_text()
  assert "| sst2:quick λ_imp=0 λ_inter=0 | 1 |" in compared  # the baseline run
  assert "| sst2:quick λ_imp=1 λ_inter=1 | 1 |" in compared  # the SAFR run
  assert (tmp_path / "compare" / "quick" / "comparison.png").stat().st_size > 0
  assert "](compare/quick/comparison.png)" in text
  # A second call skips both finished runs and rewrites the same report.
  again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0
  assert again.stdout.count("finished, skipped") == 2
  assert report.read_text() == text
  # On a fresh machine (no workdirs) the committed summaries are enough...
  runs = tmp_path / "runs"
  runs.rename(tmp_path / "elsewhere")
  fresh = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert fresh.returncode == 0, fresh.stderr[-2000:]
  assert fresh.stdout.count("its summary is in") == 2
  assert not runs.exists() and report.read_text() == text
  # ...unless the grid's command for a run has changed since: that run trains.
  summary = json.loads(summaries[0].read_text())
  summaries[0].write_text(json.dumps(dict(summary, command=summary["command"] + " --x")))
  argv_one = argv + ["--only=quick/baseline/seed0", "--skip_evaluate"]
  changed = subprocess.run(argv_one, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert changed.returncode == 0, changed.stderr[-2000:]
  assert "quick/baseline/seed0: training in" in changed.stdout
  assert (runs / "quick" / "baseline" / "seed0" / "results.json").exists()


def test_reevaluate_runs_evaluate_again_only_on_finished_runs(tmp_path, monkeypatch):
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  calls = []
  monkeypatch.setattr(run_grid.subprocess, "run",
                      lambda argv, **kw: calls.append(argv) or subprocess.CompletedProcess(argv, 0))
  run = run_grid.quick_grid()[1]
  workdir = tmp_path / run.name
  workdir.mkdir(parents=True)
  run_grid.evaluate(run, workdir, max_examples=40, again=True)
  assert not calls  # not trained: nothing to evaluate
  (workdir / "results.json").write_text("{}")
  (workdir / "interpretability.json").write_text("{}")
  run_grid.evaluate(run, workdir, max_examples=40)
  assert not calls  # evaluated already
  run_grid.evaluate(run, workdir, max_examples=40, again=True)
  assert calls == [[sys.executable, "-m", "safr_jax.evaluate", f"--workdir={workdir}",
                    "--split=test", "--max_examples=40"]]
