"""experiments/report.py: Welch intervals, tables and sentences, from synthetic summaries."""

import json
import math
import re

import pytest
from scipy import stats

from experiments import report


def _summary(group, label, seed, accuracy, *, importance=0.5, vmask_aopc=None, gxi_aopc=None,
             last_epoch=None, keep_rate=None, keep_above_half=None, use_vmask=None,
             commit=None, sharing=None, sharing_among=None):
  """A run summary; ``last_epoch``/``keep_above_half``/``sharing_among`` given
  make it new-format (the fields old runs lack)."""
  faithfulness = {}
  if vmask_aopc is not None:
    faithfulness["vmask"] = {"aopc": vmask_aopc}
  if gxi_aopc is not None:
    faithfulness["gradient_x_input"] = {"aopc": gxi_aopc}
  test = {"accuracy": accuracy, "importance": importance}
  if keep_rate is not None:
    test["keep_rate"] = keep_rate
  if keep_above_half is not None:
    test["keep_above_half"] = keep_above_half
  results = {"test": test, "epochs_run": 3}
  if last_epoch is not None:
    results["test_last_epoch"] = {"accuracy": last_epoch}
  if commit is not None:
    results["git_commit"] = commit
  embeddings = {}
  if sharing is not None:
    embeddings["important"] = {"sharing": sharing}
  if sharing_among is not None:
    embeddings["important_among_important"] = {"sharing": sharing_among}
  summary = {"name": f"{group}/{label}/seed{seed}", "group": group, "label": label,
             "variant": "safr" if group == "lambda" else label, "seed": seed,
             "results": results,
             "interpretability": {"faithfulness": faithfulness,
                                  "superposition": {"embeddings": embeddings}}}
  if use_vmask is not None:
    summary["config"] = {"model": {"use_vmask": use_vmask}}
  return summary


def _write(tmp_path, summaries):
  results = tmp_path / "results"
  results.mkdir()
  for s in summaries:
    (results / (s["name"].replace("/", "__") + ".json")).write_text(json.dumps(s))
  out = tmp_path / "RESULTS.md"
  report.write(results, out)
  return out.read_text()


def _row(text, label, table=0):
  """The cells of ``label``'s row in the group's ``table``-th table."""
  rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
  return [c.strip() for c in rows[table].strip("|").split("|")]


def _header(text, table=0):
  heads = [line for line in text.splitlines() if line.startswith("| run | n |")]
  return [c.strip() for c in heads[table].strip("|").split("|")]


def _sentences(section):
  return re.findall(r"[.!?](?=\s|$)", section)


# --- Welch -------------------------------------------------------------------


def test_welch_matches_the_hand_computation():
  # mean diff −1; each variance 1, so se² = 1/3 + 1/3, df = (2/3)² / (2 · (1/3)² / 2) = 4;
  # t(0.975, 4) = 2.776445105...
  diff, low, high, df = report.welch([1, 2, 3], [2, 3, 4])
  half = 2.7764451051977934 * math.sqrt(2 / 3)
  assert diff == pytest.approx(-1)
  assert df == pytest.approx(4)
  assert (low, high) == pytest.approx((-1 - half, -1 + half))
  assert (low, high) == pytest.approx((-3.266957935527519, 1.2669579355275191))


def test_welch_unequal_variances_agree_with_scipy():
  a, b = [0.70, 0.68, 0.71, 0.69], [0.73, 0.733, 0.726]
  diff, low, high, df = report.welch(a, b)
  ref = stats.ttest_ind(a, b, equal_var=False)
  assert df == pytest.approx(ref.df)
  assert (low, high) == pytest.approx(tuple(ref.confidence_interval(0.95)))
  assert diff == pytest.approx(sum(a) / 4 - sum(b) / 3)


def test_welch_needs_two_values_a_side_and_drops_missing():
  assert report.welch([1.0], [2.0, 3.0]) is None
  assert report.welch([1.0, None, math.nan], [2.0, 3.0]) is None
  assert report.welch([1, 2, 3, None], [2, 3, 4])[0] == pytest.approx(-1)


def test_compare_says_when_the_seeds_do_not_separate_two_variants():
  assert report.compare("A", "B", [1, 2, 3], [2, 3, 4]) == (
      "A − B = -1.0000 [-3.2670, +1.2670] (Welch 95 %, n = 3/3), not separated by these seeds")
  separated = report.compare("A", "B", [1.0, 1.1, 1.2], [2.0, 2.1, 2.2])
  assert separated.startswith("A − B = -1.0000 [")
  assert "(Welch 95 %, n = 3/3)" in separated and "not separated" not in separated
  assert report.compare("A", "B", [0.7], [0.75, 0.76]) == (
      "A − B = -0.0550 (n = 1/2: n too small for an interval)")
  assert "not run yet" in report.compare("A", "B", [0.7], [])


# --- tables ------------------------------------------------------------------


