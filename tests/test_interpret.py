"""Interpretability metrics on hand-made cases with known answers (no training)."""

import base64
import functools
import html.parser
import importlib
import json
import math
import pkgutil
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from safr_jax import data
import safr_jax.interpret
from safr_jax.interpret import (attention, comparison, explanations, faithfulness, forward,
                                html as page, interpretability, neurons,
                                planted_recovery as planted, superposition, token_stats)
from safr_jax.interpret.attribution import occlusion
from safr_jax.interpret.forward import Predictor, last_token
from safr_jax.model import SafrClassifier


# --- superposition ------------------------------------------------------------


def test_orthogonal_tokens_share_nothing_and_have_full_dimensionality():
  x = np.diag([3.0, 1.0, 0.5, 2.0])[:3]          # 3 orthogonal tokens in 4 dims
  sharing, dim = superposition.token_superposition(x)
  np.testing.assert_allclose(sharing, 0.0, atol=1e-12)
  np.testing.assert_allclose(dim, 1.0)


def test_superposition_known_values():
  # Two identical tokens: each projects its whole norm on the other.
  x = np.array([[3.0, 4.0], [3.0, 4.0]])
  sharing, dim = superposition.token_superposition(x)
  np.testing.assert_allclose(sharing, [25.0, 25.0])
  np.testing.assert_allclose(dim, [0.5, 0.5])
  # 45 degrees apart, norms 1 and 2: (x̂_0·x_1)² = 2, (x̂_1·x_0)² = 1/2.
  x = np.array([[1.0, 0.0], [np.sqrt(2), np.sqrt(2)]])
  sharing, dim = superposition.token_superposition(x)
  np.testing.assert_allclose(sharing, [2.0, 0.5])
  np.testing.assert_allclose(dim, [1 / 3, 4 / 4.5])


def test_zero_vector_has_no_direction():
  sharing, dim = superposition.token_superposition(np.array([[0.0, 0.0], [1.0, 0.0]]))
  assert np.isnan(sharing[0]) and np.isnan(dim[0])
  assert sharing[1] == 0.0 and dim[1] == 1.0


# --- neurons -------------------------------------------------------------------


def test_jaccard_on_known_sets():
  assert neurons.jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(2 / 4)
  assert neurons.jaccard({1}, {2}) == 0.0
  assert neurons.jaccard({5, 6}, {5, 6}) == 1.0
  assert neurons.jaccard(set(), set()) == 0.0
  on = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]], bool)
  expected = [[neurons.jaccard(np.flatnonzero(a), np.flatnonzero(b)) for b in on] for a in on]
  np.testing.assert_allclose(neurons.pairwise_jaccard(on), expected)


def test_neuron_order_puts_shared_first_then_exclusive_by_token():
  h = np.array([[0.0, 2.0, 1.0, 0.0, 0.0, 0.5],    # token 0: 1, 2, 5
                [0.0, 1.0, 0.0, 3.0, 0.0, 0.0],    # token 1: 1, 3
                [0.0, 1.0, 0.0, 0.0, 0.0, 0.7]])   # token 2: 1, 5
  order = neurons.NeuronOrder(h)
  assert order.order.tolist() == [1, 5, 2, 3]      # shared by 3, by 2; then excl.
  assert order.num_shared == 2 and order.num_silent == 2
  assert [s.tolist() for s in order.exclusive_sets] == [[2], [3], []]
  assert [s.tolist() for s in order.active_sets] == [[1, 2, 5], [1, 3], [1, 5]]


# --- attention -----------------------------------------------------------------


def test_attention_received_and_pairs():
  a = np.array([[0.1, 0.8, 0.1, 0.0],
                [0.7, 0.2, 0.1, 0.0],
                [0.3, 0.3, 0.4, 0.0],
                [0.25, 0.25, 0.25, 0.25]])          # row 3 is a padding query
  mask = np.array([True, True, True, False])
  np.testing.assert_allclose(attention.received(a, mask), [1.1, 1.3, 0.6, 0.0])
  s = attention.pair_strength(a[:3, :3])
  np.testing.assert_allclose(s, s.T)
  assert np.all(np.diag(s) == 0)
  top = attention.top_pairs(s, 2)
  assert [(i, j) for i, j, _ in top] == [(0, 1), (0, 2)]
  assert top[0][2] == pytest.approx(0.75)


# --- faithfulness ----------------------------------------------------------------


def test_bin_sizes_and_ranking():
  assert faithfulness.bin_sizes(20) == [1, 1, 2, 4, 10]
  assert faithfulness.bin_sizes(3) == [1, 1, 1, 1, 2]
  assert faithfulness.bin_sizes(100) == [1, 5, 10, 20, 50]
  order = faithfulness.ranking(np.array([0.5, 0.9, 0.5, 7.0]), np.array([1, 1, 1, 0], bool))
  assert order.tolist() == [1, 0, 2]               # padding never ranked; ties by position


