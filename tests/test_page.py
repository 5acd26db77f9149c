"""explain's page: --compare_to, the layout a phone can read, linked or inlined
pictures, the seeded class-balanced sample, the index's verdicts and free text
tokenised like the training data (a pair of tiny rt_polarity runs)."""

import base64
import dataclasses
import html.parser
import json
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from safr_jax import configs, runs, train_lib
from safr_jax.errors import InterpretError
from safr_jax.interpret import attribution, explain_files, explanations, faithfulness, forward
from safr_jax.interpret import inputs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny_rt(variant):
  c = configs.get_config("sst2", f"quick,{variant}")
  c.data.update(source="rt_polarity", max_examples=64)
  c.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  c.train.update(num_epochs=1, checkpoint_every_steps=0, progress_bar=False)
  return c


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
  """SAFR and the baseline on the same 64 rt_polarity examples: one vocabulary."""
  root = tmp_path_factory.mktemp("runs")
  for variant in ("safr", "baseline"):
    train_lib.train_and_evaluate(_tiny_rt(variant), root / variant)
  return root / "safr", root / "baseline"


@pytest.fixture(scope="module")
def default_page(pair, tmp_path_factory):
  """The default page: 20 examples of the test split, pictures beside it."""
  out = tmp_path_factory.mktemp("page")
  return explain_files.explain_run(pair[0], out=out), out


class _Page(html.parser.HTMLParser):
  """Tags, text, every table as rows of cell texts, and each image's src with
  whether it is behind a ``<details>``."""

  def __init__(self):
    super().__init__()
    self.tags, self.text, self.tables, self.images = [], [], [], []
    self._cell, self._details = None, 0

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append((tag, attrs))
    self._details += tag == "details"
    if tag == "img":
      self.images.append((attrs["src"], self._details > 0))
    if tag == "table":
      self.tables.append((attrs.get("class"), []))
    elif tag == "tr":
      self.tables[-1][1].append([])
    elif tag in ("td", "th"):
      self._cell = []

  def handle_endtag(self, tag):
    self._details -= tag == "details"
    if tag in ("td", "th"):
      self.tables[-1][1][-1].append("".join(self._cell).strip())
      self._cell = None

  def handle_data(self, data):
    self.text.append(data)
    if self._cell is not None:
      self._cell.append(data)

  def table(self, cls):
    return [rows for c, rows in self.tables if c == cls]


def _parse(path):
  page = _Page()
  page.feed(path.read_text(encoding="utf-8"))
  return page


def _images(page):
  return [a for t, a in page.tags if t == "img"]


# ----------------------------------------------------------------------------


def test_default_page_is_small_linked_balanced_and_counts_verdicts(default_page, pair):
  result, out = default_page
  source = result.index.read_text(encoding="utf-8")
  page = _parse(result.index)
  assert ('meta', {"name": "viewport", "content": "width=device-width, initial-scale=1"}
          ) in page.tags
  # Pictures beside the page, linked, none inlined.
  assert "base64" not in source
  pngs = sorted(p.name for p in out.glob("example_*.png"))  # neurons, attention
  assert [a["src"] for a in _images(page)] == pngs and len(pngs) == 40
  assert all(("a", {"href": name}) in page.tags for name in pngs)
  assert len(result.index.read_bytes()) <= 600_000
  # A seeded sample with both classes in their share (the split is 32 / 32).
  records = result.records
  assert sorted(r["true"] for r in records) == ["negative"] * 10 + ["positive"] * 10
  # The index: predicted, true and correct apart, and a count.
  ((header, *rows),) = page.table("index")
  assert header == ["example", "true", "predicted (confidence)", "correct", "text"]
  assert len(rows) == 20
  for row, r in zip(rows, records):
    assert row[0] == r["name"] and row[1] == r["true"]
    assert row[2] == f"{r['pred']} ({r['confidence']:.2f})"
    assert row[3] == ("✓" if r["pred"] == r["true"] else "✗")
  right = sum(r["pred"] == r["true"] for r in records)
  assert f"{right} of 20 correct" in "".join(page.text)


def test_records_are_compact_and_the_arrays_beside_them(default_page):
  result, out = default_page
  # One line per example (not one per number), every activation in the .npz.
  assert len((out / "explanations.json").read_text().splitlines()) <= 20 + 5
  arrays = np.load(out / "explanations.npz", allow_pickle=False)
  for e, r in zip(result.explanations.explanations, result.records):
    assert "active_neurons" not in r["neurons"][0]
    hidden = arrays[r["arrays"]["hidden"]]
    np.testing.assert_array_equal(hidden, e.hidden)
    np.testing.assert_allclose(arrays[r["arrays"]["strength"]], e.strength, rtol=1e-6)
    assert [t["active"] for t in r["neurons"]] == (hidden > r["threshold"]).sum(1).tolist()


