"""musicnn: parity with the original TensorFlow code, weights checks, shapes, batch
consistency, the mel adapter, embeddings of a data root (with resume) and the tags command.

The reference arrays in tests/data/musicnn were made once with the original musicnn 0.1.0
code in a TensorFlow venv outside the project (tools/musicnn_reference.py, float32 input).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musicaffect.errors import ConfigError, DataError
from musicaffect.features.params import FeatureParams, MusicnnParams

mnn = pytest.importorskip("musicaffect.models.musicnn")

DATA = Path(__file__).parent / "data" / "musicnn"
CLIPS = ("chord", "noise", "chirp")


def _installed() -> bool:
    try:
        mnn.package_dir()
    except mnn.PretrainedWeightsError:
        return False
    return True


needs_weights = pytest.mark.skipif(not _installed(), reason="pip install --no-deps musicnn==0.1.0")


@pytest.fixture(scope="module")
def nets():
    return {m: mnn.load_musicnn(m) for m in mnn.PRETRAINED} if _installed() else {}


def _inputs(name: str) -> np.ndarray:
    from musicaffect.features.audio import load_audio
    from musicaffect.features.musicnn_input import log_mel, patches

    y, _ = load_audio(DATA / f"{name}.flac", sr=16000)
    return patches(log_mel(y))


# ---------------------------------------------------------------------------------------
# parity with the original


@needs_weights
@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
@pytest.mark.parametrize("clip", CLIPS)
def test_port_matches_the_original_tensorflow_outputs(nets, model, clip):
    ref = np.load(DATA / f"{clip}.{model}.npz")
    X = _inputs(clip)
    assert X.shape == (2, 187, 96)
    with torch.no_grad():
        out = nets[model](torch.from_numpy(X))
    taggram = torch.sigmoid(out["logits"]).numpy()
    np.testing.assert_allclose(taggram, ref["taggram"], atol=1e-5)
    np.testing.assert_allclose(out["penultimate"].numpy(), ref["penultimate"], atol=1e-4)
    np.testing.assert_allclose(out["mean_pool"].numpy(), ref["mean_pool"], atol=1e-4)
    # max_pool reaches ~80: compare relative to its scale
    scale = np.abs(ref["max_pool"]).max()
    assert np.abs(out["max_pool"].numpy() - ref["max_pool"]).max() <= 1e-5 * scale


def test_reference_records_the_originals_faults():
    """The float16 cast of the original makes loud clips' taggrams NaN, and its extractor
    repeats the first patch's penultimate features for every patch."""
    ref = np.load(DATA / "chord.MSD_musicnn.npz")
    assert not np.isfinite(ref["taggram_float16"]).all()
    assert np.isfinite(ref["taggram"]).all()
    pe = ref["penultimate_extractor"]
    assert np.array_equal(pe[0], pe[1]) and not np.allclose(ref["penultimate"][0],
                                                            ref["penultimate"][1])


# ---------------------------------------------------------------------------------------
# weights


def test_weight_files_checksum_mismatch_is_a_named_error(tmp_path):
    src = mnn.package_dir() if _installed() else None
    folder = tmp_path / "MSD_musicnn"
    folder.mkdir()
    if src is not None:
        shutil.copy(src / "MSD_musicnn" / ".index", folder / ".index")
    else:
        (folder / ".index").write_bytes(b"x")
    (folder / ".data-00000-of-00001").write_bytes(b"not the weights")
    with pytest.raises(mnn.PretrainedWeightsError, match="corrupt.*pip install --no-deps"):
        mnn.load_musicnn("MSD_musicnn", root=tmp_path)


def test_missing_weight_file_is_a_named_error(tmp_path):
    (tmp_path / "MSD_musicnn").mkdir()
    with pytest.raises(mnn.PretrainedWeightsError, match="missing.*musicnn==0.1.0"):
        mnn.weight_files("MSD_musicnn", root=tmp_path)


def test_missing_package_is_a_named_error(monkeypatch):
    monkeypatch.setattr(mnn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(mnn.PretrainedWeightsError, match="pip install --no-deps musicnn==0.1.0"):
        mnn.load_musicnn()


def test_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="MSD_musicnn"):
        mnn.load_musicnn("MSD_vgg")


