"""safr-jax: SAFR (Chang, Deng & Chen, NAACL 2025 Findings) in JAX/Flax.

The regularizers are pure functions of arrays in ``safr_jax.losses`` (no Flax
needed); the model, VMASK and weight conversion need Flax. Every name here is
loaded on first use, so ``import safr_jax`` imports nothing heavy: a command
(``python -m safr_jax.evaluate``) can install its signal handling before JAX
takes its seconds to import.
"""

import typing as _typing

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "losses",
    "LossWeights",
    "importance_loss",
    "interaction_loss",
    "vmask_kl_loss",
    "safr_loss",
    "SafrClassifier",
    "Intermediates",
    "VMask",
    "convert",
]

# Loaded on first use: `import safr_jax.losses` works with only jax + numpy
# installed (see pyproject's core dependencies), and `import safr_jax` is instant.
_LAZY = {
    "losses": ("safr_jax.losses", None),
    "LossWeights": ("safr_jax.losses", "LossWeights"),
    "importance_loss": ("safr_jax.losses", "importance_loss"),
    "interaction_loss": ("safr_jax.losses", "interaction_loss"),
    "vmask_kl_loss": ("safr_jax.losses", "vmask_kl_loss"),
    "safr_loss": ("safr_jax.losses", "safr_loss"),
    "SafrClassifier": ("safr_jax.model", "SafrClassifier"),
    "Intermediates": ("safr_jax.model", "Intermediates"),
    "VMask": ("safr_jax.vmask", "VMask"),
    "convert": ("safr_jax.convert", None),
}


def __getattr__(name: str) -> _typing.Any:
  if name in _LAZY:
    import importlib
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)
  raise AttributeError(f"module 'safr_jax' has no attribute {name!r}")
