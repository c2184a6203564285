"""Rendering a performance to audio: MIDI bytes with ``pretty_midi``, then audio with the
General MIDI SoundFont that ships in ``pretty_midi`` (``TimGM6mb.sf2``).

Renderers, tried in this order by ``renderer="auto"`` (:data:`RENDERERS`): the
``tinysoundfont`` package, the ``midirenderer`` package, the ``fluidsynth`` program.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from musicaffect.errors import ConfigError, DataError
from musicaffect.features.params import FeatureParams
from musicaffect.samples.arrange import Performance
from musicaffect.samples.corpus import INSTALL_HINT

#: renderers in the order ``renderer="auto"`` tries them
RENDERERS: tuple[str, ...] = ("tinysoundfont", "midirenderer", "fluidsynth")



def soundfont_path() -> Path:
    """The General MIDI SoundFont that ships with ``pretty_midi`` (``TimGM6mb.sf2``)."""
    try:
        import pretty_midi
    except ImportError:
        raise ConfigError(f"the scores sample needs pretty_midi: {INSTALL_HINT}") from None
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise ConfigError(f"pretty_midi has no SoundFont at {path}: reinstall pretty_midi")
    return path


def available_renderers() -> list[str]:
    """The renderers usable here, in the order of :data:`RENDERERS`."""
    import importlib.util

    out = [name for name in ("tinysoundfont", "midirenderer")
           if importlib.util.find_spec(name) is not None]
    if shutil.which("fluidsynth"):
        out.append("fluidsynth")
    return out


def resolve_renderer(renderer: str = "auto") -> str:
    """The renderer to use: ``renderer`` itself (checked), or the first available."""
    available = available_renderers()
    if renderer == "auto":
        if not available:
            raise ConfigError("no MIDI renderer found: " + INSTALL_HINT + ", or install "
                              "the fluidsynth program (apt-get install fluidsynth)")
        return available[0]
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}: choose auto or one of "
                          f"{', '.join(RENDERERS)}")
    if renderer not in available:
        raise ConfigError(f"renderer {renderer!r} is not installed here (available: "
                          f"{', '.join(available) or 'none'}): {INSTALL_HINT}")
    return renderer


def to_midi(perf: Performance) -> bytes:
    """Standard MIDI file bytes of a performance (one instrument per track)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for t, program in enumerate(perf.programs):
        inst = pretty_midi.Instrument(program=int(program), name=f"track{t}")
        for pitch, start, end, vel, _ in perf.notes[perf.notes[:, 4] == t]:
            if 0 <= pitch <= 127 and end > start:
                inst.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch),
                                                   start=float(start), end=float(end)))
        if inst.notes:
            pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


@lru_cache(maxsize=2)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def render_midi(midi: bytes, *, seconds: float, sr: int = FeatureParams.sr, renderer: str = "auto",
                soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """Render MIDI bytes to mono audio with a SoundFont.

    Parameters
    ----------
    midi : bytes
        A standard MIDI file.
    seconds : float
        Length of the output (cut or zero-padded; a 50 ms fade-out at the end).
    sr : int
        Sample rate of the output.
    renderer : str
        "auto" or one of :data:`RENDERERS`.
    soundfont : path, optional
        SF2 file (default :func:`soundfont_path`).

    Returns
    -------
    y : np.ndarray [shape=(round(seconds * sr),)]
        float32, peak-normalised to 0.9 (all zeros stays zeros).
    """
    name = resolve_renderer(renderer)
    sf2 = str(soundfont or soundfont_path())
    n = int(round(seconds * sr))
    if name == "tinysoundfont":
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=sr)
        synth.sfload(_soundfont_bytes(sf2))
        seq = tinysoundfont.Sequencer(synth)
        seq.add(tinysoundfont.midi.load_memory(midi))
        stereo = np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2)
        y = stereo.mean(axis=1)
    elif name == "midirenderer":
        import midirenderer
        import soundfile as sf

        wav = midirenderer.render_wave_from(_soundfont_bytes(sf2), midi)
        y, native = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        y = _resample(y.mean(axis=1), native, sr)
    else:
        y = _render_fluidsynth(midi, sf2=sf2, sr=sr)
    y = np.asarray(y, dtype=np.float32)[:n]
    y = np.pad(y, (0, n - len(y)))
    fade = min(n, int(0.05 * sr))
    if fade:
        y[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(y).max()) if n else 0.0
    return y * np.float32(0.9 / peak) if peak > 0 else y


def _resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if orig_sr == sr:
        return y
    import librosa

    return librosa.resample(y, orig_sr=orig_sr, target_sr=sr)


def _render_fluidsynth(midi: bytes, *, sf2: str, sr: int) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="musicaffect-fs-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        proc = subprocess.run(["fluidsynth", "-ni", "-g", "0.5", "-F", str(wav), "-r",
                               str(sr), sf2, str(mid)], capture_output=True, text=True,
                              check=False, timeout=600)
        if proc.returncode != 0 or not wav.is_file():
            raise DataError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()}",
                            path=mid)
        y, native = sf.read(wav, dtype="float32", always_2d=True)
    return _resample(y.mean(axis=1), native, sr)
