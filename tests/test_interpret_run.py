"""explain / evaluate / compare on tiny trained runs (planted data, seconds each)."""

import html.parser
import json
import math
import pathlib
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from safr_jax import configs
from safr_jax import checkpointing, migration, runs, train_lib
from safr_jax.interpret import comparison, explain_files, explanations, inputs, interpretability
from safr_jax.interpret import html as html_lib
from safr_jax.errors import InterpretError
from safr_jax.interpret import token_stats

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = "<script>alert('x')</script>"


def _tiny_planted(variant, **data):
  c = configs.get_config("planted", variant)
  c.data.update(max_examples=64, **data)
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  c.train.update(batch_size=16, eval_batch_size=32, num_epochs=1, learning_rate=3e-3,
                 checkpoint_every_steps=0, log_every_steps=4, progress_bar=False)
  return c


@pytest.fixture(scope="module")
def safr_run(tmp_path_factory):
  """SAFR, fixed-width batches (one shape: compiles once)."""
  workdir = tmp_path_factory.mktemp("runs") / "planted_safr"
  train_lib.train_and_evaluate(_tiny_planted("safr", pad_to="max_len"), workdir)
  return workdir


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
  """No VMASK, padding-aware batches (padded to their longest row)."""
  workdir = tmp_path_factory.mktemp("runs") / "planted_baseline"
  c = _tiny_planted("baseline", pad_to="batch")
  c.data.max_examples = 32
  train_lib.train_and_evaluate(c, workdir)
  return workdir