def test_tables_mean_std_and_new_columns_dash_for_old_runs(tmp_path):
  text = _write(tmp_path, [
      # old format: no last epoch, no keep_above_half, no among-important sharing
      _summary("rt_polarity", "baseline", 0, 0.80, keep_rate=1.0, use_vmask=False),
      _summary("rt_polarity", "baseline", 1, 0.82, keep_rate=1.0, use_vmask=False),
      _summary("rt_polarity", "safr", 0, 0.70, keep_rate=0.25, sharing=10.0),
      # new format
      _summary("reference", "safr", 0, 0.69, last_epoch=0.68, keep_rate=0.2,
               keep_above_half=0.125, sharing=1100.0, sharing_among=40.0),
      _summary("reference", "safr", 1, 0.71, last_epoch=0.70, keep_rate=0.2,
               keep_above_half=0.135, sharing=1200.0, sharing_among=42.0),
  ])
  head = _header(text)
  assert "VMASK keep-rate" not in text
  assert head[2:8] == ["test acc., best-dev checkpoint", "test acc., last epoch", "L_Imp (test)",
                       "L_Inter (test)", "mean keep-prob.", "share p > 0.5"]
  interp = _header(text, 1)
  i = interp.index("sharing, important tokens, pooled over all tokens")
  assert interp[i + 1] == "sharing, important among important"
  ref = text.index("## `rt_polarity`, the authors' numerics")
  pad = text.index("## `rt_polarity` (the offline")
  assert ref < pad  # the reproduction groups come first
  new, old = text[ref:pad], text[pad:]
  # format_mean_std(values, 4, std_digits=2, notation="g")
  assert _row(new, "safr")[:6] == ["safr", "2", "0.7 ± 0.014", "0.69 ± 0.014", "0.5 ± 0",
                                   "—"]
  assert _row(new, "safr")[6:8] == ["0.2 ± 0", "0.13 ± 0.0071"]
  assert _row(new, "safr", 1)[2:4] == ["1150 ± 71", "41 ± 1.4"]
  assert _row(old, "baseline")[:4] == ["baseline", "2", "0.81 ± 0.014", "—"]
  assert _row(old, "baseline")[6:8] == ["—", "—"]  # no VMASK: no gate, not "1"
  assert _row(old, "safr")[6:8] == ["0.25", "—"]    # mean keep-prob. only
  assert _row(old, "safr", 1)[2:4] == ["10", "—"]


# --- per-group comparisons ----------------------------------------------------


def test_group_comparisons_use_welch_intervals(tmp_path):
  text = _write(tmp_path, [
      _summary("rt_polarity", "baseline", 0, 0.80, gxi_aopc=0.50),
      _summary("rt_polarity", "baseline", 1, 0.82, gxi_aopc=0.52),
      _summary("rt_polarity", "safr", 0, 0.70, importance=0.1, vmask_aopc=0.30),
      _summary("rt_polarity", "safr", 1, 0.72, importance=0.1, vmask_aopc=0.32),
      _summary("rt_polarity", "vmask", 0, 0.79, vmask_aopc=0.20),
      _summary("rt_polarity", "vmask", 1, 0.80, vmask_aopc=0.30),
  ])
  ci = report.welch([0.70, 0.72], [0.80, 0.82])
  assert ("- Test accuracy, best-dev checkpoint: safr − baseline = -0.1000 "
          f"[{ci[1]:+.4f}, {ci[2]:+.4f}] (Welch 95 %, n = 2/2).") in text
  # 0.31 vs 0.25 with these spreads: the interval spans 0
  assert ("AOPC of the VMASK explanation, what SAFR's losses add to VMASK: safr − vmask = "
          "+0.060") in text
  assert "(Welch 95 %, n = 2/2), not separated by these seeds." in text
  # the fixed −0.01 verdict is gone
  group = text.split("## `rt_polarity` (")[1]
  assert "keeps accuracy" not in group and "costs accuracy" not in group


def test_group_comparisons_with_one_seed_draw_no_interval(tmp_path):
  text = _write(tmp_path, [
      _summary("imdb_builtin", "baseline", 0, 0.85, gxi_aopc=0.4),
      _summary("imdb_builtin", "safr", 0, 0.849, vmask_aopc=0.45, gxi_aopc=0.5),
  ])
  assert ("safr − baseline = -0.0010 (n = 1/1: n too small for an interval)") in text
  assert "No `vmask` run on this data" in text
  assert "[" not in text.split("## `imdb_builtin`")[1].split("Differences of means")[1]


def test_lambda_sentence_is_descriptive_with_one_seed_each(tmp_path):
  text = _write(tmp_path, [
      _summary("rt_polarity", "baseline", 0, 0.80),
      _summary("rt_polarity", "baseline", 1, 0.82),
      _summary("lambda", "lambda0.1", 0, 0.81),      # within the baseline seeds' range
      _summary("lambda", "lambda2.0", 0, 0.70),      # below it
  ])
  assert "One seed per λ, so no interval is possible" in text
  assert "ranges from 0.7000 to 0.8100 over λ ∈ {0.1, 2} (highest at λ = 0.1)" in text
  assert "(0.8000–0.8200), λ ∈ {2} lie below, λ ∈ {0.1} lie within that range" in text
  assert "is not a test" in text


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


def test_commits_are_listed_per_group(tmp_path):
  text = _write(tmp_path, [
      _summary("reference", "safr", 0, 0.7, commit="577dbc6aaaa"),
      _summary("reference", "baseline", 0, 0.7, commit="577dbc6aaaa"),
      _summary("rt_polarity", "safr", 0, 0.7, commit="1111111bbbb"),
      _summary("rt_polarity", "baseline", 0, 0.7, commit="2222222cccc"),
  ])
  assert "`reference`: pinned commit 577dbc6 (2 runs)" in text
  assert "`rt_polarity`: 2222222 (1 run), 1111111 (1 run)" in text  # in file order
  assert "later commit's `safr_jax.evaluate`" not in text  # all evaluated when trained


