"""Make the musicnn parity references with the ORIGINAL TensorFlow code (run once, by hand).

Runs OUTSIDE the project, in a scratch venv that has TensorFlow (never a project dependency)::

    python3 -m venv /work/scratch/tfvenv
    /work/scratch/tfvenv/bin/pip install tensorflow-cpu tf-keras librosa
    /work/scratch/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    TF_USE_LEGACY_KERAS=1 /work/scratch/tfvenv/bin/python tools/musicnn_reference.py tests/data/musicnn

It writes three deterministic 6-second 16 kHz clips (generated here with numpy: a loud
chord with vibrato, pink-ish noise bursts, a chirp over clicks; seeded) as 16-bit FLAC and,
for each clip and each of MSD_musicnn / MTT_musicnn, ``<clip>.<model>.npz`` with the
original extractor's outputs: ``taggram`` (P, 50) sigmoid probabilities, ``mean_pool`` / ``max_pool``
(P, 753), ``taggram_float16`` (the taggram of the unpatched extractor, for the record),
``penultimate`` (P, 200) from the original model graph run on all patches at once, and
``penultimate_extractor``: what the extractor returns, which repeats the first patch's
penultimate for every patch (its loop concatenates a stale variable, ``penultimate_``,
while it unpacks the new value as ``backend_``; ``cnn1``-``cnn3`` likewise).

One change to the original, stated: its ``batch_data`` casts the mel power to float16
before ``log10(10000 x + 1)``, so loud frames overflow to inf. It is replaced here by the
same function without that cast (float32 throughout), which is what the port computes.
Nothing else of the original is changed; its model graph and checkpoint restore run as
shipped (the restore is checked, since the original's bare ``except`` would hide a failure).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

SR = 16000
SECONDS = 6.0
CLIPS = ("chord", "noise", "chirp")
MODELS = ("MSD_musicnn", "MTT_musicnn")


def make_clip(name: str) -> np.ndarray:
    """One deterministic test clip (float32 in [-1, 1], 6 s at 16 kHz)."""
    rng = np.random.default_rng(CLIPS.index(name) + 17)
    t = np.arange(int(SECONDS * SR)) / SR
    if name == "chord":      # loud: its mel power overflows float16 after x 10000
        f0 = 220.0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
        y = sum(np.sin(2 * np.pi * np.cumsum(f0 * r) / SR) / r for r in (1, 1.26, 1.5, 2, 3))
        y = 0.9 * y / np.max(np.abs(y))
    elif name == "noise":
        white = rng.standard_normal(t.size)
        pink = np.cumsum(white) * 0.02
        pink -= np.convolve(pink, np.ones(401) / 401, mode="same")
        env = (np.sin(2 * np.pi * 1.5 * t) > 0).astype(float) * 0.8 + 0.2
        y = 0.3 * env * (pink / np.max(np.abs(pink)) + 0.2 * white / 4)
    else:
        chirp = np.sin(2 * np.pi * (100 * t + 250 * t ** 2))
        clicks = np.zeros(t.size)
        clicks[:: SR // 4] = 1.0
        clicks = np.convolve(clicks, np.exp(-np.arange(400) / 40.0), mode="same")
        y = 0.4 * chirp + 0.5 * clicks * rng.uniform(0.5, 1.0)
    return np.clip(y, -1, 1).astype(np.float32)


def check_restore(model: str) -> None:
    """Restore the checkpoint into the original graph, letting any failure raise."""
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, config.N_MELS])
    is_training = tf.compat.v1.placeholder(tf.bool)
    with tf.name_scope("model"):
        models.define_model(x, is_training, model, 50)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(models.__file__) + f"/{model}/")


def graph_outputs(model: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The original model graph run on all patches at once (restore checked)."""
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, batch.shape[1], batch.shape[2]])
    is_training = tf.compat.v1.placeholder(tf.bool)
    with tf.name_scope("model"):
        y, *_, mean_pool, max_pool, penultimate = models.define_model(x, is_training, model, 50)
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.dirname(models.__file__) + f"/{model}/")
        out = sess.run([tf.nn.sigmoid(y), penultimate, mean_pool, max_pool],
                       feed_dict={x: batch, is_training: False})
    return dict(zip(("taggram", "penultimate", "mean_pool", "max_pool"), out))


def main(out: Path) -> None:
    import librosa
    import soundfile as sf
    import tensorflow as tf  # noqa: F401  (only in the scratch venv)
    from musicnn import configuration as config
    from musicnn import extractor

    original_batch_data = extractor.batch_data

    def batch_data_float32(audio_file, n_frames, overlap):
        audio, sr = librosa.load(audio_file, sr=config.SR)
        rep = librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=config.FFT_HOP,
                                             n_fft=config.FFT_SIZE, n_mels=config.N_MELS).T
        rep = np.log10(10000 * rep + 1)            # float32: no float16 cast
        starts = range(0, rep.shape[0] - n_frames + 1, overlap)
        return np.stack([rep[s:s + n_frames] for s in starts]), rep

    for model in MODELS:   # the original's bare except would hide a failed restore
        check_restore(model)
    out.mkdir(parents=True, exist_ok=True)
    for name in CLIPS:
        wav = out / f"{name}.flac"
        sf.write(wav, make_clip(name), SR, subtype="PCM_16")
        for model in MODELS:
            extractor.batch_data = original_batch_data
            tg16, _, _ = extractor.extractor(str(wav), model=model, extract_features=True)
            extractor.batch_data = batch_data_float32
            taggram, _, feats = extractor.extractor(str(wav), model=model, extract_features=True)
            batch, _ = batch_data_float32(str(wav), 187, 187)
            graph = graph_outputs(model, batch)
            assert np.allclose(graph["taggram"], taggram, atol=1e-6)
            np.savez_compressed(out / f"{name}.{model}.npz",
                                taggram=taggram.astype(np.float32),
                                taggram_float16=tg16.astype(np.float32),
                                penultimate=graph["penultimate"].astype(np.float32),
                                penultimate_extractor=feats["penultimate"].astype(np.float32),
                                mean_pool=feats["mean_pool"].astype(np.float32),
                                max_pool=feats["max_pool"].astype(np.float32))
            print(name, model, taggram.shape, "float16 taggram finite:",
                  bool(np.isfinite(tg16).all()), "extractor penultimate repeats patch 0:",
                  bool(np.all(feats["penultimate"] == feats["penultimate"][:1])))


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/musicnn"))
