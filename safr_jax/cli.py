"""Command-line entry points (``train.py``, ``safr-train`` and friends).

Each turns the errors a user can cause (bad flags, config values, data files,
checkpoints) into one clear line on stderr and exit status 2, instead of a
traceback. explain, evaluate and compare also end a SIGINT or SIGTERM in one
line, with exit status 130 or 143 (``startup.run``). ``--help`` exits 0.
Text from data shown on the terminal has its bidi and other control characters
made visible (``[U+202E]``), so a right-to-left override cannot reorder the
line nor an escape sequence rewrite the terminal.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from safr_jax import errors, startup


def shown(text: str) -> str:
  """``text`` safe to print (data is untrusted): bidi and other control
  characters (a NUL, a terminal escape) as ``[U+202E]``; tabs and line breaks
  kept."""
  import re  # pylint: disable=g-import-not-at-top
  from safr_jax.interpret import html  # pylint: disable=g-import-not-at-top
  return re.sub("[\x00-\x08\x0b-\x1f\x7f-\x9f]", lambda m: f"[U+{ord(m[0]):04X}]",
                html.neutralise_bidi(text))


def fail(message: str) -> None:
  """Prints ``message`` as one line and exits with status 2."""
  print(f"error: {shown(message)}", file=sys.stderr)
  sys.exit(2)


def run_guarded(fn, *args, **kwargs):
  """Calls ``fn``; a user error becomes one line on stderr, not a traceback."""
  try:
    return fn(*args, **kwargs)
  except errors.SafrError as e:
    fail(str(e))
  except OSError as e:
    if e.errno not in errors.UNWRITABLE_ERRNOS:
      raise
    fail(f"cannot write {e.filename or 'the output'}: {e.strerror}")



# absl's help flags: each prints the help, then exits with status 1.
_HELP_FLAGS = ("help", "h", "?", "helpshort", "helpfull", "helpxml")


def _asks_for_help(argv: list[str]) -> bool:
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  return any(a.startswith("-") and a.lstrip("-").split("=", 1)[0] in _HELP_FLAGS
             for a in args)


def _parse_flags_or_fail(argv: list[str]) -> list[str]:
  """absl flag parsing whose errors (unknown field, bad variant) are one line,
  and whose ``--help`` exits 0 (absl's exits 1: asking for help is no error)."""
  args = argv[1:argv.index("--")] if "--" in argv else argv[1:]
  given = [a for a in args if a.lstrip("-").split("=", 1)[0] == "config"]
  if len(given) > 1:
    fail(f"--config is given {len(given)} times ({', '.join(given)}); give one config "
         "file, and change its fields with --config.FIELD=VALUE")
  from safr_jax import configs  # pylint: disable=g-import-not-at-top
  for i, arg in enumerate(argv):
    if i and arg.startswith("--config="):
      path, _, variants = arg.removeprefix("--config=").partition(":")
      if path in configs.DATASETS and not pathlib.Path(path).is_file():  # by name
        argv[i] = f"--config={pathlib.Path(__file__).parent / 'named_config.py'}:{path},{variants}"
      elif path and not pathlib.Path(path).is_file():
        fail(f"--config: no such config file {path!r} (a file such as configs/sst2.py, "
             f"or a name: {', '.join(configs.DATASETS)})")
  try:
    return flags.FLAGS(argv)
  except SystemExit:
    if _asks_for_help(argv):
      sys.exit(0)
    raise
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
  """Drops INFO lines of orbax/grain/tfds (they bury the training log) and the
  expected third-party messages every run prints, which say nothing wrong."""
  _NOISY = ("/orbax/", "/grain/", "/tensorflow_datasets/", "/etils/")
  _EXPECTED = (
      "Unable to initialize backend 'tpu'",  # jax probing for a TPU on a CPU/GPU VM
      "Requested `tracked_metric`; did not provide metrics",  # orbax, mid-epoch saves
      "Variant folder %s has no %s",  # tfds looking for an unprepared dataset folder
  )

  def filter(self, record) -> bool:
    import logging as std_logging  # pylint: disable=g-import-not-at-top
    if any(text in str(record.msg) for text in self._EXPECTED):
      return False
    return record.levelno >= std_logging.WARNING or not any(
        part in record.pathname for part in self._NOISY)


def quiet_library_logs() -> None:
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  logging.get_absl_handler().addFilter(_QuietLibraries())
  std_logging.getLogger("absl").addFilter(_QuietLibraries())
  sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
  # A person at a terminal reads messages, not absl's date/thread/file prefix;
  # log files (and --verbosity=1) keep it.
  if sys.stderr.isatty() and flags.FLAGS["verbosity"].value <= 0:
    logging.get_absl_handler().setFormatter(_PlainFormatter())


class _PlainFormatter:
  """``message``, or ``warning: message`` from WARNING up."""

  def format(self, record) -> str:
    import logging as std_logging  # pylint: disable=g-import-not-at-top
    text = record.getMessage()
    return text if record.levelno < std_logging.WARNING else f"{record.levelname.lower()}: {text}"


def _quiet_unraisable(previous):
  """After orbax gives up on an unreadable checkpoint, TensorStore's reads
  still in flight call back into the closed asyncio loop, and each callback's
  ``RuntimeError: Event loop is closed`` is reported as "unraisable" (hundreds
  of tracebacks). Expected and harmless: shown only at --verbosity=1."""
  def hook(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      logging.vlog(1, "ignored after a failed checkpoint read: %r", value)
      return
    previous(unraisable)
  return hook


def _train(argv):
  del argv
  quiet_library_logs()
  from safr_jax import sharding, train_lib  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  sharding.maybe_initialize_distributed()
  try:
    config = flags.FLAGS.config
    config.get("name")  # the config file loads lazily: make it fail here
  except OSError as e:  # the config file could not be loaded
    fail(_one_line(str(e)).replace("config_config", flags.FLAGS["config"].serialize()))
  if flags.FLAGS.malloc_tuning:
    tune_malloc()
  if config.train.get("compilation_cache_dir"):
    import jax  # pylint: disable=g-import-not-at-top
    cache = str(pathlib.Path(config.train.compilation_cache_dir).expanduser())
    jax.config.update("jax_compilation_cache_dir", cache)
    logging.info("XLA compilation cache: %s (off: --config.train.compilation_cache_dir=)",
                 cache)
  workdir = flags.FLAGS.workdir or str(pathlib.Path(
      "runs", f"{config.get('name', 'run')}_"
      f"{config.get('variant', 'safr').replace(',', '_')}"))
  logging.info("workdir: %s", workdir)
  try:
    run_guarded(train_lib.train_and_evaluate, config, workdir)
  except train_lib.Stopped as e:  # SIGTERM / SIGINT: saved, resumable
    print(str(e), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)


def tune_malloc() -> bool:
  """glibc's malloc settings for XLA on CPU, applied before training allocates.

  XLA allocates ~100 MB of temporaries per step; by default glibc hands them
  back to the OS after each step (mmap/trim), costing ~22,000 page faults a
  step. One arena, no mmap for large blocks and a 2 GiB trim threshold keep
  them (as GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:
  glibc.malloc.trim_threshold=4294967296 does). No effect on results.

  Returns:
    Whether glibc accepted all three settings (False off glibc/Linux).
  """
  import ctypes  # pylint: disable=g-import-not-at-top
  import ctypes.util  # pylint: disable=g-import-not-at-top
  name = ctypes.util.find_library("c")
  if not name or not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(name)
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8  # glibc's malloc.h
    # mallopt returns 1 on success; its value is a C int, hence 2 GiB - 1
    # rather than the tunable's 4 GiB (both exceed any step's temporaries).
    return all(libc.mallopt(option, value) == 1
               for option, value in ((m_arena_max, 1), (m_mmap_max, 0),
                                     (m_trim_threshold, 2**31 - 1)))
  except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
    return False


_TRAIN_USAGE = """Trains a SAFR classifier (or resumes it in --workdir).

  {command} --config=configs/sst2.py[:VARIANTS] [--workdir=DIR] [--config.FIELD=VALUE ...]

VARIANTS combine left to right, e.g. :reference,baseline (see configs/sst2.py).
Every config field, with its value: python -m safr_jax.configs configs/sst2.py[:VARIANTS]
(fields are documented in safr_jax/configs.py and safr_jax/data/config.py).
"""


def train_main() -> None:
  """``train.py`` / ``safr-train``: ``--config=FILE[:VARIANTS] [--workdir=DIR]``."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file(
      "config", None, "Required. Config file[:variants], e.g. configs/sst2.py or "
      "configs/sst2.py:reference,baseline; override fields with --config.FIELD=VALUE "
      "(list them: python -m safr_jax.configs configs/sst2.py).",
      lock_config=True)
  flags.FLAGS["config"].default_as_str = None  # no default: not "(default: 'None')"
  flags.DEFINE_string("workdir", None,
                      "Where checkpoints, metrics and results go (default "
                      "runs/<config name>_<variants>). The same command resumes it.")
  flags.DEFINE_bool("malloc_tuning", True,
                    "Keep glibc from returning XLA's per-step temporaries to the OS "
                    "(mallopt; on CPU +11 % training and +22 % evaluation "
                    "examples/s, slower compiling: docs/PERFORMANCE.md). "
                    "--nomalloc_tuning: off.")
  flags.mark_flags_as_required(["config"])
  _show_in_help("config", "workdir", "malloc_tuning")
  # The usage names the command as typed: `python train.py` or `safr-train`.
  typed = pathlib.Path(sys.argv[0]).name
  sys.modules["__main__"].__doc__ = _TRAIN_USAGE.replace(
      "{command}", f"python {typed}" if typed.endswith(".py") else typed)
  startup.run(lambda: app.run(_train, flags_parser=_parse_flags_or_fail),
              startup.TRAIN_MESSAGE)


# ----------------------------------------------------------------------------
# Interpretability: explain, evaluate, compare.


def _exit_now(signum, frame):
  """A stop once the work is done: everything is written, so leave at once."""
  del frame
  os.write(2, f"stopped by {signal.Signals(signum).name} while exiting; what was "
              "written is complete\n".encode())
  os._exit(128 + signum)  # pylint: disable=protected-access


def _work_done() -> None:
  """From here on a stop ends the process at once (``_exit_now``)."""
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _exit_now)


def _command(name: str, main, left: str) -> None:
  """Runs the command ``main`` (absl flags); a stop is one line (``startup.run``):
  ``left`` says what the user finds after it (files are written whole or not at
  all, so none is half-written)."""
  startup.run(lambda: app.run(main, flags_parser=_parse_flags_or_fail),
              f"error: {name} stopped by {{signal}} before it finished; {left}",
              finalize=False)


def _show_in_help(*names: str) -> None:
  """Lists these flags under ``--help`` (absl shows only the main module's)."""
  for name in names:
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])


def _explain(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r} (text goes in --text=\"...\")")
  quiet_library_logs()
  f = flags.FLAGS
  if f.text is not None and f["split"].present:
    fail("give --text or --split, not both")
  if f.text is not None and f["seed"].present:
    fail("--seed draws the examples of --split; with --text there is nothing to draw")
  from safr_jax.interpret import explanations  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  with _progress_bar("explaining", sys.stderr.isatty()) as progress:
    result = run_guarded(explanations.explain_run, f.workdir, texts=f.text, split=f.split,
                         num=f.num, seed=f.seed, out=f.out, which=f.checkpoint,
                         compare_to=f.compare_to, self_contained=f.self_contained,
                         progress=progress)
  _work_done()
  unknown = 0
  for r in result.records:
    for note in r["notes"]:
      # A sample's unknown words: one summary line, not one per example (a
      # user's own texts keep theirs: which words the model did not know).
      if f.text is None and "not in the run's vocabulary" in note:
        unknown += 1
      else:
        print(shown(f"note: {r['name']}: {note}"), file=sys.stderr)
  if unknown:
    print(f"note: {unknown} of {len(result.records)} example(s) have words outside the run's "
          "vocabulary, shown as <UNK> on the page", file=sys.stderr)
  for note in result.notes:
    print(shown(f"note: {note}"), file=sys.stderr)
  for name, records in ((f.workdir, result.records), (f.compare_to, result.compared_records)):
    if f.text is not None:  # the user's own texts: what the model says of each
      for r in records or ():
        probs = ", ".join(f"{label} {p:.3f}" for label, p in r["probs"].items())
        print(shown(f"{name}: {r['name']}: {r['pred']} ({probs})"))
    labelled = [r for r in records or () if r["true"] is not None]
    if labelled:
      right = sum(r["pred"] == r["true"] for r in labelled)
      print(shown(f"{name}: {right} of {len(labelled)} correct"))
  runs = "" if result.compared is None else " with both runs"
  print(f"Explained {len(result.records)} example(s){runs} ({result.pictures} "
        f"picture(s)): {result.index}")


@contextlib.contextmanager
def _progress_bar(what: str, enabled: bool):
  """A ``progress(done, total)`` callback drawing a tqdm bar on a terminal
  (None elsewhere: logs and pipes get no bar)."""
  if not enabled:
    yield None
    return
  import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm.tqdm(desc=what, unit="step", leave=False)

  def progress(done: int, total: int) -> None:
    bar.total = total
    bar.update(done - bar.n)
  try:
    yield progress
  finally:
    bar.close()


_TEXT_HELP = (
    "Text to explain (repeat for several). Without it, examples of --split are "
    "explained. It is tokenised as the run's training texts were "
    "(safr_jax.data.free_text): sst_treebank, glue/sst2: Penn-Treebank tokens "
    "(punctuation apart, n't and 's split off, brackets as -LRB-/-RRB-; glue/sst2 "
    "lowercased); rt_polarity: lowercased, punctuation apart, contractions whole; "
    "IMDB, files, planted: as typed. The page shows the tokens the model read")


def explain_main() -> None:
  """``python -m safr_jax.explain`` / ``safr-explain``."""
  flags.DEFINE_string("workdir", None, "A training run's --workdir.")
  flags.DEFINE_string("compare_to", None, "A second run (same vocabulary, labels and "
                      "text options, e.g. the baseline of the same data): the same "
                      "examples through both models, side by side "
                      "(default --out RUN/explanations_vs_OTHER).")
  flags.DEFINE_multi_string("text", None, _TEXT_HELP)
  flags.DEFINE_string("split", "test", "train, dev or test: the run's own data.")
  flags.DEFINE_integer("num", 20, "How many examples of --split: a seeded sample with "
                       "each class in its share of the split.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the --num examples drawn from --split.",
                       lower_bound=0)
  flags.DEFINE_string("out", None, "Output folder (default RUN/explanations).")
  flags.DEFINE_bool("self_contained", False, "Inline the pictures in index.html "
                    "(one file to send; larger) instead of writing them beside it.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint "
                    "(of both runs).")
  flags.mark_flags_as_required(["workdir"])
  _show_in_help("workdir", "compare_to", "text", "split", "num", "seed", "out",
                "self_contained", "checkpoint")
  _command("explain", _explain, "its index.html is written last, so a folder "
           "without one is incomplete; run it again")


def _evaluate(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r}")
  quiet_library_logs()
  f = flags.FLAGS
  from safr_jax.interpret import interpretability  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  result = run_guarded(interpretability.evaluate_run, f.workdir, split=f.split,
                       max_examples=f.max_examples or None, random_orders=f.random_orders,
                       active_threshold=f.active_threshold, seed=f.seed,
                       which=f.checkpoint, out=f.out)
  _work_done()
  methods = result["faithfulness"]
  print(f"{result['split']}: accuracy {result['accuracy']:.4f}, L_Imp "
        f"{result['importance_loss']:.4f}, L_Inter {result['interaction_loss']:.4f} "
        f"({result['split_examples']} examples; token metrics on {result['examples']})")
  print("faithfulness      comprehensiveness↑  sufficiency↓  AOPC↑  AOPC−random↑  AOPC@20%↑")
  for name, m in methods.items():
    if m["aopc"] is not None:
      print(f"  {name:<17} {m['comprehensiveness']:>8.4f} {m['sufficiency']:>14.4f} "
            f"{m['aopc']:>7.4f} {m.get('aopc_minus_random', float('nan')):>9.4f} "
            f"{m['aopc_by_depth'].get('20%', float('nan')):>12.4f}")
  if "planted" in result:
    print("planted tokens    precision@|P|  recall@5")
    for name, pr in result["planted"]["precision_recall"].items():
      p, r = pr["precision"]["@|P|"], pr["recall"]["@5"]
      if p is not None:
        print(f"  {name:<17} {p:>8.4f} {r:>12.4f}")
  out = pathlib.Path(f.out or pathlib.Path(f.workdir, "interpretability.json"))
  print(f"{result['timing_s']['total']:.1f} s. Wrote {out} (per example: "
        f"{interpretability.examples_path(out)})")


def evaluate_main() -> None:
  """``python -m safr_jax.evaluate`` / ``safr-evaluate``."""
  flags.DEFINE_string("workdir", None, "A training run's --workdir.")
  flags.DEFINE_string("split", "test", "train, dev or test.")
  flags.DEFINE_integer("max_examples", 500, "Examples for the per-token metrics "
                       "(a seeded stratified subset; 0 = the whole split); accuracy "
                       "and losses use the whole split.", lower_bound=0)
  flags.DEFINE_integer("random_orders", 3, "Random rankings averaged into the "
                       "'random' baseline.", lower_bound=1)
  flags.DEFINE_float("active_threshold", 0.0, "An FFN neuron is active for a token "
                     "when its activation is above this.")
  flags.DEFINE_integer("seed", 0, "Seed of the subset, random rankings and random pairs.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint.")
  flags.DEFINE_string("out", None, "Output file (default RUN/interpretability.json).")
  flags.mark_flags_as_required(["workdir"])
  _show_in_help("workdir", "split", "max_examples", "random_orders", "active_threshold",
                "seed", "checkpoint", "out")
  _command("evaluate", _evaluate, "its output file (default "
           "RUN/interpretability.json) is written whole at the end, so it was not "
           "written; run it again")


def _compare(argv):
  runs = argv[1:]
  if not runs:
    fail("give the run folders to compare: python -m safr_jax.compare RUN_A RUN_B ...")
  quiet_library_logs()
  f = flags.FLAGS
  from safr_jax.interpret import comparison  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  result = run_guarded(comparison.compare_runs, runs, f.out, method=f.method,
                       metric=f.metric)
  _work_done()
  for note in result.notes:
    print(shown(f"note: {note}"), file=sys.stderr)
  print(shown(result.markdown.split("\n## Every metric")[0].rstrip()))
  print(f"\nWrote {result.table} and {result.plot}")


def compare_main() -> None:
  """``python -m safr_jax.compare RUN_A RUN_B ...`` / ``safr-compare``."""
  flags.DEFINE_string("out", "comparison", "Output folder for comparison.md and "
                      "comparison.png.")
  flags.DEFINE_enum("method", "vmask", ["vmask", "attention", "gradient_x_input",
                                         "occlusion", "random"],
                    "Explanation on the figure's y axis (default the VMASK gate's); "
                    "runs without it are drawn as reference lines.")
  flags.DEFINE_enum("metric", "aopc@20%",
                    ["aopc@10%", "aopc@20%", "aopc@50%", "comprehensiveness", "sufficiency",
                     "aopc", "aopc_minus_random", "aopc_over_random"],
                    "Its faithfulness metric (aopc@D: deletion to D of each text).")
  _show_in_help("out", "method", "metric")
  _command("compare", _compare, "comparison.md and comparison.png are each written "
           "whole or not at all; run it again")
