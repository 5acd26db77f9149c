"""Bring the SAFR authors' PyTorch weights over to ``SafrClassifier`` params.

The authors' ``CustomTransformer.state_dict()`` names map one to one onto our
modules; ``nn.Linear.weight`` is ``[out, in]`` and becomes a Flax ``Dense``
kernel ``[in, out]``. Pass plain arrays (e.g.
``{k: v.numpy() for k, v in state_dict.items()}``, or an ``.npz`` you saved):
this module never imports torch and never unpickles anything.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

__all__ = ["torch_state_dict_to_params", "params_to_torch_state_dict",
           "config_from_state_dict"]

# Our module path (tuple) for each of the authors' module names.
_FIXED = {
    "embedding": ("embedding",),
    "vmask.linear_layer": ("vmask", "hidden"),
    "vmask.hidden2p": ("vmask", "logits"),
    "fc": ("classifier",),
}
_LAYER = {
    "attention.query": ("attention", "query"),
    "attention.key": ("attention", "key"),
    "attention.value": ("attention", "value"),
    "attention.out": ("attention", "out"),
    "norm1": ("norm1",),
    "norm2": ("norm2",),
    "ff.linear1": ("ffn_in",),
    "ff.linear2": ("ffn_out",),
}
_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)$")
_IGNORED = ("pos_encoder.pe",)  # a fixed buffer: we recompute the table.


def _module_path(module: str) -> tuple[str, ...]:
  if module in _FIXED:
    return _FIXED[module]
  match = _LAYER_RE.match(module)
  if match and match.group(2) in _LAYER:
    return (f"block_{match.group(1)}",) + _LAYER[match.group(2)]
  raise KeyError(module)


def torch_state_dict_to_params(state_dict: Mapping[str, Any],
                               dtype: Any = None) -> dict[str, Any]:
  """Maps the authors' ``state_dict`` (name → array) to a Flax params tree.

  Args:
    state_dict: PyTorch names (e.g. ``layers.0.attention.query.weight``) to
      arrays in PyTorch layouts.
    dtype: optional dtype to cast to (default: keep the arrays' dtype).

  Returns:
    The ``params`` collection for ``SafrClassifier`` (use as
    ``{"params": params}``).

  Raises:
    ValueError: naming any key that does not belong to the authors' model.
  """
  params: dict[str, Any] = {}
  for name, value in state_dict.items():
    if name in _IGNORED:
      continue
    module, _, leaf = name.rpartition(".")
    try:
      path = _module_path(module)
    except KeyError:
      raise ValueError(f"state_dict key {name!r} is not a parameter of the "
                       "SAFR authors' CustomTransformer") from None
    array = np.asarray(value)
    if dtype is not None:
      array = array.astype(dtype)
    if path == ("embedding",):
      if leaf != "weight":
        raise ValueError(f"state_dict key {name!r}: expected embedding.weight")
      out_leaf = "embedding"
    elif path[-1].startswith("norm"):
      out_leaf = {"weight": "scale", "bias": "bias"}[leaf]
    elif leaf == "weight":
      out_leaf, array = "kernel", array.T
    elif leaf == "bias":
      out_leaf = "bias"
    else:
      raise ValueError(f"state_dict key {name!r} has an unknown leaf {leaf!r}")
    node = params
    for part in path:
      node = node.setdefault(part, {})
    node[out_leaf] = array
  return params


def params_to_torch_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The inverse of ``torch_state_dict_to_params`` (numpy arrays out)."""
  inverse = {v: k for k, v in _FIXED.items()}
  out = {}
  flat = _flatten(params)
  for path, value in flat.items():
    module, leaf = path[:-1], path[-1]
    if module in inverse:
      torch_module = inverse[module]
    else:
      layer = int(module[0].removeprefix("block_"))
      sub = {v: k for k, v in _LAYER.items()}[module[1:]]
      torch_module = f"layers.{layer}.{sub}"
    array = np.asarray(value)
    if leaf == "kernel":
      torch_leaf, array = "weight", array.T
    elif leaf in ("embedding", "scale"):
      torch_leaf = "weight"
    else:
      torch_leaf = leaf
    out[f"{torch_module}.{torch_leaf}"] = array
  return out


def config_from_state_dict(state_dict: Mapping[str, Any]) -> dict[str, int]:
  """Reads the model sizes off a state_dict (heads cannot be read: not included)."""
  vocab_size, d_model = np.shape(state_dict["embedding.weight"])
  layers = {int(m.group(1)) for k in state_dict
            if (m := _LAYER_RE.match(k.rpartition(".")[0]))}
  return dict(
      vocab_size=int(vocab_size), d_model=int(d_model),
      num_layers=len(layers),
      d_ff=int(np.shape(state_dict["layers.0.ff.linear1.weight"])[0]),
      vmask_hidden_dim=int(np.shape(state_dict["vmask.linear_layer.weight"])[0]),
      num_classes=int(np.shape(state_dict["fc.weight"])[0]))


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat
