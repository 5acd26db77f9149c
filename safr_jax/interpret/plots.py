"""Pictures, drawn with matplotlib's Agg canvas (no display, no pyplot, no
global backend change).

``explanation_figure``: one example's token importance, attention pair
strengths and FFN neuron allocation, ``WIDTH_PX`` wide whatever the sentence
length, so that two runs' figures stack one above the other with their columns
aligned. ``comparison_figure``: accuracy against a faithfulness metric, one
point per group of runs (error bars = std over seeds).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import textwrap
from typing import Sequence

import matplotlib
from matplotlib import colors as mcolors
from matplotlib import patches
from matplotlib import ticker
from matplotlib import transforms
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

__all__ = ["DPI", "WIDTH_PX", "explanation_figure", "comparison_figure", "save"]

# Saved at DPI, an explanation figure is WIDTH_PX wide: it fits the page's
# 1,200 px column at natural size, where TICK_PT text is 8.5 * 90 / 72 = 10.6 px.
DPI = 90
WIDTH_PX = 1152
TICK_PT, LABEL_PT, TITLE_PT = 8.5, 9.5, 10.5
_LINE_PX = 12          # least height (or width) a token label needs
_ZERO_COLOR = "white"  # exactly 0: the neuron is off (any activation > 0 is coloured)
_ACTIVATION_CMAP = "viridis_r"  # starts at a saturated yellow, far from white
_STRENGTH_CMAP = "Purples"
_NO_PAIR_COLOR = "#d4d4d4"  # the diagonal S_ii, not a pair

# Horizontal layout, px: token labels | importance | token labels | attention
# map | colour bar; the neuron map spans importance to attention.
_LEFT, _IMPORTANCE_W, _GAP_W = 132, 210, 132
_CBAR_GAP, _CBAR_W, _CBAR_TEXT, _RIGHT = 14, 14, 84, 8
_ATTENTION_W = (WIDTH_PX - _LEFT - _IMPORTANCE_W - _GAP_W - _CBAR_GAP - _CBAR_W
                - _CBAR_TEXT - _RIGHT)
_NEURONS_W = WIDTH_PX - _LEFT - _CBAR_GAP - _CBAR_W - _CBAR_TEXT - _RIGHT
# Vertical layout, px. A colour bar is at least _CBAR_MIN_H tall (its label
# needs it), reaching into the room below a short map: _ROWS_MIN_H + _B_BELOW
# and _ROWS_MIN_H + _A_BELOW are both larger.
_TOP, _TITLE_LINE, _PANEL_TITLE, _GAP_H = 8, 20, 26, 14
_A_BELOW = 120     # the attention map's rotated token labels and axis title
_GROUPS_PAD = 26   # above the neuron map: brackets, then the groups' labels
_CHAR_PX = 6.6     # a TICK_PT character's mean width (DejaVu Sans), to size room
_B_BELOW = 84      # neuron ids and the two-line axis title
_CBAR_MIN_H = 170
_ROWS_MIN_H, _ROWS_MAX_H = 96, 600  # the maps' height, n rows of 12-32 px


def _short(token: str, width: int = 12) -> str:
  return token if len(token) <= width else token[:width - 1] + "…"


def _every(count: int, pixels: float) -> int:
  """Label every k-th of ``count`` cells over ``pixels`` so labels don't overlap."""
  return max(1, math.ceil(_LINE_PX * count / max(pixels, 1.0)))


@dataclasses.dataclass(frozen=True)
class _Group:
  """Columns ``[start, stop)`` of the neuron map: ``size`` neurons, the shared
  block or one token's exclusive ones (``label``)."""
  start: int
  stop: int
  size: int
  label: str
  shared: bool


def _neuron_groups(hidden: np.ndarray, num_shared: int, tokens: Sequence[str]
                   ) -> list[_Group]:
  """The shared block, then one group per token among the exclusive columns.

  An exclusive column is above the threshold for exactly one token, so its
  owner is the row where it is largest.
  """
  k = hidden.shape[1]
  groups = [_Group(0, num_shared, num_shared, "", True)] if num_shared else []
  owners = hidden[:, num_shared:].argmax(axis=0)
  starts = num_shared + np.flatnonzero(np.diff(owners, prepend=-1))
  for a, b in zip(starts, [*starts[1:], k]):
    groups.append(_Group(int(a), int(b), int(b - a), tokens[owners[a - num_shared]],
                         False))
  return groups


