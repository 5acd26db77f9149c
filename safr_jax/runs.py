"""A training run on disk, loaded back for evaluation and explanation.

``load_run(workdir)`` gives the config, the model, the best (or latest)
parameters, and the vocabulary and labels the run was trained with, so ids
never shift between training and explaining.

``config.json``, ``labels.json``, ``vocab.txt`` and ``dataset.json`` are plain
files a user can edit; ``run_identity.json`` (``safr_jax.workdir``) records
what the run was trained with. Each file is checked against it before use, so
an edited max_len or a swapped label list is an error naming the file and the
field, never a silently different accuracy or swapped labels.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import ml_collections

from safr_jax import checkpointing, data, migration, steps
from safr_jax import workdir as workdir_lib
from safr_jax.data import dataset as dataset_lib
from safr_jax.errors import CheckpointError, RunError
from safr_jax.model import SafrClassifier

__all__ = ["Run", "load_run", "RunError"]

# Tries of ``load_run`` when the chosen checkpoint is deleted under it (a
# trainer beside it keeps only the latest and the best).
_RESTORE_TRIES = 5


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
  # run_identity.json (None for a run saved before identities existed).
  identity: dict[str, Any] | None = None


def _read_text(path: pathlib.Path) -> str:
  """``path`` as UTF-8 text; unreadable or non-UTF-8 is a RunError naming it."""
  try:
    return path.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    raise RunError(f"{path} is not valid UTF-8 (byte {e.start}): the file is "
                   "damaged; restore it or train the run again") from None
  except OSError as e:
    raise RunError(f"{path} cannot be read: {e.strerror}") from None


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(_read_text(path))
  except json.JSONDecodeError as e:
    raise RunError(f"{path} is not valid JSON: {e}") from None


def _mismatch(path: pathlib.Path, field: str, found: Any, trained: Any) -> RunError:
  return RunError(
      f"{path}: {field} is {found!r} but the run was trained with {trained!r} "
      f"({workdir_lib.IDENTITY_FILE}); the file was edited or replaced: restore it, "
      "or explain/evaluate the run it belongs to")


def _check_config(path: pathlib.Path, config: dict[str, Any],
                  identity: dict[str, Any], checkpoints: pathlib.Path | None = None
                  ) -> None:
  """Every field the identity holds must have its value in ``config.json``.

  Fields the identity lacks may differ (resumable ones such as num_epochs, and
  fields added to the configs after the run started). ``checkpoints``: the
  identity is a checkpoint's record (``_checkpoint_record``).
  """
  fields = migration.flatten(config)
  for key, trained in sorted(identity.get("config", {}).items()):
    if fields.get(key, "<absent>") != trained:
      if checkpoints is None:
        raise _mismatch(path, key, fields.get(key, "<absent>"), trained)
      raise RunError(
          f"{path}: {key} is {fields.get(key, '<absent>')!r} but the checkpoint in "
          f"{checkpoints} was trained with {trained!r} ({workdir_lib.IDENTITY_FILE} "
          "is missing, so the checkpoint's own record is the reference); the file was "
          "edited: restore it")


def _checkpoint_record(restored: checkpointing.Restored) -> dict[str, Any]:
  """The config a checkpoint was saved with (its ``meta``), as an identity: the
  whole config where the checkpoint holds it, else its model's fields."""
  meta = restored.meta
  fields = migration.upgrade_flat(migration.flatten(meta.get("config") or {}), "data.")
  fields.update({f"model.{k}": v for k, v in (meta.get("model") or {}).items()
                 if k not in ("vocab_size", "num_classes")})  # not config fields
  return {"config": {k: v for k, v in fields.items()
                     if k not in workdir_lib.RESUMABLE_FIELDS}}


def _check_shapes(workdir: pathlib.Path, model: SafrClassifier, config,
                  restored: checkpointing.Restored) -> None:
  """The checkpoint's parameters have the shapes the run's files build."""
  import jax  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  ids = jax.ShapeDtypeStruct((1, int(config.data.max_len)), "int32")
  built = jax.eval_shape(lambda x: model.init(jax.random.key(0), x)["params"], ids)
  want = {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(built).items()}
  have = {"/".join(k): tuple(getattr(v, "shape", ())) for k, v in
          traverse_util.flatten_dict(restored.state["params"]).items()}
  for name in sorted(set(want) | set(have)):
    if want.get(name) != have.get(name):
      raise RunError(
          f"{workdir}: parameter {name} of checkpoint {restored.step} has shape "
          f"{have.get(name, '(absent)')} but config.json, {dataset_lib.VOCAB_FILE} and "
          f"{dataset_lib.LABELS_FILE} build {want.get(name, '(absent)')} "
          f"({workdir_lib.IDENTITY_FILE} is missing); one of them was edited: restore it")


