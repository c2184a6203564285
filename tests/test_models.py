"""Models: registry and config validation, output shapes, masking, batch consistency, heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicaffect.errors import ConfigError
from musicaffect.models import MusicModel, available_models, build_model, model_defaults
from musicaffect.models.lstm import reverse_within_length

F = 12  # chroma-sized features keep the tests fast

#: small but complete versions of every registered model
SMALL = {
    "lstm": {"hidden_size": 8, "num_layers": 2},
    "cnn": {"channels": [4, 4, 8, 8], "embed_dim": 16},
    "cnn_res": {"stem_channels": 4, "channels": [4, 8], "time_pools": [2, 2],
                "freq_pools": [2, 2], "freq_dim": 16, "embed_dim": 16},
    "cnn_short": {"stem_channels": 4, "channels": [4, 8, 8], "embed_dim": 16},
    "crnn": {"channels": [4, 8], "time_pools": [2, 1], "freq_pools": [2, 2], "proj_dim": 8,
             "hidden_size": 8, "embed_dim": 16},
    "musicnn": {"pretrained": ""},   # random weights: any feature size (the pretrained ones need 96)
}

TASK_SETS = {
    "genre": {"genre": 10},
    "regression": {"valence": 1},
    "multihead": {"valence": 1, "energy": 1, "danceability": 1},
    "genre+affect": {"genre": 10, "energy": 1},
}

#: (name, extra params) variants covering uni/bidirectional LSTMs and both poolings
VARIANTS = [
    ("lstm", {}),
    ("lstm", {"bidirectional": True}),
    ("lstm", {"bidirectional": True, "pooling": "mean"}),
    ("cnn", {}),
    ("cnn", {"pool_size": 2, "time_pooling": "max", "embed_dim": 0}),
    ("cnn_res", {}),
    ("cnn_short", {}),
    ("cnn_short", {"pool": 3, "time_pooling": "max"}),
    ("crnn", {}),
    ("crnn", {"rnn": "lstm", "bidirectional": False}),
]


def small(name: str, tasks=None, **params) -> MusicModel:
    torch.manual_seed(0)
    return build_model(name, {**SMALL.get(name, {}), **params}, F, tasks or {"genre": 10})


def batch(lengths, *, n_features: int = F, seed: int = 0, pad_value: float = 0.0):
    """Random (B, Tmax, F) batch whose steps beyond each length are ``pad_value``."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths, dtype=torch.long)
    x = torch.randn(len(lengths), int(lengths.max()), n_features, generator=gen)
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = pad_value
    return x, lengths


def test_registry_lists_the_lab_models_and_the_strong_one():
    assert {"lstm", "cnn", "cnn_res"} <= set(available_models())
    assert available_models() == sorted(available_models())
    assert set(SMALL) == set(available_models()), "add new models to SMALL"


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("task_set", sorted(TASK_SETS))
@pytest.mark.parametrize("padded", [False, True])
def test_output_shapes_every_model(name, task_set, padded):
    tasks = TASK_SETS[task_set]
    model = small(name, tasks).eval()
    lengths = [40, 17, 3] if padded else [40, 40, 40]
    x, lengths = batch(lengths)
    with torch.no_grad():
        out = model(x, lengths)
    assert set(out) == {"embedding", *tasks}
    assert out["embedding"].shape == (3, model.embedding_dim)
    for task, size in tasks.items():
        assert out[task].shape == ((3, size) if size > 1 else (3,))
        assert out[task].dtype == torch.float32
        assert torch.isfinite(out[task]).all()


@pytest.mark.parametrize("name,params", VARIANTS)
@pytest.mark.parametrize("padded", [False, True])
def test_output_shapes_variants(name, params, padded):
    model = small(name, TASK_SETS["genre+affect"], **params).eval()
    x, lengths = batch([33, 20] if padded else [33, 33])
    with torch.no_grad():
        out = model(x, lengths)
    assert out["embedding"].shape == (2, model.backbone.out_dim)
    assert out["genre"].shape == (2, 10) and out["energy"].shape == (2,)


def test_lstm_embedding_size_doubles_when_bidirectional():
    assert small("lstm").embedding_dim == 8
    assert small("lstm", bidirectional=True).embedding_dim == 16


