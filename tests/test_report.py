"""experiments/report.py: intervals over seeds and examples, Holm, and the tables,
from small old- and new-format summaries written to tmp_path."""

import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from experiments import report


def _summary(group, label, seed, accuracy, *, last_epoch=None, use_vmask=None, aopc10=None,
             aopc20=None, mechanism=None, examples=None, split_examples=None,
             keep_rate=None, keep_rate_padding=None, command="", best_epoch=None,
             epochs_run=None, dev_history=None, commit="abc1234def", evaluated=None):
  """A run summary; ``aopc20``/``mechanism`` make it new-format."""
  faithfulness = {}
  for method, value in (aopc10 or {}).items():
    faithfulness.setdefault(method, {})["aopc"] = value
  for method, value in (aopc20 or {}).items():
    faithfulness.setdefault(method, {})["aopc_by_depth"] = {"10%": 0.0, "20%": value}
  test = {"accuracy": accuracy}
  if keep_rate is not None:
    test["keep_rate"] = keep_rate
  results = {"test": test, "git_commit": commit, "best_epoch": best_epoch,
             "epochs_run": epochs_run, "dev_history": dev_history}
  if last_epoch is not None:
    results["test_last_epoch"] = {"accuracy": last_epoch}
  interp = {"faithfulness": faithfulness, "examples": examples,
            "split_examples": split_examples, "keep_rate_padding": keep_rate_padding,
            "provenance": {"git_commit": evaluated or commit}}
  if mechanism is not None:
    interp["mechanism"] = mechanism
  return {"name": f"{group}/{label}/seed{seed}", "group": group, "label": label, "seed": seed,
          "command": command, "results": results, "interpretability": interp,
          "config": {"model": {"use_vmask": use_vmask}} if use_vmask is not None else {}}


def _examples(index, correct=None, faithfulness=None, mechanism=None):
  return {"run": {}, "split": "test", "index": list(index), "label": [0] * len(index),
          "correct": correct if correct is not None else [True] * len(index),
          "faithfulness": faithfulness or {}, "mechanism": mechanism or {}}


def _save(tmp_path, runs):
  """Writes (summary, examples or None) pairs as run_grid does; returns the folder."""
  results = tmp_path / "results"
  (results / "examples").mkdir(parents=True, exist_ok=True)
  for summary, examples in runs:
    name = summary["name"].replace("/", "__") + ".json"
    (results / name).write_text(json.dumps(summary))
    if examples is not None:
      (results / "examples" / name).write_text(json.dumps(examples))
  return results


def _loaded(summary, examples=None):
  return dict(summary, _examples=examples)


# --- intervals -----------------------------------------------------------------

# Two runs an arm, three shared examples. By hand:
#   A: runs [1, 2, 3] and [2, 2, 5]: m_A = (2, 3), Δ_A = 2.5, a = var(m_A)/2 = 0.5/2 = 1/4
#   B: runs [0, 1, 1] and [1, 1, 2]: m_B = (2/3, 4/3), b = (2/9)/2 = 1/9; Δ = 1.5
#   residuals of the two-way fit: A ±(0, 1/2, −1/2), σ²_A = 1/(1·2) = 1/2;
#   B ±(1/6, −1/3, 1/6), σ²_B = (1/3)/2 = 1/6
#   d_e = (1.5, 2, 4) − (0.5, 1, 1.5) = (1, 1, 2.5): var 3/4, c = (3/4 − 1/4 − 1/12)/3 = 5/36
#   SE² = 1/4 + 1/9 + 5/36 = 1/2; df = SE⁴ / ((1/4)²/1 + (1/9)²/1 + (5/36)²/2)
A = [{0: 1, 1: 2, 2: 3}, {0: 2, 1: 2, 2: 5}]
B = [{0: 0, 1: 1, 2: 1}, {0: 1, 1: 1, 2: 2}]
SE2 = 1 / 2
DF = SE2 ** 2 / (1 / 16 + 1 / 81 + (5 / 36) ** 2 / 2)


