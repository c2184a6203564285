"""The real-music sample: work selection, arrangement, derived labels, rendering, the build."""

from __future__ import annotations

import numpy as np
import pytest

from musicaffect.data.labels import GENRES20, TARGETS, map_genre
from musicaffect.errors import ConfigError
from musicaffect.samples import affect, arrange, build, corpus, render, theory


def _perf(notes, beats, seconds, programs=(0,)) -> arrange.Performance:
    return arrange.Performance(notes=np.array(notes, dtype=float).reshape(-1, 5),
                         beats=np.array(beats, dtype=float), programs=programs,
                         duration=seconds)


def _clip(file: str, work: str) -> build.ClipInfo:
    return build.ClipInfo(file=file, style="ragtime", genre="Jazz", group=work, work=work,
                      title="", window=0, start=0.0, qpm=100.0, key="C major", programs="0",
                      renderer="x", valence=0.5, energy=0.5, danceability=0.5)


# ---------------------------------------------------------------------------------------
# styles and selection


def test_styles_map_to_fma_genres_with_three_lab_classes():
    genres = {s.genre for s in corpus.STYLES.values()}
    assert genres <= set(GENRES20)
    assert len({map_genre(g) for g in genres} - {None}) >= 3
    assert corpus.genre_styles() == {"Classical": ["chorale", "renaissance", "quartet"],
                                "Folk": ["folksong", "fiddle"], "Jazz": ["ragtime"]}


def test_unknown_style_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown score style 'disco'"):
        corpus.genre_styles(["chorale", "disco"])


@pytest.mark.parametrize(("n", "k", "expected"), [(16, 3, [6, 5, 5]), (16, 2, [8, 8]),
                                                  (2, 3, [1, 1, 0])])
def test_style_quotas_split_evenly(n, k, expected):
    assert corpus.style_quotas(n, k) == expected


def test_work_slug_group_and_key():
    tune = corpus.Work("fiddle", "oneills1850/0001-0050.abc", 3)
    assert tune.key == "oneills1850/0001-0050.abc#3"
    assert tune.group == tune.key
    assert "." not in tune.slug and tune.slug.startswith("fiddle_")
    movement = corpus.Work("quartet", "mozart/k458/movement2.mxl")
    assert movement.group == "mozart/k458"
    assert corpus.Work("renaissance", "palestrina/Agnus_II_03_b.krn").group == "palestrina/mass03"
    assert "." not in corpus.Work("chorale", "bach/bwv66.6.mxl").slug


def test_abc_numbers_reads_x_fields():
    text = "X:1\nT:One\nK:G\nabc|\n\nX: 12\nT:Two\nK:D\ndef|\n"
    assert corpus.abc_numbers(text) == [1, 12]


def test_candidate_works_are_seeded_and_interleave_families(tmp_path):
    paths = [f"palestrina/Kyrie_{i:02d}.krn" for i in range(6)]
    paths += ["monteverdi/madrigal.3.1.mxl", "monteverdi/madrigal.3.2.mxl", "other/x.mxl"]
    first = corpus.candidate_works("renaissance", seed=1, paths=paths, root=tmp_path)
    again = corpus.candidate_works("renaissance", seed=1, paths=paths, root=tmp_path)
    other = [corpus.candidate_works("renaissance", seed=s, paths=paths, root=tmp_path)
             for s in range(2, 6)]
    assert first == again
    assert any(o != first for o in other)
    assert len(first) == 8 and "other/x.mxl" not in {w.path for w in first}
    # the two families alternate while both have works left
    assert [w.path.split("/")[0] for w in first[:4]] == ["palestrina", "monteverdi"] * 2


def test_candidate_works_expand_tunebooks(tmp_path):
    (tmp_path / "oneills1850").mkdir()
    (tmp_path / "oneills1850" / "0001-0050.abc").write_text("X:1\nK:G\nA|\n\nX:2\nK:D\nB|\n")
    works = corpus.candidate_works("fiddle", seed=0, paths=["oneills1850/0001-0050.abc"],
                              root=tmp_path)
    assert sorted(w.number for w in works) == [1, 2]


