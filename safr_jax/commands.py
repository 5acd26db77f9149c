"""The installed commands' entry points (``safr-train``, ``safr-explain``, ...).

They import ``safr_jax.cli`` only when run, so that a core install (``pip
install safr-jax``: the losses, jax and numpy) answers a command with one line
naming the extra it needs instead of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["train", "explain", "evaluate", "compare"]


def _main(command: str) -> None:
  from safr_jax import startup  # pylint: disable=g-import-not-at-top  (standard library only)
  startup.install(startup.TRAIN_MESSAGE if command == "train" else startup.COMMAND_MESSAGE)
  try:
    from safr_jax import cli  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    print(f"error: safr-{command} needs the training dependencies ({e.name} is not "
          'installed): pip install "safr-jax[train]" (from a checkout: pip install ".[train]")',
          file=sys.stderr)
    sys.exit(2)
  if command != "train":  # --help shows __main__'s docstring: the module's, as typed
    doc = importlib.import_module(f"safr_jax.{command}").__doc__
    sys.modules["__main__"].__doc__ = doc.replace(f"python -m safr_jax.{command}",
                                                  f"safr-{command}")
  getattr(cli, f"{command}_main")()


def train() -> None:
  _main("train")


def explain() -> None:
  _main("explain")


def evaluate() -> None:
  _main("evaluate")


def compare() -> None:
  _main("compare")
