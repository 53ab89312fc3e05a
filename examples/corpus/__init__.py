"""A corpus of real third-party models, packed with default settings and checked over HTTP (issue #9).

`registry.ENTRIES` lists them; `check.run(entry, folder)` packs, serves and checks one.
"""

from examples.corpus.registry import ENTRIES, Entry, get

__all__ = ["ENTRIES", "Entry", "get"]
