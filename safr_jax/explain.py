"""Explain a trained run's predictions: PNG pictures and one HTML page.

    python -m safr_jax.explain --workdir=RUN                       # first 20 test examples
    python -m safr_jax.explain --workdir=RUN --split=dev --num=50
    python -m safr_jax.explain --workdir=RUN --text="not bad at all" --text="dull"

Writes RUN/explanations/index.html (self-contained), example_NNN.png and
explanations.json (or --out=DIR). Flags: ``safr_jax.cli.explain_main``.
"""

from safr_jax import cli

if __name__ == "__main__":
  cli.explain_main()