class _Page(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.tags, self.text, self.ids = [], [], set()

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append((tag, attrs))
    if "id" in attrs:
      self.ids.add(attrs["id"])

  def handle_data(self, data):
    self.text.append(data)


def _parse(path):
  page = _Page()
  page.feed(path.read_text(encoding="utf-8"))
  return page


def _check_page(result, out):
  page = _parse(result.index)
  text = "".join(page.text)
  images = [a for t, a in page.tags if t == "img"]
  pngs = sorted(out.glob("example_*.png"))
  assert len(images) == len(pngs) == 2 * sum(r["image"] is not None for r in result.records)
  for img in images:  # every image linked to its PNG beside the page, none inlined
    assert img["src"] == img["data-file"] and (out / img["src"]).read_bytes()[:4] == b"\x89PNG"
    assert ("a", {"href": img["src"]}) in page.tags
  assert "base64" not in result.index.read_text(encoding="utf-8")
  for r in result.records:  # every example has its section and an index link
    assert r["id"] in page.ids
    assert ("a", {"href": f"#{r['id']}"}) in page.tags
    assert r["pred"] in text and f"{r['confidence']:.3f}" in text
  assert "script" not in [t for t, _ in page.tags]
  return page, text


def test_explain_split_examples(safr_run, tmp_path):
  out = tmp_path / "expl"
  result = explain_files.explain_run(safr_run, num=3, out=out)
  page, text = _check_page(result, out)
  assert len(result.records) == 3 and all(r["image"] for r in result.records)
  assert "VMASK keep-probability" in text
  for r in result.records:
    assert r["true"] in ("negative", "positive")
    assert len(r["importance"]) == len(r["tokens"]) == len(r["neurons"]) > 0
    assert all(0 <= v <= 1 for v in r["importance"])
    assert r["pairs"] and r["planted"] is not None
    active = np.load(out / "explanations.npz")[r["arrays"]["hidden"]] > r["threshold"]
    for t, row in zip(r["neurons"], active):
      assert row[list(t["exclusive"])].all()
  saved = json.loads((out / "explanations.json").read_text())
  labels = inputs.load_split(runs.load_run(safr_run), "test").labels
  assert [e["name"] for e in saved["examples"]] == [
      f"test[{i}]" for i in explanations.sample(labels, 3, seed=0)]
  assert saved["examples"] == result.records
  computed = result.explanations.explanations
  assert [e.to_json(r["image"], r["attention_image"], r["arrays"])
          for e, r in zip(computed, result.records)] == result.records


def test_explain_computes_without_writing(safr_run, tmp_path, monkeypatch):
  run = runs.load_run(safr_run)
  monkeypatch.chdir(tmp_path)
  explained = explanations.explain(run, [inputs.text_example(run, "not bad w1", "t")])
  assert list(tmp_path.iterdir()) == [] and not (safr_run / "explanations").exists()
  (e,) = explained.explanations
  assert e.tokens == ("not", "bad", "w1") and e.neuron_order is not None
  assert e.hidden.shape == (3, 32) and e.strength.shape == (3, 3)
  assert explained.has_vmask and all(0 <= v <= 1 for v in e.importance)


def test_explain_user_text_bad_inputs_and_escaping(safr_run, tmp_path):
  max_len = runs.load_run(safr_run).config.data.max_len
  long_text = " ".join(["good"] * (max_len + 9))
  texts = [f"{SCRIPT} not bad qqqunknown", "", long_text]
  out = tmp_path / "expl"
  (out).mkdir()
  (out / "example_099.png").write_bytes(b"stale")     # from an earlier, longer run
  result = explain_files.explain_run(safr_run, texts=texts, out=out)
  page, text = _check_page(result, out)
  assert not (out / "example_099.png").exists()
  first, empty, long_ = result.records
  assert SCRIPT in text                                # shown as text, not run
  assert SCRIPT not in result.index.read_text()        # only escaped in the source
  assert first["tokens"][0] == "<UNK>" and "qqqunknown" in " ".join(first["notes"])
  assert first["true"] is None
  assert empty["image"] is None and empty["tokens"] == []
  assert "empty text" in empty["notes"][0]
  assert len(long_["tokens"]) == max_len
  assert any(f"{max_len + 9} tokens" in n and "truncated" in n for n in long_["notes"])


def test_explain_without_vmask_uses_gradient_x_input(baseline_run, tmp_path):
  result = explain_files.explain_run(baseline_run, texts=["good w1 not bad"], out=tmp_path)
  _, text = _check_page(result, tmp_path)
  assert result.notes and "no VMASK" in result.notes[0]
  assert "gradient × input" in result.records[0]["importance_label"]
  assert "no VMASK" in text


def _finite(tree, path=""):
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _finite(v, f"{path}.{k}")
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    yield path, math.isfinite(tree)


METRIC_KEYS = ("accuracy", "cross_entropy", "importance_loss", "interaction_loss",
               "superposition", "neuron_overlap", "faithfulness")


def test_evaluate_writes_every_metric(safr_run):
  result = interpretability.evaluate_run(safr_run, max_examples=40)
  saved = json.loads((safr_run / "interpretability.json").read_text())
  assert saved == json.loads(json.dumps(result))
  assert all(k in saved for k in METRIC_KEYS + ("planted",))
  assert all(ok for _, ok in _finite(saved)), [p for p, ok in _finite(saved) if not ok]
  # Same numbers as training's own test evaluation of the same checkpoint.
  test = json.loads((safr_run / "results.json").read_text())["test"]
  for ours, theirs in (("accuracy", "accuracy"), ("importance_loss", "importance"),
                       ("interaction_loss", "interaction"), ("keep_rate", "keep_rate"),
                       ("keep_above_half", "keep_above_half")):
    assert saved[ours] == pytest.approx(test[theirs], rel=1e-5)
  assert 0 <= saved["keep_above_half"] <= 1
  assert saved["examples"] == 40 and saved["split_examples"] == 64
  sup = saved["superposition"]
  for space in ("embeddings", "ffn"):
    tokens = {g: sup[space][g]["tokens"] for g in token_stats.GROUPS}
    assert tokens["important"] + tokens["other"] == tokens["all"] > 0
    assert tokens["important_among_important"] == tokens["important"]
    for group, stats in sup[space].items():
      assert (stats["dimensionality"] is None) == (stats["tokens"] == 0)
      assert stats["dimensionality"] is None or 0 < stats["dimensionality"] <= 1
      assert stats["sharing"] is None or stats["sharing"] >= 0
  overlap = saved["neuron_overlap"]
  for key in ("attention_pairs", "random_pairs", "important_other_pairs"):
    assert 0 <= overlap[key] <= 1 and overlap["pair_counts"][key] > 0
  assert overlap["attention_minus_random"] == pytest.approx(
      overlap["attention_pairs"] - overlap["random_pairs"])
  methods = saved["faithfulness"]
  assert set(methods) == {"vmask", "attention", "gradient_x_input", "occlusion", "random"}
  for m in methods.values():
    assert {"comprehensiveness", "sufficiency", "aopc", "aopc_minus_random",
            "comprehensiveness_by_bin", "sufficiency_by_bin"} <= set(m)
    assert list(m["comprehensiveness_by_bin"]) == ["1%", "5%", "10%", "20%", "50%"]
  planted = saved["planted"]
  assert set(planted["precision_recall"]) == set(methods)
  for pr in planted["precision_recall"].values():
    assert set(pr["precision"]) == {"@1", "@3", "@5", "@|P|"}
    assert pr["precision"]["@|P|"] == pytest.approx(pr["recall"]["@|P|"])
  assert 0 <= planted["negation_pairs"]["pair_hit_rate"] <= 1
  # Per example, beside the summary: indices into the split, and columns whose
  # means are the summary's (so intervals over examples describe these numbers).
  per = json.loads((safr_run / "interpretability.examples.json").read_text())
  assert len(per["index"]) == len(set(per["index"])) == 40
  assert max(per["index"]) < 64 and per["run"] == saved["run"]
  assert np.mean(per["correct"]) == pytest.approx(saved["subset_accuracy"])
  for name, m in methods.items():
    cols = per["faithfulness"][name]
    assert np.mean(cols["aopc"]) == pytest.approx(m["aopc"], abs=1e-5)
    assert np.mean(cols["aopc@20%"]) == pytest.approx(m["aopc_by_depth"]["20%"], abs=1e-5)
    assert np.mean(cols["sufficiency"]) == pytest.approx(m["sufficiency"], abs=1e-5)
  for key in token_stats.MATCHED:
    values = [v for v in per["mechanism"][key] if v is not None]
    assert len(values) == saved["mechanism"][f"{key}_examples"] > 0
    assert np.mean(values) == pytest.approx(saved["mechanism"][key], abs=1e-5)
  # Which code measured: a run may be evaluated at a later commit than it trained.
  head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                        text=True, check=True).stdout.strip()
  assert saved["provenance"]["git_commit"] == head
  assert saved["provenance"]["versions"]["jax"] == jax.__version__


