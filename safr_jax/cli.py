"""The commands: ``train.py`` / ``safr-train`` and ``explain``, ``evaluate``,
``compare`` (``python -m safr_jax.<command>``, ``safr-<command>``).

Each defines its absl flags, calls one library function and prints what it
returned. A user's mistake (a bad flag, config value, data file, checkpoint)
is one line on stderr and exit status 2 (``flag_parsing``), a stop one line
and 130 / 143 (``startup.run``), ``--help`` exits 0. Text from data is printed
with its control and bidi characters made visible (``flag_parsing.shown``).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

from safr_jax import errors, flag_parsing, runtime, startup
from safr_jax.flag_parsing import fail, shown


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


def _parse_flags(argv: list[str]) -> list[str]:
  from safr_jax import configs  # pylint: disable=g-import-not-at-top  (imports JAX)
  return flag_parsing.parse_or_exit(argv, configs.DATASETS)


def _command(main, stopped: str, *, finalize: bool = False) -> None:
  """Runs ``main`` under absl once its flags parse, with the user's log lines
  only; a stop is one line (``startup.run``): ``stopped`` says what the user
  finds after it."""
  def quiet_main(argv):
    runtime.quiet_library_logs()
    main(argv)
  startup.run(lambda: app.run(quiet_main, flags_parser=_parse_flags), stopped,
              finalize=finalize)


def _show_in_help(*names: str) -> None:
  """Lists these flags under ``--help`` (absl shows only the main module's)."""
  for name in names:
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])


def _stopped(name: str, left: str) -> str:
  """A command's line for a stop during its work: files are written whole or
  not at all, so ``left`` says what the user finds."""
  return f"error: {name} stopped by {{signal}} before it finished; {left}"


def _define_malloc_flag() -> None:
  flags.DEFINE_bool("malloc_tuning", True,
                    "Keep glibc from returning XLA's per-step temporaries to the OS "
                    "(mallopt; on CPU +11 % training and +22 % evaluation "
                    "examples/s, slower compiling: docs/PERFORMANCE.md). "
                    "--nomalloc_tuning: off.")


def _define_run_speed_flags() -> None:
  """explain's and evaluate's (``_speed_up_run``)."""
  _define_malloc_flag()
  flags.DEFINE_string("compilation_cache_dir", None,
                      "XLA's persistent compilation cache, so that a second "
                      "invocation skips compiling (default: the run's, its "
                      "train.compilation_cache_dir; --compilation_cache_dir= turns it off).")


def _speed_up(cache: str | None, off_hint: str, min_compile_time_s=None) -> None:
  """glibc's malloc settings (unless ``--nomalloc_tuning``) and XLA's
  persistent compilation cache in ``cache``, before the first compile."""
  if flags.FLAGS.malloc_tuning:
    runtime.tune_malloc()
  runtime.use_compilation_cache(cache, off_hint=off_hint,
                                min_compile_time_s=min_compile_time_s)


def _speed_up_run(workdir: str) -> None:
  """explain's and evaluate's: the cache the run was trained with (its
  config.json) unless ``--compilation_cache_dir``; every program cached, as
  JAX's 1 s minimum compile time skips most of theirs."""
  cache = flags.FLAGS.compilation_cache_dir
  if cache is None:
    try:
      cache = json.loads(pathlib.Path(workdir, "config.json").read_text())["train"].get(
          "compilation_cache_dir")
    except (OSError, ValueError, LookupError, AttributeError):
      pass  # not a run: the library says so in one line
  _speed_up(cache, "--compilation_cache_dir=", min_compile_time_s=0)


def _train(argv):
  del argv
  from safr_jax import sharding, train_lib  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  sharding.maybe_initialize_distributed()
  config = flags.FLAGS.config
  _speed_up(config.train.get("compilation_cache_dir"), "--config.train.compilation_cache_dir=")
  workdir = flags.FLAGS.workdir or str(pathlib.Path(
      "runs", f"{config.get('name', 'run')}_"
      f"{config.get('variant', 'safr').replace(',', '_')}"))
  logging.info("workdir: %s", workdir)
  try:
    run_guarded(train_lib.train_and_evaluate, config, workdir)
  except train_lib.Stopped as e:  # SIGTERM / SIGINT: saved, resumable
    print(str(e), file=sys.stderr, flush=True)
    sys.exit(e.exit_code)


