r"""Training speed (examples/s) of the AUTHORS' PyTorch SAFR, on this machine.

    PYTHONPATH=$TORCH_DIR python benchmarks/authors_speed.py --authors_repo=/tmp/SAFR
    PYTHONPATH=$TORCH_DIR python benchmarks/authors_speed.py --authors_repo=/tmp/SAFR \
        --dataset=imdb --steps=10 --json=/tmp/authors_imdb.json
    PYTHONPATH=$TORCH_DIR python benchmarks/authors_speed.py --authors_repo=/tmp/SAFR \
        --steps=3 --repeats=1 --warmup=1                      # smoke test, not a result

So the docs can quote "safr_jax ÷ authors" ratios measured on one machine: run
this and ``benchmarks/throughput.py --config=configs/sst2.py:reference`` (or
``imdb.py``) one after the other on the same, equally loaded machine.

Nothing of the authors' code is kept in this repository: ``--authors_repo``
names a checkout of https://github.com/chili-lab/SAFR (e.g. ``git archive`` of
it into /tmp/SAFR) and this script imports ``analyzer``, ``model.model`` (hence
``regularization``) and ``data.datasets`` from there. PyTorch is not a
dependency of safr-jax; put it on ``PYTHONPATH`` from a separate folder, e.g.
``pip install --no-deps --target $TORCH_DIR <a CPU torch wheel>`` plus its
pure-Python dependencies (sympy, mpmath, networkx, filelock, fsspec, jinja2,
MarkupSafe, typing_extensions). A CUDA build of torch does not import without
the nvidia-* libraries; on a CPU machine use a ``+cpu`` wheel.

The hyper-parameters are read at run time from the authors' own
``analyzer.SentimentAnalyzer.__init__`` (constructing it does no I/O), so they
are theirs by construction; in the snapshot read for this script
(chili-lab/SAFR 71bf7eb, 2025-02-17) ``analyzer.py`` sets:

* batch_size 32; n_classes 2; d_model 256; num_heads 8; num_layers 1;
  d_ff 1024; dropout 0.1; mask_hidden_dim 1024 (VMASK);
* max_len 256 for ``dataset == "imdb"``, 128 for "sst2" (and anything else);
  it is also the positional-encoding length;
* optimizer ``torch.optim.Adam(model.parameters(), lr=1e-4)`` (PyTorch's
  defaults otherwise), loss ``nn.CrossEntropyLoss()``;
* importance_lambda and interaction_lambda: ``config.get(..., 1)``, and
  ``train.py``'s command-line defaults are 1 too;
* num_epochs 100, patience 3 (early stopping; not relevant to speed).

Their training step (``SentimentAnalyzer.train_model``), reproduced exactly
here, one call per line: ``optimizer.zero_grad()``;
``outputs = model(inputs, flag='train')``; ``ce = criterion(outputs, labels)``;
``loss = ce + importance_lambda * model.polyse_loss + interaction_lambda *
model.inter_loss``; ``loss.backward()``; ``optimizer.step()``; then their
per-step bookkeeping (four ``.item()`` calls and ``torch.max(outputs.data, 1)``
for accuracy). L_Imp and L_Inter are computed INSIDE their ``forward``
(``regularization.polysemanticity_loss(x_vmask)`` and
``correlation_interference_loss(attn, attn / attn.sum(-1))``); ``flag='train'``
makes VMASK sample a hard straight-through Gumbel-softmax mask (eval uses the
softmax probability). As ``create_data_loaders`` does, the model gets
``set_reverse_vocab(vocab)``, which makes every forward build a Python list of
the first row's tokens (one ``.item()`` per position): part of their step's cost.

Inputs: real text. ``--dataset=sst2`` uses our builtin ``rt_polarity``
(Rotten Tomatoes sentences; NOT the SST-2 benchmark, which the authors read
from the Stanford Sentiment Treebank: same kind of text, similar lengths),
``--dataset=imdb`` our builtin ``imdb_builtin``. Our vocabulary and encoding
(``safr_jax.data``: whitespace tokens, train-split vocabulary with
min_freq 2, ``<PAD>`` 0, ``<UNK>`` 1, like their ``build_vocab``) give the
ids, and the model's vocabulary size is ours. Rows are padded as their
``SentimentDataset`` pads: right-padded with ``<PAD>`` = 0 to max_len,
truncated to the first max_len tokens; int64 like ``torch.tensor(indices)``.

By default the ``--steps`` batches (seeded random rows of the train split, as
their ``shuffle=True`` loader gives) are built once and every pass reuses them,
as ``throughput.py`` times our ``train_step`` on prepared batches.
``--authors_loader`` instead times their own ``DataLoader(SentimentDataset(...),
batch_size, shuffle=True)`` (per-example tokenising in Python) inside each pass.

Timing: ``torch.set_num_threads(os.cpu_count())``; ``--warmup`` steps, then
``--repeats`` timed passes of ``--steps`` steps; median/min/max examples/s and
ms/step; cores used = process CPU time / wall time in the timed passes. The
first step's loss components (CE, L_Imp, L_Inter) are printed and must be
finite. glibc's malloc keeps its defaults unless ``--malloc_tuning`` (the
authors' ``train.py`` sets nothing; ``throughput.py`` applies our settings by
default, ``--nomalloc_tuning`` there to compare like with like).

Prints a summary and one JSON line (``--json`` also writes it to a file).
"""

