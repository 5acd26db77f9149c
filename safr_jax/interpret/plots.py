"""Pictures, drawn with matplotlib's Agg canvas (no display, no pyplot, no
global backend change).

Per example of n tokens, two pictures ``WIDTH_PX`` wide whatever n, so that two
runs' pictures sit side by side on the page with their token rows aligned:
``neuron_figure``, the token importance beside the FFN neuron allocation, and
``attention_figure``, the attention pair strengths. ``comparison_figure``:
accuracy against a faithfulness metric, one point per group of runs (error
bars = std over seeds).
"""

from __future__ import annotations

import math
import pathlib
import textwrap
from typing import Sequence

import matplotlib
from matplotlib import colors as mcolors
from matplotlib import patches
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

__all__ = ["DPI", "WIDTH_PX", "neuron_figure", "attention_figure", "comparison_figure",
           "save"]

# Saved at DPI, a picture is WIDTH_PX wide: two fit side by side in the page's
# 1,200 px column at natural size, where TICK_PT text is 8.5 * 90 / 72 = 10.6 px.
DPI = 90
WIDTH_PX = 592
TICK_PT, LABEL_PT, TITLE_PT = 8.5, 9.5, 10.5
_LINE_PX = 12          # least height (or width) a token label needs
_ZERO_COLOR = "white"  # exactly 0: the neuron is off (any activation > 0 is coloured)
_ACTIVATION_CMAP = "viridis_r"  # starts at a saturated yellow, far from white
_STRENGTH_CMAP = "Purples"
_NO_PAIR_COLOR = "#d4d4d4"  # the diagonal S_ii, not a pair
MAX_LABELLED = 8  # comparison_figure: more points than this get a legend, not labels

# Horizontal layout, px. Neurons: token labels | importance | shared | exclusive;
# the exclusive block has a fixed width whatever the shared one's size, so a
# token's few own neurons stay visible beside hundreds of shared ones.
_LEFT, _IMPORTANCE_W, _GAP_W, _RIGHT = 110, 84, 12, 6
_SHARED_W = 188
_EXCLUSIVE_W = WIDTH_PX - _LEFT - _IMPORTANCE_W - 2 * _GAP_W - _SHARED_W - _RIGHT
_CELL_MAX_PX, _COUNT_PX = 16, 26  # an exclusive cell's widest; room for its count
# Attention: token labels | map | colour bar and its label.
_CBAR_GAP, _CBAR_W, _CBAR_TEXT = 12, 14, 78
_ATTENTION_W = WIDTH_PX - _LEFT - _CBAR_GAP - _CBAR_W - _CBAR_TEXT - _RIGHT
# Vertical layout, px. A vertical colour bar is at least _CBAR_MIN_H tall (its
# label needs it), reaching into the room below a short map.
_TOP, _TITLE_LINE, _PANEL_TITLE = 6, 17, 20
_N_BELOW = 96      # importance ticks and label; the horizontal colour bar and notes
_A_BELOW = 104     # the attention map's rotated token labels and axis title
_CBAR_MIN_H = 170
_ROWS_MIN_H, _ROWS_MAX_H = 96, 600  # the maps' height, n rows of 12-32 px


def _short(token: str, width: int = 12) -> str:
  return token if len(token) <= width else token[:width - 1] + "…"


def _every(count: int, pixels: float) -> int:
  """Label every k-th of ``count`` cells over ``pixels`` so labels don't overlap."""
  return max(1, math.ceil(_LINE_PX * count / max(pixels, 1.0)))


def _rows_height(n: int) -> float:
  return float(np.clip(n * np.clip(300 / max(n, 1), _LINE_PX, 32), _ROWS_MIN_H, _ROWS_MAX_H))


class _Canvas:
  """Places axes and text by pixels from the figure's top-left corner."""

  def __init__(self, height_px: float):
    self.height = height_px
    self.fig = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI)

  def axes(self, x: float, top: float, width: float, height: float, label: str):
    return self.fig.add_axes((x / WIDTH_PX, 1 - (top + height) / self.height,
                              width / WIDTH_PX, height / self.height), label=label)

  def text(self, x: float, top: float, text: str, size: float, **kw):
    return self.fig.text(x / WIDTH_PX, 1 - top / self.height, text, fontsize=size,
                         va="top", parse_math=False, **kw)