def _check_data(workdir: pathlib.Path, vocab: data.Vocabulary, label_names: list[str],
                info: dict[str, Any], identity: dict[str, Any]) -> None:
  """labels.json, vocab.txt and dataset.json against the identity's data."""
  trained, config = identity.get("data", {}), identity.get("config", {})
  labels = workdir / dataset_lib.LABELS_FILE
  if "label_names" in trained and label_names != trained["label_names"]:
    raise _mismatch(labels, "label_names", label_names, trained["label_names"])
  options = {"lowercase": vocab.lowercase, "strip_html": vocab.strip_html}
  for name, value in options.items():
    if f"data.vocab.{name}" in config and value != config[f"data.vocab.{name}"]:
      raise _mismatch(labels, f"text_options.{name}", value, config[f"data.vocab.{name}"])
  if trained.get("vocab_sha256") and (
      workdir_lib.vocab_hash(list(vocab.tokens)) != trained["vocab_sha256"]):
    raise RunError(f"{workdir / dataset_lib.VOCAB_FILE}: the vocabulary differs from the one "
                   f"the run was trained with ({len(vocab)} tokens now, "
                   f"{trained.get('vocab_size')} trained; {workdir_lib.IDENTITY_FILE}); "
                   "restore the file")
  if trained.get("source") and info.get("source", trained["source"]) != trained["source"]:
    raise _mismatch(workdir / "dataset.json", "source", info.get("source"),
                    trained["source"])


def _restore(ckpt_dir: pathlib.Path, which: str) -> checkpointing.Restored:
  """The ``which`` checkpoint; when a trainer beside us deletes it between
  listing and reading (retention keeps only the latest and the best), the
  newest one that exists now."""
  for _ in range(_RESTORE_TRIES):
    ckpts = checkpointing.Checkpoints(ckpt_dir)
    try:
      step = ckpts.best_step() if which == "best" else ckpts.latest_step()
      if step is None:
        step = ckpts.latest_step()
      if step is None:
        raise RunError(f"{ckpt_dir} holds no checkpoint yet")
      try:
        return ckpts.restore(step)
      except CheckpointError:
        if (ckpt_dir / str(step)).exists():
          raise  # really unreadable, not deleted under us
    finally:
      ckpts.close()
  raise RunError(f"{ckpt_dir}: the checkpoints were deleted while being read "
                 f"({_RESTORE_TRIES} tries); is a trainer saving there? Try again")


def load_run(workdir: str | pathlib.Path, *, which: str = "best") -> Run:
  """Loads ``workdir`` (written by ``train.py``).

  Args:
    workdir: the run's ``--workdir``.
    which: "best" (best dev accuracy) or "latest" checkpoint.

  Raises:
    RunError: naming the missing piece (no config, no vocabulary, no
      checkpoint), a file that cannot be read, or a file that disagrees with
      ``run_identity.json`` (naming the field).
  """
  workdir = pathlib.Path(workdir)
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  config_path = workdir / "config.json"
  if not config_path.exists():
    raise RunError(f"{workdir} is not a safr-jax run: {config_path.name} is missing "
                   "(train one with `python train.py --config=... --workdir=...`)")
  config_dict = _read_json(config_path)
  if not isinstance(config_dict, dict):
    raise RunError(f"{config_path} holds no config (a JSON object)")
  # The one migration step: a run saved in an older layout reads as today's.
  config_dict = migration.upgrade(config_dict)
  try:
    config_dict["data"] = data.config.complete(config_dict.get("data") or {}).to_dict()
  except data.DataError as e:
    raise RunError(f"{config_path}: {e}") from None
  identity_path = workdir / workdir_lib.IDENTITY_FILE
  identity = _read_json(identity_path) if identity_path.exists() else None
  if identity is not None:
    identity["config"] = migration.upgrade_flat(identity.get("config") or {}, "data.")
    _check_config(config_path, config_dict, identity)
  config = ml_collections.ConfigDict(config_dict)
  for name in (dataset_lib.LABELS_FILE, dataset_lib.VOCAB_FILE):
    if (workdir / name).exists():
      _read_text(workdir / name)  # damaged bytes: an error naming the file
  try:
    vocab, label_names = data.load_vocab_and_labels(workdir)
  except (OSError, data.DataError) as e:
    raise RunError(f"{workdir}: cannot read the run's vocabulary/labels: {e}") from None
  info_path = workdir / "dataset.json"
  info = _read_json(info_path) if info_path.exists() else {}
  if identity is not None:
    _check_data(workdir, vocab, label_names, info, identity)
  ckpt_dir = workdir / "checkpoints"
  if not ckpt_dir.is_dir():
    raise RunError(f"{workdir} has no checkpoints folder: training has not saved "
                   "a checkpoint yet")
  restored = _restore(ckpt_dir, which)
  if identity is None:
    _check_config(config_path, config_dict, _checkpoint_record(restored), ckpt_dir)
  model = steps.build_model(config.model, vocab_size=len(vocab),
                            num_classes=len(label_names))
  if identity is None:
    _check_shapes(workdir, model, config, restored)
  return Run(workdir=workdir, config=config, model=model,
             params=restored.state["params"], vocab=vocab, label_names=label_names,
             step=restored.step, which=which, dataset_info=info, identity=identity)


