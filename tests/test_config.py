"""Typed run configuration: presets, YAML files, --set overrides, validation."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from musicaffect.config import (
    RunConfig,
    config_from_dict,
    load_config,
    parse_override,
    preset_names,
    save_config,
)
from musicaffect.data.loading import EpochBatchSampler
from musicaffect.data.vocab import resolve_targets
from musicaffect.errors import ConfigError
from musicaffect.training.engine import lr_factor


def test_defaults_validate():
    cfg = RunConfig().validate()
    assert cfg.data.tasks == ["genre"] and cfg.train.monitor == "val_loss"


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads(name):
    cfg = load_config(name)
    assert cfg.name == name
    from musicaffect.families.registry import families
    from musicaffect.models import available_models

    assert cfg.model.name in (*available_models(), *(f.name for f in families()))
    if cfg.model.name == "classical":
        from musicaffect.models.classical import classical_params
        classical_params(cfg.model.params)
    elif cfg.model.name == "ensemble":
        from musicaffect.families.ensemble import ensemble_params
        for member in ensemble_params(cfg.model.params).members:
            assert load_config(member).data.dataset == cfg.data.dataset


def test_report_presets_exist():
    names = set(preset_names())
    assert {"lstm-full-mel", "lstm-beat-mel", "lstm-beat-chroma", "lstm-beat-fused",
            "cnn-full-mel", "multitask-cnn", "transfer-cnn"} <= names


def test_base_inheritance():
    cfg = load_config("lstm-beat-chroma")
    assert (cfg.data.rate, cfg.data.view) == ("beat", "chroma")
    assert cfg.model.params["hidden_size"] == 64  # inherited from lstm-full-mel


def test_overrides_typed():
    cfg = load_config("cnn-full-mel", ["train.lr=3e-4", "train.epochs=2",
                                       "model.params.channels=[8, 16, 16, 16]",
                                       "data.tasks=genre", "train.grad_clip=null"])
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 2
    assert cfg.model.params["channels"] == [8, 16, 16, 16]
    assert cfg.train.grad_clip is None


def test_int_promoted_to_float():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize("override, match", [
    ("train.lrr=0.1", "unknown config key 'train.lrr'"),
    ("train.epochs=two", "train.epochs must be an integer"),
    ("train.epochs=2.5", "train.epochs must be an integer"),
    ("data.normalize=maybe", "data.normalize must be true or false"),
    ("data.view=spectro", "data.view='spectro' is not valid"),
    ("nonsense=1", "unknown config key 'nonsense'"),
    ("train.lr", "must look like key=value"),
])
def test_bad_overrides(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("cnn-full-mel", [override])


def test_task_dataset_consistency():
    with pytest.raises(ConfigError, match="genre folders only have genre labels"):
        load_config(None, ["data.tasks=[valence]"])
    with pytest.raises(ConfigError, match="no genre labels"):
        load_config(None, ["data.dataset=multitask"])
    with pytest.raises(ConfigError, match="needs the genre task"):
        load_config("affect-cnn-full-fused", ["train.monitor=val_macro_f1"])


def test_unknown_preset_and_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("train:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match="unknown config key 'train.momentum'"):
        load_config(bad)


def test_yaml_round_trip(tmp_path):
    cfg = load_config("multitask-cnn", ["seed=7"])
    save_config(cfg, tmp_path / "c.yaml")
    again = config_from_dict(yaml.safe_load((tmp_path / "c.yaml").read_text()))
    assert again == cfg
    assert again.loss.weights == {"valence": 0.4, "energy": 0.2, "danceability": 0.2}


def test_parse_override_nested():
    assert parse_override("a.b.c=3") == {"a": {"b": {"c": 3}}}


@pytest.mark.parametrize("override, key", [("train.lr=0", "train.lr"),
                                           ("train.lr=-1e-3", "train.lr"),
                                           ("data.chunk_frames=0", "data.chunk_frames"),
                                           ("train.batch_size=0", "train.batch_size")])
def test_learning_rate_and_chunk_frames_have_one_range_check(override, key):
    """One rule each (config.NUMERIC_RULES), one message naming the key and the range."""
    with pytest.raises(ConfigError, match=rf"^{key}=.* is out of range: it must be"):
        load_config(None, [override])


def test_resolve_targets():
    assert resolve_targets("energy") == ["energy"]
    assert resolve_targets(3) == ["danceability"]
    assert resolve_targets("1,3") == ["valence", "danceability"]
    assert resolve_targets("all") == ["valence", "energy", "danceability"]
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_targets(4)
    with pytest.raises(ConfigError, match="unknown regression target"):
        resolve_targets("arousal")


def test_sampler_is_function_of_seed_and_epoch():
    s = EpochBatchSampler(np.arange(20), batch_size=6, seed=3)
    s.set_epoch(2)
    a = list(s)
    s.set_epoch(0)
    s.set_epoch(2)
    assert list(s) == a
    s.set_epoch(3)
    assert list(s) != a
    assert sorted(i for b in a for i in b) == list(range(20))


def test_sampler_ddp_shards_equal_single_process_batches():
    single = EpochBatchSampler(np.arange(24), batch_size=8, seed=1)
    shards = [EpochBatchSampler(np.arange(24), batch_size=4, seed=1, rank=r, world=2)
              for r in range(2)]
    for s in (single, *shards):
        s.set_epoch(5)
    for b, b0, b1 in zip(single, *shards):
        assert sorted(b) == sorted(b0 + b1)
        assert len(b0) == len(b1) == 4


def test_lr_factor():
    assert lr_factor(3, epochs=10, schedule="none") == 1.0
    assert lr_factor(0, epochs=10, schedule="cosine") == pytest.approx(1.0)
    assert lr_factor(9, epochs=10, schedule="cosine") < 0.1


def test_targets_by_lab_column_index():
    cfg = load_config("affect-cnn-full-fused", ["data.tasks=[2, 3]"])
    assert cfg.data.tasks == ["energy", "danceability"]
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("affect-cnn-full-fused", ["data.tasks=[4]"])
    # other names are the data root's own targets, checked against its labels.json later
    assert load_config("affect-cnn-full-fused", ["data.tasks=[Arousal]"]).data.tasks == \
        ["arousal"]
    with pytest.raises(ConfigError, match="cannot name a regression target"):
        load_config("affect-cnn-full-fused", ["data.tasks=[embedding]"])
