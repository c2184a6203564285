"""Model families: how a config is fitted into a run folder, how its model is recognised in a
folder and loaded as a :class:`~musicaffect.families.base.Member`.

Each module registers its family in :mod:`musicaffect.families.registry` when imported here
(the fallback, ``deep``, last); nothing else in the package names a family.
"""

from musicaffect.families import choose, classical, ensemble, pretrained  # noqa: F401  (register themselves)

from musicaffect.families import deep  # noqa: F401  isort: skip  (the fallback, last)
