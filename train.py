"""Trains a SAFR classifier: ``python train.py --config=configs/sst2.py``.

    python train.py --config=configs/sst2.py:baseline --workdir=runs/sst2_base
    python train.py --config=configs/sst2.py --config.train.learning_rate=3e-4

``--workdir`` defaults to ``runs/<config name>_<variant>``; running again in a
workdir with checkpoints resumes it.
"""

import signal

# Importing JAX takes seconds: a SIGTERM/SIGINT meanwhile is noted here, and
# the package's start-up handling (safr_jax.preemption) acts on it at once.
_noted: list[int] = []


def _note(signum, frame):
  del frame
  _noted.append(signum)


if __name__ == "__main__":
  signal.signal(signal.SIGTERM, _note)
  signal.signal(signal.SIGINT, _note)
  from safr_jax import cli, preemption  # pylint: disable=g-import-not-at-top
  preemption.handle_start_up(_noted)
  cli.train_main()
