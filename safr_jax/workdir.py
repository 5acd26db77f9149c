"""A run's folder: which run it holds (identity) and who is training in it (lock).

Identity: when a run starts, ``run_identity.json`` records what makes it this
run and no other: the data actually used (source, a fingerprint of every
encoded split, the vocabulary's hash, the label names) and the config minus
the fields that may change on resume (``RESUMABLE_FIELDS``, e.g.
``train.num_epochs``). Every later start compares itself with that record
*before writing anything*; a difference is a ``WorkdirError`` naming it.

Lock: ``train.lock`` (host, pid, start time) is held with ``flock`` while a
trainer runs, so a second trainer on the same folder gets a one-line error
naming the holder; the kernel releases the lock of a killed process, and the
next trainer takes it over with a warning. ``explain``/``evaluate`` only read
and never take it.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import socket
import time
from typing import Any

from absl import logging
import ml_collections
import numpy as np

from safr_jax import migration, provenance
from safr_jax.errors import WorkdirError

__all__ = ["IDENTITY_FILE", "LOCK_FILE", "RESUMABLE_FIELDS", "WorkdirLock",
           "run_identity", "check_identity", "holds_a_run", "move_aside"]

IDENTITY_FILE = "run_identity.json"
LOCK_FILE = "train.lock"
# Config fields a later start may change without making it another run: how
# long to train, how to log, where to read the same data from, memory layout.
RESUMABLE_FIELDS = frozenset({
    "variant", "init_from",
    "train.num_epochs", "train.patience", "train.stop_after_steps",
    "train.progress_bar", "train.log_every_steps", "train.checkpoint_every_steps",
    "train.eval_batch_size", "train.overwrite", "train.compilation_cache_dir",
    "loss.query_block_size",
    "data.download.probe_timeout_s", "data.download.cache_dir",
    "data.download.stall_s", "data.download.timeout_s", "data.tfds.data_dir",
    "data.sst_treebank.dir", "data.sst_treebank.url", "data.aclimdb.dir",
    "data.aclimdb.url", "data.files.train", "data.files.dev", "data.files.test",
})
# What the run files of a workdir are; their presence means it holds a run.
RUN_FILES = (IDENTITY_FILE, "config.json", "checkpoints", "results.json")


def _jsonable(value: Any) -> Any:
  """As the value reads back from JSON (tuples → lists, odd types → str)."""
  return json.loads(json.dumps(value, default=str))


def data_fingerprint(bundle: Any) -> str:
  """sha256 over every split's encoded ids and labels: same data, same ids."""
  h = hashlib.sha256()
  for name in sorted(bundle.splits):
    split = bundle.splits[name]
    h.update(name.encode())
    h.update(np.ascontiguousarray(split.ids, np.int32).tobytes())
    h.update(np.ascontiguousarray(split.labels, np.int32).tobytes())
  return h.hexdigest()


def vocab_hash(tokens: list[str]) -> str:
  return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def run_identity(config: ml_collections.ConfigDict, bundle: Any) -> dict[str, Any]:
  """What makes this run this run (see the module docstring)."""
  fields = migration.flatten(_jsonable(config.to_dict()))
  return {
      "config": {k: v for k, v in sorted(fields.items()) if k not in RESUMABLE_FIELDS},
      "data": {"source": bundle.source,
               "fingerprint": data_fingerprint(bundle),
               "vocab_sha256": vocab_hash(list(bundle.vocab.tokens)),
               "vocab_size": len(bundle.vocab),
               "label_names": list(bundle.label_names),
               "sizes": {k: len(v) for k, v in sorted(bundle.splits.items())}},
  }


# What a run saved before a field existed did (migration.ADDED: its value then,
# where not today's default), for check_identity.
VALUES_BEFORE_ADDED = migration.ADDED


def _differences(saved: dict[str, Any], now: dict[str, Any],
                 defaults: dict[str, Any]) -> list[str]:
  out = []
  sd, nd = saved.get("data", {}), now["data"]
  if sd.get("label_names") != nd["label_names"]:
    out.append(f"labels {sd.get('label_names')} (run) vs {nd['label_names']} (now)")
  if sd.get("source", nd["source"]) != nd["source"]:  # absent: rebuilt without it
    out.append(f"data source {sd.get('source')!r} (run) vs {nd['source']!r} (now)")
  elif sd.get("vocab_sha256") and sd.get("vocab_sha256") != nd["vocab_sha256"]:
    out.append(f"vocabulary ({sd.get('vocab_size')} vs {nd['vocab_size']} tokens, "
               "different words)")
  elif sd.get("fingerprint") and sd.get("fingerprint") != nd["fingerprint"]:
    out.append(f"data (same source and vocabulary, other examples: sizes "
               f"{sd.get('sizes')} vs {nd['sizes']})")
  sc, nc = saved.get("config", {}), now["config"]
  for key in sorted(set(sc) | set(nc)):
    if key in RESUMABLE_FIELDS:
      continue
    # A field added to the configs after the run started: the run behaved as
    # that field's value before it existed (its default, unless the default
    # has changed since), so only another value now is a difference.
    if key not in sc and key in defaults:
      was = VALUES_BEFORE_ADDED.get(key, defaults[key])
      if nc.get(key) == was:
        continue
      if key in VALUES_BEFORE_ADDED:
        out.append(f"config.{key} {was!r} (run, from before the field existed) vs "
                   f"{nc.get(key)!r} (now; --config.{key}={was} resumes it)")
        continue
    if sc.get(key, "<absent>") != nc.get(key, "<absent>"):
      out.append(f"config.{key} {sc.get(key, '<absent>')!r} (run) vs "
                 f"{nc.get(key, '<absent>')!r} (now)")
  return out