def test_paired_contrast_matches_the_hand_computation():
  e = report.paired(A, B)
  assert e.delta == pytest.approx(1.5)
  assert e.se == pytest.approx(math.sqrt(SE2))
  assert e.df == pytest.approx(DF)
  assert DF == pytest.approx(2.9589, abs=1e-4)
  half = stats.t.ppf(0.975, DF) * math.sqrt(SE2)
  assert (e.low, e.high) == pytest.approx((1.5 - half, 1.5 + half))
  assert e.p == pytest.approx(2 * stats.t.sf(1.5 / math.sqrt(SE2), DF))
  assert e.n == (2, 2) and e.examples == 3


def test_examples_are_aligned_by_index_whatever_their_order_and_gaps():
  # Order shuffled; example 3 missing from one run; example 4 null in one run:
  # only the shared examples 0-2 count, so the answer is the hand computation's.
  a = [{2: 3, 0: 1, 3: 9, 1: 2, 4: 1}, {1: 2, 4: None, 0: 2, 2: 5, 3: 7}]
  b = [{0: 0, 2: 1, 1: 1, 4: 0}, {4: 3, 3: 0, 2: 2, 1: 1, 0: 1}]
  e = report.paired(a, b)
  assert (e.delta, e.se, e.df, e.examples) == pytest.approx((1.5, math.sqrt(SE2), DF, 3))
  assert report.paired([{0: 1}, {1: 1}], [{0: 1}, {1: 1}]) is None  # nothing shared


def test_one_arm_contrast():
  # m = (2, 3): Δ = 2.5, a = 1/4; per-example means (1.5, 2, 4): var 1.75,
  # c = (1.75 − σ²_A/2)/3 = 1.5/3
  e = report.paired(A)
  c = 1.5 / 3
  assert e.delta == pytest.approx(2.5) and e.n == (2,)
  assert e.se == pytest.approx(math.sqrt(0.25 + c))
  assert e.df == pytest.approx((0.25 + c) ** 2 / (0.25 ** 2 / 1 + c ** 2 / 2))
  # seeds only, one arm: the one-sample t
  s = report.seeds_only([0.1, 0.2, 0.3])
  ref = stats.ttest_1samp([0.1, 0.2, 0.3], 0.0)
  assert s.p == pytest.approx(ref.pvalue) and s.examples is None


def test_one_run_an_arm_gives_the_difference_without_an_interval():
  e = report.paired(A[:1], B)
  assert e.delta == pytest.approx(2 - 1) and e.low is None and e.p is None
  assert report._cell(e, report.GATE) == "+1.000 (n = 1/2, n too small)"
  assert report.welch([1.0], [2.0, 3.0]) is None


def test_holm_on_known_p_values():
  # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.06, 0.04·1) = 0.06
  assert report.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
  assert report.holm([0.5, 0.9]) == [1.0, 1.0]
  assert report.holm([]) == []


def test_welch_matches_the_hand_computation_and_scipy():
  diff, low, high, df = report.welch([1, 2, 3], [2, 3, 4])
  half = 2.7764451051977934 * math.sqrt(2 / 3)  # t(0.975, 4)
  assert (diff, df) == pytest.approx((-1, 4))
  assert (low, high) == pytest.approx((-1 - half, -1 + half))
  a, b = [0.70, 0.68, 0.71, 0.69], [0.73, 0.733, 0.726]
  ref = stats.ttest_ind(a, b, equal_var=False)
  diff, low, high, df = report.welch(a, b + [None, math.nan])
  assert df == pytest.approx(ref.df)
  assert (low, high) == pytest.approx(tuple(ref.confidence_interval(0.95)))
  assert report.seeds_only(a, b).p == pytest.approx(ref.pvalue)