def test_token_scores_are_printed_with_each_methods_faithfulness(default_page, pair):
  result, _ = default_page
  page = _parse(result.index)
  first = result.explanations.explanations[0]
  assert [m.name for m in first.methods] == ["vmask", "gradient_x_input", "occlusion",
                                             "attention"]
  (_, *rows) = page.table("m")[0]  # the first example's first block of tokens
  assert len(rows) == 4
  for row, m in zip(rows, first.methods):
    assert f"comp {m.comprehensiveness:.2g} · suff {m.sufficiency:.2g}" in row[0]
    decimals = max(len(c.partition(".")[2]) for c in row[1:])  # one precision per row
    for cell, v in zip(row[1:], m.scores):
      assert float(cell) == pytest.approx(v, abs=0.51 * 10 ** -decimals)
  # Per-example faithfulness is faithfulness's own number: its mean over the
  # examples is the metric of all of them at once.
  run = runs.load_run(pair[0])
  examples = inputs.split_examples(run, inputs.load_split(run, "test"), "test",
                                   [int(r["name"][5:-1]) for r in result.records])
  predictor = forward.Predictor.for_run(run)
  lengths = np.array([len(e.tokens) for e in examples])
  ids = np.stack([e.ids for e in examples])[:, :predictor.width(lengths)]
  passed = forward.collect(predictor, ids, lengths)
  scores = attribution.token_scores(predictor, ids, lengths, full_probs=passed.probs,
                                    keep_prob=passed.keep_prob,
                                    mean_attention=passed.attention, random_orders=1)
  # Attention received averages 1 over a text's tokens: the row shows what varies.
  for e, received, n in zip(result.explanations.explanations, scores["attention"][0], lengths):
    (shown,) = [m.scores for m in e.methods if m.name == "attention"]
    assert np.mean(received[:n]) == pytest.approx(1)
    np.testing.assert_allclose(shown, received[:n] - 1, atol=1e-6)
  whole = faithfulness.evaluate_faithfulness(predictor.probs, ids,
                                             {"occlusion": scores["occlusion"]},
                                             full_probs=passed.probs)
  per_example = [m.comprehensiveness for e in result.explanations.explanations
                 for m in e.methods if m.name == "occlusion"]
  assert np.mean(per_example) == pytest.approx(
      whole["methods"]["occlusion"]["comprehensiveness"], abs=1e-5)


def test_sample_is_seeded_and_class_balanced(pair):
  run = runs.load_run(pair[0])
  labels = inputs.load_split(run, "test").labels
  first = explanations.sample(labels, 20, seed=0)
  assert np.array_equal(first, explanations.sample(labels, 20, seed=0))
  assert not np.array_equal(first, explanations.sample(labels, 20, seed=1))
  assert np.bincount(labels[first]).tolist() == [10, 10]
  # A split stored class by class (IMDB) still gives both classes.
  sorted_labels = np.array([0] * 500 + [1] * 500)
  assert np.bincount(sorted_labels[explanations.sample(sorted_labels, 20, 0)]
                     ).tolist() == [10, 10]
  with pytest.raises(InterpretError, match="seed must be >= 0"):
    explanations.sample(labels, 20, seed=-1)


def test_compare_page_shows_both_runs_per_example(pair, tmp_path):
  result = explain_files.explain_run(pair[0], compare_to=pair[1], num=4, out=tmp_path)
  page = _parse(result.index)
  a, b = result.explanations, result.compared
  assert [e.name for e in a.explanations] == [e.name for e in b.explanations]
  assert [m.name for m in b.explanations[0].methods] == [
      "gradient_x_input", "occlusion", "attention"]  # the baseline has no VMASK
  text = "".join(page.text)
  for k, (ea, eb) in enumerate(zip(a.explanations, b.explanations)):
    assert ("h2", {"id": ea.id}) in page.tags
    assert f"A ({pair[0].name}): predicted {ea.pred}" in text
    assert f"B ({pair[1].name}): predicted {eb.pred}" in text
    # Both neuron pictures in view, side by side; the attention ones behind <details>.
    pictures = [(src, hidden) for src, hidden in page.images
                if src.startswith(f"example_{k:03d}")]
    assert pictures == [(f"example_{k:03d}_a.png", False), (f"example_{k:03d}_b.png", False),
                        (f"example_{k:03d}_a_attention.png", True),
                        (f"example_{k:03d}_b_attention.png", True)]
    assert all((tmp_path / p).is_file() for p, _ in pictures)
    assert all(int(i["width"]) <= 600 for i in _images(page))  # two in a 1,200 px column
    # How many of A's 3 top tokens are B's, per method both have (ties: first).
    top = lambda s: set(np.argsort(-np.asarray(s), kind="stable")[:3].tolist())
    shared = {m.name: len(top(m.scores) & top(n.scores))
              for m in ea.methods for n in eb.methods if m.name == n.name}
    assert (f"top-3 tokens in common, A and B: gradient × input {shared['gradient_x_input']}/3"
            f" · leave-one-out {shared['occlusion']}/3 · attention {shared['attention']}/3"
            ) in text
  rows = [r[0] for r in page.table("m")[0][1:]]
  assert [re.sub(r"comp.*", "", r) for r in rows] == [
      "A · VMASK", "A · gradient × input", "B · gradient × input", "A · leave-one-out",
      "B · leave-one-out", "A · attention", "B · attention"]
  ((header, *_),) = page.table("index")
  assert header == ["example", "true", "A predicted (confidence)", "A correct",
                    "B predicted (confidence)", "B correct", "text"]
  saved = json.loads((tmp_path / "explanations.json").read_text())
  assert saved["examples"] == result.records
  assert saved["compare_to"]["examples"] == result.compared_records
  assert result.compared_records[0]["image"] == "example_000_b.png"


