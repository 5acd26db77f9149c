"""A training run on disk, loaded back for evaluation and explanation.

``load_run(workdir)`` gives the config, the model, the best (or latest)
parameters, and the vocabulary and labels the run was trained with, so ids
never shift between training and explaining.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import ml_collections

from safr_jax import checkpointing, data, steps
from safr_jax.errors import RunError
from safr_jax.model import SafrClassifier

__all__ = ["Run", "load_run", "RunError"]




@dataclasses.dataclass
class Run:
  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  model: SafrClassifier
  params: Any
  vocab: data.Vocabulary
  label_names: list[str]
  step: int
  which: str            # "best" or "latest"
  dataset_info: dict[str, Any]


def load_run(workdir: str | pathlib.Path, *, which: str = "best") -> Run:
  """Loads ``workdir`` (written by ``train.py``).

  Args:
    workdir: the run's ``--workdir``.
    which: "best" (best dev accuracy) or "latest" checkpoint.

  Raises:
    RunError: naming the missing piece (no config, no vocabulary, no checkpoint).
  """
  workdir = pathlib.Path(workdir)
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  config_path = workdir / "config.json"
  if not config_path.exists():
    raise RunError(f"{workdir} is not a safr-jax run: {config_path.name} is missing "
                   "(train one with `python train.py --config=... --workdir=...`)")
  try:
    config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  except json.JSONDecodeError as e:
    raise RunError(f"{config_path} is not valid JSON: {e}") from None
  try:
    vocab, label_names = data.load_vocab_and_labels(workdir)
  except (OSError, data.DataError) as e:
    raise RunError(f"{workdir}: cannot read the run's vocabulary/labels: {e}") from None
  ckpt_dir = workdir / "checkpoints"
  if not ckpt_dir.is_dir():
    raise RunError(f"{workdir} has no checkpoints folder: training has not saved "
                   "a checkpoint yet")
  ckpts = checkpointing.Checkpoints(ckpt_dir)
  try:
    step = ckpts.best_step() if which == "best" else ckpts.latest_step()
    if step is None:
      step = ckpts.latest_step()
    if step is None:
      raise RunError(f"{ckpt_dir} holds no checkpoint yet")
    restored = ckpts.restore(step)
  finally:
    ckpts.close()
  model = steps.build_model(config.model, vocab_size=len(vocab),
                                num_classes=len(label_names))
  info_path = workdir / "dataset.json"
  info = json.loads(info_path.read_text()) if info_path.exists() else {}
  return Run(workdir=workdir, config=config, model=model,
             params=restored.state["params"], vocab=vocab, label_names=label_names,
             step=step, which=which, dataset_info=info)