def test_bad_checkpoint_bytes_are_a_named_error(tmp_path):
    (tmp_path / "i").write_bytes(b"\0" * 100)
    (tmp_path / "d").write_bytes(b"")
    with pytest.raises(mnn.PretrainedWeightsError, match="cannot read"):
        mnn.read_tensor_bundle(tmp_path / "i", tmp_path / "d")


@needs_weights
def test_tensor_bundle_holds_the_musicnn_layers():
    tensors = mnn.read_tensor_bundle(*mnn.weight_files("MSD_musicnn"))
    assert tensors["conv2d/kernel"].shape == (7, 38, 1, 204)
    assert tensors["conv2d_5/kernel"].shape == (7, 561, 1, 64)
    assert tensors["dense/kernel"].shape == (1506, 200)
    assert tensors["dense_1/kernel"].shape == (200, 50)
    assert all(np.isfinite(t).all() for t in tensors.values())


@needs_weights
def test_tag_names_come_from_the_wheel():
    msd, mtt = mnn.tag_names("MSD_musicnn"), mnn.tag_names("MTT_musicnn")
    assert len(msd) == len(mtt) == 50
    assert "rock" in msd and "harpsichord" in mtt


# ---------------------------------------------------------------------------------------
# the network


def test_shapes_and_batch_consistency_with_padding():
    torch.manual_seed(0)
    net = mnn.Musicnn().eval()
    x = torch.randn(3, 80, 96)
    lengths = torch.tensor([80, 50, 20])
    with torch.no_grad():
        out = net(x, lengths)
        assert out["logits"].shape == (3, 50)
        assert out["penultimate"].shape == (3, 200)
        assert out["pool"].shape == (3, 1506)
        for i, n in enumerate(lengths.tolist()):
            alone = net(x[i:i + 1, :n])
            for key in ("logits", "penultimate", "pool"):
                torch.testing.assert_close(out[key][i], alone[key][0], atol=1e-4, rtol=1e-4)


def test_pool_interleaves_max_and_mean():
    net = mnn.Musicnn().eval()
    with torch.no_grad():
        out = net(torch.randn(2, 50, 96))
    assert torch.equal(out["pool"][:, 0::2], out["max_pool"])
    assert torch.equal(out["pool"][:, 1::2], out["mean_pool"])


def test_backbone_meets_the_registry_contract_and_freezes():
    from musicaffect.models.base import MusicModel

    bb = mnn.MusicnnBackbone(12, mnn.MusicnnConfig())
    model = MusicModel(bb, {"genre": 4}).eval()
    x, lengths = torch.randn(2, 30, 12), torch.tensor([30, 11])
    out = model(x, lengths)
    assert out["embedding"].shape == (2, 200) and out["genre"].shape == (2, 4)
    model.freeze_backbone()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    with pytest.raises(ConfigError, match="96"):
        mnn.MusicnnBackbone(128, mnn.MusicnnConfig(pretrained="MSD_musicnn"))


def test_backbone_trains_every_parameter():
    from musicaffect.models.base import MusicModel

    torch.manual_seed(0)
    model = MusicModel(mnn.MusicnnBackbone(12), {"genre": 3}).train()
    out = model(torch.randn(3, 20, 12), torch.tensor([20, 9, 4]))
    torch.nn.functional.cross_entropy(out["genre"], torch.tensor([0, 1, 2])).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@needs_weights
def test_pretrained_backbone_gives_the_penultimate(nets):
    bb = mnn.MusicnnBackbone(96, mnn.MusicnnConfig(pretrained="MSD_musicnn")).eval()
    X = torch.from_numpy(_inputs("noise"))
    with torch.no_grad():
        emb = bb(X, torch.full((2,), 187))
        torch.testing.assert_close(emb, nets["MSD_musicnn"](X)["penultimate"])


