"""Feature extraction from audio: shapes, ranges, parity with direct librosa calls, beats."""

from __future__ import annotations

import logging

import librosa
import numpy as np
import pytest
import soundfile as sf

from musicaffect.errors import ConfigError, DataError
from musicaffect.features import audio as fa

SR = 22050


def music(seconds: float, *, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    """A chord of three tones, clicks at ``bpm`` from t = 0 and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
    y = y + 0.6 * librosa.clicks(times=np.arange(0.0, seconds, 60.0 / bpm), sr=SR, length=n)
    return (y + 0.01 * rng.standard_normal(n)).astype(np.float32)


def tone(seconds: float, *, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def y_music() -> np.ndarray:
    return music(6.0)


@pytest.fixture(scope="module")
def extracted(y_music) -> dict:
    return fa.extract(y_music, sr=SR)


def n_frames(n_samples: int, hop_length: int = 512) -> int:
    return 1 + n_samples // hop_length


# ---------------------------------------------------------------------------------------
# loading and checking


def test_load_audio_mixes_to_mono_and_resamples(tmp_path):
    stereo = np.stack([tone(2.0, freq=440.0), tone(2.0, freq=660.0)], axis=1)  # (n, 2)
    path = tmp_path / "stereo.flac"
    sf.write(path, librosa.resample(stereo.T, orig_sr=SR, target_sr=44100).T, 44100)
    y, sr = fa.load_audio(path)
    assert sr == SR and y.ndim == 1 and y.dtype == np.float32
    assert abs(y.size - 2 * SR) <= 2


def test_load_audio_offset_and_duration(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(3.0), SR)
    y, _ = fa.load_audio(path, offset=1.0, duration=1.5)
    assert y.size == int(1.5 * SR)


@pytest.mark.parametrize("content", [None, b"", b"RIFF\x00\x00not audio" * 20])
def test_load_audio_bad_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        fa.load_audio(path)
    assert "bad.wav" in str(err.value) and err.value.path == str(path)


def test_load_audio_zero_length(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match="zero length|cannot decode"):
        fa.load_audio(path)


@pytest.mark.parametrize(("y", "match"), [
    (np.zeros(6 * SR, np.float32), "silent"),
    (np.full(6 * SR, 1e-6, np.float32), "silent"),
    (tone(2.0), "too short"),
    (np.zeros(0, np.float32), "zero length"),
    (np.array([np.nan] * (6 * SR), np.float32), "NaN"),
])
def test_check_audio_rejects(y, match):
    with pytest.raises(DataError, match=match) as err:
        fa.check_audio(y, sr=SR, path="clip.wav")
    assert str(err.value).startswith("clip.wav: ")


def test_extract_rejects_silence_with_the_file_name():
    with pytest.raises(DataError, match="silent") as err:
        fa.extract(np.zeros(6 * SR, np.float32), sr=SR, path="quiet.ogg")
    assert "quiet.ogg" in str(err.value)


def test_extract_wrong_rate():
    with pytest.raises(ConfigError, match="22050"):
        fa.extract(tone(6.0), sr=16000)


# ---------------------------------------------------------------------------------------
# length rules and params


def test_length_rules():
    y = np.arange(10 * SR, dtype=np.float32)
    cropped = fa.apply_length_rule(y, sr=SR, clip_seconds=4.0, rule="crop")
    assert cropped.size == 4 * SR and cropped[0] == 3 * SR  # the central 4 s
    short = y[: 2 * SR]
    assert fa.apply_length_rule(short, sr=SR, clip_seconds=4.0, rule="crop").size == 2 * SR
    padded = fa.apply_length_rule(short, sr=SR, clip_seconds=4.0, rule="pad")
    assert padded.size == 4 * SR and not padded[2 * SR:].any()
    assert fa.apply_length_rule(y, sr=SR, clip_seconds=4.0, rule="keep") is y
    with pytest.raises(ConfigError, match="length rule"):
        fa.apply_length_rule(y, sr=SR, rule="stretch")


def test_feature_params_round_trip(tmp_path):
    params = fa.FeatureParams(clip_seconds=10.0, length_rule="keep")
    path = params.write(tmp_path / "feature_params.json")
    assert fa.FeatureParams.read(path) == params
    text = path.read_text()
    assert '"librosa"' in text and "120 BPM" in text and "full length" in text
    assert params.n_features == 140
    with pytest.raises(ConfigError, match="length rule"):
        fa.FeatureParams(length_rule="stretch")
    with pytest.raises(ConfigError, match="min_seconds"):
        fa.FeatureParams(clip_seconds=2.0)


# ---------------------------------------------------------------------------------------
# shapes, ranges, parity


def test_mel_db_shape_and_range(y_music):
    M = fa.mel_db(y_music, sr=SR)
    assert M.shape == (128, n_frames(y_music.size)) and M.dtype == np.float32
    assert M.max() == 0.0 and M.min() >= -80.0


def test_chroma_shape_and_range(y_music):
    C = fa.chroma(y_music, sr=SR)
    assert C.shape == (12, n_frames(y_music.size))
    assert C.min() >= 0.0 and C.max() <= 1.0
    np.testing.assert_allclose(C.max(axis=0), 1.0, rtol=1e-6)  # each frame normalised
    # the C-E-G chord: C, E and G are the strongest pitch classes
    assert set(np.argsort(C.mean(axis=1))[-3:]) == {0, 4, 7}


def test_stack_trims_to_shorter():
    X = fa.stack(np.zeros((128, 10)), np.ones((12, 8)))
    assert X.shape == (140, 8) and X.dtype == np.float32 and X[128:].all()


def test_extract_shapes(extracted, y_music):
    full, beat, info = extracted["full"], extracted["beat"], extracted["info"]
    assert full.shape == (140, n_frames(y_music.size)) and full.dtype == np.float32
    assert beat.shape[0] == 140 and 2 <= beat.shape[1] < full.shape[1]
    assert full[:128].max() == 0.0 and full[:128].min() >= -80.0
    assert 0.0 <= full[128:].min() and full[128:].max() <= 1.0
    assert info["n_frames"] == full.shape[1] and info["beat_fallback"] is False
    assert info["seconds"] == pytest.approx(6.0)


def test_extract_matches_direct_librosa_calls(extracted, y_music):
    y, sr = y_music, SR
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    mel = librosa.power_to_db(S, ref=np.max)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=512)
    _, y_perc = librosa.effects.hpss(y)
    _, beats = librosa.beat.beat_track(y=y_perc, sr=sr)
    mel_beat = librosa.util.sync(mel, beats, aggregate=np.median)
    chroma_beat = librosa.util.sync(chroma, beats, aggregate=np.median)

    full, beat = extracted["full"], extracted["beat"]
    np.testing.assert_allclose(full[:128], mel, atol=1e-4, rtol=0)
    np.testing.assert_allclose(full[128:], chroma, atol=1e-5, rtol=0)
    assert beat.shape == (140, mel_beat.shape[1])
    np.testing.assert_allclose(beat[:128], mel_beat, atol=1e-4, rtol=0)
    np.testing.assert_allclose(beat[128:], chroma_beat, atol=1e-5, rtol=0)
    assert extracted["info"]["n_beats"] == len(beats)


@pytest.mark.parametrize(("shape", "k"), [((6, 50), 31), ((4, 17), 31), ((3, 5), 3), ((2, 1), 31)])
def test_median_filter_rows_equals_scipy(rng, shape, k):
    import scipy.ndimage

    X = rng.random(shape).astype(np.float32)
    X[:, ::3] = X[:, :1]  # ties
    expected = scipy.ndimage.median_filter(X, size=(1, k), mode="reflect")
    np.testing.assert_array_equal(fa.median_filter_rows(X, kernel_size=k), expected)


def test_hpss_percussive_equals_librosa(y_music):
    D = librosa.stft(y_music[: 2 * SR])
    np.testing.assert_array_equal(fa.hpss_percussive(D), librosa.decompose.hpss(D)[1])


def test_fused_and_beat_sync_agree_with_extract(extracted, y_music):
    full = fa.fused(y_music, sr=SR)
    np.testing.assert_array_equal(full, extracted["full"])
    beat = fa.beat_sync(full, y_music, sr=SR)
    np.testing.assert_array_equal(beat, extracted["beat"])


def test_click_track_gives_expected_beats():
    y = music(10.0, bpm=120.0, seed=1)  # 20 clicks
    out = fa.extract(y, sr=SR)
    assert abs(out["info"]["n_beats"] - 20) <= 2
    assert abs(out["info"]["tempo"] - 120.0) < 5.0
    # beat-synchronous frames: one segment per beat interval plus the two ends
    assert abs(out["beat"].shape[1] - 21) <= 2


def test_no_beats_falls_back_to_fixed_segments(caplog):
    y = tone(6.0)  # a steady tone has no onsets
    with caplog.at_level(logging.WARNING, logger="musicaffect.features.audio"):
        out = fa.extract(y, sr=SR, path="steady.wav")
    assert out["info"]["beat_fallback"] is True
    assert "steady.wav" in caplog.text and "120 BPM" in caplog.text
    expected = fa.fallback_beats(out["full"].shape[1], sr=SR, hop_length=512, bpm=120.0)
    np.testing.assert_array_equal(expected[:3], [22, 43, 65])  # one beat = 21.53 frames
    assert out["beat"].shape == (140, len(expected) + 1)
    np.testing.assert_allclose(out["beat"][:, 1], np.median(out["full"][:, 22:43], axis=1))


def test_extract_file_applies_the_length_rule(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, music(8.0), SR)
    params = fa.FeatureParams(clip_seconds=6.0)
    out = fa.extract_file(path, params=params)
    assert out["full"].shape[1] == n_frames(6 * SR)
    assert out["info"]["source_seconds"] == pytest.approx(8.0)
    kept = fa.extract_file(path, params=params, apply_length=False)
    assert kept["full"].shape[1] == n_frames(8 * SR)