_TRAIN_USAGE = """Trains a SAFR classifier (or resumes it in --workdir).

  {command} --config=sst2[:VARIANTS] [--workdir=DIR] [--config.FIELD=VALUE ...]

--config takes a dataset's name (sst2, imdb, planted) or a config file such as
configs/sst2.py. VARIANTS combine left to right, e.g. sst2:reference,baseline.
Every config field, with its value: python -m safr_jax.configs sst2[:VARIANTS]
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
  _define_malloc_flag()
  flags.mark_flags_as_required(["config"])
  _show_in_help("config", "workdir", "malloc_tuning")
  # The usage names the command as typed: `python train.py` or `safr-train`.
  typed = pathlib.Path(sys.argv[0]).name
  sys.modules["__main__"].__doc__ = _TRAIN_USAGE.replace(
      "{command}", f"python {typed}" if typed.endswith(".py") else typed)
  _command(_train, startup.TRAIN_MESSAGE, finalize=True)


# ----------------------------------------------------------------------------
# Interpretability: explain, evaluate, compare.


def _explain(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r} (text goes in --text=\"...\")")
  f = flags.FLAGS
  if f.text is not None and f["split"].present:
    fail("give --text or --split, not both")
  if f.text is not None and f["seed"].present:
    fail("--seed draws the examples of --split; with --text there is nothing to draw")
  _speed_up_run(f.workdir)
  from safr_jax.interpret import explain_files  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  told = []  # notes shown before the work: not again after it
  notify = lambda note: (told.append(note), print(shown(f"note: {note}"), file=sys.stderr))
  with _progress_bar("explaining") as progress:
    result = run_guarded(explain_files.explain_run, f.workdir, texts=f.text, split=f.split,
                         num=f.num, seed=f.seed, out=f.out, which=f.checkpoint,
                         compare_to=f.compare_to, self_contained=f.self_contained,
                         progress=progress, notify=notify)
  startup.say_on_stop(startup.DONE_MESSAGE)  # all written
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
  for note in (n for n in result.notes if n not in told):
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
def _progress_bar(what: str):
  """A ``progress(done, total)`` callback drawing a tqdm bar on a terminal;
  elsewhere (logs, pipes) a line every 30 s of a long job."""
  if not sys.stderr.isatty():
    last = [time.monotonic()]
    def line(done, total):
      if time.monotonic() - last[0] >= 30:
        last[0] = time.monotonic()
        print(f"{what}: {done} of {total} steps", file=sys.stderr, flush=True)
    yield line
    return
  import tqdm  # pylint: disable=g-import-not-at-top
  with tqdm.tqdm(desc=what, unit="step", leave=False) as bar:
    yield lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n))


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
  _define_run_speed_flags()
  _show_in_help("workdir", "compare_to", "text", "split", "num", "seed", "out",
                "self_contained", "checkpoint", "compilation_cache_dir", "malloc_tuning")
  _command(_explain, _stopped("explain", "its index.html is written last, so a folder "
           "without one is incomplete; run it again"))


def _evaluate(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments {' '.join(argv[1:])!r}")
  f = flags.FLAGS
  _speed_up_run(f.workdir)
  from safr_jax.interpret import interpretability  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  result = run_guarded(interpretability.evaluate_run, f.workdir, split=f.split,
                       max_examples=f.max_examples or None, random_orders=f.random_orders,
                       active_threshold=f.active_threshold, seed=f.seed,
                       which=f.checkpoint, out=f.out)
  startup.say_on_stop(startup.DONE_MESSAGE)  # all written
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
  _define_run_speed_flags()
  _show_in_help("workdir", "split", "max_examples", "random_orders", "active_threshold",
                "seed", "checkpoint", "out", "compilation_cache_dir", "malloc_tuning")
  _command(_evaluate, _stopped("evaluate", "its output file (default "
           "RUN/interpretability.json) is written whole at the end, so it was not "
           "written; run it again"))


def _compare(argv):
  runs = argv[1:]
  if not runs:
    fail("give the run folders to compare: python -m safr_jax.compare RUN_A RUN_B ...")
  f = flags.FLAGS
  from safr_jax.interpret import comparison  # pylint: disable=g-import-not-at-top
  startup.check()  # a stop during the seconds of importing
  result = run_guarded(comparison.compare_runs, runs, f.out, method=f.method,
                       metric=f.metric)
  startup.say_on_stop(startup.DONE_MESSAGE)  # all written
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
  _command(_compare, _stopped("compare", "comparison.md and comparison.png are each written "
           "whole or not at all; run it again"))