def _linear_model(weights, base=0.2):
  """p(class 1) = base + Σ_j w[id_j] (id 0 = padding weighs 0): additive, so
  every deletion curve is known exactly."""
  weights = np.asarray(weights, np.float64)

  def prob_fn(ids):
    p1 = base + weights[np.asarray(ids)].sum(axis=1)
    return np.stack([1 - p1, p1], axis=1)
  return prob_fn


def test_aopc_comprehensiveness_sufficiency_on_a_linear_toy_model():
  w = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.3])  # id → contribution
  prob_fn = _linear_model(w)
  ids = np.array([[5, 1, 4, 2, 3, 0, 0]])          # n = 5, p = 0.2 + 0.48
  perfect = np.array([[0.3, 0.01, 0.1, 0.02, 0.05, 0, 0]])
  out = faithfulness.evaluate_faithfulness(prob_fn, ids, {"perfect": [perfect]},
                                           bins=(0.2, 0.6), aopc_steps=3)
  m = out["methods"]["perfect"]
  # Ranked contributions 0.3, 0.1, 0.05, 0.02, 0.01; bins 20 % → 1, 60 % → 3 tokens.
  assert m["comprehensiveness"] == pytest.approx((0.3 + 0.45) / 2)
  assert m["sufficiency"] == pytest.approx(((0.48 - 0.3) + (0.48 - 0.45)) / 2)
  assert m["aopc"] == pytest.approx((0 + 0.3 + 0.4 + 0.45) / 4)
  assert out["examples"] == 1


def test_aopc_at_a_depth_deletes_a_fraction_of_each_text():
  w = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.3])
  prob_fn = _linear_model(w)
  ids = np.array([[5, 1, 4, 2, 3, 0, 0], [4, 3, 0, 0, 0, 0, 0]])   # n = 5 and 2
  out = faithfulness.evaluate_faithfulness(prob_fn, ids, {"perfect": [w[ids]]},
                                           bins=(0.2, 0.6), aopc_steps=3, depths=(0.4, 1.0))
  per = out["per_example"]["perfect"]
  # n = 5, depth 40 %: ceil(k·2/3) = 1, 2, 2 tokens; depth 100 %: 2, 4, 5 tokens.
  assert per["aopc@40%"][0] == pytest.approx((0 + 0.3 + 0.4 + 0.4) / 4)
  assert per["aopc@100%"][0] == pytest.approx((0 + 0.4 + 0.47 + 0.48) / 4)
  # n = 2 (0.1, 0.05; p1 = 0.35, so class 0 is predicted and deleting the top
  # token lowers p0 by -0.1), depth 40 %: ceil(k·0.8/3) = 1, 1, 1 token.
  assert per["aopc@40%"][1] == pytest.approx(-3 * 0.1 / 4)
  # The summary is the mean of the per-example values; the fixed-K AOPC stays.
  summary = out["methods"]["perfect"]
  assert summary["aopc_by_depth"]["40%"] == pytest.approx(np.mean(per["aopc@40%"]))
  assert summary["aopc"] == pytest.approx(np.mean(per["aopc"]))
  assert list(out["example_rows"]) == [0, 1]


def test_perfect_explanation_beats_random():
  rng = np.random.default_rng(0)
  w = np.concatenate([[0.0], rng.uniform(0, 0.02, 99)])
  ids = rng.integers(1, 100, size=(40, 20))
  ids[:, 15:] = 0                                  # 15 tokens each
  prob_fn = _linear_model(w, base=0.5)             # class 1 predicted everywhere
  truth = np.where(ids != 0, w[ids], -np.inf)
  random_orders = [rng.random(ids.shape) for _ in range(3)]
  out = faithfulness.evaluate_faithfulness(
      prob_fn, ids, {"perfect": [truth], "random": random_orders})
  perfect, rand = out["methods"]["perfect"], out["methods"]["random"]
  assert perfect["comprehensiveness"] > rand["comprehensiveness"] + 0.01
  assert perfect["sufficiency"] < rand["sufficiency"] - 0.01
  assert perfect["aopc_minus_random"] > 0 and perfect["aopc_over_random"] > 1
  assert rand["aopc_minus_random"] == 0 and rand["aopc_over_random"] == 1
  reverse = faithfulness.evaluate_faithfulness(prob_fn, ids, {"worst": [-truth]})
  assert reverse["methods"]["worst"]["comprehensiveness"] < rand["comprehensiveness"]


def test_occlusion_is_the_drop_of_each_token():
  w = np.array([0.0, 0.01, 0.02, 0.05, 0.1, 0.3])
  ids = np.array([[5, 1, 4, 0]])
  prob_fn = _linear_model(w)
  scores = occlusion(prob_fn, ids, prob_fn(ids))
  np.testing.assert_allclose(scores, [[0.3, 0.01, 0.1, 0.0]])