def test_runs_evaluated_at_a_later_commit_are_listed(tmp_path):
  def evaluated(summary, commit):
    summary["interpretability"]["provenance"] = {"git_commit": commit}
    return summary
  text = _write(tmp_path, [
      evaluated(_summary("reference", "safr", 0, 0.7, commit="577dbc6aaaa"), "9999999dddd"),
      evaluated(_summary("reference", "safr", 1, 0.7, commit="577dbc6aaaa"), "9999999dddd"),
      evaluated(_summary("reference", "baseline", 0, 0.7, commit="577dbc6aaaa"), "577dbc6aaaa"),
      _summary("rt_polarity", "safr", 0, 0.7, commit="1111111bbbb"),
  ])
  line = next(l for l in text.splitlines() if l.startswith("Commits the runs were trained"))
  assert "`reference`: pinned commit 577dbc6 (3 runs)" in line
  tail = line.split("later commit's `safr_jax.evaluate`")[1]
  assert "`reference`: 9999999 (2 runs)" in tail
  assert "577dbc6" not in tail and "rt_polarity" not in tail  # evaluated when trained


# --- "Does this reproduce SAFR?" ---------------------------------------------


def _reference_runs():
  runs = []
  for seed, (s, b) in enumerate(((0.60, 0.72), (0.62, 0.73), (0.61, 0.74))):
    runs.append(_summary("reference", "safr", seed, s, last_epoch=s + 0.01, importance=0.2,
                         vmask_aopc=0.30 + 0.01 * seed))
    runs.append(_summary("reference", "baseline", seed, b, last_epoch=b))
    runs.append(_summary("reference", "vmask", seed, 0.70, importance=0.6,
                         vmask_aopc=0.20 + 0.01 * seed))
  return runs


def test_answer_without_reproduction_runs_says_not_run_yet(tmp_path):
  text = _write(tmp_path, [
      _summary("rt_polarity", "baseline", 0, 0.80), _summary("rt_polarity", "baseline", 1, 0.82),
      _summary("rt_polarity", "safr", 0, 0.70), _summary("rt_polarity", "safr", 1, 0.72),
  ])
  # the stand-in question comes under the stand-in heading, after the paper's
  standin = text.index(report.STANDIN_TITLE)
  assert text.index(report.STANDIN_QUESTION) == standin + len(report.STANDIN_TITLE) + 1
  section = report.answer_section(text)
  assert len(_sentences(section)) == 3
  lines = section.splitlines()
  assert len(lines) == 3 and all("not run yet" in line for line in lines)
  assert "0 seeds of the baseline have finished" in lines[0]
  # the gap safr_ib would have to close is still given, with its interval
  assert "the gap to close is `rt_polarity/safr` − `rt_polarity/baseline` = -0.1000 [" in lines[2]


def test_answer_with_one_seed_says_no_interval_yet(tmp_path):
  text = _write(tmp_path, [_summary("reference", "safr", 0, 0.69, last_epoch=0.68),
                           _summary("reference", "baseline", 0, 0.73, last_epoch=0.72)])
  section = report.answer_section(text)
  assert len(_sentences(section)) == 3
  assert ("only 1 seed of SAFR and 1 seed of the plain Transformer have finished, so no "
          "interval is possible yet: test accuracy is 0.6900 vs 0.7300 with the best-dev "
          "checkpoint and 0.6800 vs 0.7200 with the last epoch's weights") in section


def test_answer_with_reference_and_bottleneck_runs_gives_welch_intervals(tmp_path):
  ib = [_summary("bottleneck", "safr_ib", k, a) for k, a in enumerate((0.71, 0.73, 0.72))]
  base = [_summary("rt_polarity", "baseline", k, a) for k, a in enumerate((0.72, 0.73, 0.725))]
  safr = [_summary("rt_polarity", "safr", k, a) for k, a in enumerate((0.69, 0.68, 0.70))]
  text = _write(tmp_path, _reference_runs() + ib + base + safr)
  section = report.answer_section(text)
  assert len(_sentences(section)) == 3
  first, second, third = section.splitlines()
  best = report.welch([0.60, 0.62, 0.61], [0.72, 0.73, 0.74])
  assert (f"SAFR − baseline = -0.1200 [{best[1]:+.4f}, {best[2]:+.4f}] (Welch 95 %, n = 3/3) "
          "with the best-dev checkpoint") in first
  assert "does not reproduce here" in first
  assert "SAFR − vmask = -0.4000" in second and "more faithful than VMASK alone" in second
  assert "`safr_ib` − `rt_polarity/baseline` = -0.0050 [" in third
  assert "not separated by these seeds" in third
  assert "the gap may be closed but is not shown to be" in third
  assert "does not close the gap" not in third
  assert "(without the bottleneck: `rt_polarity/safr` − `rt_polarity/baseline` = -0.0350 [" \
      in third


