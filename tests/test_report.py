"""experiments/report.py: tables and the per-table sentences, from synthetic summaries."""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import report  # pylint: disable=g-import-not-at-top


def _summary(group, label, seed, accuracy, *, importance=0.5, vmask_aopc=None, gxi_aopc=None):
  faithfulness = {}
  if vmask_aopc is not None:
    faithfulness["vmask"] = {"aopc": vmask_aopc}
  if gxi_aopc is not None:
    faithfulness["gradient_x_input"] = {"aopc": gxi_aopc}
  return {"name": f"{group}/{label}/seed{seed}", "group": group, "label": label,
          "variant": "safr" if group == "lambda" else label, "seed": seed,
          "results": {"test": {"accuracy": accuracy, "importance": importance},
                      "epochs_run": 3},
          "interpretability": {"faithfulness": faithfulness}}


def _write(tmp_path, summaries):
  results = tmp_path / "results"
  results.mkdir()
  for s in summaries:
    (results / (s["name"].replace("/", "__") + ".json")).write_text(json.dumps(s))
  out = tmp_path / "RESULTS.md"
  report.write(results, out)
  return out.read_text()


def test_tables_mean_std_and_sentence_says_when_safr_costs_accuracy(tmp_path):
  text = _write(tmp_path, [
      _summary("rt_polarity", "baseline", 0, 0.80, gxi_aopc=0.5),
      _summary("rt_polarity", "baseline", 1, 0.82, gxi_aopc=0.5),
      _summary("rt_polarity", "safr", 0, 0.70, importance=0.1, vmask_aopc=0.3),
      _summary("rt_polarity", "safr", 1, 0.72, importance=0.1, vmask_aopc=0.3),
      _summary("rt_polarity", "vmask", 0, 0.79, vmask_aopc=0.2),
  ])
  assert "| baseline | 2 | 0.81 ± 0.014 |" in text
  assert "| safr | 2 | 0.71 ± 0.014 |" in text
  assert "(-0.1000): on this data SAFR costs accuracy" in text
  assert "more faithful with SAFR's losses than without (AOPC 0.300 vs 0.200" in text
  assert "still below plain gradient × input on the baseline (AOPC 0.500)" in text


def test_sentence_without_vmask_run_compares_to_gradient_x_input(tmp_path):
  text = _write(tmp_path, [
      _summary("imdb_builtin", "baseline", 0, 0.85, gxi_aopc=0.4),
      _summary("imdb_builtin", "safr", 0, 0.849, vmask_aopc=0.45, gxi_aopc=0.5),
  ])
  assert "Gradient × input is more faithful on the SAFR model than on the baseline " \
         "(AOPC 0.500 vs 0.400)" in text
  assert "SAFR keeps accuracy" in text
  assert "AOPC 0.450, above gradient × input on the baseline (0.400)" in text
  assert "no `vmask` run on this data" in text


def test_lambda_sentence_compares_each_lambda_with_the_baseline_spread(tmp_path):
  text = _write(tmp_path, [
      _summary("rt_polarity", "baseline", 0, 0.80),
      _summary("rt_polarity", "baseline", 1, 0.82),  # mean 0.81, std 0.0141
      _summary("lambda", "lambda0.1", 0, 0.79),      # within 2 std
      _summary("lambda", "lambda2.0", 0, 0.70),      # not
  ])
  assert "ranges from 0.7000 to 0.7900 over λ ∈ {0.1, 2}; the best is λ = 0.1" in text
  assert "λ ∈ {0.1} stay within two of its standard deviations" in text


def test_lambda_sentence_with_one_value_draws_no_conclusion(tmp_path):
  text = _write(tmp_path, [_summary("lambda", "lambda0.5", 0, 0.7)])
  assert "Too few λ values have finished" in text


def test_rerun_note_compares_the_repeated_command(tmp_path):
  first = _summary("rt_polarity", "safr", 0, 0.70)
  again = _summary("lambda", "lambda1.0", 0, 0.71)
  for summary, dev in ((first, 0.60), (again, 0.61)):
    summary["results"].update(git_commit="abcdef0123", dev_history=[dev])
  text = _write(tmp_path, [first, again])
  assert "(the same code). Dev accuracy after one epoch: 0.6000 vs 0.6100; " \
         "test accuracy 0.7000 vs 0.7100." in text
  assert "rewritten" not in text  # that explanation is only for differing commits