def test_evaluate_baseline_and_compare(safr_run, baseline_run, tmp_path):
  result = interpretability.evaluate_run(baseline_run, max_examples=16, random_orders=2)
  assert "vmask" not in result["faithfulness"]
  assert result["superposition"]["embeddings"]["important"]["sharing"] is None
  assert result["neuron_overlap"]["important_pairs"] is None
  assert result["superposition"]["ffn"]["important_among_important"]["sharing"] is None
  assert result["keep_rate"] is None and result["keep_above_half"] is None
  assert "no VMASK" in " ".join(result["notes"])
  if not (safr_run / "interpretability.json").exists():
    interpretability.evaluate_run(safr_run, max_examples=16)
  # A second "seed" of the SAFR config: same files, another seed and accuracy.
  seed1 = tmp_path / "planted_safr_seed1"
  seed1.mkdir()
  for name in ("results.json", "interpretability.json"):
    shutil.copy(safr_run / name, seed1 / name)
  results = json.loads((seed1 / "results.json").read_text())
  results["config"]["seed"] = 1
  results["test"]["accuracy"] = min(1.0, results["test"]["accuracy"] + 0.1)
  (seed1 / "results.json").write_text(json.dumps(results))
  out = comparison.compare_runs([safr_run, seed1, baseline_run], tmp_path / "cmp")
  assert [len(v) for v in out.groups.values()] == [2, 1]
  md = out.table.read_text()
  assert re.search(r"\| planted:safr λ_imp=1 λ_inter=1 \| planted [\d,]+/[\d,]+/[\d,]+ \| 2 \| "
                   r"0, 1 \|", md)
  assert re.search(r"\| planted:baseline λ_imp=0 λ_inter=0 \| planted \S+ \| 1 \| 0 \|", md)
  assert "interpretability.faithfulness.occlusion.aopc" in md
  assert "results.test.accuracy" in md and "±" in md
  assert out.plot.read_bytes()[:4] == b"\x89PNG"


def _cli(*argv):
  return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