def _title(title: str) -> list[str]:
  return textwrap.wrap(title, 72) or [""]


def _token_ticks(axis, tokens: Sequence[str], pixels: float, rotation: int = 0):
  n = len(tokens)
  ticks = np.arange(0, n, _every(n, pixels))
  axis.set_ticks(ticks, [_short(tokens[i]) for i in ticks], fontsize=TICK_PT,
                 rotation=rotation, parse_math=False)


def _extend(low_cut: bool, data_max: float, vmax: float) -> str:
  """The colour bar's triangles: "min" shows the colour under the scale (0),
  "max" that values above ``vmax`` (a shared scale) get the top colour."""
  high_cut = data_max > vmax
  return ("both" if high_cut else "min") if low_cut else ("max" if high_cut else "neither")


def _cmap(name: str, *, bad: str) -> mcolors.Colormap:
  """``name`` with masked cells (and values under the scale) drawn ``bad``."""
  return matplotlib.colormaps[name].with_extremes(bad=bad, under=bad)


def _exclusive_cells(hidden: np.ndarray, num_shared: int) -> tuple[np.ndarray, np.ndarray]:
  """Per token, its exclusive neurons' activations from the left, strongest
  first (``[n, most]``, 0 past its count), and the counts ``[n]``. An exclusive
  column is above the threshold for exactly one token, so its owner is the
  row where it is largest."""
  own = hidden[:, num_shared:]
  owners = own.argmax(axis=0)
  counts = np.bincount(owners, minlength=hidden.shape[0])
  cells = np.zeros((hidden.shape[0], max(int(counts.max(initial=0)), 1)))
  for t, c in enumerate(counts):
    cells[t, :c] = own[t, owners == t]
  return cells, counts