from __future__ import annotations

import math
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO = flags.DEFINE_string(
    "authors_repo", None, "Checkout of chili-lab/SAFR (analyzer.py, model/model.py, ...).")
_DATASET = flags.DEFINE_enum("dataset", "sst2", ["sst2", "imdb"],
                             "Their dataset setting (sst2: rt_polarity text; imdb: imdb_builtin).")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps per timed pass.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of torch (init, dropout, Gumbel) and of the batches.")
_DEVICE = flags.DEFINE_string(
    "device", None, "torch device (default: theirs, 'cuda' if available else 'cpu').")
_LOADER = flags.DEFINE_bool(
    "authors_loader", False, "Time their DataLoader(SentimentDataset) inside each pass.")
_MALLOC = flags.DEFINE_bool(
    "malloc_tuning", False, "Apply train.py's glibc malloc settings (the authors' code does not).")
_JSON = flags.DEFINE_string("json", None, "Also write the JSON result here.")

# The files this script imports from --authors_repo (data/read.py: analyzer imports it).
AUTHORS_FILES = ("analyzer.py", "model/model.py", "regularization.py", "data/datasets.py",
                 "data/read.py")


class _Fail(Exception):
  """A one-line error for the user."""


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except Exception as e:  # pylint: disable=broad-except
    # ImportError, or OSError from a CUDA build missing its libraries.
    raise _Fail(f"cannot import torch ({type(e).__name__}: {str(e).splitlines()[0]}); "
                "put a torch install on PYTHONPATH (see this script's docstring)") from e
  return torch


def _import_authors(repo: str):
  """(analyzer, model.model, data.datasets) imported from ``repo``."""
  path = pathlib.Path(repo).expanduser().resolve()
  missing = [f for f in AUTHORS_FILES if not (path / f).is_file()]
  if missing:
    raise _Fail(f"--authors_repo={repo} lacks the authors' {', '.join(missing)} "
                "(a checkout of chili-lab/SAFR)")
  sys.path.insert(0, str(path))
  import analyzer  # pylint: disable=g-import-not-at-top,import-error
  import data.datasets  # pylint: disable=g-import-not-at-top,import-error
  import model.model  # pylint: disable=g-import-not-at-top,import-error
  # Their packages have no __init__.py; a same-named package elsewhere on
  # sys.path would win over them silently.
  for mod in (analyzer, model.model, data.datasets):
    if not pathlib.Path(mod.__file__).resolve().is_relative_to(path):
      raise _Fail(f"module {mod.__name__} came from {mod.__file__}, not {path}; "
                  "another package of that name shadows the authors'")
  return analyzer, model.model, data.datasets, path


def _commit(path: pathlib.Path) -> str | None:
  try:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                         text=True, timeout=10, check=True)
    return out.stdout.strip()
  except Exception:  # pylint: disable=broad-except
    return None  # e.g. a `git archive` export


