"""experiments/run_grid.py --quick: the whole grid pipeline on two tiny runs."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

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
  data = "| rt_polarity 160/160/160 | 1 |"  # data.max_examples=160 caps each split
  assert f"| sst2:quick λ_imp=0 λ_inter=0 {data}" in compared  # the baseline run
  assert f"| sst2:quick λ_imp=1 λ_inter=1 {data}" in compared  # the SAFR run
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
  monkeypatch.setattr(run_grid, "run_child", lambda argv, log: calls.append(argv) or (0, []))
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


def test_sst2_runs_are_evaluated_on_their_whole_test_split_and_imdb_on_500():
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  paper = [r for r in run_grid.grid() if r.group.startswith(("sst2", "imdb"))]
  assert {r.eval_examples for r in paper if r.group.startswith("sst2")} == {0}
  imdb = ("imdb", "imdb_curve", "imdb_reference")  # the paper's IMDB, not the stand-in
  assert {r.eval_examples for r in paper if r.group in imdb} == {500}


def test_every_committed_summary_is_recognised_as_its_grid_run(tmp_path):
  """A renamed config flag (e.g. data.sst_dir -> data.sst_treebank.dir) must not
  make the grid think a committed run was never trained: it would train again."""
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  results = ROOT / "experiments" / "results"
  runs = [r for r in run_grid.grid() if run_grid.summary_path(r, results).exists()]
  assert len(runs) >= 50  # the paper's and the stand-ins' grids
  assert [r.name for r in runs if not run_grid.finished_elsewhere(r, tmp_path, results)] == []
  old = "python train.py --config.data.sst_dir=A --config.data.planted_seed=3 --config.data.x=1"
  assert run_grid.upgraded_command(old) == ("python train.py --config.data.sst_treebank.dir=A "
                                            "--config.data.planted.seed=3 --config.data.x=1")


def test_retrain_trains_a_run_whose_workdir_is_gone_and_keeps_the_old_numbers(
    tmp_path, monkeypatch):
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  run = run_grid.quick_grid()[1]
  results_dir = tmp_path / "results"
  results_dir.mkdir()
  old = {"command": run_grid.recorded_command(run),
         "results": {"git_commit": "abc", "dev_history": [0.5, 0.6],
                     "test": {"accuracy": 0.61}, "test_last_epoch": {"accuracy": 0.6}}}
  run_grid.summary_path(run, results_dir).write_text(json.dumps(old))

  def child(argv, log):  # train.py and evaluate, as stand-ins
    workdir = pathlib.Path(log).parent
    if "train.py" in argv[1]:
      (workdir / "results.json").write_text(json.dumps({"test": {"accuracy": 0.62}}))
    else:
      (workdir / "interpretability.json").write_text("{}")
      (workdir / "interpretability.examples.json").write_text('{"index": [3]}')
    return 0, []
  monkeypatch.setattr(run_grid, "run_child", child)
  flags = [f"--only={run.name}", f"--root={tmp_path / 'runs'}", f"--results_dir={results_dir}",
           "--report=", "--compare_dir="]
  run_grid.flags.FLAGS(["run_grid", "--quick", *flags])
  try:
    run_grid.run_all()  # without --retrain: finished elsewhere, skipped
    assert not (tmp_path / "runs" / run.name).exists()
    run_grid.flags.FLAGS(["run_grid", "--quick", "--retrain", *flags])
    run_grid.run_all()
  finally:
    run_grid.flags.FLAGS.unparse_flags()
  new = json.loads(run_grid.summary_path(run, results_dir).read_text())
  assert new["results"]["test"]["accuracy"] == 0.62
  assert new["retrained_from"] == {"git_commit": "abc", "dev_history": [0.5, 0.6],
                                   "test_accuracy": 0.61, "test_last_epoch_accuracy": 0.6}
  examples = results_dir / "examples" / run_grid.summary_path(run, results_dir).name
  assert json.loads(examples.read_text()) == {"index": [3]}
  # Evaluated with per-example scores: a fresh machine does not train it again.
  (tmp_path / "runs").rename(tmp_path / "gone")
  run_grid.flags.FLAGS(["run_grid", "--quick", "--retrain", *flags])
  try:
    run_grid.run_all()
  finally:
    run_grid.flags.FLAGS.unparse_flags()
  assert not (tmp_path / "runs" / run.name).exists()


# A stand-in for train.py: says it is ready, then notes which signal reached it
# and exits as train.py does (128 + signum), or with 0 ("finish": the signal
# came as the run was ending).
_TRAINER = """
import pathlib, signal, sys, time
workdir = pathlib.Path(sys.argv[1])
def stop(signum, frame):
  (workdir / "got").write_text(str(signum))
  sys.exit(0 if sys.argv[2] == "finish" else 128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
(workdir / "ready").write_text("")
time.sleep(60)
"""

# Runs run_grid.train on that stand-in and reports how it ended.
_DRIVER = """
import dataclasses, json, pathlib, sys
from experiments import run_grid

@dataclasses.dataclass(frozen=True)
class Fake(run_grid.Run):
  def argv(self, workdir, root=run_grid.ROOT):
    return [sys.executable, "-c", sys.argv[2], str(workdir), sys.argv[3]]

try:
  run_grid.train(Fake("g", "sst2.py", "safr", 0), pathlib.Path(sys.argv[1]))
except run_grid.GridError as e:
  print(json.dumps({"message": str(e), "exit_code": e.exit_code}))
"""
_DRIVER_ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _signal_the_grid(workdir, signum, ending):
  driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(workdir), _TRAINER, ending],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=_DRIVER_ENV)
  deadline = time.monotonic() + 60
  while not (workdir / "ready").exists():
    assert driver.poll() is None and time.monotonic() < deadline, "trainer never started"
    time.sleep(0.05)
  driver.send_signal(signum)
  out, _ = driver.communicate(timeout=60)
  assert driver.returncode == 0  # the grid itself handled the signal
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_grid_stops_its_trainer_once_and_keeps_the_time(tmp_path, signum):
  workdir = tmp_path / "g" / "safr" / "seed0"
  ended = _signal_the_grid(workdir, signum, "stop")
  assert (workdir / "got").read_text() == str(int(signum))  # forwarded, once
  assert ended["exit_code"] == 128 + signum
  assert ended["message"] == ("stopped during g/safr/seed0 (train.py saved a checkpoint); "
                              "run the same command to resume")
  assert json.loads((workdir / "grid_wall_time.json").read_text())["seconds"] > 0


def test_a_signal_as_the_run_ends_still_stops_the_grid(tmp_path):
  workdir = tmp_path / "g" / "safr" / "seed0"
  ended = _signal_the_grid(workdir, signal.SIGTERM, "finish")
  assert (workdir / "got").read_text() == str(int(signal.SIGTERM))
  assert ended == {"message": "stopped after g/safr/seed0 finished; run the same command to "
                              "continue", "exit_code": 143}


def test_a_failed_trainer_is_one_line_naming_its_log(tmp_path):
  workdir = tmp_path / "run"
  trainer = "import sys; sys.exit(3)"
  proc = subprocess.run([sys.executable, "-c", _DRIVER, str(workdir), trainer, "3"],
                        cwd=ROOT, capture_output=True, text=True, timeout=60,
                        env=_DRIVER_ENV)
  ended = json.loads(proc.stdout.strip().splitlines()[-1])
  assert ended == {"message": f"g/safr/seed0 failed (exit 3); see {workdir / 'train.log'}",
                   "exit_code": 1}


def test_a_signal_while_evaluating_stops_the_grid(tmp_path, monkeypatch):
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(run_grid, "run_child", lambda argv, log: (-15, [signal.SIGTERM]))
  run = run_grid.quick_grid()[1]
  (tmp_path / "results.json").write_text("{}")
  with pytest.raises(run_grid.GridError) as stopped:
    run_grid.evaluate(run, tmp_path, max_examples=40)
  assert str(stopped.value) == ("stopped while evaluating quick/safr/seed0; run the same "
                                "command to continue")
  assert stopped.value.exit_code == 143


def test_a_group_without_runs_is_a_usage_error_naming_it(monkeypatch):
  from absl import app  # pylint: disable=import-outside-toplevel
  from experiments import run_grid  # pylint: disable=import-outside-toplevel
  from absl.testing import flagsaver  # pylint: disable=import-outside-toplevel
  if not run_grid.flags.FLAGS.is_parsed():
    run_grid.flags.FLAGS.mark_as_parsed()
  monkeypatch.setattr(run_grid, "IMDB_EPOCH_CAP", None)
  def chosen(groups):
    with flagsaver.flagsaver(group=groups):
      return run_grid.select(run_grid.grid())
  with pytest.raises(app.UsageError, match="--group=imdb: its epoch cap is not chosen yet"):
    chosen(["imdb"])
  with pytest.raises(app.UsageError, match=r"unknown group\(s\) \['nope'\]"):
    chosen(["sst2", "nope"])
  monkeypatch.setattr(run_grid, "IMDB_EPOCH_CAP", 4)
  imdb = chosen(["imdb"])
  # the nine runs first, then vmask's seeds
  assert [r.name for r in imdb[:9]] == [
      f"imdb/{v}/seed{k}" for k in range(3) for v in ("baseline", "safr", "safr_ib")]
  assert [r.name for r in imdb[9:]] == [f"imdb/vmask/seed{k}" for k in range(3)]
  assert all("--config.train.num_epochs=4" in r.overrides and r.eval_examples == 500
             for r in imdb)