def test_answer_reports_sharing_among_important_tokens_when_measured(tmp_path):
  runs = _reference_runs()
  for r in runs:  # SAFR's important tokens share far less than VMASK alone's
    r["interpretability"]["superposition"]["embeddings"]["important_among_important"] = {
        "sharing": {"safr": 10.0, "vmask": 40.0}.get(r["label"], 0.0) + r["seed"]}
  second = report.answer_section(_write(tmp_path, runs)).splitlines()[1]
  assert ("sharing among important tokens (padding excluded) gives SAFR − vmask = -30.00 ["
          in second)
  assert "so SAFR's losses lower the sharing among important tokens, as designed, and " \
      "SAFR's losses make the gate's own explanation more faithful" in second
  # without the metric (runs evaluated before it existed) the sentence leaves it out
  (tmp_path / "old").mkdir()
  plain = report.answer_section(_write(tmp_path / "old", _reference_runs())).splitlines()[1]
  assert "sharing among important" not in plain
  assert "so SAFR's losses make the gate's own explanation more faithful" in plain


def test_reference_group_compares_each_variant_with_its_padding_aware_runs(tmp_path):
  padding_aware = [_summary("rt_polarity", l, k, a + 0.01 * k)
                   for l, a in (("baseline", 0.80), ("vmask", 0.78), ("safr", 0.62))
                   for k in range(3)]
  text = _write(tmp_path, _reference_runs() + padding_aware)
  bullet = next(line for line in text.splitlines()
                if line.startswith("- Each variant under the authors' numerics"))
  assert "`reference/baseline` − `rt_polarity/baseline` = -0.0800 [" in bullet
  assert "`reference/vmask` − `rt_polarity/vmask` = -0.0900 [" in bullet
  assert ("`reference/safr` − `rt_polarity/safr` = -0.0200 [" in bullet
          and bullet.endswith("not separated by these seeds."))
  # without padding-aware runs there is nothing to set them against
  (tmp_path / "alone").mkdir()
  assert "- Each variant under" not in _write(tmp_path / "alone", _reference_runs())


def test_answer_when_seeds_do_not_separate_does_not_claim_a_reproduction(tmp_path):
  runs = [_summary("reference", "safr", k, a, last_epoch=a)
          for k, a in enumerate((0.70, 0.74, 0.72))]
  runs += [_summary("reference", "baseline", k, a, last_epoch=a)
           for k, a in enumerate((0.71, 0.73, 0.725))]
  first = report.answer_section(_write(tmp_path, runs)).splitlines()[0]
  assert "not separated by these seeds" in first
  assert "consistent with the paper's claim but does not confirm it" in first
  assert "does not reproduce" not in first


def test_answer_says_when_the_bottleneck_does_not_close_the_gap(tmp_path):
  runs = [_summary("bottleneck", "safr_ib", k, a) for k, a in enumerate((0.69, 0.70, 0.695))]
  runs += [_summary("rt_polarity", "baseline", k, a) for k, a in enumerate((0.72, 0.73, 0.725))]
  third = report.answer_section(_write(tmp_path, runs)).splitlines()[2]
  assert "`safr_ib` − `rt_polarity/baseline` = -0.0300 [" in third
  assert "so the bottleneck does not close the gap." in third
  assert "without the bottleneck" not in third  # no rt_polarity/safr run to quote


# --- init × padding ----------------------------------------------------------


def test_init_padding_two_by_two_takes_torch_counted_from_reference(tmp_path):
  text = _write(tmp_path, [
      _summary("reference", "safr", 0, 0.6964, last_epoch=0.6900),
      _summary("reference", "safr", 1, 0.7100, last_epoch=0.7000),  # not seed 0: not a cell
      _summary("init_padding", "flax_init_counted", 0, 0.6800, last_epoch=0.6700),
      _summary("init_padding", "flax_init_ignored", 0, 0.7022),
  ])
  table = text.split("| init \\ padding | ignored | counted |\n|---|---|---|\n")[1]
  assert table.splitlines()[:2] == [
      "| flax | 0.7022 | 0.6800 (0.6700) |",
      "| torch | not run yet | 0.6964 (0.6900) |",
  ]
  assert "The torch × counted cell is `reference/safr/seed0`" in text
  assert "One seed per cell, so no interval is possible" in text


def test_batching_group_compares_bucketed_with_random(tmp_path):
  text = _write(tmp_path, [
      _summary("batching", "safr_random", 0, 0.74, vmask_aopc=0.20, last_epoch=0.73),
      _summary("batching", "safr_random", 1, 0.76, vmask_aopc=0.22, last_epoch=0.75),
      _summary("batching", "safr_bucketed", 0, 0.75, vmask_aopc=0.21, last_epoch=0.70),
      _summary("batching", "safr_bucketed", 1, 0.77, vmask_aopc=0.23, last_epoch=0.72),
  ])
  section = text.split("length-bucketed against random")[1]
  ci = report.welch([0.75, 0.77], [0.74, 0.76])
  assert ("- Test accuracy, best-dev checkpoint: bucketed − random = +0.0100 "
          f"[{ci[1]:+.4f}, {ci[2]:+.4f}] (Welch 95 %, n = 2/2), not separated by these "
          "seeds.") in section
  assert "- Test accuracy, last epoch: bucketed − random = -0.0300" in section
  assert section.index("| safr_random |") < section.index("| safr_bucketed |")


