r"""What the persistent compilation cache saves: one short ``train.py`` run, three ways.

    python benchmarks/startup.py                                   # sst2, 1 epoch
    python benchmarks/startup.py --config=configs/sst2.py:reference --epochs=1

Runs the same command (``--config.train.num_epochs``, fresh workdirs under a
temporary folder) three times in fresh processes:

1. cache off (``--config.train.compilation_cache_dir=``): every program compiled;
2. a new, empty cache folder: compiled and written to the cache (a user's first run);
3. the same folder again: every program read back (every later run).

Prints each run's wall time (process start to exit: imports, data, compiling,
training, dev and test evaluation) and the time to the first progress line
(step 10), then one JSON line. Training time is the same in all three; the
differences are compiling.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
# absl's log line prefix: "I1128 02:55:19.060688 ..."
_STAMP = re.compile(r"^[IWE](\d{4}) (\d\d:\d\d:\d\d\.\d+)")


def _stamp(line: str) -> datetime.datetime | None:
  m = _STAMP.match(line)
  return datetime.datetime.strptime(m[1] + " " + m[2], "%m%d %H:%M:%S.%f") if m else None


def _first_step_s(log: str, started: datetime.datetime) -> float | None:
  """Seconds from the process start to the first progress line (``step N/``)."""
  for line in log.splitlines():
    if re.search(r"\bstep \d+/", line) and (t := _stamp(line)):
      return round((t - started).total_seconds(), 1)
  return None


def run_once(config: str, epochs: int, workdir: pathlib.Path, cache: str) -> dict:
  cmd = [sys.executable, str(ROOT / "train.py"), f"--config={config}",
         f"--workdir={workdir}", f"--config.train.num_epochs={epochs}",
         "--config.train.progress_bar=False", "--config.train.log_every_steps=10",
         f"--config.train.compilation_cache_dir={cache}"]
  started = datetime.datetime.now().replace(year=1900)
  tic = time.perf_counter()
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
  wall = time.perf_counter() - tic
  if proc.returncode:
    raise SystemExit(f"train.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
  return {"wall_s": round(wall, 1), "first_step_s": _first_step_s(proc.stderr, started)}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/sst2.py")
  parser.add_argument("--epochs", type=int, default=1)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory(prefix="safr_startup_") as tmp:
    tmp = pathlib.Path(tmp)
    cache = str(tmp / "xla_cache")
    rows = {}
    for name, cache_dir in (("cache off", ""), ("first run, empty cache", cache),
                            ("second run, warm cache", cache)):
      rows[name] = run_once(args.config, args.epochs, tmp / name.replace(" ", "_"), cache_dir)
      print(f"{name:>24}: {rows[name]['wall_s']:6.1f} s wall, first progress line (step 10) "
            f"after {rows[name]['first_step_s']} s", flush=True)
    cached = sum(1 for f in (tmp / "xla_cache").rglob("*") if f.is_file())
  print(f"{cached} cached programs; the warm cache saves "
        f"{rows['cache off']['wall_s'] - rows['second run, warm cache']['wall_s']:.1f} s a run")
  print(json.dumps({"config": args.config, "epochs": args.epochs, "cached_files": cached,
                    "runs": rows}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
