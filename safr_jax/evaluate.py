"""Measure a trained run's interpretability: RUN/interpretability.json.

    python -m safr_jax.evaluate --workdir=RUN [--split=test] [--max_examples=500]

Accuracy and L_Imp/L_Inter on the whole split; superposition, neuron overlap,
faithfulness (and, on ``planted`` data, agreement with the known answers) on a
seeded subset. Definitions: docs/METRICS.md. Flags: ``safr_jax.cli.evaluate_main``.
"""

from safr_jax import startup

if __name__ == "__main__":
  startup.install(startup.COMMAND_MESSAGE)  # before JAX's seconds of importing
  from safr_jax import cli  # pylint: disable=g-import-not-at-top
  cli.evaluate_main()