def test_sharing_among_important_tokens_is_compared_with_an_interval(tmp_path):
  runs = []
  for seed in range(3):
    runs.append(_summary("bottleneck", "safr_ib", seed, 0.7, sharing_among=10.0 + seed))
    runs.append(_summary("bottleneck", "vmask_ib", seed, 0.7, sharing_among=30.0 + 2 * seed))
    runs.append(_summary("rt_polarity", "safr", seed, 0.7, sharing_among=5.0 + seed))
    runs.append(_summary("rt_polarity", "vmask", seed, 0.7, sharing_among=5.0 + seed))
    runs.append(_summary("rt_polarity", "baseline", seed, 0.7))
  text = _write(tmp_path, runs)
  diff, low, high, _ = report.welch([10, 11, 12], [30, 32, 34])
  assert (f"- Sharing among important tokens (embeddings; L_Imp lowers it): `safr_ib` − "
          f"`vmask_ib` = {diff:+.2f} [{low:+.2f}, {high:+.2f}] (Welch 95 %, n = 3/3).") in text
  assert ("- Sharing among important tokens (embeddings; L_Imp lowers it): safr − vmask = "
          "+0.00 [") in text and "not separated by these seeds" in text


def test_wall_time_is_never_below_the_training_time_over_every_attempt(tmp_path):
  recorded = _summary("rt_polarity", "safr", 0, 0.7)
  recorded["grid_wall_time_s"] = 600.0
  recorded["results"]["train_seconds"] = 120.0
  lost = _summary("rt_polarity", "vmask", 0, 0.7)  # an attempt killed with the grid
  lost["grid_wall_time_s"] = 60.0
  lost["results"]["train_seconds"] = 180.0
  text = _write(tmp_path, [recorded, lost])
  column = _header(text).index("wall time / run (min)")
  assert _row(text, "safr")[column] == "10"
  assert _row(text, "vmask")[column] == "3"


# --- the paper's benchmarks ---------------------------------------------------


def _paper(group, label, seed, accuracy, *, commit="ba7738a0123", epochs=100,
           epochs_flag=False, sizes=(6244, 825, 1743), source="sst_treebank", **kw):
  """A run on the paper's data: its command, config and dataset as
  run_grid.summarise records them; ``epochs_flag`` puts the epoch budget on
  the command line (an epoch cap)."""
  s = _summary(group, label, seed, accuracy, commit=commit, **kw)
  command = f"python train.py --config=configs/sst2.py:{label} --config.seed={seed}"
  s["command"] = command + (f" --config.train.num_epochs={epochs}" if epochs_flag else "")
  s["config"] = {"model": {"use_vmask": label != "baseline", "init": "flax", "pool": "tokens"},
                 "loss": {"count_padding": False},
                 "data": {"batching": "bucketed", "pad_to": "batch", "sst_dir": "../sst/tb"},
                 "train": {"num_epochs": epochs, "patience": 3}}
  s["results"]["dataset"] = {"source": source, "max_len": 128,
                             "sizes": dict(zip(("train", "dev", "test"), sizes))}
  s["interpretability"]["examples"] = 400
  return s


def _paper_group(group, accuracies, **kw):
  """Three seeds per label: ``accuracies[label] = (best-dev, last-epoch)``
  triples."""
  return [_paper(group, label, k, best[k], last_epoch=last[k], **kw)
          for label, (best, last) in accuracies.items() for k in range(3)]


def test_paper_section_comes_first_and_the_stand_ins_follow_under_their_heading(tmp_path):
  text = _write(tmp_path, _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2,
                                                "safr": ((0.75, 0.76, 0.74),) * 2})
                + [_summary("rt_polarity", "safr", 0, 0.7),
                   _summary("reference", "safr", 0, 0.69)])
  assert text.startswith("# Results\n\n## Does SAFR improve interpretability without "
                         "costing accuracy, on the paper's benchmarks?\n\n")
  standin = text.index("\n# Stand-in results (rt_polarity, imdb_builtin): not the paper's "
                       "benchmarks\n")
  paper, after = text[:standin], text[standin:]
  assert paper.index("| dataset | variant | n |") < paper.index("## SST-2 (`sst_treebank`")
  assert "| SST-2 | safr | 3 | 0.75 ± 0.01 |" in paper
  # every stand-in group, its answer and its disclaimer below the heading only
  for part in ("## Does this reproduce SAFR?", "## `rt_polarity` (the offline",
               "## `rt_polarity`, the authors' numerics", "not SST-2 or IMDB benchmark"):
    assert part not in paper and part in after


def test_paper_answer_separates_only_where_the_interval_excludes_zero(tmp_path):
  # best-dev: SAFR − baseline = −0.01 with a wide spread (spans 0);
  # last epoch: −0.05 with a narrow one (separated)
  runs = _paper_group("sst2", {"baseline": ((0.78, 0.74, 0.82), (0.79, 0.80, 0.81)),
                               "safr": ((0.79, 0.71, 0.81), (0.74, 0.75, 0.76))})
  section = report.paper_answer_section(_write(tmp_path, runs))
  lines = section.splitlines()
  assert len(lines) == len(_sentences(section)) == 5
  best = report.welch([0.79, 0.71, 0.81], [0.78, 0.74, 0.82])
  last = report.welch([0.74, 0.75, 0.76], [0.79, 0.80, 0.81])
  assert best[1] < 0 < best[2] and last[2] < 0
  assert (f"with the best-dev checkpoint, SAFR − baseline = {best[0]:+.4f} [{best[1]:+.4f}, "
          f"{best[2]:+.4f}] (Welch 95 %, n = 3/3), not separated by these seeds; with the "
          f"last epoch's weights, SAFR − baseline = {last[0]:+.4f} [{last[1]:+.4f}, "
          f"{last[2]:+.4f}] (Welch 95 %, n = 3/3); so SAFR is not separated from the "
          "baseline in accuracy with the best-dev checkpoint but is less accurate than the "
          "baseline (costs accuracy) with the last epoch's weights") in lines[0]
  assert lines[4].startswith("In short, on these seeds: on SST-2 (padding-aware) SAFR is not "
                             "separated from the baseline in accuracy with the best-dev "
                             "checkpoint but is less accurate")


