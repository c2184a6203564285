"""musicaffect: music genre recognition and emotion extraction from spectrograms.

The package implements the NTUA Pattern Recognition Lab 3 ("genre recognition and emotion
extraction from music") as a library and a command-line program (``musicaffect``).
Nothing runs at import time; submodules are imported on demand.
"""

__version__ = "0.1.0"

from musicaffect.errors import CheckpointError, ConfigError, DataError, MusicAffectError, RunError

__all__ = ["__version__", "MusicAffectError", "DataError", "ConfigError", "CheckpointError", "RunError"]
