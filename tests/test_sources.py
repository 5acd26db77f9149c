"""A source is one module plus one registry line; runs written with the old
``config.data`` layout (commit 392c60c) still load, evaluate and resume."""

import json
import pathlib
import shutil
import sys
import types

import ml_collections
import numpy as np
import pytest

from safr_jax import configs, data, migration, runs, train_lib
from safr_jax.data import config as config_lib
from safr_jax.data import core, sources
from safr_jax.interpret import interpretability

FIXTURES = pathlib.Path(__file__).resolve().parent / "data"
OLD_RUN = FIXTURES / "run_392c60c"

TOY_MODULE = '''
import ml_collections
import numpy as np
from safr_jax.data.core import SPLITS, RawSplit, Source

def options():
  c = ml_collections.ConfigDict()
  c.size = 48
  return c

def load(cfg, path):
  out = {}
  for k, name in enumerate(SPLITS):
    n = cfg.toy.size
    labels = (np.arange(n) + k) % 2
    texts = [("up up" if y else "down down") + f" w{i % 5}" for i, y in enumerate(labels)]
    out[name] = RawSplit(texts, labels.astype(np.int32), np.arange(n))
  return out, {"toy_size": n}

SOURCE = Source("toy", "a toy source: the first word is the label", load,
                labels=("down", "up"), options=options, prepare_text=str.lower)
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
  """The toy source, registered as one more module would be: its module,
  and its line in sources.REGISTRY."""
  (tmp_path / "toy_source.py").write_text(TOY_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  import toy_source  # pylint: disable=import-outside-toplevel,import-error
  monkeypatch.setitem(sources.REGISTRY, "toy", toy_source.SOURCE)  # the one line
  yield toy_source
  sys.modules.pop("toy_source", None)


def test_a_toy_source_is_one_module_and_one_registry_line(toy, tmp_path):
  cfg = data.default_config()
  assert cfg.toy.size == 48  # its options group comes from the registry
  cfg.update(source="toy", max_len=8)
  cfg.toy.size = 40
  bundle = data.load_dataset(cfg)
  assert bundle.source == "toy" and bundle.label_names == ["down", "up"]
  assert bundle.info["sizes"] == {"train": 40, "dev": 40, "test": 40}
  assert bundle.info["toy_size"] == 40
  assert data.prepare_text("UP Down", "toy") == "up down"
  config = configs.get_config("sst2", "quick")
  config.data.update(source="toy", max_examples=None)
  config.train.update(num_epochs=2, progress_bar=False, compilation_cache_dir="")
  results = train_lib.train_and_evaluate(config, tmp_path / "run")
  assert results["source"] == "toy" and results["dataset"]["toy_size"] == 48
  assert results["test"]["accuracy"] > 0.75  # the label is the first word


def test_config_data_has_at_most_15_fields_and_each_source_its_group():
  cfg = data.default_config()
  assert len(cfg) <= 15, sorted(cfg)
  for name in ("planted", "files", "sst_treebank", "aclimdb", "tfds", "vocab", "download"):
    assert isinstance(cfg[name], ml_collections.ConfigDict), name


@pytest.mark.parametrize("name", ["sst2_safr", "imdb_baseline", "planted_quick"])
def test_configs_written_by_392c60c_upgrade_to_todays(name):
  old = json.loads((FIXTURES / f"config_{name}_392c60c.json").read_text())
  dataset, variant = name.split("_", 1)
  today = json.loads(configs.get_config(dataset, variant).to_json_best_effort())
  assert config_lib.complete(migration.upgrade(old)["data"]).to_dict() == today["data"]


def test_an_old_config_missing_fields_takes_the_values_it_had():
  old = json.loads((FIXTURES / "config_sst2_safr_392c60c.json").read_text())["data"]
  for field in ("batching", "bucket_window", "cache_dir", "auto_tfds", "planted_seed"):
    del old[field]
  new = config_lib.complete(migration.upgrade({"data": old})["data"]).to_dict()
  assert new["batching"] == "random"  # before the field existed
  assert new["bucket_window"] == 100 and new["planted"]["seed"] == 0
  assert new["benchmark"] == "sst_treebank"
  with pytest.raises(data.DataError, match=r"unknown config.data field 'sst_dir' "
                     r"\(now config.data.sst_treebank.dir\)"):
    data.load_dataset({"source": "planted", "sst_dir": "x"})


def test_a_run_written_by_392c60c_loads_evaluates_and_resumes(tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(OLD_RUN, workdir)
  saved = json.loads((workdir / "config.json").read_text())
  assert "planted_seed" in saved["data"]  # really the old layout
  run = runs.load_run(workdir)
  assert run.config.data.planted.seed == 1 and run.config.data.vocab.min_freq == 2
  result = interpretability.evaluate_run(workdir, max_examples=8, random_orders=1)
  assert 0.0 <= result["accuracy"] <= 1.0
  # Resume with today's config holding the same values: no "another run".
  config = configs.get_config("planted", "safr")
  config.data.update(pad_to="max_len")
  config.data.planted.update(train_size=64, dev_size=32, test_size=32, seed=1, max_len=20)
  config.model.update(d_model=16, num_heads=2, d_ff=32, vmask_hidden_dim=16)
  config.train.update(batch_size=16, eval_batch_size=32, num_epochs=2, learning_rate=3e-3,
                      checkpoint_every_steps=0, log_every_steps=4, progress_bar=False,
                      compilation_cache_dir="")
  results = train_lib.train_and_evaluate(config, workdir)
  assert results is not None and results["best_step"] >= 4
  # Another value than the run's is still another run.
  config.data.planted.seed = 2
  with pytest.raises(Exception, match="another run"):
    train_lib.train_and_evaluate(config, workdir)
