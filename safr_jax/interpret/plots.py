"""Pictures, drawn with matplotlib's Agg canvas (no display, no pyplot, no
global backend change).

``explanation_figure``: one example's token importance, attention pair
strengths and FFN neuron allocation. ``comparison_figure``: accuracy against a
faithfulness metric, one point per group of runs (error bars = std over seeds).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

from matplotlib import patches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

__all__ = ["explanation_figure", "comparison_figure", "save"]


def _short(token: str, width: int = 12) -> str:
  return token if len(token) <= width else token[:width - 1] + "…"


def explanation_figure(*, tokens: Sequence[str], importance: np.ndarray,
                       importance_label: str, strength: np.ndarray,
                       pairs: Sequence[tuple[int, int, float]],
                       hidden: np.ndarray, neuron_ids: Sequence[int],
                       num_shared: int, num_silent: int, title: str,
                       unit_interval: bool = False) -> Figure:
  """Three panels for one example with n tokens.

  Args:
    tokens: the n tokens.
    importance: ``[n]`` token scores.
    importance_label: what the scores are.
    strength: ``[n, n]`` attention pair strength.
    pairs: the strongest pairs ``(i, j, S_ij)``, outlined in the heatmap.
    hidden: ``[n, k]`` FFN activations with columns already ordered (shared
      neurons first, then exclusive ones grouped by token).
    neuron_ids: the k neuron ids of those columns (tick labels when few).
    num_shared: how many leading columns are shared neurons.
    num_silent: neurons that no token activates (not drawn).
    title: the figure title.
    unit_interval: the scores are probabilities (y axis 0..1).
  """
  n = len(tokens)
  labels = [_short(t) for t in tokens]
  width = float(np.clip(3 + 0.32 * n, 8, 24))
  att_h = float(np.clip(0.22 * n + 1.2, 2.5, 7))
  neu_h = float(np.clip(0.2 * n + 1.4, 2.5, 8))
  fig = Figure(figsize=(width, 2.6 + att_h + neu_h), layout="constrained")
  axes = fig.subplots(3, 1, height_ratios=[2.6, att_h, neu_h])
  fig.suptitle(title, fontsize=11)

  ax = axes[0]
  colors = ["tab:orange" if v >= 0 else "tab:blue" for v in importance]
  ax.bar(np.arange(n), importance, color=colors)
  ax.set_xticks(np.arange(n), labels, rotation=60, ha="right", fontsize=8)
  ax.set_xlim(-0.5, n - 0.5)
  if unit_interval:
    ax.set_ylim(0, 1)
  ax.set_ylabel("importance", fontsize=9)
  ax.set_title(f"token importance: {importance_label}", fontsize=10, loc="left")

  ax = axes[1]
  im = ax.imshow(strength, cmap="Purples", aspect="auto", interpolation="nearest")
  for i, j, _ in pairs:
    for a, b in ((i, j), (j, i)):
      ax.add_patch(patches.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False,
                                                edgecolor="tab:red", linewidth=1.5))
  ax.set_xticks(np.arange(n), labels, rotation=60, ha="right", fontsize=7)
  ax.set_yticks(np.arange(n), labels, fontsize=7)
  ax.set_title("attention pair strength (Ā+Āᵀ)/2, mean over heads and layers; "
               "strongest pairs outlined", fontsize=10, loc="left")
  fig.colorbar(im, ax=ax, fraction=0.03)

  ax = axes[2]
  k = hidden.shape[1]
  if k:
    im = ax.imshow(hidden, cmap="magma_r", aspect="auto", interpolation="nearest",
                   vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.03, label="activation")
    if 0 < num_shared < k:
      ax.axvline(num_shared - 0.5, color="tab:cyan", linewidth=1.5)
  if k <= 64:
    ax.set_xticks(np.arange(k), [str(i) for i in neuron_ids], rotation=90, fontsize=6)
  else:
    ax.set_xticks([])
  ax.set_yticks(np.arange(n), labels, fontsize=7)
  ax.set_xlabel(f"FFN neurons: {num_shared} shared (left of the line), "
                f"{k - num_shared} exclusive to one token (grouped by token); "
                f"{num_silent} silent neurons not drawn", fontsize=9)
  ax.set_title("neuron allocation (last layer's ReLU activations)", fontsize=10,
               loc="left")
  return fig


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