def run() -> dict:
  loadavg_start = os.getloadavg()
  torch = _import_torch()
  analyzer, model_lib, datasets_lib, repo = _import_authors(_REPO.value)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safr_jax import configs, data  # pylint: disable=g-import-not-at-top
  from safr_jax.data import sources  # pylint: disable=g-import-not-at-top

  # Their hyper-parameters, from their constructor (it only sets attributes).
  dataset = _DATASET.value
  kwargs = {} if _DEVICE.value is None else {"device": _DEVICE.value}
  sa = analyzer.SentimentAnalyzer("unused", {"dataset": dataset}, **kwargs)
  hp = {k: getattr(sa, k) for k in (
      "max_len", "batch_size", "n_classes", "d_model", "num_heads", "num_layers", "d_ff",
      "dropout", "mask_hidden_dim", "lr", "importance_lambda", "interaction_lambda",
      "num_epochs", "patience")}
  device = torch.device(sa.device)

  # Real text through our vocabulary and encoding, padded to their max_len.
  config = configs.get_config(dataset, "reference")
  # The builtin stand-in of the config's benchmark: text at hand, no network probe.
  config.data.source = sources.REGISTRY[config.data.benchmark].stand_in
  if config.data.max_len != sa.max_len:  # our config claims to be theirs: say if not
    print(f"note: our {dataset} max_len {config.data.max_len} != theirs {sa.max_len}; "
          "using theirs")
    config.data.max_len = sa.max_len
  start = time.perf_counter()
  bundle = data.load_dataset(config.data)
  data_s = time.perf_counter() - start
  train = bundle.splits["train"]
  vocab = {tok: i for i, tok in enumerate(bundle.vocab.tokens)}  # their dict form
  if vocab.get("<PAD>") != 0 or vocab.get("<UNK>") != 1:
    raise _Fail("our vocabulary must map <PAD> to 0 and <UNK> to 1, as theirs does")

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(_SEED.value)
  # As create_data_loaders builds it, with our vocabulary's size.
  model = model_lib.CustomTransformer(
      vocab_size=len(vocab), d_model=sa.d_model, num_heads=sa.num_heads,
      num_layers=sa.num_layers, d_ff=sa.d_ff, max_seq_length=sa.max_len,
      num_classes=sa.n_classes, dropout=sa.dropout,
      mask_hidden_dim=sa.mask_hidden_dim).to(device)
  model.set_reverse_vocab(vocab)
  # As train_model sets them up.
  optimizer = torch.optim.Adam(model.parameters(), lr=sa.lr)
  criterion = torch.nn.CrossEntropyLoss().to(device)
  model.train()
  n_params = sum(p.numel() for p in model.parameters())

  bs, steps = sa.batch_size, _STEPS.value
  if _LOADER.value:
    loader = torch.utils.data.DataLoader(
        datasets_lib.SentimentDataset(train.texts, train.labels.tolist(), vocab, sa.max_len),
        batch_size=bs, shuffle=True)
    if len(loader) < steps:
      raise _Fail(f"--steps={steps} > {len(loader)} batches in an epoch of their loader")

    def batches():  # a fresh shuffled epoch per pass, the first `steps` batches
      it = iter(loader)
      return (next(it) for _ in range(steps))
    fixed = None
  else:
    rng = np.random.default_rng(_SEED.value)
    rows = [rng.choice(len(train), bs, replace=False) for _ in range(steps)]
    fixed = [(torch.from_numpy(train.ids[r].astype(np.int64)),
              torch.from_numpy(train.labels[r].astype(np.int64))) for r in rows]

    def batches():
      return iter(fixed)
  ids_all = (np.concatenate([b[0].numpy() for b in fixed]) if fixed is not None
             else train.ids)
  tokens_per_row = float((ids_all != 0).sum(1).mean())

  li, lx = sa.importance_lambda, sa.interaction_lambda
  first = {}

  def step(inputs, labels):
    # analyzer.py's train_model loop body, call for call.
    inputs, labels = inputs.to(device), labels.to(device)
    optimizer.zero_grad()
    outputs = model(inputs, flag="train")
    ce_loss = criterion(outputs, labels)
    importance_loss = model.polyse_loss
    interaction_loss = model.inter_loss
    loss = ce_loss + li * importance_loss + lx * interaction_loss
    loss.backward()
    optimizer.step()
    vals = (ce_loss.item(), importance_loss.item(), interaction_loss.item(), loss.item())
    _, predicted = torch.max(outputs.data, 1)
    (predicted == labels).sum().item()
    if not first:
      first.update(ce=vals[0], importance=vals[1], interaction=vals[2], total=vals[3])

  def sync():
    if device.type == "cuda":
      torch.cuda.synchronize()

  done = 0
  while done < _WARMUP.value:
    for inputs, labels in batches():
      if done == _WARMUP.value:
        break
      step(inputs, labels)
      done += 1
  sync()

  times, cores = [], []
  for _ in range(_REPEATS.value):
    c0, t0 = time.process_time(), time.perf_counter()
    for inputs, labels in batches():
      step(inputs, labels)
    sync()
    times.append(time.perf_counter() - t0)
    cores.append((time.process_time() - c0) / times[-1])
  if not all(math.isfinite(v) for v in first.values()):
    raise _Fail(f"first step's losses are not finite: {first}")

  examples = steps * bs
  med = statistics.median(times)
  loadavg_end = os.getloadavg()
  return {
      "implementation": "authors (PyTorch)",
      "authors_repo": str(repo), "authors_commit": _commit(repo),
      "dataset": dataset, "source": bundle.source, "max_len": sa.max_len,
      "batch_size": bs, "vocab_size": len(vocab), "train_examples": len(train),
      "mean_tokens_per_row": tokens_per_row, "parameters": n_params,
      "hyperparameters_from_analyzer_py": hp,
      "optimizer": f"torch.optim.Adam(lr={sa.lr})", "vmask_flag": "train",
      "loader": "authors DataLoader(SentimentDataset)" if _LOADER.value
                else "prepared tensors",
      "steps": steps, "repeats": _REPEATS.value, "warmup": _WARMUP.value, "seed": _SEED.value,
      "data_load_s": round(data_s, 2),
      "first_step_losses": first,
      "train": {"examples_per_s": examples / med, "min_examples_per_s": examples / max(times),
                "max_examples_per_s": examples / min(times), "median_pass_s": med,
                "ms_per_step": 1e3 * med / steps, "cores_used": statistics.median(cores),
                "pass_s": times},
      "machine": {"cpu": common.cpu_name(), "cores": os.cpu_count(), "device": str(device),
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                  "torch_interop_threads": torch.get_num_interop_threads(),
                  "set_num_threads": "torch.set_num_threads(os.cpu_count())",
                  "python": platform.python_version(),
                  "loadavg_start": [round(x, 2) for x in loadavg_start],
                  "loadavg_end": [round(x, 2) for x in loadavg_end],
                  "glibc_tunables": os.environ.get("GLIBC_TUNABLES")},
  }


