"""explain's pictures read at a glance: one width whatever the sentence, 0 apart
from small activations, each token's exclusive neurons visible and counted
however many neurons are shared, text large enough, one colour scale for two
runs when asked."""

import struct

from matplotlib import image as mimage
from matplotlib import text as mtext
import numpy as np
import pytest

from safr_jax.interpret import attention, neurons, plots

TINY = 1e-3  # the smallest activation drawn: it must not look like 0


def _example(n: int, seed: int = 0, d_ff: int = 256, scale: float = 3.0,
             num_shared: int = 40) -> tuple[dict, dict]:
  """``neuron_figure``'s and ``attention_figure``'s arguments for n tokens:
  ``num_shared`` neurons shared by several tokens, two or three of each
  token's own, the rest silent; one exclusive activation is ``TINY``."""
  rng = np.random.default_rng(seed)
  hidden = np.zeros((n, d_ff))
  for j in range(num_shared):
    rows = rng.choice(n, size=min(n, int(rng.integers(2, 5))), replace=False)
    hidden[rows, j] = rng.uniform(0.2, scale, rows.size)
  column = num_shared
  for i in range(n):
    for _ in range(int(rng.integers(2, 4))):
      hidden[i, column] = rng.uniform(0.2, scale)
      column += 1
  hidden[n - 1, column - 1] = TINY
  hidden[0, 0] = scale  # the same largest value whatever the seed
  order = neurons.NeuronOrder(hidden)
  mean_attention = rng.random((n, n))
  strength = attention.pair_strength(mean_attention / mean_attention.sum(1, keepdims=True))
  tokens = ["not", "$\\bad$", "film"] if n == 3 else [f"w{i:02d}" for i in range(n)]
  title = f"test[{n}]: predicted negative (0.61), true positive"
  return (dict(tokens=tokens, importance=rng.random(n), title=title,
               importance_label="VMASK keep-probability", hidden=hidden[:, order.order],
               num_shared=order.num_shared, num_silent=order.num_silent, unit_interval=True),
          dict(tokens=tokens, strength=strength, pairs=attention.top_pairs(strength, 3),
               title=title))


def _render(tmp_path, name: str, draw=plots.neuron_figure, **kwargs):
  fig = draw(**kwargs)
  path = plots.save(fig, tmp_path / f"{name}.png")
  return fig, path, mimage.imread(path)


def _png_size(path) -> tuple[int, int]:
  data = path.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
  return struct.unpack(">II", data[16:24])


def _axes(fig, label: str):
  (ax,) = [a for a in fig.axes if a.get_label() == label]
  return ax


def _pixel(fig, pixels: np.ndarray, ax, column: float, row: float) -> np.ndarray:
  """The RGB the PNG shows at data point (column, row) of ``ax``."""
  x, y = ax.transData.transform((column, row))
  return pixels[int(round(fig.bbox.height - y)), int(round(x)), :3]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
  """n → (neuron args, neuron figure, its PNG, its pixels, attention figure, its PNG)."""
  tmp = tmp_path_factory.mktemp("figures")
  out = {}
  for n in (3, 60):
    a, b = _example(n)
    out[n] = (a, *_render(tmp, f"n{n}", **a),
              *_render(tmp, f"a{n}", plots.attention_figure, **b)[:2])
  return out


def test_same_width_whatever_the_sentence(drawn):
  sizes = {}
  for n, (_, fig, path, pixels, afig, apath) in drawn.items():
    width, height = _png_size(path)
    assert (width, height) == (pixels.shape[1], pixels.shape[0])
    for f, p in ((fig, path), (afig, apath)):
      assert _png_size(p) == tuple(round(v * plots.DPI) for v in f.get_size_inches())
      assert _png_size(p)[0] == plots.WIDTH_PX
    sizes[n] = (width, height)
  assert sizes[60][1] > sizes[3][1]  # the long sentence grows down, not sideways
  assert 2 * plots.WIDTH_PX + 16 <= 1200  # two side by side in the page's column


def test_zero_is_drawn_apart_from_the_smallest_activation(drawn):
  for example, fig, _, pixels, *_ in drawn.values():
    hidden, shared = example["hidden"], example["num_shared"]
    zero_row, zero_col = np.argwhere(hidden[:, :shared] == 0)[0]
    zero = _pixel(fig, pixels, _axes(fig, "shared"), zero_col, zero_row)
    # TINY is the last token's weakest own neuron: the last of its row.
    n = len(hidden)
    own = (hidden[:, shared:].argmax(0) == n - 1).sum()
    tiny = _pixel(fig, pixels, _axes(fig, "exclusive"), own - 1, n - 1)
    assert np.linalg.norm(zero - tiny) > 0.3, (zero, tiny)
    # Every zero cell looks like this one, past a row's own neurons too.
    other_row, other_col = np.argwhere(hidden[:, :shared] == 0)[-1]
    np.testing.assert_allclose(_pixel(fig, pixels, _axes(fig, "shared"), other_col,
                                      other_row), zero, atol=0.02)
    np.testing.assert_allclose(_pixel(fig, pixels, _axes(fig, "exclusive"), own, n - 1),
                               zero, atol=0.02)