def holds_a_run(workdir: pathlib.Path) -> bool:
  return any((workdir / name).exists() for name in RUN_FILES)


# The files a start writes besides the identity: what it is rebuilt from.
DEFINING_FILES = ("config.json", "dataset.json", "vocab.txt", "labels.json")


def _rebuilt_identity(workdir: pathlib.Path) -> dict[str, Any] | None:
  """The identity that the files defining a run tell, without its record.

  A run saved before identities existed, or one whose ``run_identity.json``
  was deleted, still has ``config.json`` (the whole config), ``dataset.json``
  (source, sizes, labels), ``vocab.txt`` and ``labels.json``. The data
  fingerprint is not among them, so it is not compared; the vocabulary's hash
  and the split sizes stand in for it.

  Returns:
    None when there is no ``config.json`` to rebuild from.
  """
  config_path = workdir / "config.json"
  if not config_path.exists():
    return None
  out: dict[str, Any] = {"config": migration.flatten(_read_json(config_path)), "data": {}}
  data = out["data"]
  for name in ("dataset.json", "labels.json"):
    path = workdir / name
    if path.exists():
      info = _read_json(path)
      info = info.get("data", info) if name == "labels.json" else info
      for key in ("source", "label_names", "vocab_size", "sizes"):
        if key in info:
          data.setdefault(key, info[key])
  labels = workdir / "labels.json"
  if labels.exists():  # the names the run's ids map to
    data["label_names"] = _read_json(labels).get("label_names", data.get("label_names"))
  vocab = workdir / "vocab.txt"
  if vocab.exists():
    try:
      tokens = vocab.read_bytes().decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
      raise WorkdirError(f"{vocab} cannot be read ({e}); the workdir's run is "
                         "unknown. Use another --workdir.") from None
    if tokens and tokens[-1] == "":
      tokens.pop()
    data.update(vocab_sha256=vocab_hash(tokens), vocab_size=len(tokens))
  return out


def _read_json(path: pathlib.Path) -> Any:
  try:
    return json.loads(path.read_bytes().decode("utf-8"))
  except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
    raise WorkdirError(f"{path} cannot be read ({e}); the workdir's run is "
                       "unknown. Use another --workdir.") from None


def check_identity(workdir: pathlib.Path, identity: dict[str, Any], *,
                   defaults: dict[str, Any] | None = None) -> bool:
  """Compares ``identity`` with the run ``workdir`` holds; writes nothing.

  ``defaults`` (a config's ``to_dict()`` at its defaults) lets a run saved
  before a config field existed resume when that field is at its default.
  Without ``run_identity.json`` (deleted, or a run from before it existed) the
  identity is rebuilt from ``DEFINING_FILES`` and compared the same way.

  Returns:
    True if the workdir holds this run (resume), False if it holds none.

  Raises:
    WorkdirError: it holds another run; the message names what differs.
  """
  path = workdir / IDENTITY_FILE
  rebuilt = not path.exists()
  saved = _rebuilt_identity(workdir) if rebuilt else _read_json(path)
  if saved is None:
    return False
  # Saved in an older layout: its fields where today's config has them.
  saved["config"] = migration.upgrade_flat(saved.get("config", {}), "data.")
  differ = _differences(saved, identity, migration.flatten(_jsonable(defaults or {})))
  present = [name for name in DEFINING_FILES if (workdir / name).exists()]
  if differ:
    shown = "; ".join(differ[:4]) + (f"; and {len(differ) - 4} more" if len(differ) > 4 else "")
    told = (f" ({IDENTITY_FILE} is missing; compared with {', '.join(present)})"
            if rebuilt else "")
    raise WorkdirError(
        f"{workdir} holds another run{told}: {shown}. Use a new --workdir, or "
        "--config.train.overwrite=True to move that run aside and start over here.")
  if rebuilt:
    logging.warning("%s had no %s; rebuilt it from %s, which agree with this start.",
                    workdir, IDENTITY_FILE, ", ".join(present))
  return True


def write_identity(workdir: pathlib.Path, identity: dict[str, Any]) -> None:
  """Writes ``run_identity.json`` unless the workdir has one."""
  if not (workdir / IDENTITY_FILE).exists():
    provenance.write_json(workdir / IDENTITY_FILE,
                          dict(identity, created=time.strftime("%Y-%m-%d %H:%M:%S")))


def move_aside(workdir: pathlib.Path) -> pathlib.Path:
  """Renames ``workdir`` to ``<workdir>.replaced-<time>`` (nothing is deleted)."""
  target = workdir.with_name(f"{workdir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
  workdir.rename(target)
  workdir.mkdir()
  logging.warning("Moved the run that was in %s aside to %s (train.overwrite=True).",
                  workdir, target)
  return target


@dataclasses.dataclass
class WorkdirLock:
  """``train.lock`` held with ``flock`` while a trainer runs in ``workdir``."""
  workdir: pathlib.Path
  _fd: int | None = None

  def acquire(self) -> None:
    path = self.workdir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = _read_holder(fd)
      os.close(fd)
      if e.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
        raise WorkdirError(
            f"{self.workdir} is in use by another trainer ({holder or 'unknown holder'}); "
            "wait for it or stop it, or use another --workdir") from None
      raise WorkdirError(f"cannot lock {path}: {e}") from None
    previous = _read_holder(fd)
    if previous:
      logging.warning("Took over the lock of %s, left by a trainer that is gone (%s).",
                      self.workdir, previous)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)  # an empty lock file = released cleanly
    finally:
      os.close(self._fd)  # also releases the flock
      self._fd = None


def _read_holder(fd: int) -> str:
  try:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    holder = json.loads(text) if text else None
  except (OSError, ValueError):
    return ""
  if not holder:
    return ""
  return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')}"