def test_empty_rows_are_left_out():
  prob_fn = _linear_model([0.0, 0.1])
  out = faithfulness.evaluate_faithfulness(prob_fn, np.zeros((2, 4), int),
                                           {"x": [np.zeros((2, 4))]})
  assert out["examples"] == 0 and out["methods"]["x"]["aopc"] is None


# --- planted -------------------------------------------------------------------


def test_precision_recall_at_k():
  mask = np.array([[1, 1, 1, 1, 1, 0]], bool)
  truth = np.array([[0, 1, 1, 0, 0, 0]], bool)
  scores = np.array([[0.1, 0.9, 0.2, 0.8, 0.0, 5.0]])   # ranks 1, 3, 2, 0, 4
  out = planted.precision_recall([scores], truth, mask, ks=(1, 3))
  assert out["precision"] == {"@1": 1.0, "@3": pytest.approx(2 / 3), "@|P|": 0.5}
  assert out["recall"] == {"@1": 0.5, "@3": 1.0, "@|P|": 0.5}
  assert out["examples"] == 1


def test_negation_pair_hits():
  n = 4
  a = np.full((1, 5, 5), 0.1)
  a[0, 2, 3] = a[0, 3, 2] = 0.9                    # "not"(2) ↔ word(3)
  mask = np.array([[1, 1, 1, 1, 0]], bool)
  pairs = np.array([[[2, 3], [-1, -1], [-1, -1]]])
  out = planted.negation_pairs(a, mask, pairs)
  assert out["pair_hit_rate"] == 1.0 and out["word_top_partner_is_not"] == 1.0
  assert out["pair_hit_rate_chance"] == pytest.approx(1 / (n * (n - 1) / 2))
  assert out["word_top_partner_is_not_chance"] == pytest.approx(1 / (n - 1))
  a[0, 2, 3] = a[0, 3, 2] = 0.0
  assert planted.negation_pairs(a, mask, pairs)["pair_hit_rate"] == 0.0


# --- the model under jit at fixed shapes ------------------------------------------


