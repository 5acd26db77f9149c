"""Data parallelism: a 1-D device mesh, replicated state, sharded batches.

Every device in every process forms one ``data`` axis. Parameters and optimizer
state are replicated; a global batch is split over the axis, and each process
contributes only its own rows (``jax.make_array_from_process_local_data``).
Axes are ``AxisType.Auto``: jax 0.10's default (Explicit) breaks ``nn.Embed``
under ``jit``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

__all__ = ["make_mesh", "replicated", "batch_sharding", "shard_batch",
           "check_batch_size"]

DATA_AXIS = "data"


def make_mesh(devices: list[Any] | None = None) -> jax.sharding.Mesh:
  """A ``data`` mesh over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (DATA_AXIS,),
                       axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh, flag: str) -> None:
  """Raises a ``ValueError`` naming ``flag`` unless the batch splits evenly."""
  devices = mesh.devices.size
  if batch_size < 1 or batch_size % devices:
    raise ValueError(
        f"{flag}={batch_size} must be a positive multiple of the device count "
        f"{devices} ({jax.process_count()} process(es)) so every device gets "
        "the same number of examples")


def shard_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Global arrays from this process' rows of every field of ``batch``."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def maybe_initialize_distributed() -> None:
  """Joins a multi-process job when this process was started as part of one.

  On Cloud TPU pods, SLURM and other clusters that ``jax.distributed`` detects
  by itself, set ``SAFR_DISTRIBUTED=1``. For hand-started processes (e.g. two
  on one machine) set ``SAFR_COORDINATOR=host:port``, ``SAFR_NUM_PROCESSES``
  and ``SAFR_PROCESS_ID``. Without these variables it does nothing.
  """
  import os  # pylint: disable=g-import-not-at-top
  coordinator = os.environ.get("SAFR_COORDINATOR")
  if coordinator:
    # CPU processes need a collectives implementation; harmless elsewhere.
    # (Asking for the backend here would initialise it too early.)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=int(os.environ["SAFR_NUM_PROCESSES"]),
        process_id=int(os.environ["SAFR_PROCESS_ID"]))
  elif os.environ.get("SAFR_DISTRIBUTED") == "1":
    jax.distributed.initialize()