def _print(r: dict) -> None:
  mc, t, f, hp = r["machine"], r["train"], r["first_step_losses"], r[
      "hyperparameters_from_analyzer_py"]
  print(f"machine: CPU {mc['cpu']}, {mc['cores']} cores; device {mc['device']}; torch "
        f"{mc['torch']}, {mc['torch_threads']} threads ({mc['set_num_threads']}), "
        f"{mc['torch_interop_threads']} interop; load average "
        f"{' '.join(f'{x:.2f}' for x in mc['loadavg_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in mc['loadavg_end'])} at end; malloc tuning "
        f"{'on' if mc.get('malloc_tuning') else 'off'}")
  print(f"authors' SAFR ({r['authors_repo']}, commit {r['authors_commit'] or 'unknown'}) "
        f"on {r['source']} ({r['dataset']} setting): max_len {r['max_len']}, batch "
        f"{r['batch_size']}, vocab {r['vocab_size']}, {r['parameters']:,} parameters, "
        f"{r['mean_tokens_per_row']:.1f} tokens/row; {r['loader']}")
  print(f"  from analyzer.py: d_model {hp['d_model']}, heads {hp['num_heads']}, layers "
        f"{hp['num_layers']}, d_ff {hp['d_ff']}, mask hidden {hp['mask_hidden_dim']}, "
        f"dropout {hp['dropout']}, {r['optimizer']}, lambdas {hp['importance_lambda']}/"
        f"{hp['interaction_lambda']}, flag='{r['vmask_flag']}'")
  print(f"  first step: CE {f['ce']:.4f}, L_Imp {f['importance']:.4f}, L_Inter "
        f"{f['interaction']:.6f}, total {f['total']:.4f} (finite)")
  print(f"  train: {t['examples_per_s']:.1f} examples/s median (min "
        f"{t['min_examples_per_s']:.1f}, max {t['max_examples_per_s']:.1f}); "
        f"{t['ms_per_step']:.1f} ms/step; cores used {t['cores_used']:.2f} "
        f"({r['repeats']} passes of {r['steps']} steps after {r['warmup']} warm-up)")


def main(argv) -> None:
  del argv
  try:
    if not _REPO.value:
      raise _Fail("--authors_repo=PATH (a checkout of chili-lab/SAFR) is required")
    if min(_STEPS.value, _REPEATS.value) < 1 or _WARMUP.value < 0:
      raise _Fail("--steps and --repeats must be >= 1, --warmup >= 0")
    malloc_tuned = False
    if _MALLOC.value:
      from safr_jax import runtime  # pylint: disable=g-import-not-at-top
      malloc_tuned = runtime.tune_malloc()
    result = run()
  except _Fail as e:
    sys.exit(f"authors_speed.py: error: {e}")
  result["machine"]["malloc_tuning"] = malloc_tuned
  common.emit(result, show=_print, json_path=_JSON.value)


if __name__ == "__main__":
  app.run(main)