@pytest.mark.parametrize("name", sorted(SMALL))
def test_default_configs_build_and_run_on_mel(name):
    model = build_model(name, {}, 128, {"genre": 10}).eval()
    x, lengths = batch([45, 30], n_features=128)
    with torch.no_grad():
        assert model(x, lengths)["genre"].shape == (2, 10)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 1_000_000, f"{name} has {n_params} parameters by default"


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_batch_consistency(pooling, bidirectional, num_layers):
    """A clip alone gives the same output as the same clip inside a padded batch."""
    model = small("lstm", pooling=pooling, bidirectional=bidirectional,
                  num_layers=num_layers).eval()
    x, lengths = batch([25, 9, 1, 16])
    with torch.no_grad():
        together = model(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i:i + 1, :n], lengths[i:i + 1])
            for key in ("embedding", "genre"):
                torch.testing.assert_close(alone[key][0], together[key][i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_export_path_equals_packed_path(pooling, bidirectional):
    backbone = small("lstm", pooling=pooling, bidirectional=bidirectional).backbone.eval()
    x, lengths = batch([21, 13, 2])
    with torch.no_grad():
        packed = backbone.forward_packed(x, lengths)
        padded = backbone.forward_padded(x, lengths)
    torch.testing.assert_close(padded, packed, atol=1e-5, rtol=0)


def test_lstm_last_pooling_is_the_last_valid_step():
    """Unidirectional 'last' pooling equals the LSTM output at step length - 1."""
    backbone = small("lstm", num_layers=1).backbone.eval()
    x, lengths = batch([10, 6])
    with torch.no_grad():
        emb = backbone(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            out, _ = backbone.lstm(x[i:i + 1, :n])
            torch.testing.assert_close(emb[i], out[0, n - 1], atol=1e-6, rtol=0)


def test_reverse_within_length_is_an_involution():
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    lengths = torch.tensor([5, 3])
    rev = reverse_within_length(x, lengths)
    assert rev[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert rev[1, :, 0].tolist() == [7, 6, 5, 8, 9]
    torch.testing.assert_close(reverse_within_length(rev, lengths), x)


@pytest.mark.parametrize("name", ["cnn", "cnn_res", "cnn_short", "crnn"])
@pytest.mark.parametrize("length", [30, 129, 1293])
def test_cnn_accepts_any_time_length(name, length):
    model = small(name).eval()
    x, lengths = batch([length, max(1, length // 2)])
    with torch.no_grad():
        out = model(x, lengths)
    assert out["genre"].shape == (2, 10)
    assert torch.isfinite(out["embedding"]).all()


@pytest.mark.parametrize("name,params", [v for v in VARIANTS if v[0] != "lstm"])
def test_cnn_output_does_not_depend_on_padding(name, params):
    """Masked pooling: a clip alone == the clip in a longer padded batch (BatchNorm in eval)."""
    model = small(name, **params).eval()
    x, lengths = batch([50, 31, 7, 1])
    with torch.no_grad():
        together = model(x, lengths)["embedding"]
        for i, n in enumerate(lengths.tolist()):
            alone = model(x[i:i + 1, :n], lengths[i:i + 1])["embedding"]
            torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_padded_values_are_ignored(name):
    """Whatever sits beyond a clip's length (even NaN) does not change its output."""
    model = small(name).eval()
    x0, lengths = batch([20, 8], pad_value=0.0)
    xn, _ = batch([20, 8], pad_value=float("nan"))
    with torch.no_grad():
        a = model(x0, lengths)["genre"]
        b = model(xn, lengths)["genre"]
    assert torch.isfinite(b).all()
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_heads_return_raw_outputs(name):
    """No softmax/sigmoid in forward: each output is its linear head applied to the embedding."""
    model = small(name, TASK_SETS["genre+affect"]).eval()
    x, lengths = batch([15, 11])
    with torch.no_grad():
        out = model(x, lengths)
        torch.testing.assert_close(out["genre"], model.heads["genre"](out["embedding"]))
        torch.testing.assert_close(out["energy"], model.heads["energy"](out["embedding"]))
    assert isinstance(model.heads["genre"], torch.nn.Linear)
    assert model.heads["genre"].out_features == 10


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_parameter_gets_a_gradient(name):
    model = small(name, TASK_SETS["genre+affect"]).train()
    x, lengths = batch([18, 12, 5])
    out = model(x, lengths)
    loss = torch.nn.functional.cross_entropy(out["genre"], torch.tensor([0, 3, 9]))
    (loss + out["energy"].pow(2).mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_initialisation_is_deterministic(name):
    a, b = small(name).state_dict(), small(name).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- registry


def test_build_model_rejects_unknown_model():
    with pytest.raises(ConfigError, match="unknown model 'transformer'.*cnn.*lstm"):
        build_model("transformer", {}, F, {"genre": 10})


def test_build_model_rejects_unknown_param_and_lists_allowed():
    with pytest.raises(ConfigError) as err:
        build_model("lstm", {"hiden_size": 64}, F, {"genre": 10})
    msg = str(err.value)
    assert "'hiden_size'" in msg
    for key in ("hidden_size", "num_layers", "bidirectional", "pooling", "head_dropout"):
        assert key in msg


@pytest.mark.parametrize("name,params,match", [
    ("lstm", {"hidden_size": "big"}, "hidden_size.*integer"),
    ("lstm", {"hidden_size": 12.5}, "hidden_size.*integer"),
    ("lstm", {"bidirectional": 1}, "bidirectional.*true or false"),
    ("lstm", {"num_layers": True}, "num_layers.*integer"),
    ("lstm", {"pooling": "median"}, "pooling.*'last', 'mean'"),
    ("lstm", {"dropout": 1.5}, "dropout"),
    ("lstm", {"head_dropout": "x"}, "head_dropout.*number"),
    ("cnn", {"channels": "16,32"}, "channels.*list"),
    ("cnn", {"channels": [16, "a"]}, "channels.*item 1.*integer"),
    ("cnn", {"kernel_size": 4}, "kernel_size.*odd"),
    ("cnn", {"time_pooling": "sum"}, "time_pooling"),
    ("cnn_res", {"channels": [8, 8], "time_pools": [2]}, "same length"),
    ("cnn_short", {"pool": 0}, "pool"),
    ("cnn_short", {"time_pooling": "sum"}, "time_pooling"),
    ("crnn", {"channels": [8, 8], "freq_pools": [2]}, "same length"),
    ("crnn", {"rnn": "transformer"}, "rnn"),
    ("cnn", {"mask_bands": 0}, "mask_bands"),
])
def test_build_model_rejects_bad_values(name, params, match):
    with pytest.raises(ConfigError, match=match):
        build_model(name, params, F, {"genre": 10})


@pytest.mark.parametrize("tasks", [{}, {"genre": 0}, {"genre": 2.0}, {"embedding": 1}])
def test_build_model_rejects_bad_tasks(tasks):
    with pytest.raises(ConfigError):
        build_model("lstm", {}, F, tasks)


def test_params_are_coerced():
    model = build_model("cnn", {"channels": [4, 8], "dropout": 0}, F, {"genre": 10})
    assert model.backbone.config.channels == (4, 8)
    assert isinstance(model.backbone.config.dropout, float)
    assert model_defaults("lstm")["pooling"] == "last"
    assert model_defaults("cnn")["channels"] == [16, 32, 64, 128]


@pytest.mark.parametrize("name,params", VARIANTS)
def test_model_args_round_trip(name, params, tmp_path):
    model = small(name, TASK_SETS["genre+affect"], head_dropout=0.1, **params)
    args = model.model_args()
    assert set(args) == {"name", "params", "n_features", "tasks"}
    # checkpoints store the args and load them with weights_only=True
    torch.save(args, tmp_path / "args.pt")
    args = torch.load(tmp_path / "args.pt", weights_only=True)
    rebuilt = build_model(**args)
    ref, new = model.state_dict(), rebuilt.state_dict()
    assert list(ref) == list(new)
    assert all(ref[k].shape == new[k].shape for k in ref)
    rebuilt.load_state_dict(ref)
    rebuilt.eval()
    model.eval()
    x, lengths = batch([14, 9])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, lengths)["genre"], model(x, lengths)["genre"])
    assert rebuilt.head_dropout == pytest.approx(0.1)
    assert rebuilt.model_args() == model.model_args()


# ----------------------------------------------------------------------------- wrapper


def test_normalisation_buffers_are_applied(rng):
    model = small("lstm").eval()
    mean = rng.normal(size=F).astype(np.float32)
    std = rng.uniform(0.5, 2.0, size=F).astype(np.float32)
    x, lengths = batch([12, 7])
    with torch.no_grad():
        plain = model(x, lengths)["genre"]
        model.set_normalization(mean, std)
        raw = x * torch.from_numpy(std) + torch.from_numpy(mean)
        normalised = model(raw, lengths)["genre"]
    torch.testing.assert_close(normalised, plain, atol=1e-5, rtol=0)
    state = model.state_dict()
    np.testing.assert_allclose(state["mean"].numpy(), mean)
    np.testing.assert_allclose(state["std"].numpy(), std)


def test_normalisation_defaults_and_validation():
    model = small("cnn")
    assert torch.equal(model.mean, torch.zeros(F)) and torch.equal(model.std, torch.ones(F))
    with pytest.raises(ConfigError, match="shape"):
        model.set_normalization(np.zeros(F + 1), np.ones(F + 1))
    with pytest.raises(ConfigError, match="NaN"):
        model.set_normalization(np.full(F, np.nan), np.ones(F))
    model.set_normalization(np.zeros(F), np.zeros(F))   # constant features stay finite
    assert (model.std > 0).all()


def test_wrong_input_shape_is_reported():
    model = small("lstm")
    with pytest.raises(ValueError, match=f"\\(B, T, {F}\\)"):
        model(torch.zeros(2, 10, F + 1), torch.tensor([10, 10]))
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(2, 10, F), torch.tensor([11, 10]))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_freeze_backbone_freezes_only_the_backbone(name):
    model = small(name, TASK_SETS["genre+affect"])
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    model.train()
    assert model.training and model.heads.training and not model.backbone.training
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, lengths = batch([16, 10, 4])
    model(x, lengths)["genre"].sum().backward()
    opt.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "backbone changed"
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())
    assert model.train().backbone.training


@pytest.mark.parametrize("name", sorted(SMALL))
def test_replace_heads_keeps_backbone(name):
    model = small(name, {"genre": 10})
    backbone_state = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.replace_heads({"valence": 1, "energy": 1})
    assert set(model.heads) == {"valence", "energy"}
    assert model.tasks == {"valence": 1, "energy": 1}
    assert model.model_args()["tasks"] == {"valence": 1, "energy": 1}
    state = model.backbone.state_dict()
    assert all(torch.equal(backbone_state[k], state[k]) for k in state)
    x, lengths = batch([9, 5])
    out = model.eval()(x, lengths)
    assert set(out) == {"embedding", "valence", "energy"} and out["valence"].shape == (2,)


def test_spec_augment_masks_only_in_training():
    model = small("cnn", freq_mask=4, time_mask=8)
    assert model.model_args()["params"]["freq_mask"] == 4
    x, lengths = batch([40, 24, 2])
    model.eval()
    with torch.no_grad():
        a, b = model(x, lengths)["genre"], model(x, lengths)["genre"]
    torch.testing.assert_close(a, b)   # eval: deterministic, no masking
    plain = small("cnn").eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain(x, lengths)["genre"], a)
    model.train()
    torch.manual_seed(5)
    first = model(x, lengths)["embedding"]
    torch.manual_seed(5)
    again = model(x, lengths)["embedding"]
    torch.testing.assert_close(first, again)   # seeded: reproducible


def test_random_band_stays_inside_the_clip():
    from musicaffect.models.base import _random_band

    torch.manual_seed(0)
    sizes = torch.tensor([40, 8, 1, 100])
    for _ in range(50):
        band = _random_band(sizes, 100, width=30, quarter=True)
        widths = band.sum(dim=1)
        assert (widths <= torch.clamp(sizes // 4, max=30)).all()
        last = torch.where(band, torch.arange(100), -1).amax(dim=1)
        assert (last < sizes).all()


def test_wrapper_params_are_validated():
    with pytest.raises(ConfigError, match="freq_mask"):
        build_model("cnn", {"freq_mask": -1}, F, {"genre": 10})
    with pytest.raises(ConfigError, match="head_dropout"):
        build_model("cnn", {"head_dropout": 1.0}, F, {"genre": 10})
