"""Command-line entry points (``train.py``, ``safr-train`` and friends).

Each turns the errors a user can cause (bad flags, config values, data files,
checkpoints) into one clear line on stderr and exit status 2, instead of a
traceback.
"""

from __future__ import annotations

import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

def _user_errors() -> tuple[type[BaseException], ...]:
  from safr_jax import checkpointing, data, train_lib  # pylint: disable=g-import-not-at-top
  return (train_lib.ConfigError, train_lib.TrainingDiverged, data.DataError,
          checkpointing.CheckpointError, FileNotFoundError)


def fail(message: str) -> None:
  """Prints ``message`` as one line and exits with status 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def run_guarded(fn, *args, **kwargs):
  """Calls ``fn``; a user error becomes one line on stderr, not a traceback."""
  try:
    return fn(*args, **kwargs)
  except _user_errors() as e:
    fail(str(e))


def _parse_flags_or_fail(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors (unknown field, bad variant) are one line."""
  try:
    return flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as e:
    import difflib  # pylint: disable=g-import-not-at-top
    name = getattr(e, "flagname", "") or ""
    close = difflib.get_close_matches(name, list(flags.FLAGS), n=3)
    hint = f"; did you mean {' or '.join('--' + c for c in close)}?" if close else ""
    fail(f"{str(e).strip()}{hint}")
  except flags.Error as e:
    fail(_one_line(str(e)))
  except (AttributeError, KeyError) as e:
    # ml_collections: an override of a field the config does not have. Its
    # message already carries the "Did you mean" suggestion.
    import re  # pylint: disable=g-import-not-at-top
    text = str(e)
    field = re.search(r'instead of "([^"]+)"', text) or re.search(r"(\w+)", text)
    override = next((a.split("=")[0] for a in argv[1:]
                     if field and a.startswith("--config.")
                     and a.split("=")[0].endswith("." + field.group(1))), "--config.*")
    hint = re.search(r'Did you mean "([^"]+)"', text)
    fail(f"{override}: the config has no field {field.group(1) if field else '?'!r}"
         + (f"; did you mean {hint.group(1)!r}?" if hint else ""))


def _one_line(text: str) -> str:
  """The gist of a multi-line error: a config file's exception, not its traceback."""
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  if not lines:
    return "invalid command line"
  if len(lines) > 1 and any(line.startswith("Traceback") for line in lines):
    return f"{lines[0].rstrip(':')} -- {lines[-1]}"
  return lines[0]


class _QuietLibraries:
  """Drops INFO lines of orbax/grain/tfds: they bury the training log."""
  _NOISY = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/etils/")

  def filter(self, record) -> bool:
    import logging as std_logging  # pylint: disable=g-import-not-at-top
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def quiet_library_logs() -> None:
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  logging.get_absl_handler().addFilter(_QuietLibraries())
  std_logging.getLogger("absl").addFilter(_QuietLibraries())


def _train(argv):
  del argv
  quiet_library_logs()
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from safr_jax import sharding, train_lib  # pylint: disable=g-import-not-at-top
  sharding.maybe_initialize_distributed()
  try:
    config = flags.FLAGS.config
    config.get("name")  # the config file loads lazily: make it fail here
  except OSError as e:  # the config file could not be loaded
    fail(_one_line(str(e)).replace("config_config", flags.FLAGS["config"].serialize()))
  workdir = flags.FLAGS.workdir or os.path.join(
      "runs", f"{config.get('name', 'run')}_{config.get('variant', 'safr')}")
  del config_flags
  logging.info("workdir: %s", workdir)
  run_guarded(train_lib.train_and_evaluate, config, workdir)


def train_main() -> None:
  """``train.py`` / ``safr-train``: ``--config=FILE[:VARIANT] [--workdir=DIR]``."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file(
      "config", None, "Config file, e.g. configs/sst2.py or configs/sst2.py:baseline.",
      lock_config=True)
  flags.DEFINE_string("workdir", None,
                      "Where checkpoints, metrics and results go (default "
                      "runs/<config name>_<variant>). An existing one is resumed.")
  flags.mark_flags_as_required(["config"])
  app.run(_train, flags_parser=_parse_flags_or_fail)
