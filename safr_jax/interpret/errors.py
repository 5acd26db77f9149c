"""explain/evaluate/compare's error: ``safr_jax.errors.InterpretError``."""

from safr_jax.errors import InterpretError

__all__ = ["InterpretError"]
