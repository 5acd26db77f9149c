"""Command-line flags whose mistakes are one line: ``parse_or_exit``, ``fail``.

absl parses the flags and ml_collections the ``--config`` file and its
``--config.FIELD=VALUE`` overrides; their messages already name the flag and
suggest a spelling. This module only makes each one line on stderr with exit
status 2 (a config file's exception included, not its traceback), makes
``--help`` exit 0 (absl: 1), refuses ``--config`` given twice (absl would keep
the last), and reads ``--config=NAME[:VARIANTS]`` as a dataset's config by
name (``named_config.py``). Every command parses with it (``cli``); it
imports nothing of safr_jax, so any module may (``configs``' own ``__main__``).
"""

from __future__ import annotations

import pathlib
import sys
import unicodedata
from typing import Iterable

from absl import flags

__all__ = ["parse_or_exit", "fail", "shown"]

_NAMED_CONFIG = pathlib.Path(__file__).with_name("named_config.py")


def shown(text: str) -> str:
  """``text`` safe to print (data is untrusted): control and format characters
  (a NUL, a terminal escape, a bidi override) as ``[U+202E]``; tabs and line
  breaks kept."""
  return "".join(f"[U+{ord(c):04X}]" if c not in "\t\n"
                 and unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def fail(message: str) -> None:
  """Prints ``message`` as one line and exits with status 2."""
  print(f"error: {shown(message)}", file=sys.stderr)
  sys.exit(2)


def parse_or_exit(argv: list[str], config_names: Iterable[str] = ()) -> list[str]:
  """``absl.flags.FLAGS(argv)``, as ``app.run``'s ``flags_parser``: a mistake is
  one line and exit 2, ``--help`` exits 0.

  Args:
    argv: the command line, ``argv[0]`` the program.
    config_names: names that ``--config=NAME[:VARIANTS]`` may give instead of
      a file (``configs.DATASETS``).

  Returns:
    The arguments that are not flags, ``argv[0]`` first.
  """
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  given = [a for a in args if a.lstrip("-").split("=", 1)[0] == "config"]
  if len(given) > 1:
    fail(f"--config is given {len(given)} times ({', '.join(given)}); give one config "
         "file, and change its fields with --config.FIELD=VALUE")
  if given and given[0].startswith("--config="):
    path, _, variants = given[0].removeprefix("--config=").partition(":")
    if path in config_names and not pathlib.Path(path).is_file():
      argv = [f"--config={_NAMED_CONFIG}:{path},{variants}" if a is given[0] else a
              for a in argv]
    elif path and not pathlib.Path(path).is_file():
      fail(f"--config: no such config file {path!r} (a file such as configs/sst2.py"
           + (f", or a name: {', '.join(config_names)})" if config_names else ")"))
  try:
    rest = flags.FLAGS(argv)
    if "config" in flags.FLAGS:
      getattr(flags.FLAGS.config, "name", None)  # ml_collections defers an OSError
    return rest
  except SystemExit as e:  # absl's --help, --helpfull: status 1 after the help
    sys.exit(0 if e.code == 1 else e.code)
  except flags.Error as e:  # absl's message names the flag (and a close spelling)
    fail(_one_line(e))
  except Exception as e:  # pylint: disable=broad-except  (the config file's, or
    fail(_config_error(e, args))  # ml_collections' for a field the config lacks)


def _innermost(e: BaseException) -> BaseException:
  """ml_collections raises ``AttributeError(KeyError(message))`` for a field the
  config lacks, from within the ``KeyError(field)`` of its dict."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  return e


def _config_error(e: Exception, args: list[str]) -> str:
  """The override naming a field the config lacks, else the ``--config`` flag,
  and what went wrong."""
  field = _innermost(e).__context__
  if isinstance(field, KeyError) and field.args:
    for arg in args:
      name = arg.split("=", 1)[0]
      if name.startswith("--config.") and field.args[0] in name.split(".")[1:]:
        return f"{name}: the config has no field {_one_line(e)}"
  config = next((a for a in args if a.startswith("--config=")), "--config")
  return f"{config}: {type(_innermost(e)).__name__}: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
  """An exception's message on one line: a config file's traceback (which
  ml_collections puts in the message) as its first and last line."""
  e = _innermost(e)
  text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  if any(line.startswith("Traceback") for line in lines):
    return f"{lines[0].rstrip(':')} -- {lines[-1]}"
  return "; ".join(lines) or "invalid command line"