def test_paper_answer_interpretability_and_too_few_seeds(tmp_path):
  runs = _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2})
  runs += [_paper("sst2", "safr", k, 0.75, vmask_aopc=0.30 + 0.01 * k,
                  sharing_among=10.0 + k) for k in range(3)]
  runs += [_paper("sst2", "vmask", k, 0.76, vmask_aopc=0.20 + 0.01 * k,
                  sharing_among=12.0 - k) for k in range(3)]
  runs += [_paper("sst2", "safr_ib", 0, 0.77)]  # one seed: no interval
  lines = report.paper_answer_section(_write(tmp_path, runs)).splitlines()
  assert ("`safr_ib` − baseline = -0.0100 (n = 1/3: n too small for an interval), so "
          "`safr_ib` has no accuracy interval yet (fewer than 2 seeds a side)") in lines[0]
  assert "the AOPC of the gate's explanation gives SAFR − vmask = +0.100 [+0.0" in lines[1]
  assert "the sharing among important tokens gives SAFR − vmask = +0.00 [" in lines[1]
  assert ("so SAFR's explanation is more faithful than VMASK alone's; the sharing is not "
          "separated") in lines[1]
  assert "its gate's explanation is more faithful than VMASK alone's" in lines[4]


def test_paper_answer_ends_with_yes_or_no(tmp_path):
  def last_sentence(safr_sst2, safr_imdb):
    runs = _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2})
    runs += [_paper("sst2", "safr", k, safr_sst2[k], last_epoch=safr_sst2[k],
                    vmask_aopc=0.30 + 0.01 * k) for k in range(3)]
    runs += [_paper("sst2", "vmask", k, 0.76, vmask_aopc=0.20 + 0.01 * k) for k in range(3)]
    runs += _paper_group("imdb", {"baseline": ((0.85, 0.86, 0.84),) * 2,
                                  "safr": ((safr_imdb,) * 2)},
                         source="aclimdb", sizes=(20000, 5000, 25000))
    path = tmp_path / f"{safr_sst2[0]}_{safr_imdb[0]}"
    path.mkdir()
    return report.paper_answer_section(_write(path, runs)).splitlines()[4]
  # SAFR costs accuracy on IMDB only: no, and the sentence names where
  assert last_sentence((0.78, 0.79, 0.77), (0.80, 0.81, 0.79)).endswith(
      "; so the answer is no: SAFR costs accuracy on IMDB.")
  # no separated cost anywhere, and the gate's AOPC above VMASK alone's: yes
  assert last_sentence((0.79, 0.77, 0.78), (0.86, 0.84, 0.85)).endswith(
      "; so the answer is yes: SAFR's gate explains SST-2 more faithfully than VMASK alone's, "
      "and SAFR's accuracy is not separated from the baseline's on SST-2 or IMDB.")


def test_imdb_answer_compares_the_gate_with_vmask_once_vmask_has_run(tmp_path):
  imdb = _paper_group("imdb", {"baseline": ((0.85, 0.86, 0.84),) * 2},
                      source="aclimdb", sizes=(20000, 5000, 25000))
  imdb += [_paper("imdb", "safr", k, 0.82, vmask_aopc=0.17 + 0.01 * k, source="aclimdb",
                  sizes=(20000, 5000, 25000)) for k in range(3)]
  without = report.paper_answer_section(_write(tmp_path, imdb)).splitlines()
  assert without[3].endswith("(no `vmask` run on IMDB isolates what SAFR's losses add to the "
                             "gate's explanation yet).")
  (tmp_path / "with").mkdir()
  imdb += [_paper("imdb", "vmask", k, 0.84, vmask_aopc=0.25 + 0.01 * k, source="aclimdb",
                  sizes=(20000, 5000, 25000)) for k in range(2)]
  text = _write(tmp_path / "with", imdb)
  lines = report.paper_answer_section(text).splitlines()
  gate = report.welch([0.17, 0.18, 0.19], [0.25, 0.26])
  assert (f"; the AOPC of the gate's explanation gives SAFR − vmask = {gate[0]:+.3f} "
          f"[{gate[1]:+.3f}, {gate[2]:+.3f}] (Welch 95 %, n = 3/2), so SAFR's explanation is "
          "less faithful than VMASK alone's.") in lines[3]
  assert "no `vmask` run" not in lines[3]
  assert lines[4].endswith("; its gate's explanation is less faithful than VMASK alone's; so "
                           "the answer is no: SAFR costs accuracy on IMDB.")
  assert "| IMDB, no epoch cap (early stopping) | vmask | 2 | 0.84 ± 0 |" in text


