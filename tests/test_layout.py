"""docs/CONTRIBUTING.md's layout tables say what each module imports from
safr_jax (and, inside ``data/``, from safr_jax.data): it must be what the code
imports, and only modules listed above it (so no cycle, no upward import)."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "safr_jax"


def _layout_rows(heading: str = "## Layout", end: str = "\n#"
                 ) -> list[tuple[list[str], str]]:
  """(modules of the row, its imports cell) for each row of the table."""
  text = (ROOT / "docs" / "CONTRIBUTING.md").read_text(encoding="utf-8")
  section = text[text.index(heading):]
  section = section[:section.index(end, 1)] if end in section[1:] else section
  rows = []
  for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 3 or not cells[0].startswith("`"):
      continue
    rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[2]))
  assert rows, "docs/CONTRIBUTING.md has no layout table"
  return rows


def _unit(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> str:
  """A file's unit in the table: `x.py` for top-level modules, `pkg/` for
  subpackages."""
  rel = path.relative_to(package)
  return f"{rel.parts[0]}/" if len(rel.parts) > 1 else rel.name


def _is_main_guard(node: ast.AST) -> bool:
  return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
          and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: pathlib.Path, package: str = "safr_jax") -> set[str]:
  """The safr_jax units a file imports, anywhere in it (also in functions),
  except under ``if __name__ == "__main__":`` (run as a script, a module is no
  layer of the package)."""
  tree = ast.parse(path.read_text(encoding="utf-8"))
  tree.body = [n for n in tree.body if not _is_main_guard(n)]
  found = set()
  root = ROOT.joinpath(*package.split("."))
  depth = package.count(".") + 1
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == package:
        names = [a.name for a in node.names]
      elif node.module.startswith(package + "."):
        names = [node.module.split(".")[depth]]
    elif isinstance(node, ast.Import):
      names = [a.name.split(".")[depth] for a in node.names
               if a.name.startswith(package + ".")]
    for name in names:
      found.add(f"{name}/" if (root / name).is_dir() else f"{name}.py")
  return found


def _actual(package: str = "safr_jax") -> dict[str, set[str]]:
  root = ROOT.joinpath(*package.split("."))
  out: dict[str, set[str]] = {}
  for path in root.rglob("*.py"):
    if path.name == "__init__.py" and path.parent == root:
      continue  # the package's front door re-exports; not a layer
    unit = _unit(path, root)
    out.setdefault(unit, set()).update(_imports(path, package) - {unit})
  return out


@pytest.mark.parametrize("package, heading", [
    ("safr_jax", "## Layout"), ("safr_jax.data", "### Inside `data/`")])
def test_layout_table_lists_every_module_and_its_real_imports(package, heading):
  actual = _actual(package)
  rows = _layout_rows(heading)
  listed = [m for modules, _ in rows for m in modules]
  assert sorted(listed) == sorted(actual), "docs/CONTRIBUTING.md layout table vs safr_jax/"
  seen: list[str] = []
  for modules, cell in rows:
    real = set().union(*(actual[m] for m in modules)) - set(modules)
    if cell == "all of the above":
      assert real <= set(seen), (modules, sorted(real - set(seen)))
    else:
      claimed = set() if cell == "—" else {
          name if name.endswith("/") else f"{name}.py"
          for name in (n.strip() for n in cell.split(","))}
      assert claimed == real, (modules, "docs/CONTRIBUTING.md says", sorted(claimed), "code", sorted(real))
      assert real <= set(seen), (modules, "imports a module listed after it",
                                 sorted(real - set(seen)))
    seen += modules