def neuron_figure(*, tokens: Sequence[str], importance: np.ndarray,
                  importance_label: str, hidden: np.ndarray, num_shared: int,
                  num_silent: int, title: str, unit_interval: bool = False,
                  activation_vmax: float | None = None,
                  importance_range: tuple[float, float] | None = None) -> Figure:
  """One example with n tokens: ``WIDTH_PX`` x H pixels at ``DPI``.

  Every panel has the tokens as rows, top to bottom in text order: token
  importance (bars), the shared neurons (n x neurons active for ≥ 2 tokens,
  most shared first; max-pooled to the panel's width) and each token's
  exclusive neurons (the neurons only it activates), drawn from the left,
  strongest first, with their count after them. Exactly 0 (the neuron is off)
  is white, any activation above 0 is coloured, on one scale for both blocks.
  H grows with n up to a cap (beyond it, every k-th token is labelled).

  Args:
    tokens: the n tokens.
    importance: ``[n]`` token scores.
    importance_label: what the scores are (the bars' axis title).
    hidden: ``[n, k]`` FFN activations (ReLU outputs, >= 0) with columns
      ordered shared first, then exclusive (``neurons.NeuronOrder``).
    num_shared: how many leading columns are shared neurons.
    num_silent: neurons that no token activates (not drawn, counted).
    title: the figure title.
    unit_interval: the scores are probabilities (axis 0..1).
    activation_vmax: top of the activation colour scale (default: this
      example's largest); pass the largest over two runs to draw them on one
      scale. Larger values get the top colour.
    importance_range: the bars' axis limits (default: 0..1 for probabilities,
      else from the scores).
  """
  tokens = [str(t) for t in tokens]
  n = len(tokens)
  hidden = np.asarray(hidden, np.float64)
  importance = np.asarray(importance, np.float64)
  rows_h = _rows_height(n)
  title_lines = _title(title)
  top = _TOP + _TITLE_LINE * len(title_lines) + 4 + _PANEL_TITLE
  canvas = _Canvas(top + rows_h + _N_BELOW)
  canvas.text(6, _TOP, "\n".join(title_lines), TITLE_PT + 1, weight="bold")

  ax = canvas.axes(_LEFT, top, _IMPORTANCE_W, rows_h, "importance")
  ax.barh(np.arange(n), importance, height=0.75,
          color=["tab:blue" if v < 0 else "tab:orange" for v in importance])
  ax.set_ylim(n - 0.5, -0.5)
  if importance_range is not None:
    ax.set_xlim(*importance_range)
  elif unit_interval:
    ax.set_xlim(0, 1)
  if (importance < 0).any():
    ax.axvline(0, color="#444", linewidth=0.8)
  ax.xaxis.set_major_locator(ticker.MaxNLocator(2))
  ax.tick_params(axis="x", labelsize=TICK_PT)
  _token_ticks(ax.yaxis, tokens, rows_h)
  ax.set_ylabel("token", fontsize=LABEL_PT)
  ax.set_xlabel("\n".join(textwrap.wrap(importance_label, 15, max_lines=4)),
                fontsize=TICK_PT, parse_math=False)
  ax.set_title("importance", fontsize=LABEL_PT, loc="left")

  k = hidden.shape[1]
  data_max = float(hidden.max(initial=0))
  vmax = activation_vmax if activation_vmax is not None else max(data_max, 1e-12)
  style = dict(cmap=_cmap(_ACTIVATION_CMAP, bad=_ZERO_COLOR),
               norm=mcolors.Normalize(0, vmax), aspect="auto", interpolation="nearest")
  x = _LEFT + _IMPORTANCE_W + _GAP_W
  ax = canvas.axes(x, top, _SHARED_W, rows_h, "shared")
  ax.set_title(f"shared by ≥ 2 tokens ({num_shared})", fontsize=LABEL_PT, loc="left")
  pool = math.ceil(num_shared / _SHARED_W)  # max-pooled: no neuron vanishes
  image = None
  if num_shared:
    shared = np.maximum.reduceat(hidden[:, :num_shared], np.arange(0, num_shared, pool),
                                 axis=1)
    image = ax.imshow(np.ma.masked_less_equal(shared, 0.0), **style)

  ax = canvas.axes(x + _SHARED_W + _GAP_W, top, _EXCLUSIVE_W, rows_h, "exclusive")
  ax.set_title(f"exclusive to 1 token ({k - num_shared})", fontsize=LABEL_PT, loc="left")
  if k > num_shared:
    cells, counts = _exclusive_cells(hidden, num_shared)
    cell_px = min(_CELL_MAX_PX, (_EXCLUSIVE_W - _COUNT_PX) / cells.shape[1])
    image = ax.imshow(np.ma.masked_less_equal(cells, 0.0), **style)
    ax.set_xlim(-0.5, -0.5 + _EXCLUSIVE_W / cell_px)
    for t in range(0, n, _every(n, rows_h)):
      ax.text(counts[t] - 0.5 + 3 / cell_px, t, str(counts[t]), va="center",
              fontsize=TICK_PT, gid="exclusive-count")
  for a in canvas.fig.axes[1:]:
    a.set_xticks([])
    a.set_yticks([])
    a.set_ylim(n - 0.5, -0.5)
    if image is None:
      a.text(0.5, 0.5, "none", ha="center", va="center", transform=a.transAxes,
             fontsize=LABEL_PT)
  notes = [f"{num_silent} silent neurons (no token activates them) not drawn"]
  if pool > 1:
    notes.append(f"a shared column is the max of up to {pool} neurons")
  below = top + rows_h + 8
  canvas.text(x, below + 44, "\n".join(textwrap.wrap("; ".join(notes), 58)), TICK_PT)
  if image is not None:
    cax = canvas.axes(x, below, _SHARED_W, 9, "colorbar")
    bar = canvas.fig.colorbar(image, cax=cax, orientation="horizontal",
                              extend=_extend(True, data_max, vmax))
    bar.ax.tick_params(labelsize=TICK_PT)
    canvas.text(x + _SHARED_W + _GAP_W, below - 2, "FFN activation\n(white: 0, off)",
                LABEL_PT)
  return canvas.fig


