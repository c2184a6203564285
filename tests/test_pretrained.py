"""The pretrained family (heads on stored musicnn embeddings) and the choose family
(``best-genre`` / ``best-affect`` pick the recipe the data root supports), on a tiny root
built from generated songs and embedded in seconds."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from musicaffect.cli import main
from musicaffect.errors import ConfigError

SR = 22050
GENRES = {"disco": (220.0, 120.0), "k-pop": (330.0, 150.0), "reggae": (180.0, 75.0)}
FAST = ["--set", "model.params.cv_folds=2", "--set", "data.val_fraction=0.34", "--no-progress"]


def _weights_available() -> bool:
    try:
        from musicaffect.models.musicnn import load_musicnn

        load_musicnn("MSD_musicnn", device="cpu")
    except Exception:  # noqa: BLE001  (no musicnn wheel: these tests cannot run)
        return False
    return True


pytestmark = pytest.mark.skipif(not _weights_available(),
                                reason="the musicnn wheel (weights) is not installed")


def _song(seconds: float, *, bpm: float, f0: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)
    clicks = np.zeros_like(t)
    clicks[::int(SR * 60 / bpm)] = 1.0
    y += np.convolve(clicks, np.exp(-np.arange(400) / 40.0), mode="same") * 0.5
    y += 0.01 * rng.standard_normal(t.size)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """18 generated songs of 6 s (3 genres, a binary target ``arousal`` and a real one,
    ``energy``) built into a root; ``audio``: embedded from the audio; ``adapter``: a copy
    embedded from its mel rows at two gains; ``plain``: a copy without embeddings."""
    from musicaffect.features.embed import embed_root

    base = tmp_path_factory.mktemp("pretrained")
    audio = base / "audio"
    audio.mkdir()
    rows = []
    for i in range(18):
        genre = list(GENRES)[i % 3]
        f0, bpm = GENRES[genre]
        name = f"{genre}_{i}.wav"
        sf.write(audio / name, _song(6.0, bpm=bpm, f0=f0 + 5 * i, seed=i), SR)
        rows.append({"file": name, "genre": genre, "arousal": int(bpm > 100),
                     "energy": round(bpm / 150.0 + 0.01 * i, 4)})
    with open(base / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plain = base / "plain"
    assert main(["build-dataset", str(audio), str(plain), "--labels", str(base / "labels.csv"),
                 "--jobs", "1", "--clip-seconds", "6", "--test-fraction", "0.34"]) == 0
    out = {"plain": plain, "audio_dir": audio}
    for way in ("audio", "adapter"):
        root = base / f"root-{way}"
        shutil.copytree(plain, root)
        if way == "audio":
            rep = embed_root(root, audio_dir=audio, progress=False)
        else:
            rep = embed_root(root, gains=["clip", 10], progress=False)
        assert rep.failed == 0 and rep.way == way
        out[way] = root
    return out


def _train(root, preset, out, *extra) -> None:
    assert main(["train", str(root), "--preset", preset, "--out", str(out), *FAST,
                 *extra]) == 0


def test_params_are_checked():
    from musicaffect.families.pretrained import embedding_key, pretrained_params

    assert embedding_key(pretrained_params({"layer": "both", "stats": ["mean", "std"]})) == (
        "penultimate_mean+penultimate_std+pool_mean+pool_std")
    for bad in ({"head": "svm"}, {"layer": "taggram"}, {"stats": ["max"]},
                {"embedding": "vgg"}, {"cv_folds": 1}):
        with pytest.raises(ConfigError):
            pretrained_params(bad)


def test_pretrained_and_choose_presets_are_valid():
    from musicaffect.config import load_config, preset_names
    from musicaffect.families.choose import choose_params
    from musicaffect.families.pretrained import pretrained_params

    seen = set()
    for name in preset_names():
        cfg = load_config(name)
        seen.add(cfg.model.name)
        if cfg.model.name == "pretrained":
            pretrained_params(cfg.model.params)
        elif cfg.model.name == "choose":
            for opt in choose_params(cfg.model.params).options:
                assert load_config(opt["preset"]).data.dataset == cfg.data.dataset
    assert {"pretrained", "choose"} <= seen


@pytest.mark.parametrize("preset", ["musicnn-probe-genre", "musicnn-mlp-genre"])
def test_genre_heads_fit_save_reload_and_predict(roots, tmp_path, preset):
    from musicaffect.data.loading import prepare_data
    from musicaffect.families.classical import _val_metrics
    from musicaffect.families.registry import load

    run = tmp_path / "run"
    _train(roots["audio"], preset, run)
    files = {p.name for p in (run / "checkpoints").iterdir()}
    assert files == {"best.pretrained.json", "best.genre.npz"}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pretrained"]["gain"] == "none"              # from audio: one "gain"
    meta = json.loads((run / "checkpoints" / "best.pretrained.json").read_text())
    assert meta["embedding"]["musicnn"]["model"] == "MSD_musicnn"
    assert len(meta["models"]["genre"]["sha256"]) == 64
    member = load(run)
    assert member.kind == "pretrained" and member.classes == meta["classes"]
    # the reloaded member gives the validation metrics recorded at training time
    data = prepare_data(member.cfg, roots["audio"])
    val = member.predict_dataset(data.val)
    assert val.ids == [data.dataset.ids[i] for i in data.val_idx]
    np.testing.assert_allclose(val.probs.sum(1), 1.0)
    assert _val_metrics(val, member.specs)["val_accuracy"] == pytest.approx(
        summary["best_metrics"]["val_accuracy"])
    # a changed head file is refused
    head = run / "checkpoints" / "best.genre.npz"
    head.write_bytes(head.read_bytes() + b"\0")
    from musicaffect.errors import CheckpointError

    with pytest.raises(CheckpointError, match="SHA-256"):
        load(run)


def test_affect_probe_follows_each_tasks_spec(roots, tmp_path):
    from musicaffect.data.loading import prepare_data
    from musicaffect.families.registry import load

    run = tmp_path / "affect"
    _train(roots["audio"], "musicnn-probe-affect", run)
    member = load(run)
    assert member.specs["arousal"].kind == "binary"
    assert member.specs["energy"].kind == "regression"
    meta = json.loads((run / "checkpoints" / "best.pretrained.json").read_text())
    assert meta["models"]["arousal"]["kind"] == "logistic"      # a classifier for 0/1 labels
    assert meta["models"]["energy"]["kind"] == "linear"         # ridge for a real value
    data = prepare_data(member.cfg, roots["audio"])
    pred = member.predict_dataset(data.val)
    assert pred.probs is None
    assert ((pred.values["arousal"] >= 0) & (pred.values["arousal"] <= 1)).all()
    assert pred.values["energy"].shape == (len(data.val_idx),)
    # the probe separates the generated tempi: energy ranks follow the labels
    from scipy.stats import spearmanr

    full = member.predict_dataset(data.dataset)
    assert spearmanr(full.values["energy"], full.labels["energy"])[0] > 0.5


def test_adapter_gain_is_chosen_by_inner_cv_and_recorded(roots, tmp_path, capsys):
    from musicaffect.families.registry import load

    run = tmp_path / "gain"
    _train(roots["adapter"], "musicnn-probe-genre", run)
    s = json.loads((run / "summary.json").read_text())["pretrained"]
    assert s["way"] == "adapter" and set(s["gain_scores"]) == {"clip", "10"}
    best = max(s["gain_scores"], key=lambda g: s["gain_scores"][g])
    assert s["gain"] == best
    meta = json.loads((run / "checkpoints" / "best.pretrained.json").read_text())
    assert meta["embedding"]["gain"] == best
    assert f"adapter gain {best} chosen by internal CV" in capsys.readouterr().err
    assert load(run).gain == best
    # one gain only: no choice
    _train(roots["adapter"], "musicnn-probe-genre", tmp_path / "one", "--set",
           "model.params.gains=[clip]")
    one = json.loads((tmp_path / "one" / "summary.json").read_text())["pretrained"]
    assert one["gain"] == "clip" and list(one["gain_scores"]) == ["clip"]


def test_root_without_embeddings_is_a_named_error(roots, tmp_path, capsys):
    assert main(["train", str(roots["plain"]), "--preset", "musicnn-probe-genre", "--out",
                 str(tmp_path / "x"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "musicaffect embed" in err and "embeddings" in err


def test_best_presets_choose_by_the_data_root(roots, tmp_path):
    from musicaffect.config import load_config
    from musicaffect.families.choose import choose_params, choose_preset
    from musicaffect.families.registry import load_members

    for name, emb, plain in (("best-genre", "musicnn-probe-genre", "ensemble-chunk-genre"),
                             ("best-affect", "musicnn-probe-affect",
                              "ensemble-chunk-affect")):
        params = load_config(name).model.params
        assert choose_preset(params, roots["audio"])[0] == emb
        assert choose_preset(params, roots["plain"])[0] == plain
    with pytest.raises(ConfigError, match="last option"):
        choose_params({"options": [{"when": "embeddings", "preset": "a"}]})
    with pytest.raises(ConfigError, match="not a condition"):
        choose_params({"options": [{"when": "weather", "preset": "a"}, {"preset": "b"}]})
    # trained: the chosen recipe is recorded and the run loads as its members
    run = tmp_path / "best"
    assert main(["train", str(roots["audio"]), "--preset", "best-genre", "--out", str(run),
                 "--set", "data.val_fraction=0.34", "--no-progress"]) == 0
    choice = json.loads((run / "choice.json").read_text())
    assert choice["preset"] == "musicnn-probe-genre"
    assert json.loads((run / "summary.json").read_text())["chosen"]["preset"] == choice["preset"]
    members = load_members(run)
    assert [m.kind for m, _ in members] == ["pretrained"]


def test_predict_song_from_audio_matches_the_stored_embedding(roots, tmp_path):
    from musicaffect.families.registry import load
    from musicaffect.predict import load_models, predict_files

    run = tmp_path / "probe"
    _train(roots["audio"], "musicnn-probe-genre", run)
    member = load(run)
    from musicaffect.data.dataset import SpectrogramDataset

    ds = SpectrogramDataset(roots["audio"], dataset="genre", split="train", use_cache=False)
    stored = member.predict_dataset(ds)
    clips = {}
    with open(roots["audio"] / "clips.csv", newline="") as f:
        for rec in csv.DictReader(f):
            clips[rec["id"]] = rec["file"]
    cid = ds.ids[0]
    song = roots["audio_dir"] / clips[cid]
    [pred] = predict_files(load_models([run], device="cpu"), [song], top=3, progress=False)
    assert pred.error is None and pred.windows == 1
    row = stored.probs[stored.ids.index(cid)]
    top = {c: p for c, p in pred.genre}
    for c, p in top.items():
        assert p == pytest.approx(row[stored.classes.index(c)], abs=1e-4)


def test_probe_ensembles_with_a_classical_run(roots, tmp_path):
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.families.ensemble import write_ensemble

    _train(roots["audio"], "musicnn-probe-genre", tmp_path / "probe")
    assert main(["train", str(roots["audio"]), "--preset", "classical-logreg", "--out",
                 str(tmp_path / "lr"), *FAST]) == 0
    write_ensemble(tmp_path / "ens", [tmp_path / "probe", tmp_path / "lr"])
    res = Predictor.load(tmp_path / "ens", device="cpu").predict_split(
        roots["audio"], dataset="genre", split="test")
    alone = [Predictor.load(tmp_path / r, device="cpu").predict_split(
        roots["audio"], dataset="genre", split="test").reorder(res.ids) for r in ("probe", "lr")]
    np.testing.assert_allclose(res.probs, (alone[0].probs + alone[1].probs) / 2, rtol=1e-9)


def test_cv_fold_roots_carry_the_embeddings(roots, tmp_path):
    from musicaffect.cv import run_cv

    res = run_cv(roots["audio"], ["musicnn-probe-genre"], tmp_path / "cv", folds=2,
                 budget="tiny", overrides=["data.val_fraction=0.34"], progress=False)
    [row] = res.rows
    assert row["runs"] == 2 and 0.0 <= row["accuracy_mean"] <= 1.0
    fold = tmp_path / "cv" / "data" / "fold-0" / "embeddings" / "MSD_musicnn"
    assert (fold / "embed_params.json").is_file()
    test_ids = {p.stem for p in (fold / "fma_genre_spectrograms" / "test").iterdir()}
    clip_ids = {p.name.split(".")[0] for p in
                (tmp_path / "cv" / "data" / "fold-0" / "fma_genre_spectrograms" / "test"
                 ).iterdir()}
    assert test_ids == clip_ids


def test_adapter_run_reads_mel_windows_as_its_embeddings_were_made(roots, tmp_path):
    from musicaffect.data.arrays import load_array, select_view
    from musicaffect.data.dataset import SpectrogramDataset
    from musicaffect.families.registry import load

    run = tmp_path / "adapter"
    _train(roots["adapter"], "musicnn-probe-genre", run)
    member = load(run)
    assert member.song_windows(roots["audio_dir"] / "disco_0.wav") is None   # mel windows
    ds = SpectrogramDataset(roots["adapter"], dataset="genre", split="train", use_cache=False)
    stored = member.predict_dataset(ds)
    mel = select_view(load_array(ds.records[0].path), "mel")                  # (128, T)
    again = member.predict_arrays([mel])
    np.testing.assert_allclose(again.probs[0], stored.probs[0], atol=1e-4)