def test_plan_windows_keeps_each_work_on_one_side():
    a = [_clip(f"a{k}.wav", "A") for k in range(6)]
    b = [_clip(f"b{k}.wav", "B") for k in range(5)]
    plan = build.plan_windows([a, b], quota=10, test_fraction=0.2)
    assert len(plan) == 8  # work A has only 6 windows for the 8 training clips
    sides = {c.work: {p.split for p in plan if p.work == c.work} for c in plan}
    assert sides == {"A": {"train"}, "B": {"test"}}
    assert [c.file for c in plan if c.split == "test"] == ["b0.wav", "b1.wav"]
    single = build.plan_windows([a], quota=3)
    assert [c.file for c in single] == ["a0.wav", "a1.wav", "a2.wav"]
    assert {c.split for c in single} == {""}


# ---------------------------------------------------------------------------------------
# harmony and arrangement


def test_estimate_key_finds_major_and_minor():
    c_major = np.zeros(12)
    c_major[[0, 2, 4, 5, 7, 9, 11]] = [3, 1, 2, 1, 2.5, 1, 1]
    assert theory.estimate_key(c_major)[:2] == (0, "major")
    a_minor = np.zeros(12)
    a_minor[[9, 11, 0, 2, 4, 5, 8]] = [3, 1, 2, 1, 2.5, 1, 1]
    tonic, mode, r = theory.estimate_key(a_minor)
    assert (tonic, mode) == (9, "minor") and 0.5 < r <= 1.0
    assert theory.estimate_key(np.zeros(12)) == (0, "major", 0.0)
    with pytest.raises(ValueError, match="shape"):
        theory.estimate_key(np.ones(7))


def test_harmonize_fits_melody_and_ends_on_tonic():
    melody = np.array([[60, 0, 1], [64, 1, 1], [67, 2, 2],      # C E G -> I
                       [67, 4, 1], [71, 5, 1], [74, 6, 2],      # G B D -> V
                       [65, 8, 1], [69, 9, 1], [72, 10, 2],     # F A C -> IV
                       [62, 12, 4]], dtype=float)               # last bar -> I
    measures = np.array([[0, 4], [4, 8], [8, 12], [12, 16]], dtype=float)
    chords = theory.harmonize(melody, measures, tonic=0, mode="major")
    assert chords == [(0, 4, 7), (7, 11, 2), (5, 9, 0), (0, 4, 7)]


@pytest.mark.parametrize("pattern", ["block", "oompah", "arpeggio"])
def test_accompaniment_patterns(pattern):
    measures = np.array([[0, 1], [1, 5], [5, 9]], dtype=float)  # a one-beat pick-up
    upper, bass = theory.accompaniment([(0, 4, 7), (7, 11, 2), (0, 4, 7)], measures, beat_q=1.0,
                                  pattern=pattern)
    assert upper.shape[1] == bass.shape[1] == 3
    assert upper[:, 1].min() >= 1 and bass[:, 1].min() >= 1  # pick-up left out
    assert np.all((bass[:, 0] >= 36) & (bass[:, 0] < 55))
    assert np.all((upper[:, 0] >= 55) & (upper[:, 0] <= 79))
    assert np.all(upper[:, 1] + upper[:, 2] <= 9 + 1e-9)
    if pattern == "oompah":
        assert sorted(bass[:, 1]) == [1, 3, 5, 7]  # bass on beats 1 and 3
    with pytest.raises(ConfigError, match="pattern"):
        theory.accompaniment([(0, 4, 7)], measures[:1], beat_q=1.0, pattern="waltz")


