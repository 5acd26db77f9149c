"""The files ``explain`` writes, and ``explain_run``, the command line's entry:
``render_pictures`` draws an ``explanations.ExplanationSet`` (PNG bytes in
memory), ``write_explanations`` writes the pictures, ``explanations.json``
(compact: one line per example), ``explanations.npz`` (each example's FFN
activations and pair strengths, the arrays behind the pictures) and the page
(``html``)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import pathlib
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from safr_jax import provenance, runs
from safr_jax.interpret import html as html_lib
from safr_jax.interpret import inputs, plots
from safr_jax.interpret.explanations import (Explanation, ExplanationSet, _check_sample,
                                             check_comparable, explain, sample)

__all__ = ["explain_run", "write_explanations", "render_pictures", "write_json", "write_html",
           "Explained", "INDEX_FILE", "JSON_FILE", "ARRAYS_FILE"]

INDEX_FILE = "index.html"
JSON_FILE = "explanations.json"
ARRAYS_FILE = "explanations.npz"  # np.load(..., allow_pickle=False)
_PNG = "example_{:03d}{}{}.png"   # example, run tag, "" (neurons) or "_attention"
_PREFIXES = ("", "compare_to/")   # of each set's arrays in ARRAYS_FILE


@dataclasses.dataclass(frozen=True)
class Explained:
  """What ``explain_run`` wrote: the page, the JSON records (one per example,
  as in ``explanations.json``: ``name``, ``text``, ``pred``, ``confidence``,
  ``probs`` {label: probability}, ``true``...), the page-wide notes (also a
  ``--num`` larger than the split), the computed set, and with ``compare_to``
  the second run's set and records; ``pictures``: how many PNGs the page shows
  (beside it, or inlined)."""
  index: pathlib.Path
  records: list[dict]
  notes: list[str]
  explanations: ExplanationSet
  compared: ExplanationSet | None = None
  compared_records: list[dict] | None = None
  pictures: int = 0


def _png(fig) -> bytes:
  """``fig`` as PNG bytes with a palette of 256 colours (a third of the
  truecolour file, no visible change: the pictures are flat colours)."""
  canvas = FigureCanvasAgg(fig)
  with warnings.catch_warnings():  # a dataset's odd character (e.g. \x96) is drawn as a box
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    canvas.draw()
  image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).quantize(256)
  buffer = io.BytesIO()
  image.save(buffer, format="png", optimize=True, dpi=(plots.DPI, plots.DPI))
  return buffer.getvalue()


def _scales(items: Sequence[Explanation]) -> dict[str, Any]:
  """The pictures' shared colour scales for one example in several runs: the
  largest activation and pair strength over them, and one axis for the
  importance bars when they are the same kind of score."""
  if len(items) < 2:
    return {}
  scales = {"activation_vmax": max(float(e.hidden.max(initial=0)) for e in items),
            "strength_vmax": max(float(e.strength.max(initial=0)) for e in items)}
  scales = {k: max(v, 1e-12) for k, v in scales.items()}
  if len({e.importance_label for e in items}) == 1 and items[0].importance_signed:
    low = min(min(e.importance) for e in items)
    high = max(max(e.importance) for e in items)
    pad = 0.05 * (max(high, 0) - min(low, 0)) or 1.0
    scales["importance_range"] = (min(low, 0) - pad, max(high, 0) + pad)
  return scales


def _figures(e: Explanation, title: str, scales: Mapping[str, Any]):
  """``e``'s neuron-allocation and attention figures."""
  tokens = tuple(map(html_lib.neutralise_bidi, e.tokens))
  title = html_lib.neutralise_bidi(title)
  order = e.neuron_order
  yield plots.neuron_figure(
      tokens=tokens, importance=np.asarray(e.importance),
      importance_label=e.importance_label, hidden=e.hidden[:, order.order],
      num_shared=order.num_shared, num_silent=order.num_silent,
      unit_interval=not e.importance_signed, title=title,
      activation_vmax=scales.get("activation_vmax"),
      importance_range=scales.get("importance_range"))
  yield plots.attention_figure(tokens=tokens, strength=e.strength, pairs=e.pair_positions,
                               title=title, strength_vmax=scales.get("strength_vmax"))