def _new(label, seed, x, *, group="sst2", correct=None, whole=True):
  """A new-format run of SST-2 (3 test examples) whose gate AOPC@20 % per
  example is ``x``."""
  summary = _summary(group, label, seed, 0.8, aopc20={"vmask": float(np.mean(x))},
                     examples=3, split_examples=3 if whole else 10)
  return _loaded(summary, _examples([0, 1, 2], correct,
                                    {"vmask": {"aopc@20%": list(x)}}))


def test_effect_falls_back_to_seeds_only_without_per_example_scores():
  a = [_loaded(_summary("g", "safr", k, acc, aopc20={"vmask": v}))
       for k, (acc, v) in enumerate(((0.70, 0.30), (0.72, 0.32)))]
  b = [_loaded(_summary("g", "vmask", k, acc, aopc20={"vmask": v}))
       for k, (acc, v) in enumerate(((0.75, 0.20), (0.74, 0.25), (0.76, 0.21)))]
  e = report.effect(a, b, report.GATE)
  w = report.welch([0.30, 0.32], [0.20, 0.25, 0.21])
  assert (e.delta, e.low, e.high, e.df) == pytest.approx(w) and e.examples is None
  assert report._cell(e, report.GATE).endswith("(n = 2/3, seeds only)")
  # accuracy: per example only where the whole split was scored
  whole = [_new("safr", k, [0.3, 0.2, 0.1], correct=[1, 0, 1]) for k in range(2)]
  whole += [_new("safr", 2, [0.3, 0.2, 0.1], correct=[True, True, True])]
  base = [_new("baseline", k, [0.1] * 3, correct=[True, False, False]) for k in range(2)]
  assert report.effect(whole, base, report.ACCURACY).examples == 3
  part = [_new("safr", k, [0.3] * 3, correct=[1, 0, 1], whole=False) for k in range(2)]
  assert report.effect(part, base, report.ACCURACY).examples is None
  # ... or where evaluate kept the whole split's correctness beside the subset's
  for k, run in enumerate(part):
    run["_examples"]["whole_split"] = {"correct": [1, 0, 1, 1, 0, 0, 1, 1, 1, k]}
  wide = [_new("baseline", k, [0.1] * 3, whole=False) for k in range(2)]
  for k, run in enumerate(wide):
    run["_examples"]["whole_split"] = {"correct": [1, 1, 0, 0, 0, 0, 1, 1, 0, k]}
  e = report.effect(part, wide, report.ACCURACY)
  assert e.examples == 10 and e.delta == pytest.approx(0.2) and e.low < e.delta < e.high


def test_a_mixed_contrast_uses_the_runs_that_have_the_metric():
  old = [_loaded(_summary("sst2", "safr", k, 0.7)) for k in (3, 4)]  # no AOPC@20 %
  safr = [_new("safr", k, x) for k, x in enumerate(([0.3, 0.4, 0.5], [0.35, 0.4, 0.45],
                                                    [0.3, 0.5, 0.4]))]
  vmask = [_new("vmask", k, x) for k, x in enumerate(([0.1, 0.2, 0.1], [0.2, 0.1, 0.15]))]
  e = report.effect(old + safr, vmask, report.GATE)
  assert e.n == (3, 2) and e.examples == 3
  assert e.delta == pytest.approx(report.paired(
      [dict(enumerate(s["_examples"]["faithfulness"]["vmask"]["aopc@20%"])) for s in safr],
      [dict(enumerate(s["_examples"]["faithfulness"]["vmask"]["aopc@20%"])) for s in vmask]
  ).delta)
  assert report._cell(report.effect(old, vmask, report.GATE), report.GATE) == "— (n = 0/2)"


# --- the README block ------------------------------------------------------------