def test_window_loops_short_pieces_and_cuts_long_notes():
    perf = _perf([[60, 0.0, 1.0, 80, 0], [64, 5.0, 9.5, 80, 0]], [0, 5], 10.0)
    win = arrange.window(perf, start=0.0, seconds=25.0)
    assert win.duration == 25.0
    np.testing.assert_allclose(win.notes[:, 1], [0, 5, 10, 15, 20])
    assert win.notes[:, 2].max() <= 25.0
    np.testing.assert_allclose(win.beats, [0, 5, 10, 15, 20])
    late = arrange.window(perf, start=5.0, seconds=3.0)
    np.testing.assert_allclose(late.notes[:, 1:3], [[0.0, 3.0]])


def test_n_windows():
    perf = _perf([[60, 0, 1, 80, 0]], [0], 95.0)
    assert arrange.n_windows(perf, seconds=30.0, max_windows=8) == 3
    assert arrange.n_windows(perf, seconds=30.0, max_windows=1) == 1
    assert arrange.n_windows(_perf([[60, 0, 1, 80, 0]], [0], 12.0), seconds=30.0,
                       max_windows=8) == 1


# ---------------------------------------------------------------------------------------
# derived affect labels


def _pattern(pitches, bpm, seconds, velocity, per_beat=1, jitter=0.0, rng=None):
    beat = 60.0 / bpm
    step = beat / per_beat
    starts = np.arange(0, seconds, step)
    if jitter:
        starts = np.sort(starts + rng.uniform(-jitter, jitter, len(starts)).clip(0))
    notes = [[pitches[i % len(pitches)], t, t + step * 0.9, velocity, 0]
             for i, t in enumerate(starts)]
    return _perf(notes, np.arange(0, seconds, beat), seconds)


def test_derive_affect_orders_clear_contrasts(rng):
    major = [60, 64, 67, 72, 67, 64, 62, 65, 69, 71]
    minor = [57, 60, 64, 69, 64, 60, 59, 62, 65, 68]
    happy = affect.derive_affect(_pattern(major, 125, 20, 105, per_beat=2))
    sad = affect.derive_affect(_pattern(minor, 58, 20, 50, jitter=0.2, rng=rng))
    for labels in (happy, sad):
        assert set(labels) == set(TARGETS)
        assert all(0.0 <= v <= 1.0 for v in labels.values())
    assert happy["valence"] > sad["valence"] + 0.3
    assert happy["energy"] > sad["energy"] + 0.3
    assert happy["danceability"] > sad["danceability"] + 0.3


def test_derive_affect_uses_the_given_key():
    perf = _pattern([60, 64, 67], 100, 10, 80)
    as_major = affect.derive_affect(perf, tonic_mode=(0, "major"))
    as_minor = affect.derive_affect(perf, tonic_mode=(0, "minor"))
    assert as_major["valence"] > as_minor["valence"]
    assert as_major["energy"] == as_minor["energy"]


# ---------------------------------------------------------------------------------------
# music21 and rendering (skipped when the optional extra is not installed)


def test_score_data_reads_pickup_beats_and_chord_symbols():
    m21 = pytest.importorskip("music21")
    part = m21.stream.Part()
    pickup = m21.stream.Measure(number=0)
    pickup.append(m21.meter.TimeSignature("3/4"))
    pickup.append(m21.note.Note("G4", quarterLength=1))
    pickup.paddingLeft = 2.0
    part.append(pickup)
    bar = m21.stream.Measure(number=1)
    bar.append(m21.harmony.ChordSymbol("C"))
    bar.append(m21.note.Note("C5", quarterLength=2))
    g7 = m21.harmony.ChordSymbol("G7")
    g7.offset = 2.0
    bar.insert(2.0, g7)
    bar.insert(2.0, m21.note.Note("E5", quarterLength=1))
    part.append(bar)
    score = m21.stream.Score([part])
    data = corpus.score_data(score)
    assert len(data.parts) == 1
    np.testing.assert_allclose(data.parts[0], [[67, 0, 1], [72, 1, 2], [76, 3, 1]])
    np.testing.assert_allclose(data.measures, [[0, 1], [1, 4]])
    np.testing.assert_allclose(data.beats, [0, 1, 2, 3])
    assert data.beat_q == 1.0 and data.total_q == 4.0
    assert data.chords == [(1.0, (0, 4, 7)), (3.0, (7, 2, 5, 11))]  # root first