def attention_figure(*, tokens: Sequence[str], strength: np.ndarray,
                     pairs: Sequence[tuple[int, int, float]], title: str,
                     strength_vmax: float | None = None) -> Figure:
  """The attention pair strength S of one example (n x n, tokens in text
  order both ways), the strongest ``pairs`` ``(i, j, S_ij)`` outlined;
  ``strength_vmax``: the colour scale's top (default this example's largest;
  the largest over two runs draws them on one scale)."""
  tokens = [str(t) for t in tokens]
  n = len(tokens)
  strength = np.asarray(strength, np.float64)
  rows_h = _rows_height(n)
  title_lines = _title(title)
  top = _TOP + _TITLE_LINE * len(title_lines) + 4 + 2 * _PANEL_TITLE
  canvas = _Canvas(top + max(rows_h + _A_BELOW, _CBAR_MIN_H + 8))
  canvas.text(6, _TOP, "\n".join(title_lines), TITLE_PT + 1, weight="bold")
  ax = canvas.axes(_LEFT, top, _ATTENTION_W, rows_h, "attention")
  vmax = strength_vmax if strength_vmax is not None else max(float(strength.max(initial=0)),
                                                             1e-12)
  image = ax.imshow(np.ma.masked_where(np.eye(n, dtype=bool), strength),
                    cmap=_cmap(_STRENGTH_CMAP, bad=_NO_PAIR_COLOR),
                    norm=mcolors.Normalize(0, vmax), aspect="auto", interpolation="nearest")
  for i, j, _ in pairs:
    for a, b in ((i, j), (j, i)):
      ax.add_patch(patches.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False,
                                     edgecolor="tab:red", linewidth=1.5))
  _token_ticks(ax.xaxis, tokens, _ATTENTION_W, rotation=90)
  _token_ticks(ax.yaxis, tokens, rows_h)
  ax.set_xlabel("token", fontsize=LABEL_PT)
  ax.set_ylabel("token", fontsize=LABEL_PT)
  ax.set_title("attention between tokens, mean over heads and layers;\n"
               "the strongest pairs outlined", fontsize=LABEL_PT, loc="left")
  cax = canvas.axes(_LEFT + _ATTENTION_W + _CBAR_GAP, top, _CBAR_W, max(rows_h, _CBAR_MIN_H),
                    "colorbar")
  bar = canvas.fig.colorbar(image, cax=cax,
                            extend=_extend(False, float(strength.max(initial=0)), vmax))
  bar.ax.tick_params(labelsize=TICK_PT)
  bar.set_label("pair strength $S_{ij} = (\\bar{A}_{ij} + \\bar{A}_{ji})/2$\n"
                "(grey diagonal: not a pair)", fontsize=LABEL_PT)
  return canvas.fig


def comparison_figure(points: Sequence[dict], *, xlabel: str, ylabel: str,
                      title: str, references: Sequence[dict] = ()) -> Figure:
  """One point per dict ``{label, x, y, xerr, yerr}`` (None values skipped);
  per reference ``{label, accuracy, faithfulness, method}`` a vertical line at
  its accuracy (x) and a horizontal one at its faithfulness (y)."""
  # Many points: a legend beside the axes instead of labels that overlap, and
  # twenty colours with four markers so that no two points look alike.
  many = len(points) > MAX_LABELLED
  fig = Figure(figsize=(10 if many else 7.5, 5.5), layout="constrained")
  ax = fig.subplots()
  for i, ref in enumerate(references):
    color = "0.3" if many else f"C{(len(points) + i) % 10}"
    if ref.get("accuracy") is not None:
      ax.axvline(ref["accuracy"], color=color, ls="--", lw=1,
                 label=f"{ref['label']}: accuracy")
    if ref.get("faithfulness") is not None:
      ax.axhline(ref["faithfulness"], color=color, ls=":", lw=1,
                 label=f"{ref['label']}: {ref['method']}")
  if references and not many:
    ax.legend(fontsize=7, loc="best")
  shown = 0
  for i, p in enumerate(points):
    if p.get("x") is None or p.get("y") is None:
      continue
    style = dict(color=mcolors.to_hex(matplotlib.colormaps["tab20"](i % 20)),
                 fmt="osD^"[i // 5 % 4], elinewidth=0.8, capsize=3) if many else dict(
                     fmt="o", capsize=4)
    ax.errorbar(p["x"], p["y"], xerr=p.get("xerr") or 0, yerr=p.get("yerr") or 0,
                label=p["label"], **style)
    if not many:
      ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points",
                  xytext=(6, 6), fontsize=8)
    shown += 1
  if many:
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
  if not shown:
    ax.text(0.5, 0.5, "no run has both numbers", ha="center", va="center",
            transform=ax.transAxes)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  return fig


def save(fig: Figure, path: str | pathlib.Path, dpi: int = 90) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)  # attaches the Agg canvas savefig draws on
  fig.savefig(path, dpi=dpi)
  return path
