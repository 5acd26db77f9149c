"""What the speed benchmarks share: the CPU's name for the record, and what
they do with a result (a table for people, then one JSON line for scripts:
stdout, and ``--json=PATH`` when given)."""

from __future__ import annotations

import json
import pathlib
import platform
from typing import Any, Callable


def emit(result: dict[str, Any], *, show: Callable[[dict[str, Any]], None],
         json_path: str | None) -> None:
  """Prints ``result`` with ``show``, then as one JSON line (also to ``json_path``)."""
  show(result)
  line = json.dumps(result, default=str)
  if json_path:
    pathlib.Path(json_path).write_text(line + "\n")
  print(line)


def cpu_name() -> str:
  """The CPU model as /proc/cpuinfo names it (timings are per machine)."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()
