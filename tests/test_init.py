"""init="torch": every parameter drawn as PyTorch draws the authors' modules.

The golden ``model.npz`` holds a model initialised by the authors' PyTorch code
(``param/*``); a rule that it satisfies (embedding N(0, 1), every Linear weight
and bias U(±1/sqrt(fan_in)), LayerNorm 1/0) must hold for ours too, and must
fail for Flax's defaults.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_golden
from safr_jax import configs
from safr_jax import configs, convert, errors, steps


def _golden():
  g = load_golden("model.npz")
  state_dict = {k.removeprefix("param/"): v for k, v in g.items() if k.startswith("param/")}
  sizes = {k.removeprefix("config/"): int(g[k]) for k in g
           if k.startswith("config/") and k != "config/dropout"}
  return convert.torch_state_dict_to_params(state_dict), sizes


def _model(variant: str, sizes: dict[str, int], init: str | None = None):
  config = configs.get_config("sst2", variant)
  config.model.init = init or config.model.init
  config.model.update(d_model=sizes["d_model"], num_heads=sizes["num_heads"],
                      num_layers=sizes["num_layers"], d_ff=sizes["d_ff"],
                      vmask_hidden_dim=sizes["mask_hidden_dim"])
  model = steps.build_model(config.model, vocab_size=sizes["vocab_size"],
                                num_classes=sizes["num_classes"])
  ids = jnp.ones((1, sizes["max_seq_length"]), jnp.int32)
  return model.init(jax.random.key(3), ids)["params"]


def _flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v, np.float64)
          for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _torch_rule_violations(params) -> list[str]:
  """Every way ``params`` departs from PyTorch's default initialisation."""
  flat, bad = _flat(params), []
  for name, x in flat.items():
    if "norm" in name:
      want = 1.0 if name.endswith("['scale']") else 0.0
      if not np.all(x == want):
        bad.append(f"{name}: LayerNorm not {want}")
    elif "embedding" in name:
      if not (0.85 < x.std() < 1.15 and abs(x.mean()) < 0.2):
        bad.append(f"{name}: std {x.std():.3f}, not N(0, 1)")
    else:  # a Dense kernel [in, out] or its bias: U(±1/sqrt(in))
      kernel = flat[name.replace("['bias']", "['kernel']")]
      bound = 1.0 / np.sqrt(kernel.shape[0])
      top = np.abs(x).max()
      if top > bound * (1 + 1e-6):
        bad.append(f"{name}: |x| up to {top:.4f} > bound {bound:.4f}")
      # Enough draws to see the bound approached and a uniform's spread
      # (failure chance for a true uniform < 1e-2 per array).
      elif x.size >= 16 and not (top > 0.75 * bound
                                 and 0.7 < x.std() / (bound / np.sqrt(3)) < 1.3):
        bad.append(f"{name}: max {top:.4f}, std {x.std():.4f}; not U(±{bound:.4f})")
  return bad


def test_golden_pytorch_parameters_follow_the_rule():
  golden, _ = _golden()
  assert _torch_rule_violations(golden) == []


def test_reference_variant_initialises_like_pytorch():
  golden, sizes = _golden()
  ours = _model("reference", sizes)
  assert {k: v.shape for k, v in _flat(ours).items()} == \
      {k: v.shape for k, v in _flat(golden).items()}
  assert _torch_rule_violations(ours) == []


def test_flax_initialisation_breaks_the_rule():
  # The default is Flax's: zero biases and a small embedding, which the rule
  # must catch (so the test above can fail).
  _, sizes = _golden()
  bad = _torch_rule_violations(_model("safr", sizes))
  assert any("embedding" in b for b in bad)
  assert any("['bias']" in b for b in bad)


@pytest.mark.parametrize("mode, torch_part", [("torch_embedding", "embedding"),
                                              ("torch_dense", "dense")])
def test_split_modes_take_pytorchs_initialisation_for_one_part_only(mode, torch_part):
  # The rule holds exactly on the PyTorch part, and every other Dense/embedding
  # parameter breaks it (Flax's draws); LayerNorm is 1/0 in both.
  _, sizes = _golden()
  bad = _torch_rule_violations(_model("reference", sizes, init=mode))
  embedding_bad = [b for b in bad if "embedding" in b]
  dense_bad = [b for b in bad if "embedding" not in b and "norm" not in b]
  assert not any("norm" in b for b in bad)
  if torch_part == "embedding":
    assert embedding_bad == [] and dense_bad
  else:
    assert dense_bad == [] and embedding_bad


def test_torch_init_is_selectable_on_any_variant():
  _, sizes = _golden()
  config = configs.get_config("sst2", "safr")
  config.model.init = "torch"
  configs.validate_config(config)
  assert configs.get_config("sst2", "reference,baseline").model.init == "torch"
  config.model.init = "jax"
  try:
    configs.validate_config(config)
  except errors.ConfigError as e:
    assert "model.init" in str(e)
  else:
    raise AssertionError("model.init='jax' was accepted")