def _paper_runs():
  """New-format sst2 (2 seeds, per-example files), old-format sst2_reference and
  imdb (3 seeds, capped at 3 epochs), one sst2_factors run."""
  runs = []
  rng = np.random.default_rng(0)
  for k in range(2):
    for label, acc, gate, gxi, occ, jac in (("safr", 0.75, 0.40, 0.30, 0.50, 0.20),
                                            ("vmask", 0.77, 0.20, 0.32, 0.52, 0.40),
                                            ("baseline", 0.78, None, 0.33, 0.55, None)):
      n = 40
      index = rng.permutation(n).tolist()
      correct = [i < round(acc * n) + k for i in range(n)]
      cols = {"gradient_x_input": gxi, "occlusion": occ, "attention": 0.1}
      if gate is not None:
        cols["vmask"] = gate
      noise = lambda: (0.01 * rng.standard_normal(n)).tolist()  # pylint: disable=cell-var-from-loop
      faith = {m: {"aopc@20%": [v + x for x in noise()]} for m, v in cols.items()}
      mech = {"attention_minus_random": [x - 0.1 for x in noise()]}
      if jac is not None:
        mech["topk_jaccard"] = [jac + x for x in noise()]
      summary = _summary("sst2", label, k, float(np.mean(correct)), examples=n,
                         split_examples=n, use_vmask=gate is not None,
                         aopc20={m: float(np.mean(v["aopc@20%"])) for m, v in faith.items()},
                         mechanism={m: float(np.mean(v)) for m, v in mech.items()})
      runs.append((summary, _examples(index, correct, faith, mech)))
  for k in range(3):
    for label, acc in (("safr", 0.72), ("vmask", 0.725), ("baseline", 0.707)):
      runs.append((_summary("sst2_reference", label, k, acc + 0.01 * k, examples=400,
                            split_examples=1743, keep_rate=0.2 if label != "baseline" else None,
                            keep_rate_padding=0.9 if label != "baseline" else None), None))
      runs.append((_summary("imdb", label, k, acc + 0.1 + 0.002 * k, examples=500,
                            split_examples=25000, best_epoch=3 if k else 2, epochs_run=3,
                            dev_history=[0.8, 0.82, 0.83],
                            command="python train.py --config.train.num_epochs=3"), None))
  runs.append((_summary("sst2_factors", "baseline_flax_init", 0, 0.756), None))
  return runs


def _rows(text):
  return {c[0]: c[1:] for c in ([x.strip() for x in line.strip("|").split("|")]
                                for line in text.splitlines() if line.startswith("| "))}


def test_readme_summary_question_bottom_line_and_effects(tmp_path):
  summary = report.readme_summary(_save(tmp_path, _paper_runs()))
  assert summary.startswith("**Question.** Does SAFR make explanations more faithful without "
                            "costing accuracy?\n")
  # sst2_reference has no per-example scores: seeds only
  assert re.search(r"SST-2 test accuracy, SAFR − Transformer \(points\): \+1\.3 \[[^]]+\] "
                   r"\(n = 3/3, seeds only\) under the authors' numerics, -2\.5 \[[^]]+\] "
                   r"\(n = 2/2\) padding-aware\.", summary), summary[:800]
  # the gap, then its largest factor (the only one run here: +3.9 on one seed)
  assert re.search(r"The padding-aware Transformer − the authors': [^;]+ points; its largest "
                   r"single factor, Flax initialisation: \+3\.9 \(n = 1/3, n too small\)\.",
                   summary), summary[:800]
  # the table's cells, Holm's marks included (the gate's contrast has 2 seeds an arm
  # and no example effect beyond noise: df ≈ 2, not separated after Holm)
  assert re.search(r"Gate AOPC@20 %, SST-2 padding-aware: SAFR − VMASK \+0\.19\d \[[^]]+\] "
                   r"\(n = 2/2\); SAFR − the Transformer's best post-hoc explanation "
                   r"-0\.15\d \[[^]]+\]\* \(n = 2/2\) \(vs occlusion\)\.", summary), summary[:800]
  rows = _rows(summary)
  assert rows["effect (A − B)"] == ["SST-2, padding-aware", "SST-2, authors' numerics",
                                    "IMDB, padding-aware", "IMDB, authors' numerics"]
  gate = rows["gate AOPC@20 %: SAFR − VMASK"]
  assert re.fullmatch(r"\+0\.19\d \[\+0\.\d{3}, \+0\.\d{3}\] \(n = 2/2\)", gate[0]), gate
  assert gate[1:] == ["— (n = 0/0)", "— (n = 0/0)", "not run"]
  best = rows["gate AOPC@20 %: SAFR − baseline's best post-hoc explanation"][0]
  assert best.startswith("-0.15") and best.endswith("(vs occlusion)")  # 0.40 − 0.55
  assert rows["top-4 token neuron overlap (Jaccard): SAFR − VMASK"][0].startswith("-0.20")
  one_arm = rows["attention-pair − random-pair neuron overlap, SAFR (L_Inter aims > 0)"]
  assert one_arm[0].startswith("-0.10") and "(n = 2)" in one_arm[0]
  assert one_arm[1] == "— (n = 0)"
  accuracy = rows["accuracy (points): SAFR − baseline"]
  assert accuracy[0].endswith("(n = 2/2)")  # whole split scored: over examples too
  assert accuracy[1].endswith("(n = 3/3, seeds only)")
  # the mark is exactly where Holm's adjusted p is below 5 %
  tested = sum("]" in cell for name, *_ in report.EFFECT_ROWS for cell in rows[name])
  assert f"after Holm over the table's {tested} intervals" in summary


def test_marks_are_holm_over_the_tables_intervals(tmp_path, monkeypatch):
  pvalues = iter([0.001, 0.01, 0.02, 0.04, 0.3, 0.5, 0.6, 0.7])
  def fake(a_runs, b_runs, metric_a, metric_b=None):
    del b_runs, metric_a, metric_b
    if not a_runs or a_runs[0]["group"] != "sst2":
      return report.Effect(None, (0, 0))
    return report.Effect(0.1, (3, 3), 10, 0.01, 5.0, 0.05, 0.15, next(pvalues))
  monkeypatch.setattr(report, "effect", fake)
  groups = report.load(_save(tmp_path, [(_summary("sst2", l, 0, 0.7), None)
                                        for l in ("safr", "vmask")]))
  table = report.effects_table(groups)
  # raw p < 0.05 in four cells; Holm over 8 keeps 0.001 · 8 only (0.01 · 7 > 0.05)
  assert table.count("]*") == 1 and "Holm over the table's 8 intervals" in table
  assert _rows(table)["accuracy (points): SAFR − baseline"][0] == "+10.0 [+5.0, +15.0]* (n = 3/3)"


def test_caveats_factors_and_padding(tmp_path):
  summary = report.readme_summary(_save(tmp_path, _paper_runs()))
  assert ("IMDB runs (`imdb`) are capped at 3 epochs (`--config.train.num_epochs`); the best "
          "dev epoch is the last, so the cap binds, in 6 of 9 runs.") in summary
  assert ("Examples scored for interpretability: `sst2` whole test split; `sst2_reference` "
          "400 of 1,743, older evaluation; `imdb` 500 of 25,000, older evaluation; "
          "`imdb_reference` not run. The older evaluation has no AOPC@20 % or mechanism "
          "numbers (cells —).") in summary
  assert ("Seeds per column (safr / baseline / vmask): `sst2` 2/2/2; `sst2_reference` 3/3/3; "
          "`imdb` 3/3/3; `imdb_reference` 0/0/0.") in summary
  assert ("Per-example scores: 6 of 24 runs; an interval covers test examples only where "
          "every run in it has them. 0 runs were retrained") in summary
  assert len(re.findall(r"^- ", summary, re.M)) <= 5
  rows = _rows(summary)
  assert rows["the authors' baseline (`sst2_reference/baseline`)"][:2] == ["3", "71.7 ± 1.0"]
  assert rows["+ Flax initialisation (`sst2_factors/baseline_flax_init`)"] == [
      "1", "75.6", "+3.9 (n = 1/3, n too small)"]
  assert rows["+ length-bucketed batches (`sst2_factors/baseline_bucketed`)"] == [
      "0", "not run", "not run"]
  assert rows["the padding-aware baseline (`sst2/baseline`)"][2].endswith("seeds only)")
  assert not any("frozen" in r or "lr16" in r for r in rows)  # probe rows appear with runs


