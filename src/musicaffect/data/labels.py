"""Label vocabularies: the 20 FMA genres, the lab's 20 -> 10 class mapping, regression targets.

Class indices are the alphabetical order of the 10 class names (Blues=0 ... Trip-Hop=9).
"""

from __future__ import annotations

from musicaffect.tasks import CLASS_TASK

#: The 20 raw FMA genre names used in the dataset's label files.
GENRES20: tuple[str, ...] = (
    "Blues", "Chiptune", "Classical", "Electronic", "Folk", "Hip-Hop", "Indie-Rock",
    "International", "Jazz", "Metal", "Old-Time", "Pop", "Post-Punk", "Post-Rock",
    "Psych-Folk", "Psych-Rock", "Punk", "Rock", "Soundtrack", "Trip-Hop",
)

#: raw genre -> one of the 10 lab classes, or None when the clip is dropped.
CLASS_MAPPING: dict[str, str | None] = {
    "Rock": "Rock", "Psych-Rock": "Rock", "Post-Rock": "Rock",
    "Folk": "Folk", "Psych-Folk": "Folk",
    "Metal": "Metal", "Punk": "Metal",
    "Electronic": "Electronic", "Chiptune": "Electronic",
    "Trip-Hop": "Trip-Hop", "Pop": "Pop", "Hip-Hop": "Hip-Hop",
    "Classical": "Classical", "Blues": "Blues", "Jazz": "Jazz",
    "Indie-Rock": None, "Post-Punk": None, "Soundtrack": None,
    "International": None, "Old-Time": None,
}

#: The 10 classes, in index order (alphabetical).
CLASSES: tuple[str, ...] = tuple(sorted({c for c in CLASS_MAPPING.values() if c is not None}))

#: Regression targets in the lab's column order (column 1, 2, 3 of the multitask label file).
TARGETS: tuple[str, ...] = ("valence", "energy", "danceability")

#: Name of the classification task in model outputs and batches (owned by the task specs).
GENRE_TASK = CLASS_TASK


def map_genre(genre20: str) -> str | None:
    """Map a raw genre name to its lab class (None = dropped). Raises KeyError if unknown."""
    return CLASS_MAPPING[genre20]


def class_index(name: str) -> int:
    """Index of a lab class name (alphabetical order)."""
    return CLASSES.index(name)