def test_text_is_at_least_9_px_at_the_saved_size(drawn):
  for _, fig, _, _, afig, _ in drawn.values():
    for f in (fig, afig):
      texts = [t for t in f.findobj(mtext.Text) if t.get_visible() and t.get_text().strip()]
      assert len(texts) > 10
      small = [(t.get_text(), t.get_fontsize() * plots.DPI / 72) for t in texts
               if t.get_fontsize() * plots.DPI / 72 < 9]
      assert not small


def test_every_panel_has_a_title_and_colour_bars_are_labelled(drawn):
  for _, fig, _, _, afig, _ in drawn.values():
    ax = _axes(fig, "importance")
    assert ax.get_ylabel() == "token" and ax.get_xlabel()
    assert _axes(fig, "shared").get_title(loc="left").startswith("shared by ≥ 2 tokens")
    assert _axes(fig, "exclusive").get_title(loc="left").startswith("exclusive")
    assert "FFN activation" in " ".join(t.get_text() for t in fig.texts)
    ax = _axes(afig, "attention")
    assert ax.get_xlabel() == ax.get_ylabel() == "token"
    assert "S_{ij}" in _axes(afig, "colorbar").get_ylabel()


def test_each_tokens_own_neurons_are_counted_in_its_row_beside_many_shared(tmp_path):
  args, _ = _example(20, d_ff=1024, num_shared=700)  # 20 tokens, most neurons shared
  fig, *_ = _render(tmp_path, "many", **args)
  hidden, shared = args["hidden"], args["num_shared"]
  counts = np.bincount(hidden[:, shared:].argmax(0), minlength=20)
  labels = [t for t in fig.findobj(mtext.Text) if t.get_gid() == "exclusive-count"]
  assert [t.get_text() for t in labels] == [str(c) for c in counts]
  assert [t.get_position()[1] for t in labels] == list(range(20))  # in its row
  assert all(t.get_rotation() == 0 for t in labels)
  width = lambda label: _axes(fig, label).get_window_extent().width
  assert width("exclusive") >= 0.45 * (width("shared") + width("exclusive"))


def test_math_signs_in_tokens_are_drawn_as_written(drawn):
  _, fig, *_ = drawn[3]
  assert "$\\bad$" in {t.get_text() for t in _axes(fig, "importance").get_yticklabels()}


def test_two_runs_share_a_colour_scale_when_asked(tmp_path):
  (a, _), (b, _) = _example(12, seed=1, scale=2.0), _example(12, seed=2, scale=6.0)
  row, col = np.argwhere(a["hidden"] == 2.0)[0]  # the largest value of a, present in b too
  b["hidden"][row, col] = 2.0

  def colour(example, name, **kw):
    fig, _, pixels = _render(tmp_path, name, **example, **kw)
    return _pixel(fig, pixels, _axes(fig, "shared"), col, row)

  assert np.linalg.norm(colour(a, "a") - colour(b, "b")) > 0.2  # each on its own scale
  np.testing.assert_allclose(colour(a, "a6", activation_vmax=6.0),
                             colour(b, "b6", activation_vmax=6.0), atol=0.02)


@pytest.mark.parametrize("count", [3, 14])
def test_comparison_points_are_told_apart(count):
  """Few points are labelled beside themselves; many get a legend (no labels
  that overlap) where no two share both colour and marker."""
  points = [{"label": f"setting{i}", "x": 75 + i % 3, "y": 0.1, "xerr": 1.0, "yerr": 0.02}
            for i in range(count)]
  fig = plots.comparison_figure(points, xlabel="x", ylabel="y", title="t",
                                references=[{"label": "T", "accuracy": 78.0,
                                             "faithfulness": 0.4, "method": "occlusion"}])
  ax = fig.axes[0]
  labels = [t.get_text() for t in ax.texts]
  legend = [t.get_text() for t in ax.get_legend().get_texts()]
  if count <= plots.MAX_LABELLED:
    assert labels == [p["label"] for p in points] and "setting0" not in legend
  else:
    assert not labels and legend[2:] == [p["label"] for p in points]
    looks = {(tuple(c.lines[0].get_color()) if not isinstance(c.lines[0].get_color(), str)
              else c.lines[0].get_color(), c.lines[0].get_marker()) for c in ax.containers}
    assert len(looks) == count
