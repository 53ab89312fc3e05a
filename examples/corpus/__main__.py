"""`python -m examples.corpus`: the entries, where each comes from, what it covers and the flags it needs."""

from __future__ import annotations

from examples.corpus.registry import ENTRIES

for entry in ENTRIES:
    flags = " ".join(entry.flags)
    verdict = f"refused ({entry.refuses})" if entry.refuses else "packs"
    print(
        f"{entry.name}: {entry.source}\n    {verdict}; covers {', '.join(entry.covers)}"
        + (f"; flags {flags}" if flags else "")
    )
