"""The data layer's error: ``safr_jax.errors.DataError`` (one family, see there)."""

from __future__ import annotations

from safr_jax.errors import DataError

__all__ = ["DataError"]
