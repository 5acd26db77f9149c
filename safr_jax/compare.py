"""Compare runs: a Markdown table (mean ± std over seeds) and a plot.

    python -m safr_jax.compare runs/sst2_baseline* runs/sst2_safr* --out=comparison

Writes comparison.md and comparison.png to --out. Run ``safr_jax.evaluate`` on
each run first for the interpretability metrics. Flags: ``safr_jax.cli.compare_main``.
"""

from safr_jax import startup

if __name__ == "__main__":
  startup.install(startup.COMMAND_MESSAGE)  # before JAX's seconds of importing
  from safr_jax import cli  # pylint: disable=g-import-not-at-top
  cli.compare_main()
