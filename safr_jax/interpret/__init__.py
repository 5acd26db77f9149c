"""Interpretability tools for trained SAFR runs: pictures, metrics, comparisons.

Command-line tools (thin mains in ``safr_jax.explain``, ``.evaluate``,
``.compare``) call one function each:

* ``explain_files.explain_run``: token importance, attention pairs and neuron
  allocation per example (optionally beside a second run) → PNGs + one HTML
  page linking them (``--self_contained`` inlines them).
* ``interpretability.evaluate_run``: every metric → ``interpretability.json``.
* ``comparison.compare_runs``: runs grouped by config → Markdown + plot.

Each entry computes a typed result first (``explanations.explain`` →
``ExplanationSet``, ``interpretability.measure`` → ``InterpretabilityReport``)
and writes it with separate functions.

The metrics, one concept per module (formulas in each docstring and in
docs/METRICS.md): ``superposition`` (sharing, feature dimensionality),
``neurons`` (active FFN neuron sets, Jaccard overlap, picture order),
``attention`` (attention received, pair strength), ``token_stats`` (those
pooled over an evaluation subset, by token group), ``attribution`` (token
importance from VMASK, attention, gradient × input, occlusion, random),
``faithfulness`` (comprehensiveness, sufficiency, AOPC), ``planted_recovery``
(agreement with the known answers of the ``planted`` data). ``forward`` runs
the trained model's own code at fixed shapes (``forward.collect``: the one
forward pass of explain and evaluate); ``inputs`` rebuilds a run's split or
encodes text; ``plots`` and ``html`` draw.

The paper's own SRS score is not available, so it is not computed; every
number here is defined by us.
"""

from safr_jax.errors import InterpretError

__all__ = ["InterpretError"]