def test_runs_that_read_text_differently_cannot_be_compared(pair, tmp_path):
  other = tmp_path / "other"
  shutil.copytree(pair[1], other, ignore=shutil.ignore_patterns("train.lock"))
  (other / "run_identity.json").unlink()  # edited files then load as they are
  vocab = (other / "vocab.txt").read_text().splitlines()
  vocab[2], vocab[3] = vocab[3], vocab[2]
  (other / "vocab.txt").write_text("\n".join(vocab) + "\n")
  with pytest.raises(InterpretError) as e:
    explain_files.explain_run(pair[0], compare_to=other, num=2, out=tmp_path / "x")
  message = str(e.value)
  assert "\n" not in message and "vocab.txt (sha256" in message and "label" not in message
  labels = json.loads((other / "labels.json").read_text())
  labels["label_names"] = ["bad", "good"]
  (other / "labels.json").write_text(json.dumps(labels))
  proc = subprocess.run([sys.executable, "-m", "safr_jax.explain", f"--workdir={pair[0]}",
                         f"--compare_to={other}", f"--out={tmp_path / 'y'}"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  (line,) = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert line.startswith(f"error: --compare_to: {other} cannot be compared with {pair[0]}: "
                         "their vocab.txt (sha256 ")
  assert line.endswith("; label names (['negative', 'positive'] vs ['bad', 'good']) "
                       "differ; compare runs trained on the same data")
  assert not (tmp_path / "y" / "index.html").exists()


def test_self_contained_inlines_each_picture_once(pair, tmp_path):
  result = explain_files.explain_run(pair[0], compare_to=pair[1], num=2, out=tmp_path,
                                    self_contained=True)
  source = result.index.read_text()
  page = _parse(result.index)
  assert not list(tmp_path.glob("*.png"))
  images = _images(page)
  assert len(images) == source.count("base64,") == result.pictures == 8
  payloads = [base64.b64decode(i["src"].split(",", 1)[1]) for i in images]
  assert all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in payloads)
  assert len(set(payloads)) == 8
  assert not [a for t, a in page.tags if t == "a" and not a["href"].startswith("#")]


def test_free_text_is_tokenised_like_the_training_data(pair, tmp_path):
  run = runs.load_run(pair[0])
  example = inputs.text_example(run, "not bad at all, a moving film")
  assert example.words == ["not", "bad", "at", "all", ",", "a", "moving", "film"]
  assert example.tokens == run.vocab.decode(run.vocab.encode(" ".join(example.words)))
  assert "," in example.tokens  # punctuation apart, as in the training sentences
  result = explain_files.explain_run(pair[0], texts=["Not bad at all, a moving film"],
                                    out=tmp_path)
  text = "".join(_parse(result.index).text)
  assert "as the model reads it: not bad at all , a moving film" in text
  assert result.records[0]["words"] == example.words


def test_text_never_overwrites_the_sample_page(pair):
  sample = explain_files.explain_run(pair[0], num=2)
  before = {p.name: p.read_bytes() for p in sample.index.parent.iterdir()}
  texts = ["not bad at all", "a moving film"]
  result = explain_files.explain_run(pair[0], texts=texts)
  assert sample.index.parent == pair[0] / "explanations"
  assert result.index.parent.parent == pair[0]
  assert result.index.parent.name.startswith("explanations_text-")
  assert {p.name: p.read_bytes() for p in sample.index.parent.iterdir()} == before
  # What a caller prints per text: its prediction and probabilities.
  assert [(r["text"], r["pred"]) for r in result.records] == [
      (e.text, e.pred) for e in result.explanations.explanations]
  assert all(sum(r["probs"].values()) == pytest.approx(1) for r in result.records)


def test_num_beyond_the_split_explains_all_of_it_with_progress(pair, tmp_path, monkeypatch):
  load = inputs.load_split

  def three(run, split):  # a 3-example split: the cap without minutes of pictures
    s = load(run, split)
    return dataclasses.replace(s, **{f.name: getattr(s, f.name)[:3] for f in
                                     dataclasses.fields(s) if getattr(s, f.name) is not None})

  monkeypatch.setattr(inputs, "load_split", three)
  calls = []
  result = explain_files.explain_run(
      pair[0], num=50, out=tmp_path, progress=lambda *a: calls.append(a),
      notify=lambda note: calls.append(note))
  assert [r["name"] for r in result.records] == ["test[0]", "test[1]", "test[2]"]
  assert "--num 50 is more than the 3 examples of the test split: explained all 3" in (
      result.notes)
  # The cap is said before the work; then each example explained, then drawn.
  assert calls == [result.notes[0]] + [(k, 6) for k in range(1, 7)]