def test_cli_explain_and_one_line_errors(safr_run, tmp_path):
  proc = _cli("safr_jax.explain", f"--workdir={safr_run}", f"--text={SCRIPT} good",
              "--text=", "--text=good \u202eqqqunknown", f"--out={tmp_path / 'e'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "Explained 3 example(s) (4 picture(s))" in proc.stdout
  # Each text's prediction and probabilities, as the page shows them.
  records = json.loads((tmp_path / "e" / "explanations.json").read_text())["examples"]
  for r in records:
    probs = ", ".join(f"{label} {p:.3f}" for label, p in r["probs"].items())
    assert f"{safr_run}: {r['name']}: {r['pred']} ({probs})" in proc.stdout
  assert "empty text" in proc.stderr
  # An unknown word with a right-to-left override, as the terminal shows it.
  assert "\u202e" not in proc.stderr and "[U+202E]qqqunknown" in proc.stderr
  assert _parse(tmp_path / "e" / "index.html").ids >= {"ex-0", "ex-1", "ex-2", "index"}
  # A workdir without a checkpoint: one line, exit status 2.
  empty = tmp_path / "no_ckpt"
  empty.mkdir()
  for name in ("config.json", "vocab.txt", "labels.json"):
    shutil.copy(safr_run / name, empty / name)
  proc = _cli("safr_jax.evaluate", f"--workdir={empty}")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: {empty} has no checkpoints folder: training has not saved a checkpoint yet")
  proc = _cli("safr_jax.compare", str(empty), f"--out={tmp_path / 'c'}")
  assert proc.returncode == 2 and "has no results.json" in proc.stderr


# ----------------------------------------------------------------------------
# A run's files as a user may find them: damaged, edited, deleted under us.


def _copy_run(run, tmp_path):
  copy = tmp_path / "run"
  shutil.copytree(run, copy, ignore=shutil.ignore_patterns(
      "train.lock", "explanations", "interpretability.json", "tensorboard"))
  return copy


@pytest.mark.parametrize("name", ["labels.json", "config.json", "vocab.txt", "dataset.json"])
def test_a_run_file_that_is_not_utf8_is_an_error_naming_it(safr_run, tmp_path, name):
  run = _copy_run(safr_run, tmp_path)
  raw = (run / name).read_bytes()
  (run / name).write_bytes(raw[:20] + b"\xff\xfe" + raw[20:])
  with pytest.raises(runs.RunError, match=rf"{run / name} is not valid UTF-8 \(byte 20\)"):
    runs.load_run(run)


def test_run_files_that_disagree_with_the_run_identity_are_errors(safr_run, tmp_path):
  run = _copy_run(safr_run, tmp_path)
  originals = {n: (run / n).read_text() for n in ("labels.json", "config.json", "vocab.txt")}

  def edit(name, change):
    for n, text in originals.items():  # one edit at a time
      (run / n).write_text(text)
    value = json.loads(originals[name]) if name.endswith(".json") else originals[name]
    value = change(value)
    (run / name).write_text(json.dumps(value) if name.endswith(".json") else value)

  edit("labels.json", lambda v: dict(v, label_names=v["label_names"][::-1]))
  with pytest.raises(runs.RunError, match=r"labels\.json: label_names is \['positive', "
                     r"'negative'\] but the run was trained with \['negative', 'positive'\] "
                     r"\(run_identity\.json\)"):
    runs.load_run(run)
  edit("config.json", lambda v: {**v, "data": dict(v["data"], max_len=v["data"]["max_len"] + 8)})
  with pytest.raises(runs.RunError, match=r"config\.json: data\.max_len is \d+ but the run "
                     r"was trained with \d+"):
    runs.load_run(run)
  edit("labels.json", lambda v: dict(v, text_options=dict(v["text_options"], lowercase=True)))
  with pytest.raises(runs.RunError, match=r"labels\.json: text_options\.lowercase is True"):
    runs.load_run(run)
  lines = originals["vocab.txt"].splitlines()
  lines[2], lines[3] = lines[3], lines[2]  # two words swap ids
  edit("vocab.txt", lambda v: "\n".join(lines) + "\n")
  with pytest.raises(runs.RunError, match=r"vocab\.txt: the vocabulary differs"):
    runs.load_run(run)
  # A field that may change on resume (how long to train) is no mismatch.
  edit("config.json", lambda v: {**v, "train": dict(v["train"], num_epochs=99)})
  loaded = runs.load_run(run)
  assert loaded.label_names == ["negative", "positive"] and loaded.identity is not None
  # One line on the command line, naming the file and the field.
  edit("config.json", lambda v: {**v, "data": dict(v["data"], max_len=v["data"]["max_len"] + 8)})
  proc = _cli("safr_jax.evaluate", f"--workdir={run}", f"--out={tmp_path / 'i.json'}")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error: {run / 'config.json'}: data.max_len is ")
  assert not (tmp_path / "i.json").exists()


def test_latest_checkpoint_deleted_while_loading_falls_back_to_the_newest(
    safr_run, tmp_path, monkeypatch):
  """A trainer beside explain deletes the checkpoint explain chose (retention)."""
  run = _copy_run(safr_run, tmp_path)
  (step,) = [int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
  shutil.copytree(run / "checkpoints" / str(step), run / "checkpoints" / str(step + 100))
  restore = checkpointing.Checkpoints.restore
  deleted = []

  def restore_after_retention(self, s, *args, **kwargs):
    if not deleted:  # the trainer's retention gets there first
      shutil.rmtree(run / "checkpoints" / str(s))
      deleted.append(s)
    return restore(self, s, *args, **kwargs)

  monkeypatch.setattr(checkpointing.Checkpoints, "restore", restore_after_retention)
  loaded = runs.load_run(run, which="latest")
  assert deleted == [step + 100] and loaded.step == step


def test_compare_counts_a_run_once_and_skips_what_is_not_a_run(safr_run, tmp_path):
  log = tmp_path / "train.log"
  log.write_text("not a run\n")
  unfinished = tmp_path / "unfinished"
  unfinished.mkdir()
  (unfinished / "config.json").write_text("{}")
  given = [safr_run, pathlib.Path(f"{safr_run}/"), safr_run / ".." / safr_run.name, log,
           unfinished, tmp_path / "missing"]
  out = comparison.compare_runs(given, tmp_path / "cmp")
  assert [len(v) for v in out.groups.values()] == [1]
  assert " | 1 | 0 |" in out.table.read_text()
  assert len(out.notes) == 5
  assert sum("is the same run as" in n and "counted once" in n for n in out.notes) == 2
  assert f"{log} is a file, not a run folder: skipped" in out.notes
  assert any(n.startswith(f"{unfinished} has no results.json") for n in out.notes)
  assert f"{tmp_path / 'missing'} does not exist: skipped" in out.notes
  with pytest.raises(InterpretError, match=r"no run to compare: .*train\.log is a file"):
    comparison.compare_runs([log], tmp_path / "cmp2")


BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_are_shown_not_obeyed(safr_run, tmp_path):
  text = "good \u202eevitagen\u202c not bad \u2067w1\u2069"
  result = explain_files.explain_run(safr_run, texts=[text], out=tmp_path)
  page = result.index.read_text(encoding="utf-8")
  assert not set(BIDI) & set(page)
  assert "[U+202E]evitagen[U+202C]" in page and "[U+2067]" in page
  assert html_lib.neutralise_bidi(BIDI) == "".join(f"[U+{ord(c):04X}]" for c in BIDI)
  # The stored record keeps the text as given.
  saved = json.loads((tmp_path / "explanations.json").read_text(encoding="utf-8"))
  assert saved["examples"][0]["text"] == text


def test_a_run_saved_before_later_loss_and_model_fields_loads_with_their_old_values(tmp_path):
  """migration.ADDED: one migration step fills what a run saved before a field existed."""
  workdir = tmp_path / "run"
  shutil.copytree(pathlib.Path(__file__).parent / "data" / "run_392c60c", workdir)
  for name in ("config.json", "run_identity.json"):
    saved = json.loads((workdir / name).read_text())
    for key in migration.ADDED:
      if not key.startswith("data."):
        section, field = key.split(".")
        (saved.get(section) or {}).pop(field, None)  # config.json: nested
        saved.get("config", {}).pop(key, None)  # identity: flat
    (workdir / name).write_text(json.dumps(saved))
  assert "warmup_epochs" not in json.loads((workdir / "config.json").read_text())["loss"]
  run = runs.load_run(workdir)
  assert run.config.loss.warmup_epochs == 0 and run.config.loss.query_block_size is None
  assert run.config.loss.scale_invariant_importance == 0.0 and run.config.model.init == "flax"
  result = interpretability.evaluate_run(workdir, max_examples=8, random_orders=1)
  assert 0.0 <= result["accuracy"] <= 1.0
