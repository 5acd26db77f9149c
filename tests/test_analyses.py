"""The analysis scripts: experiments/coverage.py (the variance fit, the intervals' coverage
by simulation) and experiments/embedding_drift.py."""

import numpy as np
import pytest

from experiments import coverage

C = {"seed": np.array([0.5, 0.2]), "noise": np.array([4.0, 3.0]), "example": 1.5}


def test_fit_recovers_the_components_it_is_drawn_from():
  rng = np.random.default_rng(0)
  fitted = [coverage.fit(coverage.draw([(30, 3000), (30, 3000)], C, rng)) for _ in range(4)]
  mean = {k: np.mean([f[k] for f in fitted], axis=0) for k in C}
  assert mean["noise"] == pytest.approx(C["noise"], rel=0.02)
  assert mean["seed"] == pytest.approx(C["seed"], rel=0.35)
  assert mean["example"] == pytest.approx(C["example"], rel=0.1)


def test_two_level_interval_covers_where_the_others_miss():
  # Examples dominate the error (three seeds, 200 examples): an interval over seeds
  # alone misses the test-set sampling; the two-level t holds it.
  examples = {"seed": np.array([0.001, 0.001]), "noise": np.array([1.0, 1.0]), "example": 20.0}
  cov = coverage.coverage(examples, [(3, 200), (3, 200)], sims=300)
  assert 0.91 <= cov["two-level t"] <= 0.99
  assert cov["seeds only"] < 0.6
  # Seeds dominate: the bootstrap over three seeds is too narrow, the t is not.
  seeds = {"seed": np.array([1.0, 1.0]), "noise": np.array([1.0, 1.0]), "example": 0.01}
  cov = coverage.coverage(seeds, [(3, 200), (3, 200)], sims=300)
  assert 0.91 <= cov["two-level t"] <= 0.99
  assert cov["bootstrap"] < 0.88


def test_one_arm_contrasts_are_simulated_too():
  one = {"seed": np.array([0.3]), "noise": np.array([2.0]), "example": 0.5}
  cov = coverage.coverage(one, [(4, 100)], sims=200)
  assert 0.9 <= cov["two-level t"] <= 1.0


def test_run_by_example_noise_is_not_counted_twice():
  # Noise dominates (as for 0/1 correctness): the seed terms already hold it, so
  # counting it again in the example term widens the interval (over-covers).
  noisy = {"seed": np.array([0.001, 0.001]), "noise": np.array([1.0, 1.0]), "example": 0.0}
  cov = coverage.coverage(noisy, [(3, 200), (3, 200)], sims=300)
  assert 0.91 <= cov["two-level t"] <= 0.975  # 0.983 when counted twice


def test_embedding_drift_reads_a_runs_initial_draw_and_its_movement(tmp_path):
  # Same tiny planted run under both initialisations: PyTorch's embedding rows have
  # norm ~√d (d = 16), Flax's ~1; Adam moves the larger rows by a smaller share.
  from experiments import embedding_drift  # pylint: disable=g-import-not-at-top
  from safr_jax import configs, train_lib  # pylint: disable=g-import-not-at-top
  rows = {}
  for init in ("torch", "flax"):
    c = configs.get_config("planted", "baseline")
    c.data.update(max_examples=64, pad_to="batch")
    c.model.update(d_model=16, num_heads=2, d_ff=32, init=init)
    c.train.update(batch_size=16, eval_batch_size=32, num_epochs=1, learning_rate=3e-3,
                   checkpoint_every_steps=0, progress_bar=False)
    train_lib.train_and_evaluate(c, tmp_path / init)
    rows[init] = embedding_drift.drift(str(tmp_path / init))
  assert rows["torch"][0] == "torch" and rows["flax"][0] == "flax"
  assert float(rows["torch"][1]) == pytest.approx(4.0, abs=0.3)
  assert float(rows["flax"][1]) == pytest.approx(1.0, abs=0.1)
  assert 0 < float(rows["torch"][2]) < float(rows["flax"][2]) < 1
