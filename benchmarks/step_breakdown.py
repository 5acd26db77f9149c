r"""Where a training step's time goes, term by term, old code against new.

    python benchmarks/step_breakdown.py                      # against 392c60c
    python benchmarks/step_breakdown.py --old=HEAD~3 --rounds=7 --shapes=imdb

Loads the step's modules (``losses``, ``steps``, ``model``, ``vmask``,
``initializers``) as they were at ``--old`` (``git show``, imported as the
package ``safr_jax_old``) beside the working tree's, and times each piece of
the step in ONE process, the two versions alternated round by round; the
minimum over rounds counts, so a loaded machine (other processes taking the
cores) disturbs the ratio far less than absolute times. Pieces, each one
jitted program, at the authors' sizes (d 256, 8 heads, d_ff 1024, VMASK 1024):

* ``transformer``: the plain Transformer (no VMASK), cross-entropy, fwd+bwd;
* ``l_inter``: L_Inter on ``[B, 8, L, L]`` softmax attention, value and gradient
  (with the padding mask in padding-aware shapes, without in reference ones);
* ``vmask``: the VMASK layer (training mode), fwd+bwd on ``[B, L, 256]``;
* ``l_imp``: L_Imp, value and gradient;
* ``optimizer``: Adam and the non-finite guard over the whole model's
  parameters (the old guard: update, then ``where(finite, new, old)`` over
  params and both moments; the new: ``steps.apply_if_finite``);
* ``step``: the whole ``steps.train_step`` (both versions' own).

Shapes (``--shapes``): ``imdb`` [32, 256], padding-aware, lengths drawn around
IMDB's (mean ~180, a 256-token row in each batch), 95,588-word vocabulary;
``sst2_reference`` [32, 128], the authors' padded mode (count padding, pool
all, torch init), SST-2 sentence lengths (mean ~19, longest ~50), 16,000 words;
``sst2`` [32, 48], padding-aware, a bucketed SST-2 batch.

Prints a table and one JSON line. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position

_OLD = flags.DEFINE_string("old", "392c60c", "Git revision of the old implementation.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternated timing rounds (the minimum counts).")
_SHAPES = flags.DEFINE_list("shapes", ["imdb", "sst2_reference", "sst2"], "Which shapes.")
_PIECES = flags.DEFINE_list("pieces", ["transformer", "l_inter", "vmask", "l_imp",
                                       "optimizer", "step"], "Which pieces.")
_JSON = flags.DEFINE_string("json", None, "Also write the JSON result here.")

MODULES = ("initializers", "vmask", "model", "losses", "steps")
SHAPES = {
    "imdb": dict(batch=32, width=256, count_padding=False, vocab=95_588, mean=180,
                 longest=256, init="flax", pool="tokens"),
    "sst2_reference": dict(batch=32, width=128, count_padding=True, vocab=16_000, mean=19,
                           longest=50, init="torch", pool="all"),
    "sst2": dict(batch=32, width=48, count_padding=False, vocab=16_000, mean=25, longest=48,
                 init="flax", pool="tokens"),
}


def load_old(revision: str):
  """The step's modules at ``revision``, as the package ``safr_jax_old``."""
  folder = pathlib.Path(tempfile.mkdtemp(prefix="safr_old_")) / "safr_jax_old"
  folder.mkdir()
  (folder / "__init__.py").write_text("")
  for name in MODULES:
    text = subprocess.run(["git", "show", f"{revision}:safr_jax/{name}.py"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    text = re.sub(r"\bsafr_jax(?=[. ])", "safr_jax_old", text)
    (folder / f"{name}.py").write_text(text)
  sys.path.insert(0, str(folder.parent))
  return {name: importlib.import_module(f"safr_jax_old.{name}") for name in MODULES}


def load_new():
  return {name: importlib.import_module(f"safr_jax.{name}") for name in MODULES}


def _lengths(rng, shape):
  lengths = rng.poisson(shape["mean"], shape["batch"]).clip(1, shape["longest"])
  lengths[0] = shape["longest"]
  return lengths


def _pieces(mods, shape, seed=0):
  """name -> (jitted function, args) for one version's modules."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  b, width = shape["batch"], shape["width"]
  lengths = _lengths(rng, shape)
  real = np.arange(width)[None, :] < lengths[:, None]
  ids = jnp.asarray(np.where(real, rng.integers(1, shape["vocab"], (b, width)), 0), jnp.int32)
  labels = jnp.asarray(rng.integers(0, 2, b), jnp.int32)
  mask = jnp.asarray(real)
  losses, steps, model_lib = mods["losses"], mods["steps"], mods["model"]
  out = {}
  kw = dict(vocab_size=shape["vocab"], pool=shape["pool"], param_init=shape["init"])

  plain = model_lib.SafrClassifier(use_vmask=False, **kw)
  params = plain.init(jax.random.key(0), ids)["params"]
  rngs = {"dropout": jax.random.key(1), "gumbel": jax.random.key(2)}

  def transformer(p):
    logits, _ = plain.apply({"params": p}, ids, deterministic=False, rngs=rngs)
    return losses.cross_entropy_loss(logits=logits, labels=labels)
  out["transformer"] = (jax.jit(jax.value_and_grad(transformer)), (params,))

  scores = jax.random.normal(jax.random.key(3), (b, 8, width, width))
  attention = jax.nn.softmax(jnp.where(mask[:, None, None, :], scores, -1e9), axis=-1)
  token_mask = None if shape["count_padding"] else mask
  out["l_inter"] = (jax.jit(jax.value_and_grad(lambda a: losses.interaction_loss(
      attention_weights=a, token_mask=token_mask))), (attention,))

  gate = mods["vmask"].VMask(1024, param_init=shape["init"])
  x = jax.random.normal(jax.random.key(4), (b, width, 256))
  gate_params = gate.init({"params": jax.random.key(5), "gumbel": jax.random.key(6)}, x,
                          deterministic=False)["params"]
  cotangent = jax.random.normal(jax.random.key(7), x.shape)

  def vmask(p, x):
    o = gate.apply({"params": p}, x, deterministic=False, rngs={"gumbel": jax.random.key(8)})
    return jnp.sum(o.masked * cotangent)
  out["vmask"] = (jax.jit(jax.grad(vmask, argnums=(0, 1))), (gate_params, x))

  out["l_imp"] = (jax.jit(jax.value_and_grad(lambda e: losses.importance_loss(
      embeddings=e, token_mask=token_mask))), (x,))

  full = model_lib.SafrClassifier(**kw)
  tx = optax.adam(1e-4)
  state = steps.create_train_state(full, tx, seed=0, max_len=width)
  grads = jax.tree.map(lambda p: 1e-3 * p, state.params)
  if hasattr(steps, "apply_if_finite"):
    def optimizer(params, opt_state, grads):
      return steps.apply_if_finite(jnp.bool_(True), tx, grads, params, opt_state)
  else:  # the old train_step's guard, as it was written there
    def optimizer(params, opt_state, grads):
      updates, new_opt = tx.update(grads, opt_state, params)
      new = optax.apply_updates(params, updates)
      finite = jnp.isfinite(optax.tree.norm(grads))
      keep = lambda n, o: jax.tree.map(lambda a, c: jnp.where(finite, a, c), n, o)
      return keep(new, params), keep(new_opt, opt_state)
  opt = jax.jit(optimizer, donate_argnums=(0, 1))
  copy = lambda tree: jax.tree.map(jnp.copy, tree)  # donated: not the step's state
  out["optimizer"] = (opt, [copy(state.params), copy(state.opt_state), grads])

  step = jax.jit(functools.partial(
      steps.train_step, model=full, tx=tx, weights=losses.LossWeights(),
      count_padding=shape["count_padding"]), donate_argnums=0)
  out["step"] = (step, [state, {"ids": ids, "labels": labels}])
  return out


def _time(piece: str, fn, args) -> float:
  """One call's wall time; a donating piece's outputs become its next inputs."""
  import jax  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  result = jax.block_until_ready(fn(*args))
  elapsed = time.perf_counter() - start
  if piece == "optimizer":    # (params, opt_state) in, (params, opt_state) out
    args[0], args[1] = result
  elif piece == "step":       # (state, batch) in, (state, sums) out
    args[0] = result[0]
  return elapsed


def run() -> dict:
  from safr_jax import runtime  # pylint: disable=g-import-not-at-top
  malloc = runtime.tune_malloc()  # as train.py: XLA's temporaries are kept
  old, new = load_old(_OLD.value), load_new()
  result = {"old": _OLD.value, "new": "working tree", "rounds": _ROUNDS.value,
            "machine": {"cpu": common.cpu_name(), "cores": os.cpu_count(),
                        "loadavg_start": os.getloadavg(), "malloc_tuning": malloc},
            "shapes": {}}
  for shape_name in _SHAPES.value:
    shape = SHAPES[shape_name]
    versions = {"old": _pieces(old, shape), "new": _pieces(new, shape)}
    rows = {}
    for piece in _PIECES.value:
      best = {}
      for version in ("old", "new"):  # compile and warm up
        fn, args = versions[version][piece]
        _time(piece, fn, args)
        best[version] = float("inf")
      for _ in range(_ROUNDS.value):
        for version in ("old", "new"):
          fn, args = versions[version][piece]
          best[version] = min(best[version], _time(piece, fn, args))
      rows[piece] = {"old_ms": 1e3 * best["old"], "new_ms": 1e3 * best["new"],
                     "speedup": best["old"] / best["new"]}
      print(f"{shape_name:15s} {piece:12s} old {rows[piece]['old_ms']:9.1f} ms  new "
            f"{rows[piece]['new_ms']:9.1f} ms  x{rows[piece]['speedup']:.2f}", flush=True)
    result["shapes"][shape_name] = {"shape": shape, "pieces": rows}
    del versions
  result["machine"]["loadavg_end"] = os.getloadavg()
  return result


def _show(result: dict) -> None:
  m = result["machine"]
  print(f"{m['cpu']}, {m['cores']} cores; load average {m['loadavg_start'][0]:.2f} at "
        f"start, {m['loadavg_end'][0]:.2f} at end; old = {result['old']}, min of "
        f"{result['rounds']} alternated rounds")
  for name, s in result["shapes"].items():
    for piece, r in s["pieces"].items():
      print(f"| {name} | {piece} | {r['old_ms']:.1f} | {r['new_ms']:.1f} | {r['speedup']:.2f}x |")


def main(argv) -> None:
  del argv
  common.emit(run(), show=_show, json_path=_JSON.value)


if __name__ == "__main__":
  app.run(main)
