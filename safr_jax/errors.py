"""The one error family of safr-jax: every error a user can cause is a ``SafrError``.

Its message names the file, field or flag at fault, so the command line prints
it as one line (``safr_jax.cli``) instead of a traceback. Each subclass also
derives from the builtin that callers caught before the family existed
(``ValueError`` or ``RuntimeError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import errno

__all__ = ["SafrError", "ConfigError", "DataError", "CheckpointError",
           "TrainingDiverged", "RunError", "InterpretError", "WorkdirError",
           "UNWRITABLE_ERRNOS"]

# OSError numbers that mean "this folder cannot take our files" (read-only,
# no permission, full): reported in one line, never as a traceback.
UNWRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


class SafrError(Exception):
  """Base class: a problem the user can fix; the message says what and where."""


class ConfigError(SafrError, ValueError):
  """A config value that cannot work; the message names the field."""


class DataError(SafrError, ValueError):
  """Bad or missing input data; the message names the file and row or field."""


class CheckpointError(SafrError, RuntimeError):
  """A workdir's checkpoints cannot be used as asked."""


class TrainingDiverged(SafrError, RuntimeError):
  """A loss became NaN or infinite; the best checkpoint is left as it was."""


class RunError(SafrError, ValueError):
  """A training run's folder is missing a piece or holds a bad one."""


class InterpretError(SafrError, ValueError):
  """Explanations or evaluation cannot be made as asked (bad text, split, run)."""


class WorkdirError(SafrError, RuntimeError):
  """A workdir that cannot be used now: another run's, locked, or unwritable."""
