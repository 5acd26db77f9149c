"""Configs: each default set once, one list of loss terms, values refused
before anything is written."""

import dataclasses
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from safr_jax import configs, data, errors, losses, steps, train_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*argv, timeout=120):
  return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)


# --- each default is set once ----------------------------------------------------


def test_dataset_configs_change_only_what_differs_from_the_data_defaults():
  """A field's default lives in one place: a dataset config differs from
  ``data.default_config()`` only in its own entry of ``configs.DATASETS``."""
  defaults = data.default_config().to_dict()
  for name, own in configs.DATASETS.items():
    c = configs.get_config(name).data.to_dict()
    differ = {k for k in defaults if c[k] != defaults[k]}
    assert differ == {k for k in own if own[k] != defaults[k]}, name


def test_reference_sets_the_authors_padding_and_batching_back():
  safr = configs.get_config("sst2")
  ref = configs.get_config("sst2", "reference")
  assert (safr.data.pad_to, safr.data.batching) == (
      data.default_config().pad_to, data.default_config().batching) == ("batch", "bucketed")
  assert (ref.data.pad_to, ref.data.batching) == ("max_len", "random")
  assert (ref.model.pool, ref.loss.count_padding) == ("all", True)


# --- one list of loss terms ------------------------------------------------------


def _insides(batch=2, length=5, embed=4, heads=2, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return {"masked_embeddings": jax.random.normal(keys[0], (batch, length, embed)),
          "attention": [jax.nn.softmax(jax.random.normal(keys[1], (batch, heads, length, length)))],
          "vmask_logits": jax.random.normal(keys[2], (batch, length, 2))}


@pytest.fixture
def toy_term(monkeypatch):
  """A new regularizer added the documented way: one function, one field."""
  def toy(*, intermediates, token_mask, query_block_size):
    del token_mask, query_block_size
    return jnp.mean(intermediates["masked_embeddings"] ** 2)

  @dataclasses.dataclass(frozen=True)
  class Weights(losses.LossWeights):
    toy: float = 0.0

  monkeypatch.setattr(losses, "REGULARIZERS", {**losses.REGULARIZERS, "toy": toy})
  monkeypatch.setattr(losses, "LossWeights", Weights)
  return toy


def test_a_new_regularizer_is_one_function_and_one_field(toy_term):
  insides = _insides()
  logits, labels = jnp.zeros((2, 2)), jnp.array([0, 1])
  base, base_terms = losses.safr_loss(logits=logits, labels=labels, intermediates=insides,
                                      token_mask=None, weights=losses.LossWeights())
  assert set(base_terms) == set(losses.term_names()) == {
      "ce", "importance", "interaction", "vmask_kl", "scale_invariant_importance", "toy"}
  toy = float(toy_term(intermediates=insides, token_mask=None, query_block_size=None))
  assert float(base_terms["toy"]) == pytest.approx(toy)
  # Weight 0 reports the term but leaves it out of the total; 0.5 adds half.
  c = configs.get_config("sst2")
  c.loss.toy = 0.5
  weights = steps.loss_weights(c)
  assert weights.toy == 0.5
  total, _ = losses.safr_loss(logits=logits, labels=labels, intermediates=insides,
                              token_mask=None, weights=weights)
  assert float(total) == pytest.approx(float(base) + 0.5 * toy, rel=1e-6)
  # Validation knows the new λ: missing, negative or infinite is refused.
  c.loss.toy = -1.0
  with pytest.raises(errors.ConfigError, match=r"config.loss.toy \(a λ\) must be"):
    configs.validate_config(c)
  del c.loss["toy"]
  with pytest.raises(errors.ConfigError, match=r"config.loss.toy is missing"):
    configs.validate_config(c)


def test_divergence_names_a_new_term(toy_term):
  del toy_term
  sums = {f"{k}_sum": 1.0 for k in losses.term_names()}
  sums.update(toy_sum=float("nan"), grad_norm_sum=1.0, nonfinite_sum=1.0)
  with pytest.raises(errors.TrainingDiverged, match=r"at step 7: non-finite toy;"):
    train_lib._check_finite(7, sums)  # pylint: disable=protected-access


def test_regularizers_and_weights_must_agree(monkeypatch):
  monkeypatch.setattr(losses, "REGULARIZERS", {k: v for k, v in losses.REGULARIZERS.items()
                                               if k != "vmask_kl"})
  with pytest.raises(ValueError, match="must name the same terms"):
    losses.safr_loss(logits=jnp.zeros((2, 2)), labels=jnp.array([0, 1]),
                     intermediates=_insides(), token_mask=None)


def test_terms_without_vmask_report_a_zero_bottleneck():
  insides = dict(_insides(), vmask_logits=None)
  _, terms = losses.safr_loss(logits=jnp.zeros((2, 2)), labels=jnp.array([0, 1]),
                              intermediates=insides, token_mask=None)
  assert float(terms["vmask_kl"]) == 0.0
  assert np.isfinite(float(terms["importance"])) and float(terms["importance"]) > 0


# --- refused before anything is written --------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("train.log_every_steps", 0, r"config.train.log_every_steps must be >= 1, got 0"),
    ("train.checkpoint_every_steps", -1, r"config.train.checkpoint_every_steps must be >= 0"),
    ("loss.interaction", float("inf"), r"config.loss.interaction \(a λ\) must be a number "
                                       r">= 0, got inf"),
    ("loss.importance", float("nan"), r"config.loss.importance \(a λ\) must be a number"),
    ("train.learning_rate", float("inf"), r"config.train.learning_rate must be finite"),
    ("data.max_len", 100_000, r"config.data.max_len=100000 needs [\d,.]+ GiB for one "
                              r"layer's attention weights .* more than this device's"),
])
def test_impossible_values_are_config_errors(field, value, message):
  c = configs.get_config("sst2")
  section, name = field.split(".")
  c[section][name] = value
  with pytest.raises(errors.ConfigError, match=message):
    configs.validate_config(c)


def test_memory_estimate_is_the_attention_array():
  c = configs.get_config("sst2")
  # [max(32, 128), 8, 128, 128] float32.
  assert configs.attention_bytes(c) == 128 * 8 * 128 * 128 * 4
  assert configs.attention_bytes(c, devices=8) == 16 * 8 * 128 * 128 * 4
  configs.validate_config(c)  # the real configs fit


@pytest.mark.parametrize("argv, message", [
    (["--config.train.log_every_steps=0"], "config.train.log_every_steps must be >= 1"),
    (["--config.data.max_len=100000"], "config.data.max_len=100000 needs"),
])
def test_train_py_refuses_before_writing(tmp_path, argv, message):
  workdir = tmp_path / "w"
  proc = _run("train.py", "--config=configs/sst2.py:quick", f"--workdir={workdir}",
              "--config.data.source=rt_polarity", *argv)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr and "Traceback" not in proc.stderr
  assert not workdir.exists() or not any(workdir.iterdir())


def test_printing_a_config_with_a_bad_variant_is_one_line():
  proc = _run("-m", "safr_jax.configs", "configs/sst2.py:nope")
  assert proc.returncode == 2
  assert "unknown variant 'nope'" in proc.stderr and "Traceback" not in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1
  ok = _run("-m", "safr_jax.configs", "configs/sst2.py:reference")
  assert ok.returncode == 0 and "pad_to: max_len" in ok.stdout
