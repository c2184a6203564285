"""Cross-validation: folds are disjoint, cover the clips, are stratified and keep groups
together; `musicaffect cv` runs on the sample with a classical and a tiny deep preset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicaffect.cli import main
from musicaffect.cv import make_folds, pool_clips, read_groups, stratify_labels
from musicaffect.errors import DataError


def test_folds_are_disjoint_cover_and_stratified(rng):
    y = np.repeat(np.arange(4), [20, 15, 10, 5])
    folds = make_folds(y, folds=5, seed=0)
    assert len(folds) == 5
    allidx = np.concatenate(folds)
    assert sorted(allidx.tolist()) == list(range(len(y)))        # disjoint and complete
    for f in folds:
        counts = np.bincount(y[f], minlength=4)
        np.testing.assert_array_equal(counts, [4, 3, 2, 1])     # each class split evenly
    # another seed, other folds
    assert any(not np.array_equal(a, b) for a, b in zip(folds, make_folds(y, folds=5, seed=1)))


def test_folds_respect_groups(rng):
    n = 90
    groups = np.repeat(np.arange(30), 3)                        # works of 3 excerpts
    y = groups % 3
    folds = make_folds(y, groups, folds=5, seed=0)
    seen = {}
    for k, f in enumerate(folds):
        for g in np.unique(groups[f]):
            assert seen.setdefault(g, k) == k                   # a group in one fold only
    assert sorted(np.concatenate(folds).tolist()) == list(range(n))
    with pytest.raises(DataError, match="cannot make 5 folds"):
        make_folds(np.zeros(8, int), np.repeat([0, 1], 4), folds=5)


def test_stratify_labels_bins_regression_values():
    v = np.linspace(0, 1, 100)
    s = stratify_labels(v, classify=False, bins=4)
    assert set(s.tolist()) == {0, 1, 2, 3} and np.all(np.diff(s) >= 0)


def test_groups_read_from_the_data_root(tmp_path):
    (tmp_path / "clips.csv").write_text('id,file,split,group,genre\n1,a.wav,train,"w, 1",Rock\n'
                                        "2,b.wav,test,,Jazz\n3,c.wav,train,w2,Rock\n")
    assert read_groups(tmp_path) == {"1": "w, 1", "3": "w2"}
    assert read_groups(tmp_path / "nothing") == {}


def test_pool_uses_groups_of_the_data_root(sample_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(sample_root, root, symlinks=True)
    pool = pool_clips(root, "genre")
    assert not pool.info["grouped"] and len(set(pool.groups)) == len(pool.ids)
    lines = ["id,group"] + [f"{cid},g{i // 2}" for i, cid in enumerate(pool.ids)]
    (root / "groups.csv").write_text("\n".join(lines) + "\n")
    grouped = pool_clips(root, "genre")
    assert grouped.info["grouped"] and grouped.info["n_groups"] == (len(pool.ids) + 1) // 2
    folds = make_folds(grouped.strat, grouped.groups, folds=3, seed=0)
    for f in folds:
        rest = set(range(len(grouped.ids))) - set(f.tolist())
        assert not {grouped.groups[i] for i in f} & {grouped.groups[i] for i in rest}


@pytest.mark.slow
def test_cv_runs_through_the_cli(sample_root, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", sample_root, "--presets", "classical-logreg,lstm-beat-mel",
                 "--folds", "2", "--budget", "tiny", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "classical-logreg" in text and "+-" in text and "SYNTHETIC" in text
    table = json.loads((out / "cv_table.json").read_text())
    assert [r["preset"] for r in table["rows"]] == ["classical-logreg", "lstm-beat-mel"]
    assert table["metrics"] == ["accuracy", "macro_f1"]
    for r in table["rows"]:
        assert r["runs"] == 2 and 0.0 <= r["accuracy_mean"] <= 1.0
        assert r["accuracy_std"] >= 0.0 and r["seconds_mean"] > 0.0
    pool = pool_clips(sample_root, "genre")
    assert sum(table["info"]["fold_sizes"]) == len(pool.ids)
    assert (out / "cv_table.md").read_text().count("|") > 10
    # every fold's runs were trained without the fold's clips
    for k in range(2):
        test_ids = {line.split("\t")[0].split(".")[0] for line in
                    (out / "data" / f"fold-{k}" / "fma_genre_spectrograms" / "test_labels.txt")
                    .read_text().splitlines()[1:]}
        train_ids = {line.split("\t")[0].split(".")[0] for line in
                     (out / "data" / f"fold-{k}" / "fma_genre_spectrograms" / "train_labels.txt")
                     .read_text().splitlines()[1:]}
        assert test_ids and not test_ids & train_ids
        assert test_ids | train_ids == set(pool.ids)


@pytest.mark.slow
def test_cv_affect_presets(sample_root, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", sample_root, "--presets", "affect-classical-ridge", "--folds", "2",
                 "--budget", "tiny", "--out", str(out), "--no-progress"]) == 0
    table = json.loads((out / "cv_table.json").read_text())
    assert table["metrics"][-1] == "spearman_mean" and table["info"]["dataset"] == "multitask"
    assert main(["cv", sample_root, "--presets", "affect-classical-ridge,classical-logreg",
                 "--out", str(out)]) == 2
    assert "one kind" in capsys.readouterr().err


def test_suite_seeds_aggregate_mean_and_std():
    from musicaffect.suites import SuiteResult, aggregate_seeds

    cols = ["experiment", "accuracy", "ref_accuracy"]
    res = [SuiteResult("Genre", [{"experiment": "a", "accuracy": acc, "ref_accuracy": 0.31}],
                       cols, "note", {"a": f"/runs/seed-{i}/a"}) for i, acc in
           enumerate([0.2, 0.4, 0.6])]
    agg = aggregate_seeds(res)
    assert agg.columns == ["experiment", "accuracy", "accuracy_std", "ref_accuracy"]
    row = agg.rows[0]
    assert row["accuracy"] == pytest.approx(0.4) and row["accuracy_std"] == pytest.approx(0.2)
    assert row["ref_accuracy"] == 0.31 and "3 seeds" in agg.title
    assert len(agg.runs) == 3