def _renderer() -> str:
    pytest.importorskip("pretty_midi")
    available = render.available_renderers()
    if not available:
        pytest.skip("no MIDI renderer installed (pip install 'musicaffect[scores]')")
    return available[0]


def test_to_midi_keeps_notes_and_programs():
    pretty_midi = pytest.importorskip("pretty_midi")
    import io

    perf = _perf([[60, 0.0, 0.5, 90, 0], [64, 0.5, 1.0, 90, 0], [36, 0.0, 1.0, 70, 1]],
                 [0, 0.5], 1.0, programs=(40, 32))
    pm = pretty_midi.PrettyMIDI(io.BytesIO(render.to_midi(perf)))
    assert [i.program for i in pm.instruments] == [40, 32]
    assert [len(i.notes) for i in pm.instruments] == [2, 1]
    assert pm.instruments[0].notes[1].start == pytest.approx(0.5, abs=1e-2)


def test_render_midi_gives_normalised_audio():
    renderer = _renderer()
    perf = _perf([[60 + k, k * 0.25, k * 0.25 + 0.2, 90, 0] for k in range(8)], [0], 2.0)
    y = render.render_midi(render.to_midi(perf), seconds=2.0, sr=22050, renderer=renderer)
    assert y.shape == (44100,) and y.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert np.abs(y).max() == pytest.approx(0.9, abs=1e-3)
    assert np.sqrt(np.mean(y[:22050] ** 2)) > 0.01
    assert np.abs(y[-10:]).max() < 0.01  # faded out


def test_unknown_renderer_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown renderer"):
        render.resolve_renderer("timidity")


def test_render_work_renders_a_folk_song_and_resumes(tmp_path):
    pytest.importorskip("music21")
    _renderer()
    import soundfile as sf

    work = corpus.Work("folksong", "essenFolksong/altdeu10.abc", 5)
    clips = build.render_work(work, tmp_path, seed=0, clip_seconds=6.0)
    assert len(clips) == 1
    clip = clips[0]
    assert clip.genre == "Folk" and clip.group == work.key
    assert len(clip.programs.split()) == 3  # melody, chords, bass
    assert all(0.0 <= getattr(clip, t) <= 1.0 for t in TARGETS)
    y, sr = sf.read(tmp_path / clip.file)
    assert sr == 22050 and len(y) == 6 * 22050
    mtime = (tmp_path / clip.file).stat().st_mtime_ns
    assert build.render_work(work, tmp_path, seed=0, clip_seconds=6.0) == clips
    assert (tmp_path / clip.file).stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_build_scores_sample_end_to_end(tmp_path):
    pytest.importorskip("music21")
    _renderer()
    from musicaffect.data.layout import index_clips, is_synthetic

    root = build.build_scores_sample(tmp_path / "data", seed=0, clips_per_class=2,
                                 clip_seconds=8.0, jobs=2, styles=["chorale", "folksong"],
                                 test_fraction=0.5, progress=False)
    assert (root / build.SOURCE_FILE).read_text().startswith("REAL COMPOSITIONS")
    assert not is_synthetic(root)
    genre = [r for split in ("train", "test") for r in index_clips(root, split=split)]
    assert sorted(r.genre20 for r in genre) == ["Classical", "Classical", "Folk", "Folk"]
    tasks = index_clips(root, dataset="multitask", split="train")
    assert tasks and all(set(r.targets) == set(TARGETS) for r in tasks)
    labels = (root / build.AUDIO_DIR / build.LABELS_FILE).read_text().splitlines()
    assert labels[0] == "file,genre,valence,energy,danceability,group,split"
    assert len(labels) == 5