def render_pictures(sets: Sequence[ExplanationSet],
                    progress: Callable[[int], None] | None = None
                    ) -> list[dict[str, tuple[html_lib.Picture, ...]]]:
  """Per set, explanation id → its pictures, the neuron allocation
  (``example_NNN.png``) and the attention map (``example_NNN_attention.png``;
  with two sets ``example_NNN_a.png`` and so on, each pair on shared colour
  scales), PNG bytes in memory. An example without tokens has none.
  ``progress(k)`` after the k-th example."""
  tags = html_lib.TAGS if len(sets) > 1 else ("",)
  out = [{} for _ in sets]
  for k in range(len(sets[0].explanations)):
    items = [s.explanations[k] for s in sets]
    drawn = [e for e in items if e.neuron_order is not None]
    scales = _scales(drawn) if len(drawn) == len(items) else {}
    for e, tag, s, pictures in zip(items, tags, sets, out):
      if e.neuron_order is None:
        continue
      title = f"{tag}: {e.figure_title}" if tag else e.figure_title  # run: the caption
      pictures[e.id] = tuple(
          html_lib.Picture(_PNG.format(k, f"_{tag.lower()}" if tag else "", kind), png,
                           *html_lib.png_size(png))
          for kind, png in zip(("", "_attention"), map(_png, _figures(e, title, scales))))
    if progress is not None:
      progress(k + 1)
  return out


def _dumps(content: Mapping[str, Any]) -> str:
  """``content`` as JSON with each example on a line of its own: compact (no
  line per number), still readable line by line."""
  dumps = functools.partial(json.dumps, ensure_ascii=False)
  parts = [f"{dumps(k)}: " + ("[\n" + ",\n".join(map(dumps, v)) + "\n]" if k == "examples"
                              else _dumps(v) if k == "compare_to" else dumps(v))
           for k, v in content.items()]
  return "{" + ",\n".join(parts) + "}"


def write_json(sets: Sequence[ExplanationSet], out: str | pathlib.Path,
               pictures: Sequence[Mapping[str, Sequence[str]]]) -> pathlib.Path:
  """``out/explanations.json`` (header, notes, one record per example; the
  second run's under ``compare_to``) and ``explanations.npz`` beside it (the
  records' ``arrays`` name theirs); ``pictures``: per set, id → its PNGs' names."""
  out = pathlib.Path(out)
  arrays = {k: v for s, prefix in zip(sets, _PREFIXES) for k, v in s.arrays(prefix).items()}
  provenance.write_file(out / ARRAYS_FILE, lambda path: np.savez_compressed(path, **arrays))
  content = sets[0].to_json(pictures[0]) | {"arrays_file": ARRAYS_FILE}
  if len(sets) > 1:
    content["compare_to"] = sets[1].to_json(pictures[1], _PREFIXES[1])
  return provenance.write_file(out / JSON_FILE, _dumps(content) + "\n")


def write_html(sets: Sequence[ExplanationSet], out: str | pathlib.Path,
               pictures: Sequence[Mapping[str, Sequence[html_lib.Picture]]]) -> pathlib.Path:
  """``out/index.html``: a ``Picture`` with its bytes is inlined, one without
  is linked to its file beside the page."""
  return provenance.write_file(pathlib.Path(out) / INDEX_FILE,
                               html_lib.render(sets, pictures))