@pytest.mark.gpu
@needs_weights
def test_runs_on_cuda(nets):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    X = torch.from_numpy(_inputs("chord"))
    net = mnn.load_musicnn("MSD_musicnn", device="cuda")
    with torch.no_grad():
        gpu = net(X.cuda())["penultimate"].cpu()
        cpu = nets["MSD_musicnn"](X)["penultimate"]
    torch.testing.assert_close(gpu, cpu, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------------------------------
# input and adapter


def test_patches_follow_the_originals_rule():
    from musicaffect.features.musicnn_input import patch_starts, patches

    assert list(patch_starts(376)) == [0, 187]
    assert list(patch_starts(373)) == [0]          # the tail is dropped, as in the original
    assert patches(np.zeros((100, 96), np.float32)).shape == (1, 100, 96)  # short: one patch
    with pytest.raises(ConfigError):
        MusicnnParams(patch_hop=0)


def _tone_clip(seed: int, sr: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(8 * sr)) / sr
    f = rng.uniform(150, 600, size=3)
    y = sum(np.sin(2 * np.pi * fi * t) * (0.5 + 0.5 * np.sin(2 * np.pi * (k + 1) * 0.7 * t))
            for k, fi in enumerate(f))
    y = y + 0.05 * rng.standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_adapter_output_is_close_to_the_direct_input():
    """On audio clips, the adapter applied to the clip's 128-band dB mel comes close to the
    96-band input computed from the audio (at the best gain), and its frames line up."""
    import librosa

    from musicaffect.features.audio import mel_db
    from musicaffect.features.musicnn_input import (
        adapt_mel_db,
        adapt_power,
        log_compress,
        log_mel,
    )

    for seed in range(3):
        y22 = _tone_clip(seed, 22050)[: 22050 * 4]
        kaggle = mel_db(y22, sr=22050)                                 # (128, T), peak 0 dB
        direct = log_mel(librosa.resample(y22, orig_sr=22050, target_sr=16000))
        power = adapt_power(kaggle)
        assert abs(power.shape[0] - direct.shape[0]) <= 2 and power.shape[1] == 96
        n = min(power.shape[0], direct.shape[0])
        np.testing.assert_array_equal(adapt_mel_db(kaggle, gain=3.0), log_compress(power * 3.0))
        gains = np.logspace(-1, 4, 26)
        mad = [np.abs(log_compress(power * g)[:n] - direct[:n]).mean() for g in gains]
        best = int(np.argmin(mad))
        assert mad[best] < 0.3, f"clip {seed}: mean abs diff {mad[best]:.3f} log10 units"
        far = min(best + 10, len(gains) - 1) if best < 13 else best - 10   # 100x off
        assert mad[far] > 2 * mad[best]
        per_clip = np.abs(adapt_mel_db(kaggle, gain="clip")[:n] - direct[:n]).mean()
        assert np.isfinite(per_clip)


def test_adapter_rejects_wrong_rows():
    from musicaffect.features.musicnn_input import adapt_mel_db

    with pytest.raises(DataError, match="128 mel rows"):
        adapt_mel_db(np.zeros((140, 10)))
    with pytest.raises(ConfigError, match="gain"):
        adapt_mel_db(np.zeros((128, 10)) - 80, gain=0)


# ---------------------------------------------------------------------------------------
# embeddings of a data root


def _tiny_root(tmp_path: Path) -> Path:
    """A Kaggle-layout root with three short clips (one corrupt) and an audio folder."""
    from musicaffect.features.audio import mel_db

    root = tmp_path / "root"
    d = root / "fma_genre_spectrograms" / "train"
    d.mkdir(parents=True)
    audio = tmp_path / "audio"
    audio.mkdir()
    import soundfile as sf

    lines = ["id,file,start,split,status"]
    for cid in (1, 2):
        y = _tone_clip(cid, 22050)[: 22050 * 4]
        sf.write(audio / f"s{cid}.wav", y, 22050)
        m = mel_db(y, sr=22050)
        np.save(d / f"{cid}.fused.full.npy", np.vstack([m, np.zeros((12, m.shape[1]))])
                .astype(np.float32))
        lines.append(f"{cid},s{cid}.wav,,train,ok")
    (d / "3.fused.full.npy").write_bytes(b"corrupt")
    # the same id in the other folder: another clip in the Kaggle layout, the same clip in
    # a build-dataset root (where clips.csv maps the id to one file)
    other = root / "multitask_dataset" / "test"
    other.mkdir(parents=True)
    m = mel_db(_tone_clip(7, 22050)[: 22050 * 4], sr=22050)
    np.save(other / "1.fused.full.npy", np.vstack([m, np.zeros((12, m.shape[1]))])
            .astype(np.float32))
    lines.append("3,missing.wav,,train,ok")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    return root


@needs_weights
@pytest.mark.slow
def test_embed_root_adapter_then_audio_with_resume(tmp_path, caplog):
    from musicaffect.features.embed import embed_root, load_embeddings, read_embed_params

    root = _tiny_root(tmp_path)
    rep = embed_root(root, gains=["clip", 10])
    assert (rep.way, rep.done, rep.failed) == ("adapter", 3, 1)
    assert "3.fused.full.npy" in rep.errors_file.read_text()
    X = load_embeddings(root, ["1", "2"], folder="fma_genre_spectrograms", split="train",
                        gain=10)
    assert X.shape == (2, 200) and np.isfinite(X).all()
    both = load_embeddings(root, ["1"], folder="fma_genre_spectrograms", split="train",
                           gain="clip", key="penultimate_mean+pool_mean")
    assert both.shape == (1, 1706)
    with pytest.raises(ConfigError, match="choose one"):
        load_embeddings(root, ["1"], folder="fma_genre_spectrograms", split="train")
    other = load_embeddings(root, ["1"], folder="multitask_dataset", split="test", gain=10)
    assert not np.allclose(other[0], X[0])                   # its own clip
    again = embed_root(root, gains=["clip", 10])
    assert (again.done, again.skipped) == (0, 3)             # resume: nothing recomputed
    from musicaffect.cli import main

    assert main(["embed", str(root), "--gains", "clip", "10"]) == 0   # the CLI, resuming

    rep = embed_root(root, audio_dir=tmp_path / "audio")    # other settings: all again
    assert (rep.way, rep.done, rep.skipped) == ("audio", 2, 0)
    doc = read_embed_params(root)
    assert doc["way"] == "audio" and doc["weights"]["model"] == "MSD_musicnn"
    A = load_embeddings(root, ["1", "2"], folder="fma_genre_spectrograms", split="train")
    assert A.shape == (2, 200) and not np.allclose(A, X)
    same = load_embeddings(root, ["1"], folder="multitask_dataset", split="test")
    np.testing.assert_array_equal(same[0], A[0])             # one clip id, one audio clip


@needs_weights
def test_embed_root_needs_clip_folders(tmp_path):
    from musicaffect.features.embed import embed_root

    with pytest.raises(DataError, match="no clip folders"):
        embed_root(tmp_path)


def test_gain_list_is_checked():
    from musicaffect.features.embed import parse_gains

    assert parse_gains(["clip", "10", 3]) == ["clip", 10.0, 3.0]
    for bad in (["x"], ["-1"], [], ["2", 2.0]):
        with pytest.raises(ConfigError):
            parse_gains(bad)


@needs_weights
def test_embedder_batches_gains_like_single_calls(tmp_path):
    from musicaffect.features.audio import mel_db
    from musicaffect.features.embed import Embedder

    emb = Embedder(device="cpu")
    m = mel_db(_tone_clip(5, 22050)[: 22050 * 7], sr=22050)
    both = emb.embed_mel_db(m, gains=[1.0, 100.0])
    one = emb.embed_mel_db(m, gains=[100.0])
    assert both["penultimate_mean"].shape == (2, 200) and int(both["n_patches"]) == 2
    np.testing.assert_allclose(both["penultimate_mean"][1], one["penultimate_mean"][0],
                               atol=1e-4)


# ---------------------------------------------------------------------------------------
# CLI


@needs_weights
def test_tags_cli_prints_top_tags(capsys):
    from musicaffect.cli import main

    assert main(["tags", str(DATA / "chord.flac"), str(DATA / "noise.flac"), "--top", "3",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and out[0].startswith(str(DATA / "chord.flac"))
    assert len(out[0].split(": ", 1)[1].split(", ")) == 3


def test_embed_cli_reports_a_missing_root(tmp_path, capsys):
    from musicaffect.cli import main

    assert main(["embed", str(tmp_path / "nope")]) == 2


def test_embed_params_round_trip():
    p = MusicnnParams(patch_hop=94)
    assert MusicnnParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert FeatureParams().sr == 22050 and p.frame_seconds == 0.016