def test_imdb_and_the_authors_numerics_not_run_yet(tmp_path):
  text = _write(tmp_path, _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2,
                                                "safr": ((0.75, 0.76, 0.74),) * 2}))
  lines = report.paper_answer_section(text).splitlines()
  assert lines[2] == ("On SST-2 under the authors' numerics (`sst2_reference`), SAFR against "
                      "the plain Transformer is not run yet (0 seeds of `safr`, 0 seeds of "
                      "`baseline` and 0 seeds of `vmask` have finished).")
  assert "On IMDB" in lines[3] and "not run yet" in lines[3] and "[" not in lines[3]
  assert lines[4].endswith("; on IMDB SAFR is not run yet; so the answer is no: SAFR costs "
                           "accuracy on SST-2 (padding-aware).")
  for label in ("baseline", "vmask", "safr", "safr_ib"):
    assert f"| IMDB | {label} | 0 | not run yet |" in text
  assert "| SST-2, authors' numerics | vmask | 0 | not run yet |" in text
  assert "## IMDB (`aclimdb`, the official test, the paper's benchmark)" in text
  assert "- `imdb`: not run yet (0 of 12 planned runs)." in text
  assert ("Not run yet: in `sst2`, 3 seeds of `baseline`, 0 seeds of `vmask` and 3 seeds of "
          "`safr` have finished; in `sst2_reference`, 0 seeds of `baseline`") in text


def test_the_imdb_epoch_cap_is_said_beside_every_imdb_number(tmp_path):
  imdb = _paper_group("imdb", {"baseline": ((0.85, 0.86, 0.84),) * 2,
                               "safr": ((0.84, 0.85, 0.83),) * 2},
                      source="aclimdb", sizes=(20000, 5000, 25000), epochs=4,
                      epochs_flag=True)
  curve = _paper("imdb_curve", "safr", 0, 0.84, source="aclimdb")
  curve["results"].update(dev_history=[0.80, 0.83, 0.82], best_epoch=2, epochs_run=3,
                          stopped_early=True)
  text = _write(tmp_path, imdb + [curve])
  answer = report.paper_answer_section(text).splitlines()
  assert answer[3].startswith("On IMDB (`imdb`, official test, capped at 4 epochs), in test "
                              "accuracy, with the best-dev checkpoint, SAFR − baseline = "
                              "-0.0100 [")
  assert answer[4].endswith("on IMDB (capped at 4 epochs) SAFR is not separated from the "
                            "baseline in accuracy; so these seeds do not answer the question "
                            "yet.")
  assert "| IMDB, capped at 4 epochs | safr | 3 | 0.84 ± 0.01 |" in text
  heading = next(l for l in text.splitlines()
                 if l.startswith("## IMDB (`aclimdb`, the official test, the paper's"))
  assert heading.endswith("; capped at 4 epochs")
  assert "train / dev / test 20,000 / 5,000 / 25,000" in text
  # the uncapped curve run: its budget and its dev curve
  assert ("- `safr` seed 0 (no epoch cap (early stopping)): dev accuracy after each epoch "
          "1: 0.8000, 2: 0.8300, 3: 0.8200; best epoch 2; stopped early after 3 epochs.") in text


def test_imdb_says_which_runs_the_epoch_cap_cut_short(tmp_path):
  imdb = _paper_group("imdb", {"baseline": ((0.85, 0.86, 0.84),) * 2,
                               "safr": ((0.84, 0.85, 0.83),) * 2},
                      source="aclimdb", sizes=(20000, 5000, 25000), epochs=3,
                      epochs_flag=True)
  for s in imdb:  # dev still rising at the cap for baseline seed 1 only
    rising = (s["label"], s["seed"]) == ("baseline", 1)
    s["results"].update(dev_history=[0.80, 0.83, 0.84 if rising else 0.82],
                        best_epoch=3 if rising else 2, epochs_run=3, stopped_early=False)
  text = _write(tmp_path, imdb)
  answer = report.paper_answer_section(text).splitlines()
  assert ("; the best dev epoch is the cap's last in 1 of 6 runs (`baseline` seed 1): those "
          "might gain from more epochs (no `vmask` run") in answer[3]
  section = text.split("## IMDB (`aclimdb`, the official test, the paper's")[1]
  assert ("Under the epoch cap, the best dev epoch is the cap's last in 1 of 6 runs "
          "(`baseline` seed 1)") in section
  assert ("- `baseline` seed 1 (capped at 3 epochs): dev accuracy after each epoch 1: 0.8000, "
          "2: 0.8300, 3: 0.8400; best epoch 3; not stopped early (ran its budget) after 3 "
          "epochs.") in section
  # runs whose best epoch comes before the cap's last, or an uncapped run, are not cut short
  for s in imdb:
    s["results"].update(best_epoch=2)
  assert "no run's best dev epoch is the cap's last (0 of 6)" in report._cap_binding(imdb)
  assert report._cap_binding([_paper("imdb", "safr", 0, 0.8)]) == ""


