"""Every data source, found by name: one module each, one ``REGISTRY`` line each
(docs/CONTRIBUTING.md, "Inside data/")."""

from __future__ import annotations

from safr_jax.data.core import Source
from safr_jax.data.sources import aclimdb, builtin, files, planted, sst_treebank, tfds
from safr_jax.errors import DataError

REGISTRY: dict[str, Source] = {s.name: s for s in (
    sst_treebank.SOURCE,  # the paper's SST-2
    aclimdb.SOURCE,       # the paper's IMDB
    *tfds.SOURCES,        # glue/sst2, imdb_reviews
    *builtin.SOURCES,     # rt_polarity, imdb_builtin
    files.SOURCE,
    planted.SOURCE,
)}


def get(name: str, field: str = "config.data.source") -> Source:
  """The source called ``name``; a DataError naming ``field`` otherwise."""
  if name not in REGISTRY:
    raise DataError(f"unknown {field} {name!r}; one of {('auto', *REGISTRY)}")
  return REGISTRY[name]


def benchmarks() -> tuple[str, ...]:
  """The sources ``auto`` can mean: downloadable, with an offline stand-in."""
  return tuple(n for n, s in REGISTRY.items() if s.acquire and s.stand_in)


def prepare_text(text: str, source: str | None) -> str:
  """``text`` tokenised as ``source``'s training texts are (as is for an unknown source).

  >>> prepare_text("not bad at all, a moving film", "sst_treebank")
  'not bad at all , a moving film'
  """
  return REGISTRY[source].prepare_text(text) if source in REGISTRY else text
