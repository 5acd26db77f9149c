"""safr-jax: SAFR (Chang, Deng & Chen, NAACL 2025 Findings) in JAX/Flax.

The regularizers are pure functions of arrays in ``safr_jax.losses`` (no Flax
needed); the model, VMASK and weight conversion need Flax. Submodules that pull
in training dependencies (``data``, ``train_lib``) are imported on demand.
"""

import typing as _typing

from safr_jax import losses
from safr_jax.losses import (LossWeights, importance_loss, interaction_loss,
                             safr_loss, vmask_kl_loss)

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

# Flax-dependent names load lazily so `import safr_jax.losses` works with only
# jax + numpy installed (see pyproject's core dependencies).
_LAZY = {
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