def test_a_probe_row_is_shown_but_never_named_the_largest_factor(tmp_path):
  runs = _paper_runs() + [(_summary("sst2_factors", "baseline_flax_embedding_frozen", 0, 0.9),
                           None)]
  summary = report.readme_summary(_save(tmp_path, runs))
  row = _rows(summary)["Flax's embedding only, frozen at its draw (`train.frozen`) "
                       "(`sst2_factors/baseline_flax_embedding_frozen`)"]
  assert row == ["1", "90.0", "+18.3 (n = 1/3, n too small)"]
  assert "its largest single factor, Flax initialisation: +3.9" in summary


def test_three_seeds_show_each_padding_value(tmp_path):
  summary = report.readme_summary(_save(tmp_path, _paper_runs()))
  rows = _rows(summary)
  # three seeds: each value shown (VMASK's gate on padding is bimodal over seeds)
  assert rows["`sst2_reference/vmask`"] == [
      "3", "0.200 ± 0.000", "0.900 ± 0.000 (n = 3: 0.9000, 0.9000, 0.9000)"]


def test_no_generated_sentence_is_over_40_words(tmp_path):
  summary = report.readme_summary(_save(tmp_path, _paper_runs()))
  prose = " ".join(l for l in summary.splitlines() if not l.startswith("|"))
  sentences = re.split(r"(?<=[.)])\s+(?=[A-Z*\"\[Δ-])", prose)
  assert max(len(s.split()) for s in sentences) <= 40


def test_old_format_runs_only(tmp_path):
  runs = [(_summary("sst2", label, k, acc + 0.01 * k), None)
          for k in range(2) for label, acc in (("safr", 0.74), ("baseline", 0.78))]
  rows = _rows(report.readme_summary(_save(tmp_path, runs)))
  assert rows["accuracy (points): SAFR − baseline"][0] == (
      "-4.0 [-7.0, -1.0]* (n = 2/2, seeds only)")  # se 0.0071, df 2
  assert rows["accuracy (points): VMASK − baseline"][0] == "— (n = 0/2)"
  assert rows["gate AOPC@20 %: SAFR − VMASK"][:2] == ["— (n = 0/0)", "not run"]


# --- docs/RESULTS.md ------------------------------------------------------------


def test_results_tables_are_fixed_decimals_per_group(tmp_path):
  results = _save(tmp_path, _paper_runs() + [
      (_summary("rt_polarity", "safr", 0, 0.7, aopc10={"vmask": 49876.5}), None)])
  out = tmp_path / "docs" / "RESULTS.md"
  report.write(results, out)
  text = out.read_text()
  assert text.index("## SST-2 (`sst_treebank`)") < text.index("# Stand-in results: not SST-2")
  assert "e+0" not in text and "49876.500" in text
  assert "| safr | 2 | 76.25 ± 1.77 | — |" in text  # accuracy (%), best-dev and last epoch
  assert "| safr | 2 | 0.399 ± 0.000 | 0.101 ± 0.000 |" in text  # AOPC@20 %
  # dev curves of the capped IMDB runs, and the commits
  assert "| safr | 1 | 80.0, 82.0, 83.0 | 3 | 3 | 3 | no |" in text
  assert "| `sst2` | 6 | abc1234 (6) | abc1234 (6) |" in text
  assert report.readme_summary(results, docs="") in text


