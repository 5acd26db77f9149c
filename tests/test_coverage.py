"""experiments/coverage.py: the variance fit and the intervals' coverage by simulation."""

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