def test_epoch_budget_reads_the_command_and_the_config():
  cap = lambda **kw: report._epoch_cap(_paper("imdb", "safr", 0, 0.8, **kw))
  assert cap(epochs=100) is None                       # early stopping's open budget
  assert cap(epochs=100, epochs_flag=True) == 100      # set on the command line
  assert cap(epochs=5) == 5                            # below the default: a cap
  assert report._budget([_paper("imdb", "safr", k, 0.8, epochs=e, epochs_flag=True)
                         for k, e in enumerate((3, 3, 5))]) == (
      "not one epoch budget: capped at 3 epochs (2 runs), capped at 5 epochs (1 run)")


def test_the_two_numerics_on_sst2_are_compared_at_the_commit_they_share(tmp_path):
  acc = {"baseline": ((0.78, 0.79, 0.80),) * 2, "vmask": ((0.76, 0.77, 0.78),) * 2,
         "safr": ((0.74, 0.75, 0.76),) * 2}
  ref = {"baseline": ((0.70, 0.71, 0.72),) * 2, "vmask": ((0.69, 0.70, 0.71),) * 2,
         "safr": ((0.73, 0.76, 0.73),) * 2}
  text = _write(tmp_path, _paper_group("sst2", acc) + _paper_group("sst2_reference", ref))
  section = text.split("## SST-2: padding-aware against the authors' numerics")[1].split(
      "\n## ")[0]
  assert "Both groups were trained at the same commit, ba7738a (`results.git_commit` of all " \
         "18 runs)" in section
  bullets = [l for l in section.splitlines() if l.startswith("- `")]
  assert [b.split(":")[0] for b in bullets] == ["- `baseline`", "- `vmask`", "- `safr`"]
  d = report.welch([0.74, 0.75, 0.76], [0.73, 0.76, 0.73])
  assert (f"test accuracy, best-dev checkpoint: `sst2/safr` − `sst2_reference/safr` = "
          f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}] (Welch 95 %, n = 3/3), not separated") \
      in bullets[2]
  assert "`sst2/baseline` − `sst2_reference/baseline` = +0.0800 [" in bullets[0]
  # trained at two commits: said, and named
  (tmp_path / "two").mkdir()
  text = _write(tmp_path / "two", _paper_group("sst2", acc)
                + _paper_group("sst2_reference", ref, commit="1234567abcd"))
  assert ("Not one commit: `sst2` was trained at ba7738a (9 runs), `sst2_reference` at "
          "1234567 (9 runs)") in text


def test_dataset_sizes_and_settings_come_from_the_summaries(tmp_path):
  runs = [_paper("sst2", "safr", 0, 0.7, sizes=(1234, 56, 789)),
          _paper("sst2", "safr", 1, 0.7, sizes=(1234, 56, 789))]
  runs[1]["interpretability"]["examples"] = 300
  text = _write(tmp_path, runs)
  line = next(l for l in text.splitlines() if l.startswith("- `sst2` ("))
  assert line.startswith("- `sst2` (2 of 20 planned runs): `sst_treebank` on `../sst/tb`, "
                         "train / dev / test 1,234 / 56 / 789, max_len 128; "
                         "`model.init=flax`, `model.pool=tokens`")
  assert "`data.batching=bucketed`" in line
  assert "interpretability subset 400 test examples (1 run); 300 test examples (1 run)" in line


def test_readme_summary_is_the_table_and_the_answer(tmp_path):
  runs = _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2,
                               "safr": ((0.75, 0.76, 0.74),) * 2})
  text = _write(tmp_path, runs)
  summary = report.readme_summary(tmp_path / "results")
  assert summary.startswith("| dataset | variant | n | test acc., best-dev checkpoint |")
  assert report.paper_answer_section(text) in summary
  assert "| SST-2 | baseline | 3 | 0.78 ± 0.01 |" in summary
  assert "rt_polarity" not in summary and "# " not in summary


def test_readme_block_is_rewritten_between_its_markers_only(tmp_path):
  runs = _paper_group("sst2", {"baseline": ((0.78, 0.79, 0.77),) * 2})
  _write(tmp_path, runs)
  readme = tmp_path / "README.md"
  readme.write_text(f"# top\n\n{report.README_BEGIN}\nold table\n{report.README_END}\n\n## after\n")
  assert report.update_readme(readme, tmp_path / "results")
  text = readme.read_text()
  assert "old table" not in text and text.startswith("# top\n") and text.endswith("## after\n")
  assert report.readme_summary(tmp_path / "results") in text
  plain = tmp_path / "PLAIN.md"
  plain.write_text("no markers\n")
  assert not report.update_readme(plain, tmp_path / "results")
  assert plain.read_text() == "no markers\n"


def test_committed_plots_beside_the_report_are_linked(tmp_path):
  docs = tmp_path / "docs"
  (docs / "results" / "rt_polarity").mkdir(parents=True)
  (docs / "results" / "rt_polarity" / "comparison.png").write_bytes(b"png")
  results = tmp_path / "results"
  results.mkdir()
  s = _summary("rt_polarity", "safr", 0, 0.7)
  (results / "rt_polarity__safr__seed0.json").write_text(json.dumps(s))
  # run_grid --compare_dir= draws none (compare_dir "."): the committed plot stays linked
  report.write(results, docs / "RESULTS.md", compare_dir=tmp_path / "nothing")
  assert "[`results/rt_polarity/comparison.md`](results/rt_polarity/comparison.md)" in (
      docs / "RESULTS.md").read_text()
