"""The real-music sample: work selection, arrangement, derived labels, rendering, the build."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from musicaffect.data.labels import GENRES20, TARGETS, map_genre
from musicaffect.errors import ConfigError, DataError
from musicaffect.samples import affect, arrange, build, corpus, render, theory


def _perf(notes, beats, seconds, programs=(0,)) -> arrange.Performance:
    return arrange.Performance(notes=np.array(notes, dtype=float).reshape(-1, 5),
                               beats=np.array(beats, dtype=float), programs=programs,
                               duration=seconds)


def _clip(file: str, work: str, style: str = "ragtime", group: str | None = None,
          window: int = 0) -> build.ClipInfo:
    return build.ClipInfo(file=file, style=style, genre=corpus.STYLES[style].genre,
                          group=group or work, work=work, title="", window=window, start=0.0,
                          qpm=100.0, key="C major", ensemble="piano", programs="0",
                          renderer="x", valence=0.5, energy=0.5, danceability=0.5)


# ---------------------------------------------------------------------------------------
# styles, sizes and works


def test_styles_map_to_fma_genres_with_three_lab_classes():
    genres = {s.genre for s in corpus.STYLES.values()}
    assert genres <= set(GENRES20)
    assert len({map_genre(g) for g in genres} - {None}) >= 3
    assert len(corpus.STYLES) >= 6


def test_sizes_use_known_styles_and_dev_is_big_enough():
    for spec in build.SIZES.values():
        assert set(spec.styles) <= set(corpus.STYLES)
    dev = build.SIZES["dev"]
    assert len(dev.styles) >= 6 and dev.windows > 1
    # ragtime has two works of at most 8 excerpts: the others must make up >= 300 clips
    big = [s for s in dev.styles if corpus.STYLES[s].name != "ragtime"]
    assert dev.clips_per_style * (len(big) - 1) >= 300  # even if one more style falls short
    small = build.sample_quotas("small")
    assert 30 <= sum(small.values()) <= 50 and len(small) == 6


def test_check_styles_orders_and_rejects():
    assert corpus.check_styles(["ragtime", "chorale", "ragtime"]) == ["chorale", "ragtime"]
    assert corpus.check_styles(None) == list(corpus.STYLES)
    with pytest.raises(ConfigError, match="unknown score style 'disco'"):
        corpus.check_styles(["chorale", "disco"])
    with pytest.raises(ConfigError, match="no score style"):
        corpus.check_styles([])


def test_sample_quotas_follow_size_styles_and_overrides():
    assert build.sample_quotas("dev") == dict.fromkeys(build.SIZES["dev"].styles,
                                                       build.SIZES["dev"].clips_per_style)
    assert build.sample_quotas("small", styles=["fiddle", "medieval"], clips_per_style=3) == {
        "medieval": 3, "fiddle": 3}
    with pytest.raises(ConfigError, match="unknown size 'full'.*small or dev"):
        build.sample_quotas("full")
    with pytest.raises(ConfigError, match="clips_per_style"):
        build.sample_quotas("small", clips_per_style=0)


def test_work_slug_group_and_key():
    tune = corpus.Work("fiddle", "oneills1850/0001-0050.abc", 3)
    assert tune.key == "oneills1850/0001-0050.abc#3"
    assert tune.group == tune.key
    assert "." not in tune.slug and tune.slug.startswith("fiddle_")
    movement = corpus.Work("quartet", "mozart/k458/movement2.mxl")
    assert movement.group == "mozart/k458"
    assert corpus.Work("renaissance", "palestrina/Agnus_II_03_b.krn").group == \
        "palestrina/mass03"
    assert "." not in corpus.Work("chorale", "bach/bwv66.6.mxl").slug
    # versions a/b of one Trecento piece, and a set of polonaises, are one group each
    a = corpus.Work("medieval", "trecento/PMFC_12_10a-Credo PMFC12.10a.xml")
    b = corpus.Work("medieval", "trecento/PMFC_12_10b-Credo PMFC12.10b.xml")
    other = corpus.Work("medieval", "trecento/PMFC_12_11a-Credo PMFC12.11a.xml")
    assert a.group == b.group != other.group
    assert corpus.Work("medieval", "trecento/PMFC_04-Cara mi donna.xml").group == \
        "trecento/PMFC_04-Cara mi donna.xml"
    assert corpus.Work("romantic", "schumann_clara/polonaise_op1n2.mxl").group == \
        corpus.Work("romantic", "schumann_clara/polonaise_op1n4.mxl").group


def test_style_families_select_the_intended_files(tmp_path):
    paths = ["bach/bwv66.6.mxl", "bach/bwv846.mxl", "trecento/PMFC_12_4-Gloria Rvat 1419.xml",
             "trecento/PMFC_12_4-Gloria Rvat 1419_bak.xml", "beethoven/opus132.mxl",
             "beethoven/opus18no1/movement1.mxl", "beethoven/opus18no1/movement1.krn",
             "schumann_clara/polonaise_op1n1.mxl", "schumann_robert/opus48no2.mxl"]
    chosen = {s: {w.path for w in corpus.candidate_works(s, paths=paths, root=tmp_path)}
              for s in ("chorale", "medieval", "quartet", "romantic")}
    assert chosen["chorale"] == {"bach/bwv66.6.mxl"}  # the WTC prelude is not a chorale
    assert chosen["medieval"] == {"trecento/PMFC_12_4-Gloria Rvat 1419.xml"}  # no backup
    assert chosen["quartet"] == {"beethoven/opus18no1/movement1.mxl"}  # no whole quartets
    assert chosen["romantic"] == {"schumann_clara/polonaise_op1n1.mxl"}  # no duplicate song


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


# ---------------------------------------------------------------------------------------
# choosing clips and splitting


def test_works_wanted_fills_the_quota_with_at_least_two_works():
    assert build.works_wanted(9, [], windows=3) == 3
    assert build.works_wanted(9, [], windows=1) == 9
    one = [[_clip(f"a{k}.wav", "A") for k in range(8)]]
    assert build.works_wanted(8, one, windows=8) == 1  # quota met, but a second work
    # two works seen, 1.5 clips each: 3 more works for the 4 missing clips
    seen = [[_clip("a.wav", "A")], [_clip("b0.wav", "B"), _clip("b1.wav", "B")]]
    assert build.works_wanted(7, seen, windows=3) == 3
    assert build.works_wanted(3, seen, windows=3) == 0


def test_pick_clips_shares_the_quota_between_works():
    a = [_clip(f"a{k}.wav", "A", window=k) for k in range(6)]
    b = [_clip(f"b{k}.wav", "B", window=k) for k in range(2)]
    c = [_clip("c0.wav", "C")]
    picked = build.pick_clips([a, b, [], c], quota=6)
    assert [p.file for p in picked] == ["a0.wav", "b0.wav", "c0.wav", "a1.wav", "b1.wav",
                                        "a2.wav"]
    assert len(build.pick_clips([a, b, c], quota=100)) == 9


def test_style_splits_are_grouped_stratified_and_seeded():
    clips = []
    for style, n_groups, per_group in (("chorale", 20, 1), ("quartet", 6, 5),
                                       ("ragtime", 2, 4)):
        for g in range(n_groups):
            clips += [_clip(f"{style}{g}-{k}.wav", f"{style}/w{g}", style=style,
                            group=f"{style}/g{g}", window=k) for k in range(per_group)]
    out = build.assign_style_splits(clips, test_fraction=0.2, seed=0)
    assert [c.file for c in out] == [c.file for c in clips]
    sides = {}
    for c in out:
        sides.setdefault(c.group, set()).add(c.split)
    assert all(len(s) == 1 for s in sides.values())  # a group on one side only
    tests = Counter(c.style for c in out if c.split == "test")
    assert tests["chorale"] == 4 and tests["quartet"] == 5
    assert tests["ragtime"] == 4  # two works: one each side
    assert build.assign_style_splits(clips, test_fraction=0.2, seed=0) == out
    others = [build.assign_style_splits(clips, test_fraction=0.2, seed=s) for s in (1, 2, 3)]
    assert any(o != out for o in others)
    assert {c.split for c in build.assign_style_splits(clips, test_fraction=0.0)} == {"train"}
    with pytest.raises(ConfigError, match="test_fraction"):
        build.assign_style_splits(clips, test_fraction=1.0)


def _fake_render(monkeypatch, works_by_style, windows_of, fail=()):
    """select_and_render with fake works: work i of a style gives ``windows_of(key)``
    excerpts (at most the cap); works named in ``fail`` raise DataError."""
    calls = []

    def render_work(work, audio_dir, *, windows=1, **_):
        calls.append((work.key, windows))
        if work.key in fail:
            raise DataError("cannot read", path=work.key)
        n = min(windows, windows_of(work.key))
        return [_clip(f"{work.slug}-w{k}.wav", work.key, style=work.style, group=work.group,
                      window=k) for k in range(n)]

    monkeypatch.setattr(build, "render_work", render_work)
    monkeypatch.setattr(build, "resolve_renderer", lambda r="auto": "fake")
    monkeypatch.setattr(build, "candidate_works", lambda s, seed=0: works_by_style[s])
    return calls


def test_select_and_render_meets_quotas_replaces_failures_and_reports_shortfall(
        tmp_path, monkeypatch, caplog):
    works = {"chorale": [corpus.Work("chorale", f"bach/bwv{i}.mxl") for i in range(20)],
             "quartet": [corpus.Work("quartet", f"haydn/opus{i}/movement1.mxl")
                         for i in range(10)],
             "ragtime": [corpus.Work("ragtime", "joplin/a.mxl"),
                         corpus.Work("ragtime", "joplin/b.mxl")]}
    calls = _fake_render(monkeypatch, works, lambda key: 1 if "bach" in key else 9 if "joplin" in key else 5,
                         fail={"bach/bwv1.mxl"})
    with caplog.at_level(logging.WARNING):
        clips = build.select_and_render(tmp_path, {"chorale": 5, "quartet": 7, "ragtime": 20},
                                        windows=3, jobs=1, progress=False)
    by_style = Counter(c.style for c in clips)
    assert by_style == {"chorale": 5, "quartet": 7, "ragtime": 16}
    assert "bach/bwv1.mxl" not in {c.work for c in clips}  # failed, replaced
    assert len({c.work for c in clips if c.style == "chorale"}) == 5
    # quartet: 3 excerpts per work at most, shared out from the first excerpts
    quartet = [c for c in clips if c.style == "quartet"]
    assert len({c.work for c in quartet}) == 3 and max(c.window for c in quartet) == 2
    assert dict(calls)["haydn/opus0/movement1.mxl"] == 3
    assert dict(calls)["joplin/a.mxl"] == 8  # ragtime's own cap (few works)
    assert "style ragtime: 16 of 20 clips" in caplog.text
    assert all(c.split == "" for c in clips)


# ---------------------------------------------------------------------------------------
# labels


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("label_by", ["genre", "style"])
def test_write_labels_genre_column_follows_label_by(tmp_path, label_by):
    clips = [_clip("a.wav", "A", style="chorale"), _clip("b.wav", "B", style="fiddle"),
             _clip("c.wav", "C", style="ragtime")]
    clips = [replace(c, split=s) for c, s in zip(clips, ("train", "test", "train"))]
    labels, works = build.write_labels(clips, tmp_path, label_by=label_by)
    rows = _read_csv(labels)
    assert list(rows[0]) == ["file", "genre", "style", *TARGETS, "group", "split"]
    assert [r["style"] for r in rows] == ["chorale", "fiddle", "ragtime"]
    expected = (["Classical", "Folk", "Jazz"] if label_by == "genre"
                else ["chorale", "fiddle", "ragtime"])
    assert [r["genre"] for r in rows] == expected
    assert [r["split"] for r in rows] == ["train", "test", "train"]
    detail = _read_csv(works)
    assert [r["genre"] for r in detail] == ["Classical", "Folk", "Jazz"]
    assert detail[0]["ensemble"] == "piano"


def test_labels_by_genre_are_accepted_by_build_dataset(tmp_path):
    from musicaffect.features.build import read_labels

    clips = [replace(_clip("a.wav", "A", style="quartet"), split="test")]
    labels, _ = build.write_labels(clips, tmp_path)
    rows = read_labels(labels)
    assert [(r.file, r.genre, r.split, r.group) for r in rows] == [
        ("a.wav", "Classical", "test", "A")]


def test_write_labels_rejects_unknown_label_by(tmp_path):
    with pytest.raises(ConfigError, match="label_by"):
        build.write_labels([], tmp_path, label_by="mood")
    with pytest.raises(ConfigError, match="label_by"):
        build.build_scores_sample(tmp_path, label_by="mood")


def test_audio_changed_counts_clips_rendered_after_the_last_build(tmp_path):
    import os

    audio = tmp_path / "scores_audio"
    audio.mkdir()
    clips = [_clip("a.wav", "A"), _clip("b.wav", "B")]
    for c in clips:
        (audio / c.file).write_bytes(b"x")
    assert build.audio_changed(tmp_path, audio, clips) == 0  # never built
    (tmp_path / "clips.csv").write_text("id\n")
    old = (tmp_path / "clips.csv").stat().st_mtime
    os.utime(audio / "a.wav", (old - 10, old - 10))
    os.utime(audio / "b.wav", (old + 10, old + 10))
    assert build.audio_changed(tmp_path, audio, clips) == 1


def test_source_text_counts_styles_and_splits():
    clips = [replace(_clip(f"{s}{i}.wav", f"{s}{i}", style=s), split=sp)
             for s in ("chorale", "ragtime") for i, sp in enumerate(("train", "train", "test"))]
    text = build.source_text(clips, size="dev", seed=3, clip_seconds=30.0, label_by="style")
    assert text.startswith("REAL COMPOSITIONS")
    assert "--size dev" in text and "not listener ratings" in text
    assert "chorale      (Classical) 2/1 clips, 3 groups" in text
    assert "Clips: 6 (4 train, 2 test)" in text


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


def test_window_starts_spread_over_the_whole_piece():
    perf = _perf([[60, 0, 1, 80, 0]], [0], 200.0)
    starts = arrange.window_starts(perf, seconds=30.0, max_windows=3)
    assert starts == [0.0, 85.0, 170.0]  # the last excerpt ends with the piece
    assert np.all(np.diff(starts) >= 30.0)  # no overlap
    assert arrange.window_starts(perf, seconds=30.0, max_windows=1) == [0.0]
    assert arrange.window_starts(_perf([[60, 0, 1, 80, 0]], [0], 50.0), seconds=30.0,
                                 max_windows=3) == [0.0]
    many = arrange.window_starts(perf, seconds=30.0, max_windows=20)
    assert len(many) == 6 and many[-1] + 30.0 <= 200.0 + 1e-9


def test_part_programs_give_the_bottom_part_the_bass_instrument():
    strings = arrange.ENSEMBLES["strings"]  # violin, violin, viola, cello
    assert arrange.part_programs(strings, 4) == (40, 40, 41, 42)
    assert arrange.part_programs(strings, 2) == (40, 42)
    assert arrange.part_programs(strings, 6) == (40, 40, 41, 41, 41, 42)
    assert arrange.part_programs(strings, 1) == (40,)
    assert arrange.part_programs((0,), 3) == (0, 0, 0)


def _score(n_parts: int, qpm: float | None = None, beat_q: float = 1.0) -> corpus.ScoreData:
    part = np.array([[60, 0, 1], [64, 1, 1], [67, 2, 2]], dtype=float)
    return corpus.ScoreData(parts=[part + [12 * (n_parts - i), 0, 0] for i in range(n_parts)],
                            measures=np.array([[0.0, 4.0]]), beats=np.arange(4.0),
                            beat_q=beat_q, total_q=4.0, qpm=qpm)


@pytest.mark.slow
def test_instruments_come_from_pools_shared_by_every_style_and_texture():
    styles = list(corpus.STYLES)
    seen = Counter()
    for seed in range(300):
        picks = [arrange.choose_arrangement(_score(n_parts), corpus.STYLES[s],
                                            np.random.default_rng(seed))
                 for s in styles for n_parts in (1, 4)]
        # the same random state gives the same instruments whatever the style or texture
        assert len({p.ensemble for p in picks}) == 1
        melody, quartet = picks[0], picks[1]
        assert len(melody.programs) == 3 and len(quartet.programs) == 4
        assert melody.pattern is not None and quartet.pattern is None
        assert melody.programs[0] == quartet.programs[0]  # top part / melody
        assert melody.programs[-1] == quartet.programs[-1]  # bass
        seen[melody.ensemble] += 1
    named = sum(n for e, n in seen.items() if e in arrange.ENSEMBLES)
    assert 0.35 < named / 300 < 0.65  # about MIXED_SHARE of the works get a trio
    assert len([e for e in seen if e in arrange.ENSEMBLES]) == len(arrange.ENSEMBLES)
    assert len([e for e in seen if " + " in e]) > 100


def test_choose_instruments_spreads_a_trio_over_the_parts():
    rng = np.random.default_rng(0)
    trios = []
    while len(trios) < 3:
        name, programs = arrange.choose_instruments(5, rng)
        if " + " in name:
            lead, chord, bass = name.split(" + ")
            assert programs == (arrange.LEADS[lead], *[arrange.CHORD_INSTRUMENTS[chord]] * 3,
                                arrange.BASS_INSTRUMENTS[bass])
            trios.append(name)
        else:
            assert programs == arrange.part_programs(arrange.ENSEMBLES[name], 5)


def test_tempo_varies_within_a_style_and_follows_markings():
    chorale, quartet = corpus.STYLES["chorale"], corpus.STYLES["quartet"]
    draws = [arrange.choose_tempo(_score(4, beat_q=1.5), chorale, np.random.default_rng(s))
             for s in range(100)]
    lo, hi = chorale.beat_bpm
    assert lo * 1.5 <= min(draws) and max(draws) <= hi * 1.5
    assert max(draws) - min(draws) > 0.5 * (hi - lo) * 1.5
    marked = [arrange.choose_tempo(_score(4, qpm=100.0), quartet, np.random.default_rng(s))
              for s in range(100)]
    assert 100 * corpus.TEMPO_SPREAD[0] <= min(marked) <= max(marked) <= \
        100 * corpus.TEMPO_SPREAD[1]
    assert max(marked) / min(marked) > 1.3
    fast = arrange.choose_tempo(_score(4, qpm=400.0), quartet, np.random.default_rng(0))
    assert fast == pytest.approx(arrange.BEAT_BPM_LIMITS[1])  # kept within the limits
    # no marking: the style's range
    assert quartet.beat_bpm[0] <= arrange.choose_tempo(_score(4), quartet,
                                                       np.random.default_rng(0)) <= \
        quartet.beat_bpm[1]


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
    # several excerpts (repeats expanded): a new render, spread over the tune
    excerpts = build.render_work(work, tmp_path, seed=0, clip_seconds=6.0, windows=3)
    assert [c.window for c in excerpts] == [0, 1, 2]
    assert excerpts[0].start == 0.0 and np.all(np.diff([c.start for c in excerpts]) >= 6.0)
    assert excerpts[0].ensemble == clip.ensemble and excerpts[0].qpm == clip.qpm
    assert len({c.file for c in excerpts}) == 3
    assert all((tmp_path / c.file).is_file() for c in excerpts)


@pytest.mark.slow
def test_build_scores_sample_end_to_end(tmp_path):
    pytest.importorskip("music21")
    _renderer()
    from musicaffect.data.layout import index_clips, is_synthetic

    root = build.build_scores_sample(tmp_path / "data", seed=0, clips_per_style=2,
                                     clip_seconds=8.0, jobs=2, styles=["chorale", "folksong"],
                                     test_fraction=0.5, progress=False)
    assert (root / build.SOURCE_FILE).read_text().startswith("REAL COMPOSITIONS")
    assert not is_synthetic(root)
    genre = [r for split in ("train", "test") for r in index_clips(root, split=split)]
    # the style's own name is the label by default (labels.json carries the vocabulary)
    assert sorted(r.genre20 for r in genre) == ["chorale", "chorale", "folksong", "folksong"]
    assert sorted({r.genre10 for r in genre}) == ["chorale", "folksong"]
    tasks = index_clips(root, dataset="multitask", split="train")
    assert tasks and all(set(r.targets) == set(TARGETS) for r in tasks)
    labels = (root / build.AUDIO_DIR / build.LABELS_FILE).read_text().splitlines()
    assert labels[0] == "file,genre,style,valence,energy,danceability,group,split"
    assert len(labels) == 5