def write_explanations(explained: ExplanationSet, out: str | pathlib.Path, *,
                       compared: ExplanationSet | None = None,
                       self_contained: bool = False,
                       progress: Callable[[int], None] | None = None) -> Explained:
  """Pictures, ``explanations.json``, ``explanations.npz`` and ``index.html``
  in ``out``; ``progress(k)`` once k examples are drawn.

  The pictures go beside the page (linked from it), or with
  ``self_contained`` into it (each once, nothing beside). Each file is written
  whole or not at all, and the page last: the page, JSON, arrays and every
  picture of an earlier explain are removed first, so the folder holds only
  this page's pictures, and one whose writing was stopped (SIGINT, full disk)
  has no index.html that could pass for this one's.
  """
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  for name in (INDEX_FILE, JSON_FILE, ARRAYS_FILE):
    (out / name).unlink(missing_ok=True)
  for old in out.glob("example_*.png"):
    old.unlink()
  sets = [explained] if compared is None else [explained, compared]
  pictures = render_pictures(sets, progress)
  if not self_contained:
    for per_set in pictures:
      for p in (p for ps in per_set.values() for p in ps):
        provenance.write_file(out / p.file, p.png)
    pictures = [{i: tuple(dataclasses.replace(p, png=None) for p in ps)
                 for i, ps in per_set.items()} for per_set in pictures]
  names = [{} if self_contained else {i: [p.file for p in ps] for i, ps in per_set.items()}
           for per_set in pictures]
  write_json(sets, out, names)
  index = write_html(sets, out, pictures)
  records = [s.to_json(n, prefix)["examples"]
             for s, n, prefix in zip(sets, names, _PREFIXES)]
  return Explained(index=index, records=records[0], notes=list(explained.notes),
                   explanations=explained, compared=compared,
                   compared_records=records[1] if compared is not None else None,
                   pictures=sum(len(ps) for p in pictures for ps in p.values()))


def _examples(run: runs.Run, texts: Sequence[str] | None, split: str, num: int,
              seed: int) -> tuple[list[inputs.Example], tuple[str, ...]]:
  """The examples, and a note when ``num`` is more than ``split`` has."""
  if texts:
    return [inputs.text_example(run, t, f"text {k + 1}") for k, t in enumerate(texts)], ()
  _check_sample(num, seed)  # before the (slow) loading
  encoded = inputs.load_split(run, split)
  size = len(encoded.labels)
  note = (f"--num {num} is more than the {size} examples of the {split} split: "
          f"explained all {size}",) if num > size else ()
  return inputs.split_examples(run, encoded, split, sample(encoded.labels, num, seed)), note


def explain_run(workdir, *, texts: list[str] | None = None, split: str = "test",
                num: int = 20, seed: int = 0, out=None, which: str = "best",
                threshold: float = 0.0, num_pairs: int = 5, compare_to=None,
                self_contained: bool = False,
                progress: Callable[[int, int], None] | None = None,
                notify: Callable[[str], None] | None = None) -> Explained:
  """Explains ``texts`` (or ``num`` examples of ``split``, a seeded
  class-balanced sample, all of them if it has fewer) with the run in
  ``workdir``, and with ``compare_to`` the same examples with that run too;
  writes ``out``, by default ``<workdir>/explanations`` (or
  ``<workdir>/explanations_vs_<other>``), and for ``texts`` a folder of their
  own beside it, ``..._text-<hash of the texts>``, so that text never
  overwrites the sample's page. ``progress(done, total)``, if given, is called
  as each example is explained (once per run) and drawn; ``notify(note)``, if
  given, with a note known before the work (``num`` capped at the split), which
  is in the result's ``notes`` too."""
  run = runs.load_run(workdir, which=which)
  other = None
  if compare_to is not None:
    other = runs.load_run(compare_to, which=which)
    check_comparable(run, other)
  examples, note = _examples(run, texts, split, num, seed)
  for n in note if notify else ():
    notify(n)
  total = len(examples) * (3 if other is not None else 2)  # explained per run, then drawn
  step = lambda done: progress and (lambda k: progress(done + k, total))
  explained = explain(run, examples, threshold=threshold, num_pairs=num_pairs,
                      progress=step(0))
  explained = dataclasses.replace(explained, notes=note + explained.notes)
  compared = None
  if other is not None:
    compared = explain(other, [inputs.for_run(other, e) for e in examples],
                       threshold=threshold, num_pairs=num_pairs,
                       progress=step(len(examples)))
  default = "explanations" if other is None else f"explanations_vs_{other.workdir.name}"
  if texts:
    digest = hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest()[:8]
    default += f"_text-{digest}"
  return write_explanations(explained, pathlib.Path(out) if out else run.workdir / default,
                            compared=compared, self_contained=self_contained,
                            progress=step(total - len(examples)))