def test_committed_plots_beside_the_report_are_linked(tmp_path):
  docs = tmp_path / "docs"
  (docs / "results" / "rt_polarity").mkdir(parents=True)
  (docs / "results" / "rt_polarity" / "comparison.png").write_bytes(b"png")
  results = _save(tmp_path, [(_summary("rt_polarity", "safr", 0, 0.7), None)])
  report.write(results, docs / "RESULTS.md", compare_dir=tmp_path / "nothing")
  text = (docs / "RESULTS.md").read_text()
  assert "[`results/rt_polarity/comparison.md`](results/rt_polarity/comparison.md)" in text
  assert "](results/rt_polarity/comparison.png)" in text


def test_readme_block_is_rewritten_between_its_markers_only(tmp_path):
  results = _save(tmp_path, [(_summary("sst2", "safr", 0, 0.7), None)])
  readme = tmp_path / "README.md"
  readme.write_text(f"# top\n\n{report.README_BEGIN}\nold table\n{report.README_END}\n\n## after\n")
  assert report.update_readme(readme, results)
  text = readme.read_text()
  assert "old table" not in text and text.startswith("# top\n") and text.endswith("## after\n")
  assert report.readme_summary(results) in text
  plain = tmp_path / "PLAIN.md"
  plain.write_text("no markers\n")
  assert not report.update_readme(plain, results)
  assert plain.read_text() == "no markers\n"


# --- the frontier (issue #34) --------------------------------------------------


def _frontier_runs(with_winner):
  """Seeds-only runs: baseline 80 %, SAFR 75 % (gate 0.30), VMASK 78 % (0.10), a
  λ row at 79.8 % (0.35) when ``with_winner`` else 77 %, and an authors'-numerics
  row that beats everything but must be left out (another baseline)."""
  rows = [("sst2", "baseline", 0.80, None), ("sst2", "safr", 0.75, 0.30),
          ("sst2", "vmask", 0.78, 0.10),
          ("sst2_lambda", "joint0.1", 0.798 if with_winner else 0.77, 0.35),
          ("sst2_lambda", "reference_joint0.1", 0.81, 0.9)]
  return [(_summary(g, l, k, acc + 0.002 * k, use_vmask=gate is not None,
                    aopc20=None if gate is None else {"vmask": gate + 0.01 * k}), None)
          for g, l, acc, gate in rows for k in range(3)]


@pytest.mark.parametrize("with_winner", [True, False])
def test_frontier_answer_and_figure(tmp_path, with_winner):
  from experiments import frontier  # pylint: disable=g-import-not-at-top
  groups = report.load(_save(tmp_path, _frontier_runs(with_winner)))
  labels = [p["label"] for p in frontier.points(groups)]
  assert sorted(labels) == ["joint0.1", "safr (λ=1)", "vmask"]
  # the figure's grey path joins the joint-λ points, SAFR's own at λ = 1
  assert {p["label"]: frontier._joint_lambda(p) for p in frontier.points(groups)} == {
      "joint0.1": 0.1, "safr (λ=1)": 1.0, "vmask": None}
  text = frontier.answer(groups)
  if with_winner:  # 79.8 − 80 = −0.2 points, gate 0.36 ≥ SAFR's 0.31
    assert text.startswith("**Frontier.** Yes: joint0.1 (n = 3), accuracy -0.2 [")
  else:  # joint0.1 is 3 points down: the closest with a gate ≥ SAFR's is joint0.1 still;
    # VMASK is the most accurate (−2.0 points) but its gate is far below SAFR's
    assert text.startswith("**Frontier.** No: by point estimate, none of the 2 other settings")
    assert "Closest: joint0.1 (n = 3), accuracy -3.0 [" in text
    assert "Most accurate: vmask (n = 3), accuracy -2.0 [" in text
  assert "(SAFR λ = 1: 0.310, n = 3)" in text
  png = frontier.write_figure(groups, tmp_path / "f.png")
  assert png.read_bytes()[:4] == b"\x89PNG"
  report.write(_save(tmp_path, _frontier_runs(with_winner)), tmp_path / "docs" / "RESULTS.md")
  assert "![accuracy vs the gate's AOPC](results/frontier_sst2.png)" in (
      tmp_path / "docs" / "RESULTS.md").read_text()
  assert (tmp_path / "docs" / "results" / "frontier_sst2.png").exists()


