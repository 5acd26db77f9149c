"""The neuron-allocation figure reads at a glance: one width whatever the
sentence, 0 apart from small activations, groups labelled with their token,
text large enough, one colour scale for two runs when asked."""

import struct

from matplotlib import image as mimage
from matplotlib import text as mtext
import numpy as np
import pytest

from safr_jax.interpret import attention, neurons, plots

TINY = 1e-3  # the smallest activation drawn: it must not look like 0


def _example(n: int, seed: int = 0, d_ff: int = 256, scale: float = 3.0) -> dict:
  """``explanation_figure``'s arguments for n tokens: some neurons shared by
  several tokens, two or three of each token's own, the rest silent; one
  exclusive activation is ``TINY``."""
  rng = np.random.default_rng(seed)
  hidden = np.zeros((n, d_ff))
  num_shared = min(40, d_ff // 4)
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
  return dict(tokens=tokens, importance=rng.random(n), importance_label="VMASK keep-probability",
              strength=strength, pairs=attention.top_pairs(strength, 3),
              hidden=hidden[:, order.order], neuron_ids=order.order,
              num_shared=order.num_shared, num_silent=order.num_silent,
              title=f"test[{n}]: predicted negative (0.61), true positive", unit_interval=True)


def _render(tmp_path, name: str, **kwargs):
  fig = plots.explanation_figure(**kwargs)
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
  tmp = tmp_path_factory.mktemp("figures")
  examples = {n: _example(n) for n in (3, 60)}
  return {n: (e, *_render(tmp, f"n{n}", **e)) for n, e in examples.items()}


def test_same_width_whatever_the_sentence(drawn):
  sizes = {}
  for n, (_, fig, path, pixels) in drawn.items():
    width, height = _png_size(path)
    assert (width, height) == (pixels.shape[1], pixels.shape[0])
    assert (width, height) == tuple(round(v * plots.DPI) for v in fig.get_size_inches())
    sizes[n] = (width, height)
  assert sizes[3][0] == sizes[60][0] == plots.WIDTH_PX
  assert sizes[60][1] > sizes[3][1]  # the long sentence grows down, not sideways


def test_zero_is_drawn_apart_from_the_smallest_activation(drawn):
  for example, fig, _, pixels in drawn.values():
    hidden = example["hidden"]
    ax = _axes(fig, "neurons")
    zero_row, zero_col = np.argwhere(hidden == 0)[0]
    tiny_row, tiny_col = np.argwhere(hidden == TINY)[0]
    zero = _pixel(fig, pixels, ax, zero_col, zero_row)
    tiny = _pixel(fig, pixels, ax, tiny_col, tiny_row)
    assert np.linalg.norm(zero - tiny) > 0.3, (zero, tiny)
    # And every other zero cell looks like this one.
    other_row, other_col = np.argwhere(hidden == 0)[-1]
    np.testing.assert_allclose(_pixel(fig, pixels, ax, other_col, other_row), zero, atol=0.02)


def test_text_is_at_least_9_px_at_the_saved_size(drawn):
  for _, fig, _, _ in drawn.values():
    texts = [t for t in fig.findobj(mtext.Text) if t.get_visible() and t.get_text().strip()]
    assert len(texts) > 20
    small = [(t.get_text(), t.get_fontsize() * plots.DPI / 72) for t in texts
             if t.get_fontsize() * plots.DPI / 72 < 9]
    assert not small


def test_every_panel_has_axis_titles_and_colour_bars_are_labelled(drawn):
  for _, fig, _, _ in drawn.values():
    for label in ("importance", "attention", "neurons"):
      ax = _axes(fig, label)
      assert ax.get_ylabel() == "token" and ax.get_xlabel(), label
    assert "FFN neuron" in _axes(fig, "neurons").get_xlabel()
    bars = [a.get_ylabel() for a in fig.axes if a.get_label() == "colorbar"]
    assert len(bars) == 2 and any("S_{ij}" in b for b in bars) and any(
        "activation" in b for b in bars)


def test_exclusive_groups_are_labelled_with_their_token(drawn):
  for example, fig, _, _ in drawn.values():
    hidden, shared, tokens = example["hidden"], example["num_shared"], example["tokens"]
    owners = hidden[:, shared:].argmax(axis=0)
    in_order = [tokens[o] for i, o in enumerate(owners) if i == 0 or owners[i - 1] != o]
    labels = [t.get_text() for t in fig.findobj(mtext.Text) if t.get_gid() == "neuron-group"]
    assert labels[0].startswith("shared")
    named = labels[1:]
    if len(tokens) == 3:  # room for all: each token's group, in text order
      assert named == in_order == tokens
    else:  # narrow groups may go unlabelled: the rest name their tokens, in order
      assert len(named) >= len(in_order) // 2
      assert set(named) <= set(tokens) and named == sorted(named, key=tokens.index)
      missing = len(in_order) - len(named)
      assert (f"{missing} narrow groups unlabelled" in _axes(fig, "neurons").get_xlabel()
              if missing else True)


def test_math_signs_in_tokens_are_drawn_as_written(drawn):
  _, fig, _, _ = drawn[3]
  assert "$\\bad$" in {t.get_text() for t in _axes(fig, "importance").get_yticklabels()}


def test_two_runs_share_a_colour_scale_when_asked(tmp_path):
  a, b = _example(12, seed=1, scale=2.0), _example(12, seed=2, scale=6.0)
  row, col = np.argwhere(a["hidden"] == 2.0)[0]  # the largest value of a, present in b too
  b["hidden"][row, col] = 2.0

  def colour(example, name, **kw):
    fig, _, pixels = _render(tmp_path, name, **example, **kw)
    return _pixel(fig, pixels, _axes(fig, "neurons"), col, row)

  assert np.linalg.norm(colour(a, "a") - colour(b, "b")) > 0.2  # each on its own scale
  np.testing.assert_allclose(colour(a, "a6", activation_vmax=6.0),
                             colour(b, "b6", activation_vmax=6.0), atol=0.02)
