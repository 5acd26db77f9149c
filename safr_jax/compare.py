"""Compare runs: a Markdown table (mean ± std over seeds) and a plot.

    python -m safr_jax.compare runs/sst2_baseline* runs/sst2_safr* --out=comparison

Writes comparison.md and comparison.png to --out. Run ``safr_jax.evaluate`` on
each run first for the interpretability metrics. Flags: ``safr_jax.cli.compare_main``.
"""

from safr_jax import cli

if __name__ == "__main__":
  cli.compare_main()