def _pool(hidden: np.ndarray, groups: list[_Group], max_columns: int
          ) -> tuple[np.ndarray, list[_Group], int]:
  """Max-pools each group's columns in runs of m (the least m that fits
  ``max_columns``), so no neuron vanishes in a map narrower than k pixels and
  no pooled column mixes two groups. Returns the ``[n, k']`` map, its groups, m."""
  sizes = np.array([g.stop - g.start for g in groups])
  m = 1
  while np.ceil(sizes / m).sum() > max_columns:
    m += 1
  if m == 1:
    return hidden, groups, 1
  starts, pooled_groups = [], []
  for g in groups:
    first = len(starts)
    starts += range(g.start, g.stop, m)
    pooled_groups.append(dataclasses.replace(g, start=first, stop=len(starts)))
  return np.maximum.reduceat(hidden, starts, axis=1), pooled_groups, m


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


def _token_ticks(axis, tokens: Sequence[str], pixels: float, rotation: int = 0):
  n = len(tokens)
  ticks = np.arange(0, n, _every(n, pixels))
  axis.set_ticks(ticks, [_short(tokens[i]) for i in ticks], fontsize=TICK_PT,
                 rotation=rotation, parse_math=False)


def _colorbar(canvas: _Canvas, image, *, x: float, top: float, height: float,
              label: str, extend: str):
  cax = canvas.axes(x, top, _CBAR_W, max(height, _CBAR_MIN_H), "colorbar")
  bar = canvas.fig.colorbar(image, cax=cax, extend=extend)
  bar.ax.tick_params(labelsize=TICK_PT)
  bar.set_label(label, fontsize=LABEL_PT)
  return bar


def _extend(low_cut: bool, data_max: float, vmax: float) -> str:
  """The colour bar's triangles: "min" shows the colour under the scale (0),
  "max" that values above ``vmax`` (a shared scale) get the top colour."""
  high_cut = data_max > vmax
  return ("both" if high_cut else "min") if low_cut else ("max" if high_cut else "neither")


def _cmap(name: str, *, bad: str) -> mcolors.Colormap:
  """``name`` with masked cells (and values under the scale) drawn ``bad``."""
  return matplotlib.colormaps[name].with_extremes(bad=bad, under=bad)


def _draw_groups(ax, groups: list[_Group], col_px: float, rows_px: float) -> int:
  """Lines between the groups (dark after the shared block), a bracket above
  each, labelled with its token (rotated) or "shared". Returns how many groups
  went unlabelled because their neighbour's label took the room."""
  above = transforms.blended_transform_factory(ax.transData, ax.transAxes)
  lift = lambda px: 1 + px / rows_px  # axes fraction, px above the map
  shared_stop = groups[0].stop if groups[0].shared else -1
  last_px, unlabelled = -math.inf, 0
  for g in groups:
    a, b = g.start - 0.5, g.stop - 0.5
    if g.start:
      after_shared = g.start == shared_stop
      ax.axvline(a, color="#222" if after_shared else "#b8b8b8",
                 linewidth=1.8 if after_shared else 0.6)
    inset = min(0.3, (b - a) * 0.15)
    ax.plot([a + inset, a + inset, b - inset, b - inset],
            [lift(3), lift(7), lift(7), lift(3)], transform=above, color="#555",
            linewidth=0.8, clip_on=False)
    centre_px, width_px = (a + b + 1) / 2 * col_px, (b - a) * col_px
    text, horizontal = _short(g.label), False
    if g.shared:
      text = f"shared by ≥ 2 tokens ({g.size})"
      horizontal = width_px >= 7 * len(text)
      text = text if horizontal else "shared"  # the count is in the axis title
    if centre_px - last_px < _LINE_PX + 1:
      unlabelled += 1
      continue
    ax.text((a + b) / 2, lift(10), text, transform=above,
            rotation=0 if horizontal else 90, ha="center", va="bottom",
            fontsize=TICK_PT, clip_on=False, parse_math=False, gid="neuron-group",
            weight="bold" if g.shared else "normal")
    last_px = centre_px + (3.5 * len(text) if horizontal else 0)
  return unlabelled


