"""Trains a SAFR classifier: ``python train.py --config=configs/sst2.py``.

    python train.py --config=configs/sst2.py:baseline --workdir=runs/sst2_base
    python train.py --config=configs/sst2.py --config.train.learning_rate=3e-4

``--workdir`` defaults to ``runs/<config name>_<variant>``; running again in a
workdir with checkpoints resumes it.
"""

from safr_jax import startup

if __name__ == "__main__":
  # Importing JAX takes seconds: a SIGTERM/SIGINT meanwhile is one line.
  startup.install(startup.TRAIN_MESSAGE)
  from safr_jax import cli  # pylint: disable=g-import-not-at-top
  cli.train_main()