def test_frontier_table_rows_most_accurate_first(tmp_path):
  groups = report.load(_save(tmp_path, _frontier_runs(with_winner=True)))
  rows = _rows(report.frontier_table(groups))
  assert list(rows)[1:] == ["joint0.1", "vmask", "safr (λ=1)"]  # 79.8, 78, 75 %
  assert rows["joint0.1"][0] == "3" and rows["joint0.1"][1].startswith("-0.2 [")
  # gates 0.35/0.36/0.37 vs 0.30/0.31/0.32: Welch, df 4, ±2.776 · 0.01 · √(2/3) = ±0.023
  assert rows["joint0.1"][2:4] == ["0.360", "+0.050 [+0.027, +0.073] (n = 3/3, seeds only)"]
  assert rows["safr (λ=1)"][3] == "(the reference)"
  assert rows["vmask"][4] == "—"  # the fixture saves no keep-probability


def test_keep_line_is_spearman_over_the_settings(tmp_path):
  from experiments import frontier  # pylint: disable=g-import-not-at-top
  # gates 0.30 / 0.10 / 0.35 / 0.20 for keep 0.2 / 0.6 / 0.1 / 0.4: ρ(keep, gate) = −1;
  # accuracies 75 / 78 / 79.8 / 77 %: ranks 1, 3, 4, 2 against keep's 2, 4, 1, 3: ρ = −0.2
  rows = [("sst2", "baseline", 0.80, None, None), ("sst2", "safr", 0.75, 0.30, 0.2),
          ("sst2", "vmask", 0.78, 0.10, 0.6), ("sst2_lambda", "joint0.1", 0.798, 0.35, 0.1),
          ("sst2_lambda", "joint0.3", 0.77, 0.20, 0.4)]
  runs = [(_summary(g, l, k, acc, use_vmask=gate is not None, keep_rate=keep,
                    aopc20=None if gate is None else {"vmask": gate}), None)
          for g, l, acc, gate, keep in rows for k in range(2)]
  line = frontier.keep_line(report.load(_save(tmp_path, runs)))
  assert line == ("Over these 4 settings, Spearman ρ of the gate's mean keep-probability with "
                  "its AOPC@20 %: -1.00; with accuracy: -0.20.")


def test_the_cap_table_appears_once_early_stopping_has_run(tmp_path):
  runs = _paper_runs()
  assert "Does IMDB's 3-epoch cap" not in report.readme_summary(_save(tmp_path / "a", runs))
  for k in range(2):
    for label, acc, best in (("safr", 0.84, 4), ("baseline", 0.85 + 0.01 * k, 6)):
      runs.append((_summary("imdb_early", label, k, acc, best_epoch=best, epochs_run=best + 3,
                            aopc20={"vmask": 0.3} if label == "safr" else
                            {"occlusion": 0.5, "gradient_x_input": 0.2}), None))
  rows = _rows(report.readme_summary(_save(tmp_path / "b", runs)))
  assert rows["3-epoch cap (`imdb`)"][:2] == ["3/3", "2–3"]
  early = rows["early stopping (`imdb_early`)"]
  assert early[:2] == ["2/2", "4–6"]
  assert early[2].startswith("-1.5 [") and early[2].endswith("(n = 2/2, seeds only)")
  assert early[3] == "-0.200 [-0.200, -0.200] (n = 2/2, seeds only) (vs occlusion)"
