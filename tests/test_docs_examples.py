"""The ```python examples in docs/API.md and README.md run as written.

Each fenced ```python block is a complete program: it runs in a fresh module
namespace, in a scratch working directory (so files it writes land there).
A block whose first line is ``# doctest: skip <reason>`` is reported as skipped;
use that only for a block that needs files nobody has (none does today).
Blocks in other languages (```bash, ```text) and indented code are not run.
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
import re
import sys
import textwrap
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
API_MD = REPO / "docs" / "API.md"
README_MD = REPO / "README.md"  # optional: zero blocks if absent

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
_FENCE_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_SKIP = re.compile(r"^#\s*doctest:\s*skip\b(?P<reason>.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
  path: pathlib.Path
  line: int  # 1-based line of the opening fence
  source: str

  @property
  def id(self) -> str:
    return f"{self.path.relative_to(REPO)}:{self.line}"


def python_blocks(path: pathlib.Path) -> list[Block]:
  """Every ```python fenced block of a markdown file, dedented."""
  if not path.exists():
    return []
  blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
  i = 0
  while i < len(lines):
    match = _FENCE_OPEN.match(lines[i])
    if not match:
      i += 1
      continue
    start, body = i, []
    i += 1
    while i < len(lines) and not _FENCE_CLOSE.match(lines[i]):
      body.append(lines[i])
      i += 1
    if i == len(lines):
      raise ValueError(f"{path}:{start + 1}: unclosed ```python block")
    source = textwrap.dedent("\n".join(body)) + "\n"
    blocks.append(Block(path, start + 1, source))
    i += 1
  return blocks


API_BLOCKS = python_blocks(API_MD)
README_BLOCKS = python_blocks(README_MD)
ALL_BLOCKS = API_BLOCKS + README_BLOCKS


def test_api_md_has_examples():
  assert API_MD.exists(), "docs/API.md is missing"
  assert len(API_BLOCKS) >= 3, (
      f"docs/API.md should hold runnable ```python examples, found "
      f"{len(API_BLOCKS)}")


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_example_runs(block: Block, tmp_path, monkeypatch):
  first = block.source.lstrip().splitlines()[0] if block.source.strip() else ""
  skip = _SKIP.match(first)
  if skip:
    pytest.skip(f"{block.id}: {skip.group('reason').strip() or 'marked skip'}")
  monkeypatch.chdir(tmp_path)
  # A real module (registered in sys.modules), as a script would have: Flax's
  # dataclass transform looks the defining module up by name.
  name = "docs_example_" + re.sub(r"\W", "_", block.id)
  module = types.ModuleType(name)
  module.__file__ = str(block.path)
  sys.modules[name] = module
  try:
    code = compile(block.source, f"{block.path}:{block.line}", "exec")
    exec(code, module.__dict__)  # pylint: disable=exec-used
  finally:
    del sys.modules[name]


# --- docs/API.md names every public name ---------------------------------------


def _public_names() -> list[str]:
  import safr_jax
  from safr_jax import convert, losses, model, vmask
  names = set(safr_jax.__all__)
  for module in (losses, model, vmask, convert):
    names.update(module.__all__)
    for name in module.__all__:
      obj = getattr(module, name)
      if inspect.isfunction(obj):  # every parameter is documented
        names.update(inspect.signature(obj).parameters)
  names.update(f.name for f in dataclasses.fields(losses.LossWeights))
  names.update(model.Intermediates._fields)
  names.update(vmask.VMaskOutput._fields)
  for cls in (model.SafrClassifier, vmask.VMask):
    names.update(f.name for f in dataclasses.fields(cls)
                 if f.name not in ("parent", "name"))
  return sorted(names)


def test_api_md_names_every_public_name():
  text = API_MD.read_text(encoding="utf-8")
  missing = [n for n in _public_names()
             if not re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text)]
  assert not missing, f"docs/API.md does not mention: {missing}"