def explanation_figure(*, tokens: Sequence[str], importance: np.ndarray,
                       importance_label: str, strength: np.ndarray,
                       pairs: Sequence[tuple[int, int, float]],
                       hidden: np.ndarray, neuron_ids: Sequence[int],
                       num_shared: int, num_silent: int, title: str,
                       unit_interval: bool = False,
                       activation_vmax: float | None = None,
                       strength_vmax: float | None = None,
                       importance_range: tuple[float, float] | None = None) -> Figure:
  """One example with n tokens: ``WIDTH_PX`` x H pixels at ``DPI``.

  Every panel has the tokens as rows, top to bottom in text order: token
  importance (bars) beside attention pair strength (n x n), and below them the
  neuron allocation (n x k), where exactly 0 (the neuron is off) is white and
  any activation above 0 is coloured. Its columns are the shared neurons, then
  a separator, then the exclusive neurons grouped by their token, each group
  labelled above the map with its token. H grows with n up to a cap (beyond
  it, every k-th token is labelled); the width and the horizontal positions of
  the panels are fixed, so two runs' figures stack one above the other with
  their panels aligned.

  Args:
    tokens: the n tokens.
    importance: ``[n]`` token scores.
    importance_label: what the scores are (the bars' axis title).
    strength: ``[n, n]`` attention pair strength S (zero diagonal).
    pairs: the strongest pairs ``(i, j, S_ij)``, outlined in the map.
    hidden: ``[n, k]`` FFN activations (ReLU outputs, >= 0) with columns
      already ordered: shared neurons first, then exclusive ones grouped by
      token (``neurons.NeuronOrder``).
    neuron_ids: the k neuron ids of those columns (tick labels when they fit).
    num_shared: how many leading columns are shared neurons.
    num_silent: neurons that no token activates (not drawn, counted).
    title: the figure title.
    unit_interval: the scores are probabilities (axis 0..1).
    activation_vmax: top of the activation colour scale (default: this
      example's largest); pass the largest over two runs to draw them on one
      scale. Larger values get the top colour.
    strength_vmax: the same for the attention map.
    importance_range: the bars' axis limits (default: 0..1 for probabilities,
      else from the scores).
  """
  tokens = [str(t) for t in tokens]
  n = len(tokens)
  hidden = np.asarray(hidden, np.float64)
  strength = np.asarray(strength, np.float64)
  importance = np.asarray(importance, np.float64)
  rows_h = float(np.clip(n * np.clip(300 / max(n, 1), _LINE_PX, 32),
                         _ROWS_MIN_H, _ROWS_MAX_H))
  title_lines = textwrap.wrap(title, 150) or [""]
  a_top = _TOP + _TITLE_LINE * len(title_lines) + 6 + _PANEL_TITLE
  b_title = a_top + rows_h + _A_BELOW + _GAP_H
  k = hidden.shape[1]
  groups = _neuron_groups(hidden, num_shared, tokens) if k else []
  # Room above the neuron map for the longest group label, rotated.
  longest = max((len(_short(g.label)) for g in groups), default=0)
  b_top = b_title + _PANEL_TITLE + _GROUPS_PAD + math.ceil(_CHAR_PX * max(longest, 6))
  canvas = _Canvas(b_top + rows_h + _B_BELOW)
  canvas.text(8, _TOP, "\n".join(title_lines), TITLE_PT + 1, weight="bold")

  # Token importance: one bar per token row.
  ax = canvas.axes(_LEFT, a_top, _IMPORTANCE_W, rows_h, "importance")
  signed = bool((importance < 0).any())
  ax.barh(np.arange(n), importance, height=0.75,
          color=["tab:blue" if v < 0 else "tab:orange" for v in importance])
  ax.set_ylim(n - 0.5, -0.5)
  if importance_range is not None:
    ax.set_xlim(*importance_range)
  elif unit_interval:
    ax.set_xlim(0, 1)
  if signed:
    ax.axvline(0, color="#444", linewidth=0.8)
  ax.xaxis.set_major_locator(ticker.MaxNLocator(3))
  ax.tick_params(axis="x", labelsize=TICK_PT)
  _token_ticks(ax.yaxis, tokens, rows_h)
  ax.set_ylabel("token", fontsize=LABEL_PT)
  ax.set_xlabel("\n".join(textwrap.wrap(importance_label, 32)), fontsize=LABEL_PT,
                parse_math=False)
  ax.set_title("token importance", fontsize=TITLE_PT, loc="left")

  # Attention pair strength.
  x = _LEFT + _IMPORTANCE_W + _GAP_W
  ax = canvas.axes(x, a_top, _ATTENTION_W, rows_h, "attention")
  top = strength_vmax if strength_vmax is not None else max(float(strength.max(initial=0)), 1e-12)
  cmap = _cmap(_STRENGTH_CMAP, bad=_NO_PAIR_COLOR)
  image = ax.imshow(np.ma.masked_where(np.eye(n, dtype=bool), strength), cmap=cmap,
                    norm=mcolors.Normalize(0, top), aspect="auto",
                    interpolation="nearest")
  for i, j, _ in pairs:
    for a, b in ((i, j), (j, i)):
      ax.add_patch(patches.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False,
                                     edgecolor="tab:red", linewidth=1.5))
  _token_ticks(ax.xaxis, tokens, _ATTENTION_W, rotation=90)
  _token_ticks(ax.yaxis, tokens, rows_h)
  ax.set_xlabel("token", fontsize=LABEL_PT)
  ax.set_ylabel("token", fontsize=LABEL_PT)
  ax.set_title("attention between tokens (mean over heads and layers); "
               "strongest pairs outlined", fontsize=TITLE_PT, loc="left")
  _colorbar(canvas, image, x=x + _ATTENTION_W + _CBAR_GAP, top=a_top, height=rows_h,
            label="pair strength $S_{ij} = (\\bar{A}_{ij} + \\bar{A}_{ji})/2$\n"
                  "(grey diagonal: not a pair)",
            extend=_extend(False, float(strength.max(initial=0)), top))

  # Neuron allocation.
  canvas.text(_LEFT, b_title + 4, "neuron allocation: the last layer's FFN neurons "
              "each token activates", TITLE_PT)
  ax = canvas.axes(_LEFT, b_top, _NEURONS_W, rows_h, "neurons")
  _token_ticks(ax.yaxis, tokens, rows_h)
  ax.set_ylabel("token", fontsize=LABEL_PT)
  if not k:
    ax.set_xticks([])
    ax.text(0.5, 0.5, "no neuron is active for any token", ha="center", va="center",
            transform=ax.transAxes, fontsize=LABEL_PT)
    ax.set_xlabel(f"FFN neuron: {num_silent} silent (no token activates them)",
                  fontsize=LABEL_PT)
    return canvas.fig
  shown, groups, m = _pool(hidden, groups, int(_NEURONS_W))
  data_max = float(hidden.max())
  top = activation_vmax if activation_vmax is not None else max(data_max, 1e-12)
  image = ax.imshow(np.ma.masked_less_equal(shown, 0.0),
                    cmap=_cmap(_ACTIVATION_CMAP, bad=_ZERO_COLOR),
                    norm=mcolors.Normalize(0, top), aspect="auto",
                    interpolation="nearest")
  ax.set_ylim(n - 0.5, -0.5)
  col_px = _NEURONS_W / shown.shape[1]
  unlabelled = _draw_groups(ax, groups, col_px, rows_h)
  if m == 1 and col_px >= _LINE_PX:
    ax.set_xticks(np.arange(k), [str(int(i)) for i in neuron_ids], rotation=90,
                  fontsize=TICK_PT)
  else:
    ax.set_xticks([])
  notes = [f"{num_silent} silent neurons (no token activates them) not drawn"]
  if unlabelled:
    notes.append(f"{unlabelled} narrow groups unlabelled (the row names the token)")
  if m > 1:
    notes.append(f"a column is the max of up to {m} neurons")
  ax.set_xlabel(f"FFN neuron, grouped: {num_shared} shared by ≥ 2 tokens | "
                f"{k - num_shared} exclusive to one token, grouped by token\n"
                + "; ".join(notes), fontsize=LABEL_PT)
  _colorbar(canvas, image, x=_LEFT + _NEURONS_W + _CBAR_GAP, top=b_top, height=rows_h,
            label="FFN activation (ReLU output)\nwhite: exactly 0 (off)",
            extend=_extend(True, data_max, top))
  return canvas.fig


def comparison_figure(points: Sequence[dict], *, xlabel: str, ylabel: str,
                      title: str) -> Figure:
  """One point per dict ``{label, x, y, xerr, yerr}`` (None values skipped)."""
  fig = Figure(figsize=(7.5, 5.5), layout="constrained")
  ax = fig.subplots()
  shown = 0
  for p in points:
    if p.get("x") is None or p.get("y") is None:
      continue
    ax.errorbar(p["x"], p["y"], xerr=p.get("xerr") or 0, yerr=p.get("yerr") or 0,
                fmt="o", capsize=4, label=p["label"])
    ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points",
                xytext=(6, 6), fontsize=8)
    shown += 1
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
