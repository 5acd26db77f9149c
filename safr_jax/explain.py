"""Explain a trained run's predictions: PNG pictures and one HTML page.

    python -m safr_jax.explain --workdir=RUN                       # 20 test examples
    python -m safr_jax.explain --workdir=RUN --split=dev --num=50 --seed=1
    python -m safr_jax.explain --workdir=RUN --text="not bad at all, a moving film"
    python -m safr_jax.explain --workdir=SAFR_RUN --compare_to=BASELINE_RUN

The examples of --split are a seeded sample with each class in its share (all
of it when --num is larger). Per example, every token-importance method
(VMASK, gradient × input, leave-one-out, attention) with its comprehensiveness
and sufficiency, the neuron-allocation picture and the attention picture with
the strongest pairs; with --compare_to the same examples through a second
run's model (same vocabulary, labels and text options), side by side, with
how far the two runs' top tokens agree.

Writes RUN/explanations/index.html, example_NNN.png and
example_NNN_attention.png beside it (linked from the page; --self_contained
inlines them instead), explanations.json (one line per example) and
explanations.npz (the activations and pair strengths behind the pictures), or
--out=DIR (with --compare_to: RUN/explanations_vs_OTHER; with --text a folder
of its own, RUN/explanations_text-HASH, never the sample's page). Flags:
``safr_jax.cli.explain_main``.
"""

from safr_jax import startup

if __name__ == "__main__":
  startup.install(startup.COMMAND_MESSAGE)  # before JAX's seconds of importing
  from safr_jax import cli  # pylint: disable=g-import-not-at-top
  cli.explain_main()
