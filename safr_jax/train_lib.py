"""The training loop: ``train_and_evaluate(config, workdir)``.

One epoch = every full global batch of the train split once, in a seeded order
that differs per epoch. After each epoch the dev accuracy decides early
stopping (``train.patience``) and which checkpoint is the best; at the end the
*best* checkpoint (a real copy) and the *last* epoch's weights (what the
authors' code tests) are evaluated on test and ``results.json`` is written.

A workdir holds one run. Before writing anything a start checks that the
workdir holds no other run (``safr_jax.workdir``: identity) and takes its lock.
Restarting in a workdir that holds checkpoints resumes from the newest readable
one: parameters, optimizer state, step, RNG, the data iterator, the early-
stopping history and the epoch's metric sums are restored, so the run continues
with exactly the batches and random numbers it would have seen (on the same
device count). SIGTERM/SIGINT stop after the current step with a checkpoint,
or abandon the final test evaluation (``safr_jax.preemption``).

The pieces: ``safr_jax.steps`` (the jitted step functions), ``safr_jax.trainer``
(building them for a config), ``safr_jax.progress`` (what the user sees),
``safr_jax.provenance`` (versions, commit), ``safr_jax.checkpointing``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import pathlib
import time
from typing import Any, Iterator

from absl import logging
import jax
import ml_collections
import numpy as np

from safr_jax import checkpointing, configs, data, errors, losses, metrics, provenance, steps
from safr_jax import workdir as workdir_lib
from safr_jax.errors import (CheckpointError, ConfigError, TrainingDiverged,
                             WorkdirError)
from safr_jax.preemption import StopRequests, Stopped
from safr_jax.progress import Progress
from safr_jax.trainer import Trainer, make_trainer

__all__ = ["train_and_evaluate", "Stopped"]

# Model fields that change a parameter shape: a checkpoint must agree on them.
SHAPE_FIELDS = ("vocab_size", "num_classes", "d_model", "num_layers", "d_ff",
                "use_vmask", "vmask_hidden_dim")


@dataclasses.dataclass
class _Run:
  """One invocation's moving parts."""
  trainer: Trainer
  workdir: pathlib.Path
  ckpts: checkpointing.Checkpoints
  stops: StopRequests
  model_meta: dict[str, Any]


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike) -> dict[str, Any] | None:
  """Trains (or resumes) in ``workdir``, then tests the best checkpoint.

  Returns:
    The results written to ``<workdir>/results.json``, or None when
    ``train.stop_after_steps`` stopped the run early (as a kill would).

  Raises:
    Stopped: SIGTERM/SIGINT; a checkpoint of the step it stopped at is saved
      (or nothing was trained yet, or the test evaluation was abandoned: its
      message says which).
    ConfigError / DataError: bad config or data, before anything is written.
    WorkdirError: the workdir holds another run, is locked, or is unwritable.
    TrainingDiverged: a non-finite loss; the best checkpoint is untouched.
    CheckpointError: the workdir's checkpoints cannot be used.
  """
  start_time = time.time()
  configs.validate_config(config)
  workdir = pathlib.Path(workdir).absolute()
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(config)
    with StopRequests(config.train.log_every_steps) as stops, _locked(workdir) as lock:
      _claim(config, workdir, trainer, lock)
      ckpts = checkpointing.Checkpoints(workdir / "checkpoints", cleanup_tmp=True)
      run = _Run(trainer=trainer, workdir=workdir, ckpts=ckpts, stops=stops,
                 model_meta=_model_meta(config, trainer.bundle))
      try:
        history = _train(run)
        return None if history is None else _finish(run, history, start_time)
      finally:
        ckpts.close()
  except OSError as e:
    if e.errno in errors.UNWRITABLE_ERRNOS:
      advice = ("; free some space there and run the same command"
                if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
      raise WorkdirError(f"cannot write in {workdir}: {e.strerror}"
                         f"{f' ({e.filename})' if e.filename else ''}{advice}") from None
    raise


@contextlib.contextmanager
def _locked(workdir: pathlib.Path) -> Iterator[workdir_lib.WorkdirLock | None]:
  """Holds the workdir's lock (process 0 of a job; the others follow it)."""
  lock = workdir_lib.WorkdirLock(workdir) if jax.process_index() == 0 else None
  if lock is not None:
    lock.acquire()
  try:
    yield lock
  finally:
    if lock is not None:
      lock.release()


def _claim(config, workdir: pathlib.Path, trainer: Trainer,
           lock: workdir_lib.WorkdirLock | None) -> None:
  """Makes sure ``workdir`` holds this run (or none), then writes its files.

  Nothing is written before the identity check: a refused start leaves every
  file of the run that is there as it was.
  """
  identity = workdir_lib.run_identity(config, trainer.bundle)
  # A config of another dataset name (a user's own file) has no defaults here.
  defaults = (configs.base_config(config.name).to_dict()
              if config.get("name") in configs.DATASETS else {})
  try:
    workdir_lib.check_identity(workdir, identity, defaults=defaults)
  except WorkdirError:
    if not config.train.overwrite:
      raise
    checkpointing.multihost_sync("safr_jax_overwrite_check")
    if jax.process_index() == 0:
      workdir_lib.move_aside(workdir)
    if lock is not None:  # the held lock moved aside with the old run
      lock.release()
      lock.acquire()
    checkpointing.multihost_sync("safr_jax_overwrite")
  if jax.process_index() != 0:
    return
  workdir_lib.write_identity(workdir, identity)
  provenance.write_json(workdir / "config.json", json.loads(config.to_json_best_effort()))
  provenance.write_json(workdir / "dataset.json", trainer.bundle.info)
  data.save_vocab_and_labels(trainer.bundle, str(workdir))


# ----------------------------------------------------------------------------
# Checkpoint meta and the state a run starts from.


def _model_meta(config, bundle) -> dict[str, Any]:
  meta = dict(config.model.to_dict(), vocab_size=len(bundle.vocab),
              num_classes=len(bundle.label_names))
  return {k: meta[k] for k in SHAPE_FIELDS} | {"pool": meta["pool"]}


def _check_same_model(expected: dict[str, Any], where: str):
  def check(meta: dict[str, Any]) -> None:
    saved = meta.get("model", {})
    differ = [f"{k} {saved.get(k)!r} (checkpoint) vs {expected[k]!r} (config)"
              for k in SHAPE_FIELDS if saved.get(k) != expected[k]]
    if differ:
      raise CheckpointError(
          f"{where} holds a checkpoint of a different model: " + ", ".join(differ)
          + ". Use another --workdir, or a config that matches it.")
  return check


def _new_history(config) -> dict[str, Any]:
  """The early-stopping bookkeeping a fresh run starts with."""
  return dict(best_dev_accuracy=-1.0, best_step=None, best_epoch=None,
              epochs_without_improvement=0, dev_history=[], stopped_early=False,
              train_seconds=0.0, train_steps=0,
              # β of the bottleneck for the coming epoch, and per epoch so far.
              vmask_kl_weight=float(config.loss.vmask_kl), vmask_kl_history=[])


def _initial_state(run: _Run) -> tuple[steps.TrainState, dict[str, Any] | None]:
  """Resumed, ``init_from`` or fresh state, and the checkpoint meta (or None)."""
  trainer, config = run.trainer, run.trainer.config
  abstract = trainer.abstract_state()
  restored = run.ckpts.restore_newest_readable(
      abstract, check_meta=_check_same_model(run.model_meta, f"workdir {run.workdir}"))
  if restored is not None:
    logging.info("Resuming from %s at step %d.", run.ckpts.directory, restored.step)
    return restored.state, restored.meta
  # Initialised only when no checkpoint of this run restores (a resume skips it).
  state = trainer.init_state()
  if config.init_from:
    source = pathlib.Path(config.init_from)
    other = checkpointing.Checkpoints(
        source / "checkpoints" if (source / "checkpoints").is_dir() else source)
    try:
      found = other.restore_newest_readable(
          abstract, check_meta=_check_same_model(run.model_meta, f"init_from {source}"))
    finally:
      other.close()
    if found is None:
      raise ConfigError(f"config.init_from={str(source)!r} holds no checkpoint")
    logging.info("Starting from the weights of %s (step %d).", source, found.step)
    state = state.replace(params=found.state.params)
  return state, None


# ----------------------------------------------------------------------------
# The loop.


def _train(run: _Run) -> dict[str, Any] | None:
  """Trains until done, early stopping or a stop request.

  Returns:
    The early-stopping history, or None after ``train.stop_after_steps``.
  """
  config = run.trainer.config
  state, meta = _initial_state(run)
  history = _new_history(config)
  if meta:  # "record" in checkpoints written before it was renamed
    history.update(meta.get("history") or meta["record"])
  step = int(jax.device_get(state.step))
  writer = metrics.MetricWriter(run.workdir, enabled=jax.process_index() == 0,
                                start_step=step)
  try:
    return _loop(run, state, meta, history, step, writer)
  finally:
    writer.close()


def _loop(run: _Run, state, meta, history, step: int, writer) -> dict[str, Any] | None:
  trainer, config = run.trainer, run.trainer.config
  spe, total_steps = trainer.steps_per_epoch, trainer.steps_per_epoch * config.train.num_epochs
  # A larger train.num_epochs extends a finished run; early stopping is final.
  if history["stopped_early"] or step >= total_steps:
    logging.info("Training in %s already finished (step %d); evaluating its best "
                 "checkpoint.", run.workdir, step)
    return history
  it = data.train_iterator(trainer.bundle.splits["train"], batch_size=config.train.batch_size,
                           seed=config.seed, pad_to=config.data.pad_to,
                           batching=config.data.batching,
                           bucket_window=config.data.bucket_window,
                           process_index=jax.process_index(),
                           process_count=jax.process_count())
  # The resumed epoch's sums so far: its averages cover the whole epoch.
  epoch_sums = None
  if meta:
    it.set_state(meta["iterator"])
    if meta.get("epoch_sums") and step % spe:
      epoch_sums = {k: np.float32(v) for k, v in meta["epoch_sums"].items()}
  progress = Progress(enabled_bar=config.train.progress_bar and jax.process_index() == 0,
                      steps_per_epoch=spe, num_epochs=config.train.num_epochs,
                      early_stopping=config.train.patience < config.train.num_epochs,
                      batch_size=config.train.batch_size, initial_step=step)

  def save(dev_accuracy=None):
    sums = None if epoch_sums is None else {
        k: float(v) for k, v in jax.device_get(epoch_sums).items()}
    run.ckpts.save(step, state=state, dev_accuracy=dev_accuracy,
                   meta={"iterator": it.get_state(), "history": history,
                         "model": run.model_meta, "epoch": step // spe,
                         "epoch_sums": sums, "config": config.to_dict()})

  window, pending = None, None
  tic, tic_step = time.monotonic(), step
  run.stops.stage = "training"
  if step < total_steps:  # XLA's silence before the first step, explained
    progress.say("compiling the training step (seconds" + ("; a later run of the same "
                 "shapes reuses XLA's cache)" if config.train.compilation_cache_dir else ")"))
  try:
    while step < total_steps:
      if run.stops.should_stop(step):
        if pending is not None:
          _check_finite(*pending)
        if not run.ckpts.has(step):
          if step == 0:  # a fresh start: nothing to save
            raise Stopped.during_start_up(run.stops.signum)
          save()
        # else the epoch-end, periodic or resumed checkpoint of this very step
        # (a signal during its save lands here): saving again would fail.
        run.ckpts.close()  # waits for the save, whatever signals come now
        raise Stopped(run.stops.signum, step)
      batch = trainer.shard(next(it))
      state, sums = trainer.train_step(state, batch, history["vmask_kl_weight"],
                                       _regularizer_scale(config, step // spe + 1))
      step += 1
      # Read the previous step's metrics only now: the host never waits for the
      # step it just dispatched.
      if pending is not None:
        _check_finite(*pending)
      pending = (step, sums)
      window = metrics.add(window, sums)
      epoch_sums = metrics.add(epoch_sums, sums)
      if step % config.train.log_every_steps == 0:
        scalars = metrics.means(window)
        writer.write(step, "train", scalars)
        progress.update(step, scalars)
        window = None
      else:
        progress.update(step, None)
      if step == config.train.stop_after_steps:
        _check_finite(*pending)
        last = run.ckpts.latest_step()  # none saved here, as a kill would not
        logging.warning("Stopping after step %d as train.stop_after_steps says; %s.", step,
                        "no checkpoint yet: a restart starts over" if last is None else
                        f"a restart resumes from the checkpoint of step {last}")
        return None
      if step % spe == 0:  # end of an epoch
        _check_finite(*pending)
        pending = None
        history["train_seconds"] += time.monotonic() - tic
        history["train_steps"] += step - tic_step
        stop = _end_epoch(trainer, state, step, epoch_sums, history, writer, progress)
        epoch_sums = None
        # A warm-up epoch's model is not the configured one: never the best.
        save(dev_accuracy=history["dev_history"][-1] if _regularizer_scale(
            config, step // spe) else None)
        tic, tic_step = time.monotonic(), step
        if stop:
          break
      elif config.train.checkpoint_every_steps and step % config.train.checkpoint_every_steps == 0:
        _check_finite(*pending)
        save()
  finally:
    progress.close()
  return history


def _check_finite(step: int, sums: dict) -> None:
  values = jax.device_get(sums)
  if values["nonfinite_sum"] > 0:
    bad = [k for k in (*losses.term_names(), "grad_norm")
           if not math.isfinite(float(values[f"{k}_sum"]))]
    raise TrainingDiverged(
        f"training diverged at step {step}: non-finite {', '.join(bad) or 'loss'}; "
        "that update was not applied and no checkpoint was written after it. "
        "Lower config.train.learning_rate or set config.train.grad_clip_norm.")


def _regularizer_scale(config, epoch: int) -> float:
  """0 in the λ warm-up's epochs (1-based epoch ≤ loss.warmup_epochs), else 1."""
  return 0.0 if epoch <= config.loss.warmup_epochs else 1.0


def _end_epoch(trainer: Trainer, state, step: int, epoch_sums, history, writer,
               progress: Progress) -> bool:
  """Dev evaluation, early-stopping bookkeeping, the β schedule; True = stop."""
  config = trainer.config
  epoch = step // trainer.steps_per_epoch
  train_scalars = metrics.means(epoch_sums)
  train_scalars["vmask_kl_weight"] = history["vmask_kl_weight"]
  dev = trainer.evaluate(state.params, "dev", history["vmask_kl_weight"])
  history["dev_history"].append(dev["accuracy"])
  history["vmask_kl_history"].append(history["vmask_kl_weight"])
  # Early stopping and the best checkpoint start once the λ warm-up is over.
  warming = not _regularizer_scale(config, epoch)
  improved = not warming and dev["accuracy"] > history["best_dev_accuracy"]
  if improved:
    history.update(best_dev_accuracy=dev["accuracy"], best_step=step, best_epoch=epoch,
                   epochs_without_improvement=0)
  elif not warming:
    history["epochs_without_improvement"] += 1
  writer.write(step, "train_epoch", train_scalars, epoch=epoch)
  writer.write(step, "dev", dev, epoch=epoch)
  progress.say(
      f"epoch {epoch} (step {step}): train loss {train_scalars['loss']:.4f} acc "
      f"{train_scalars['accuracy']:.3f} | dev loss {dev['loss']:.4f} acc "
      f"{dev['accuracy']:.4f} imp {dev['importance']:.4f} inter "
      f"{dev['interaction']:.4f}{' (best)' if improved else ''}"
      f"{' (λ warm-up)' if warming else ''}")
  history["vmask_kl_weight"] = steps.next_vmask_kl_weight(
      history["vmask_kl_weight"], epoch, config.loss.vmask_kl_schedule)
  if history["epochs_without_improvement"] >= config.train.patience:
    progress.say(f"Early stopping: no dev improvement for {config.train.patience} "
                 f"epochs; best epoch {history['best_epoch']}.")
    history["stopped_early"] = True
    return True
  return False


# ----------------------------------------------------------------------------
# Test and results.


def _finish(run: _Run, history: dict[str, Any], start_time: float) -> dict[str, Any]:
  """Tests the best and the last checkpoint and writes ``results.json``.

  A stop request abandons the test evaluation (the next batch boundary): the
  training is saved, and the same command runs the test again from it.
  """
  trainer, config, ckpts = run.trainer, run.trainer.config, run.ckpts
  run.stops.stage = "testing"
  last = ckpts.latest_step()

  def check():
    if run.stops.stop_now():
      raise Stopped.before_test(run.stops.signum, last)

  best = history["best_step"]
  if best is None:
    raise CheckpointError(f"{ckpts.directory} has no evaluated checkpoint to test")
  abstract = trainer.abstract_state()
  # Each checkpoint's loss is reported with the bottleneck β it trained under.
  kl_history = history.get("vmask_kl_history") or [float(config.loss.vmask_kl)]
  check()
  test = trainer.evaluate(ckpts.restore(best, abstract).state.params, "test",
                          kl_history[history["best_epoch"] - 1], check=check)
  # What the authors' code reports: it keeps `state_dict()` by reference, so
  # the weights it tests are the last epoch's, not the best dev epoch's.
  if last is None or last == best:
    test_last, last = test, best
  else:
    test_last = trainer.evaluate(ckpts.restore(last, abstract).state.params, "test",
                                 kl_history[-1], check=check)
  results = provenance.results_record(
      trainer, history, test=test, test_last_epoch=test_last, last_step=last,
      start_time=start_time, workdir=run.workdir)
  if jax.process_index() == 0:
    writer = metrics.MetricWriter(run.workdir)
    writer.write(best, "test", test)
    writer.write(last, "test_last_epoch", test_last)
    writer.close()
    provenance.write_json(run.workdir / "results.json", results)
  print(f"Test accuracy {test['accuracy']:.4f} (loss {test['loss']:.4f}, L_Imp "
        f"{test['importance']:.4f}, L_Inter {test['interaction']:.4f}) of the best "
        f"checkpoint (epoch {history['best_epoch']}, dev accuracy "
        f"{history['best_dev_accuracy']:.4f}) on {trainer.bundle.source}; the last "
        f"epoch's weights (what the authors' code tests): {test_last['accuracy']:.4f}.")
  print(f"Results: {run.workdir / 'results.json'}")
  if run.stops.signum is not None:  # came after the last test batch
    raise Stopped.after_results(run.stops.signum, run.workdir / "results.json")
  return results