@pytest.fixture(scope="module")
def small_model():
  model = SafrClassifier(vocab_size=20, num_classes=2, d_model=8, num_heads=2,
                         d_ff=16, vmask_hidden_dim=8, pool="tokens", dropout_rate=0.0)
  params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 16), jnp.int32))["params"]
  ids = np.array([[3, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                  [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0, 0, 0, 0, 0],
                  [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
  return model, params, ids


def test_bucketed_probs_equal_one_full_width_pass(small_model):
  model, params, ids = small_model
  direct = jax.jit(lambda p, x: jax.nn.softmax(model.apply({"params": p}, x)[0], -1))(
      params, jnp.asarray(ids))
  pred = Predictor(model, params, max_len=16, pad_to="batch", chunk_size=2)
  np.testing.assert_allclose(pred.probs(ids), direct, rtol=1e-5, atol=1e-6)
  assert last_token(ids).tolist() == [4, 11, 1]


def test_gradient_x_input_matches_the_embedding_table_gradient(small_model):
  # Every id occurs once per row, so ∂/∂(table row id_j) = ∂/∂(position j).
  model, params, ids = small_model
  target = np.array([1, 0, 1])
  got = Predictor(model, params, max_len=16, pad_to="batch").grad_x_input(
      ids, last_token(ids), target)
  table = params["embedding"]["embedding"]

  @jax.jit
  def table_grad(row_ids, label):
    def log_p(table):
      p = dict(params, embedding={"embedding": table})
      return jax.nn.log_softmax(model.apply({"params": p}, row_ids)[0])[0, label]
    return jax.grad(log_p)(table)

  for row in range(len(ids)):
    g = table_grad(jnp.asarray(ids[row:row + 1]), target[row])
    n = int((ids[row] != 0).sum())
    want = [float(jnp.dot(g[i], table[i])) for i in ids[row, :n]]
    np.testing.assert_allclose(got[row, :n], want, rtol=1e-4, atol=1e-6)
    assert np.all(got[row, n:] == 0)


# --- batched deletion passes (occlusion, faithfulness) vs a per-example reference ---


_DELETION_MODELS = [("tokens", True, 1), ("all", False, 2)]


@functools.lru_cache(maxsize=None)
def _deletion_model(pool, use_vmask, num_layers, width=24):
  """A tiny model (compiled once per module), 6 examples and a one-row reference."""
  model = SafrClassifier(vocab_size=30, num_classes=3, d_model=16, num_heads=2,
                         d_ff=32, vmask_hidden_dim=8, num_layers=num_layers,
                         use_vmask=use_vmask, pool=pool, param_init="torch",
                         dropout_rate=0.0)
  params = model.init(jax.random.key(1), jnp.ones((1, width), jnp.int32))["params"]
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 30, (6, width)).astype(np.int32)
  for row, n in enumerate([24, 13, 5, 1, 0, 17]):    # one full row, one empty row
    ids[row, n:] = 0
  ids[1, 3] = 0                                      # a hole before the last token
  one_row = jax.jit(lambda x: jax.nn.softmax(model.apply({"params": params}, x[None])[0][0]))
  # Small tables and chunks: several table groups, widths and padded chunks.
  pred = Predictor(model, params, max_len=width, pad_to="max_len", chunk_tokens=40,
                   table_tokens=30)
  return pred, ids, lambda row: np.asarray(one_row(jnp.asarray(row, jnp.int32)), np.float64)


@pytest.mark.parametrize("pool,use_vmask,num_layers", _DELETION_MODELS)
def test_deletion_probs_equal_the_model_on_the_built_rows(pool, use_vmask, num_layers):
  pred, ids, one_row = _deletion_model(pool, use_vmask, num_layers)
  rng = np.random.default_rng(1)
  rows = rng.integers(0, len(ids), 120)
  keep = rng.random((120, ids.shape[1])) < rng.random((120, 1))
  keep[:6], rows[:6] = False, np.arange(6)           # everything deleted
  keep[6:12], rows[6:12] = True, np.arange(6)        # nothing deleted
  keep[12:30], rows[12:30] = keep[30:48], rows[30:48]  # duplicates
  got = pred.deletion_probs(ids, rows, keep)
  want = np.stack([one_row(np.where(k, ids[r], 0)) for r, k in zip(rows, keep)])
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  np.testing.assert_allclose(got[6:12], pred.probs(ids), rtol=0, atol=1e-5)


def _reference_occlusion(one_row, ids):
  out = np.zeros(ids.shape)
  for e, row in enumerate(ids):
    full = one_row(row)
    y = np.argmax(full)
    for j in np.flatnonzero(row):
      out[e, j] = full[y] - one_row(np.where(np.arange(len(row)) == j, 0, row))[y]
  return out


def _reference_faithfulness(one_row, ids, scores, bins=faithfulness.BINS, steps=10):
  """The module docstring's formulas, one example and one model call at a time."""
  methods = {}
  for name, arrays in scores.items():
    comp, suff, aopc, deep = [], [], [], []
    for s in arrays:
      for row, score in zip(ids, s):
        real = [int(j) for j in np.flatnonzero(row)]
        if not real:
          continue
        full = one_row(row)
        y = int(np.argmax(full))
        ranked = sorted(real, key=lambda j: (-score[j], j))
        n = len(real)

        def without(m):
          r = row.copy()
          r[ranked[:m]] = 0
          return full[y] - one_row(r)[y]

        def only(m):
          r = np.zeros_like(row)
          r[ranked[:m]] = row[ranked[:m]]
          return full[y] - one_row(r)[y]

        sizes = [min(n, max(1, math.ceil(b * n - 1e-9))) for b in bins]
        comp.append([without(m) for m in sizes])
        suff.append([only(m) for m in sizes])
        aopc.append(sum(without(min(k, n)) for k in range(1, steps + 1)) / (steps + 1))
        deep.append([sum(without(math.ceil(k * d * n / steps - 1e-9))
                         for k in range(1, steps + 1)) / (steps + 1)
                     for d in (0.1, 0.2, 0.5)])
    methods[name] = {
        "comprehensiveness": np.mean(comp), "sufficiency": np.mean(suff),
        "aopc": np.mean(aopc),
        "aopc_by_depth": dict(zip(["10%", "20%", "50%"], np.mean(deep, axis=0))),
        "comprehensiveness_by_bin": dict(zip(["1%", "5%", "10%", "20%", "50%"],
                                             np.mean(comp, axis=0))),
        "sufficiency_by_bin": dict(zip(["1%", "5%", "10%", "20%", "50%"],
                                       np.mean(suff, axis=0)))}
  floor = methods["random"]["aopc"]
  for m in methods.values():
    m["aopc_minus_random"] = m["aopc"] - floor
    m["aopc_over_random"] = m["aopc"] / floor
  return methods


@pytest.mark.parametrize("pool,use_vmask,num_layers", _DELETION_MODELS)
def test_batched_occlusion_and_faithfulness_equal_a_per_example_reference(
    pool, use_vmask, num_layers):
  pred, ids, one_row = _deletion_model(pool, use_vmask, num_layers)
  full = pred.probs(ids)
  deletion_fn = functools.partial(pred.deletion_probs, ids)
  occ = occlusion(pred.probs, ids, full, deletion_fn=deletion_fn)
  np.testing.assert_allclose(occ, _reference_occlusion(one_row, ids), rtol=0, atol=1e-5)
  np.testing.assert_allclose(occ, occlusion(pred.probs, ids, full), rtol=0, atol=1e-5)
  rng = np.random.default_rng(2)
  mask = ids != 0
  scores = {"occlusion": [occ], "ties": [np.round(rng.random(ids.shape), 1)],
            "random": [rng.random(ids.shape) for _ in range(3)]}
  scores = {k: [np.where(mask, s, -np.inf) for s in v] for k, v in scores.items()}
  got = faithfulness.evaluate_faithfulness(pred.probs, ids, scores, full_probs=full,
                                           deletion_fn=deletion_fn)
  unbatched = faithfulness.evaluate_faithfulness(pred.probs, ids, scores, full_probs=full)
  want = _reference_faithfulness(one_row, ids, scores)
  assert got["examples"] == 5
  for name, metrics in want.items():
    assert set(got["methods"][name]) == set(metrics)
    for key, value in metrics.items():
      for result in (got, unbatched):
        if isinstance(value, dict):
          assert result["methods"][name][key] == pytest.approx(value, rel=0, abs=1e-5)
        elif key == "aopc_over_random":
          assert result["methods"][name][key] == pytest.approx(value, rel=1e-4)
        else:
          assert result["methods"][name][key] == pytest.approx(value, rel=0, abs=1e-5)


# --- HTML and comparison ----------------------------------------------------------


class _Tags(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.tags, self.text = [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append((tag, dict(attrs)))

  def handle_data(self, data):
    self.text.append(data)


def _explanation(**changes):
  fields = dict(
      id="ex-0", name="x<b>", title="1. <i>x</i>", text="<script>alert(1)</script>",
      tokens=("<script>alert(1)</script>", "<a>"), words=("<script>alert(1)</script>", '"q"'),
      importance=(0.9, 0.1), importance_label="VMASK", importance_signed=False,
      pred="pos<", confidence=0.9, probs={"neg": 0.1, "pos<": 0.9}, true="neg",
      notes=("<img src=x onerror=alert(1)>",), pair_positions=((0, 1, 0.5),),
      neurons=(explanations.TokenNeurons(token="<a> (#1)", importance=0.1, active=2,
                                         exclusive=(3,), strongest=(3, 0)),),
      d_ff=4, threshold=0.0, planted=(True, False), strength=None, hidden=None,
      neuron_order=None)
  fields.update(changes)
  return explanations.Explanation(**fields)


def _page(*items, pictures=None):
  return page.render_page(explanations.ExplanationSet(
      title="t<", header=(("run", "<r>"),), notes=("<n>",), explanations=items,
      has_vmask=True), pictures)


def test_page_escapes_untrusted_text():
  parser = _Tags()
  parser.feed(_page(_explanation()))
  tags = [t for t, _ in parser.tags]
  assert "script" not in tags and "i" not in tags and "img" not in tags and "a" in tags
  assert not any(t == "a" and a.get("href") not in ("#ex-0", "#index") for t, a in parser.tags)
  assert "<script>alert(1)</script>" in "".join(parser.text)


def test_explanation_record_and_page_from_the_dataclass():
  e = _explanation()
  record = e.to_json("example_000.png")
  assert record["pairs"] == [["<script>alert(1)</script> (#0)", "<a> (#1)", 0.5]]
  assert record["neurons"] == [{"token": "<a> (#1)", "importance": 0.1, "active": 2,
                                "exclusive": [3], "strongest": [3, 0]}]
  assert record["image"] == "example_000.png" and record["planted"] == [True, False]
  assert json.loads(json.dumps(record)) == record           # plain JSON types only
  png = b"\x89PNG fake"
  parser = _Tags()
  parser.feed(_page(e, _explanation(id="ex-1", true=None),
                    pictures={"ex-0": [page.Picture(file="example_000.png", png=png)]}))
  images = [a for t, a in parser.tags if t == "img"]
  assert [i["data-file"] for i in images] == ["example_000.png"]
  assert images[0]["src"] == "data:image/png;base64," + base64.b64encode(png).decode()
  assert "ex-1" in {a.get("id") for _, a in parser.tags}


def _fake_run(path, *, seed, accuracy, variant="safr", aopc=0.2, vmask=True,
              source="planted", train=2000, examples=500):
  path.mkdir(parents=True)
  (path / "results.json").write_text(json.dumps({
      "test": {"accuracy": accuracy, "importance": 0.5, "interaction": 0.1},
      "best_dev_accuracy": accuracy, "train_seconds": 3.0,
      "dataset": {"source": source, "sizes": {"train": train, "dev": 500, "test": 500}},
      "config": {"name": "planted", "variant": variant, "seed": seed,
                 "model": {"use_vmask": vmask},
                 "loss": {"importance": 1.0 if variant == "safr" else 0.0,
                          "interaction": 1.0 if variant == "safr" else 0.0}}}))
  faith = {"gradient_x_input": {"comprehensiveness": 0.1, "aopc_by_depth": {"20%": aopc / 2}},
           "occlusion": {"comprehensiveness": 0.1, "aopc_by_depth": {"20%": aopc / 4}}}
  if vmask:
    faith["vmask"] = {"comprehensiveness": 0.3, "aopc_by_depth": {"20%": aopc}}
  (path / "interpretability.json").write_text(json.dumps({
      "run": {"workdir": str(path)}, "accuracy": accuracy, "notes": ["x"], "examples": examples,
      "faithfulness": faith, "settings": {"faithfulness": {"bins": ["1%"]}}}))
  return path


def test_compare_groups_seeds_into_mean_and_std(tmp_path):
  runs = [_fake_run(tmp_path / "a0", seed=0, accuracy=0.8, aopc=0.2),
          _fake_run(tmp_path / "a1", seed=1, accuracy=0.9, aopc=0.4),
          _fake_run(tmp_path / "b0", seed=0, accuracy=0.7, variant="baseline",
                    vmask=False, aopc=0.1, examples=30),
          _fake_run(tmp_path / "b1", seed=1, accuracy=0.7, variant="baseline",
                    vmask=False, aopc=0.1, examples=20)]
  (runs[1] / "interpretability.json").unlink()
  out = comparison.compare_runs(runs, tmp_path / "cmp")
  assert list(out.groups) == ["planted:safr λ_imp=1 λ_inter=1 on planted 2,000/500/500",
                              "planted:baseline λ_imp=0 λ_inter=0 on planted 2,000/500/500"]
  std = np.std([0.8, 0.9], ddof=1)
  # Accuracy from both runs; the gate's AOPC from the one evaluated run, said so.
  assert (f"| planted:safr λ_imp=1 λ_inter=1 | planted 2,000/500/500 | 2 | 0, 1 | 500 | "
          f"0.8500 ± {std:.4f} | 0.2000 (n=1) | 0.1000 (n=1) |") in out.markdown
  # Like with like: gradient × input for the baseline too, no gate column value; the
  # examples each run's interpretability was scored on, where they differ.
  assert ("| planted:baseline λ_imp=0 λ_inter=0 | planted 2,000/500/500 | 2 | 0, 1 | 20, 30 | "
          "0.7000 ± 0.0000 | — | 0.0500 ± 0.0000 |") in out.markdown
  assert "settings" not in out.markdown
  assert out.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert (tmp_path / "cmp" / "comparison.md").read_text() == out.markdown
  points, references = comparison.frontier(out.groups)
  assert [p["y"] for p in points] == [0.2]
  # The plain model is a reference: its accuracy and its best post-hoc explanation.
  assert references == [{"label": list(out.groups)[1], "accuracy": 0.7,
                         "faithfulness": 0.05, "method": "gradient_x_input"}]


def test_compare_never_averages_runs_trained_on_different_data(tmp_path):
  runs = [_fake_run(tmp_path / "rt", seed=0, accuracy=0.7069, source="rt_polarity"),
          _fake_run(tmp_path / "sst", seed=0, accuracy=0.6305, source="sst_treebank"),
          _fake_run(tmp_path / "small", seed=1, accuracy=0.6, source="sst_treebank",
                    train=100)]
  out = comparison.compare_runs(runs, tmp_path / "cmp")
  assert [len(g) for g in out.groups.values()] == [1, 1, 1]
  assert "0.6687" not in out.markdown                  # the mean of two datasets
  assert any("different data" in n for n in out.notes)


def test_interval_is_the_t_interval_of_the_mean():
  mean, half = comparison.interval([1.0, 2.0, 3.0])
  assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
  assert comparison.interval([1.0]) == (1.0, None)
  assert comparison.interval([]) == (None, None)


def test_flatten_keeps_only_finite_numbers():
  assert comparison.flatten({"a": {"b": 1, "c": [1, 2], "d": None, "e": True,
                                   "f": "x", "g": math.nan}, "h": 2.5}) == {"a.b": 1.0, "h": 2.5}


def test_format_mean_std():
  assert comparison.format_mean_std([0.8, 0.9]) == f"0.8500 ± {np.std([0.8, 0.9], ddof=1):.4f}"
  assert comparison.format_mean_std([0.8, 0.9]) == "0.8500 ± 0.0707"
  assert comparison.format_mean_std([0.8, 0.9], 2) == "0.85 ± 0.07"
  assert comparison.format_mean_std([0.8, 0.9], 4, std_digits=2, notation="g") == "0.85 ± 0.071"
  assert comparison.format_mean_std([3.0], notation="g") == "3"
  assert comparison.format_mean_std([0.25, None, math.nan, math.inf]) == "0.2500"
  assert comparison.format_mean_std([]) == "—"
  assert comparison.format_mean_std([None], missing="n/a") == "n/a"


# --- every interpret module's public names --------------------------------------


def test_star_import_of_every_interpret_module():
  names = [m.name for m in pkgutil.iter_modules(safr_jax.interpret.__path__)]
  assert {"interpretability", "planted_recovery", "explanations"} <= set(names)
  assert "planted" not in names
  for name in names:
    module = importlib.import_module(f"safr_jax.interpret.{name}")
    assert hasattr(module, "__all__"), name
    namespace = {}
    exec(f"from safr_jax.interpret.{name} import *", namespace)  # pylint: disable=exec-used
    missing = [n for n in module.__all__ if n not in namespace]
    assert not missing, (name, missing)


# --- superposition among important tokens (token_stats) -------------------------


def _acts(emb, keep, ffn=None):
  emb = np.asarray(emb, np.float64)
  n = len(emb)
  return forward.TokenActivations(
      embeddings=emb, ffn=np.asarray(emb if ffn is None else ffn)[None],
      keep_prob=None if keep is None else np.asarray(keep, np.float64),
      attention=np.full((n, n), 1.0 / n))


def test_superposition_of_important_tokens_pooled_and_among_themselves():
  # Tokens 0 and 1 important (keep > 0.5), token 2 not.
  #   pooled over all tokens:   sharing (1+1, ½+½) = (2, 1), dim (1/3, 2/3)
  #   among tokens 0, 1 only:   sharing (1, ½),             dim (1/2, 2/2.5)
  x = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
  stats = token_stats.TokenStats(threshold=0.0, pairs_per_example=1, seed=0)
  stats.add(_acts(x, [0.9, 0.8, 0.2]))
  stats.add(_acts([[2.0, 0.0]], [0.3]))              # no important token: only all/other
  sup = stats.superposition_summary()
  for space in ("embeddings", "ffn"):
    pooled, among = sup[space]["important"], sup[space]["important_among_important"]
    assert pooled["tokens"] == among["tokens"] == 2
    assert pooled["sharing"] == pytest.approx((2 + 1) / 2)
    assert pooled["dimensionality"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert among["sharing"] == pytest.approx((1 + 0.5) / 2)
    assert among["dimensionality"] == pytest.approx((0.5 + 0.8) / 2)
    assert sup[space]["other"]["tokens"] == 2 and sup[space]["all"]["tokens"] == 4
    assert sup[space]["other"]["sharing"] == pytest.approx((1 + 0) / 2)  # ½ + ½; alone


def test_superposition_among_important_is_null_without_vmask():
  stats = token_stats.TokenStats(threshold=0.0, pairs_per_example=1, seed=0)
  stats.add(_acts([[1.0, 0.0], [1.0, 1.0]], None))
  sup = stats.superposition_summary()
  assert sup["embeddings"]["important_among_important"] == {
      "sharing": None, "dimensionality": None, "tokens": 0}
  assert sup["embeddings"]["all"]["sharing"] == pytest.approx((1 + 0.5) / 2)
  assert stats.overlap_summary()["important_pairs"] is None


def test_matched_mechanism_metrics_compare_the_same_count_per_pair():
  # Keep-probabilities pick tokens 0 and 2 (top_k = 2) however many pass 0.5;
  # scaling a token (a closing gate) changes no matched value.
  x = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
  results = []
  for scale, keep in ((1.0, [0.9, 0.1, 0.8]), (0.01, [0.4, 0.1, 0.3])):
    stats = token_stats.TokenStats(threshold=0.0, pairs_per_example=1, seed=0, top_k=2)
    stats.add(_acts(x * np.array([[scale], [1.0], [scale]]), keep), row=1)
    results.append(stats.per_example(3))
  for per in results:
    assert np.isnan(per["topk_cos2_ffn"][[0, 2]]).all()       # rows never added
    assert per["topk_cos2_embeddings"][1] == pytest.approx(0.5)  # cos 45°, squared
    assert per["topk_cos2_ffn"][1] == pytest.approx(0.5)
    assert per["topk_jaccard"][1] == pytest.approx(1 / 2)      # {0} vs {0, 1}
    # One attention pair and one random pair; their difference is stored too.
    assert per["attention_minus_random"][1] == pytest.approx(
        per["attention_jaccard"][1] - per["random_jaccard"][1])
  stats = token_stats.TokenStats(threshold=0.0, pairs_per_example=1, seed=0)
  stats.add(_acts(x, None), row=0)                              # no VMASK: no top-k
  summary = stats.matched_summary(1)
  assert summary["topk_jaccard"] is None and summary["topk_jaccard_examples"] == 0
  assert summary["attention_jaccard_examples"] == 1


# --- the shared forward pass and the VMASK gate on the whole split ---------------


def test_collect_gathers_rows_and_hands_out_each_examples_tokens(small_model):
  model, params, ids = small_model
  lengths = last_token(ids)
  seen = {}
  passed = forward.collect(Predictor(model, params, max_len=16, pad_to="batch"), ids,
                           lengths, lambda row, acts: seen.setdefault(row, acts))
  logits, intermediates = jax.jit(lambda p, x: model.apply({"params": p}, x))(
      params, jnp.asarray(ids[:, :passed.width]))
  assert passed.width == 16                          # longest row 11, rounded up to 8s
  np.testing.assert_allclose(passed.probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(passed.keep_prob, intermediates.keep_prob, rtol=1e-5)
  np.testing.assert_allclose(passed.attention,
                             np.mean(np.stack(intermediates.attention), axis=(0, 2)),
                             rtol=1e-5, atol=1e-7)
  assert sorted(seen) == [0, 1, 2]
  for row, acts in seen.items():
    n = int(lengths[row])
    assert acts.embeddings.shape == (n, 8) and acts.ffn.shape == (1, n, 16)
    np.testing.assert_allclose(acts.embeddings, intermediates.masked_embeddings[row, :n],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts.ffn[0], intermediates.ffn_hidden[0][row, :n],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(acts.attention, passed.attention[row, :n, :n])


def test_split_losses_reports_the_vmask_gate_as_two_numbers(small_model):
  model, params, ids = small_model
  # A hand-set gate: keep logit = tanh(x_0), x = √8 · embedding, so q = σ(±tanh(√8))
  # ≈ 0.73 or 0.27, with the sign of the embedding's first entry: + for ids 3k.
  sign = np.where(np.arange(20) % 3 == 0, 1.0, -1.0)
  table = np.array(params["embedding"]["embedding"])
  table[:, 0] = sign
  hidden = np.zeros_like(params["vmask"]["hidden"]["kernel"])
  hidden[0, 0] = 1.0
  logits = np.zeros_like(params["vmask"]["logits"]["kernel"])
  logits[0, 1] = 1.0
  p = dict(params, embedding={"embedding": jnp.asarray(table)},
           vmask={"hidden": {"kernel": jnp.asarray(hidden),
                             "bias": jnp.zeros_like(params["vmask"]["hidden"]["bias"])},
                  "logits": {"kernel": jnp.asarray(logits),
                             "bias": jnp.zeros_like(params["vmask"]["logits"]["bias"])}})
  config = ml_collections.ConfigDict({
      "loss": {"importance": 1.0, "interaction": 1.0, "vmask_kl": 0.0,
               "scale_invariant_importance": 0.0, "count_padding": False,
               "query_block_size": None},            # as runs.load_run completes it
      "train": {"eval_batch_size": 8},               # one batch: shares are token shares
      "data": {"pad_to": "batch"}})
  run = type("FakeRun", (), {"config": config, "model": model, "params": p})()
  split = data.EncodedSplit(ids=ids, lengths=last_token(ids), labels=np.array([0, 1, 0]),
                            texts=["a", "b", "c"], example_ids=np.arange(3))
  got, _ = interpretability.split_losses(run, split)
  tokens = ids[ids != 0]                             # 3 4 5 6 | 7 … 17 | 2: 16 tokens
  q = 1 / (1 + np.exp(-np.tanh(np.sqrt(8.0)) * sign[tokens]))
  assert got["keep_above_half"] == pytest.approx(np.mean(tokens % 3 == 0))
  assert got["keep_above_half"] == pytest.approx(5 / 16)       # 3, 6, 9, 12, 15
  assert got["keep_rate"] == pytest.approx(q.mean(), rel=1e-5)


@pytest.mark.parametrize("batch_size", [1, 2, 8])   # 2: the last batch has a filler row
def test_split_losses_says_which_examples_are_correct_in_split_order(small_model, batch_size):
  model, params, ids = small_model
  predicted = np.argmax(model.apply({"params": params}, jnp.asarray(ids))[0], -1)
  labels = np.array([predicted[0], 1 - predicted[1], 1 - predicted[2]])  # right, wrong, wrong
  config = ml_collections.ConfigDict({
      "loss": {"importance": 0.0, "interaction": 0.0, "vmask_kl": 0.0,
               "scale_invariant_importance": 0.0, "count_padding": False,
               "query_block_size": None},
      "train": {"eval_batch_size": batch_size}, "data": {"pad_to": "batch"}})
  run = types.SimpleNamespace(config=config, model=model, params=params)
  split = data.EncodedSplit(ids=ids, lengths=last_token(ids), labels=labels,
                            texts=["a", "b", "c"], example_ids=np.arange(3))
  got, correct = interpretability.split_losses(run, split)
  assert correct.tolist() == [True, False, False]
  assert got["accuracy"] == pytest.approx(1 / 3)


def test_keep_rate_on_padding_only_where_padding_is_pooled():
  keep = np.array([[0.9, 0.2, 0.1, 0.3], [0.5, 0.4, 0.6, 0.8]])
  ids = np.array([[5, 6, 0, 0], [7, 0, 0, 0]])
  passed = forward.ForwardPass(probs=np.zeros((2, 2)), keep_prob=keep,
                               attention=np.zeros((2, 4, 4)))
  run = lambda pool: types.SimpleNamespace(  # pylint: disable=unnecessary-lambda-assignment
      config=types.SimpleNamespace(model=types.SimpleNamespace(pool=pool)))
  padding_keep = interpretability._padding_keep  # pylint: disable=protected-access
  assert padding_keep(run("all"), passed, ids) == pytest.approx((0.1 + 0.3 + 0.4 + 0.6 + 0.8) / 5)
  assert padding_keep(run("tokens"), passed, ids) is None     # padding masked out anyway
  assert padding_keep(run("all"), passed, np.ones_like(ids)) is None
