"""A labelled dataset of real compositions, rendered from scores to audio.

The scores are the public-domain works that ship inside the ``music21`` package (its
``corpus``). Each selected work is arranged (tempo, General MIDI instruments, dynamics, an
accompaniment for single-melody tunes), rendered to a mono 22050 Hz WAV with the General
MIDI SoundFont that ships in ``pretty_midi`` (``TimGM6mb.sf2``), and the folder of WAVs is
passed through :func:`musicaffect.features.build.build_dataset`. See docs/SCORES.md.

Modules, in the order the data flows:

- :mod:`~musicaffect.samples.corpus`: the styles, their works in the corpus, a score read
  into notes, bars, beats and chord symbols;
- :mod:`~musicaffect.samples.theory`: key estimation, harmonisation, accompaniment patterns;
- :mod:`~musicaffect.samples.arrange`: a work's arrangement, its performance (timed notes)
  and the windows cut from it;
- :mod:`~musicaffect.samples.affect`: affect labels derived by rules from the notes;
- :mod:`~musicaffect.samples.render`: MIDI and SoundFont rendering to audio;
- :mod:`~musicaffect.samples.build`: works rendered to clips, chosen per style, labelled,
  and built into a data root (:func:`~musicaffect.samples.build.build_scores_sample`).

Nothing heavy is imported here; music21, pretty_midi and the renderers are imported only
where they are used.
"""
