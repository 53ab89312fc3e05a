"""`pack --outputs` and `--top-k`: what the endpoint's /predict answers with.

A detector's raw maps or a recognizer's per-step scores can be megabytes of JSON per row; by default
(`auto`) /predict leaves out any output over AUTO_MAX_VALUES numbers per row, as long as something is
left to answer with, and says so at pack time. `/v2/models/NAME/infer` still returns any output a
client asks for by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handlers.manifest import Manifest, Postprocessing
from packager.errors import LambdafitError
from packager.quality import Outputs

AUTO_MAX_VALUES = 10_000
"""Numbers per row: about 120 KB of JSON. A 1,000-class classifier's scores pass; an 80x80 map does not."""


@dataclass(frozen=True)
class OutputChoice:
    config: Postprocessing
    notes: tuple[str, ...] = ()


def values_per_row(value: object, batch_axis: int | None) -> int:
    """Numbers one row of an output holds, from what the model returned on the packing data."""
    if isinstance(value, list):  # ZipMap: one map per row
        return len(value[0]) if value and isinstance(value[0], dict) else 1
    array = np.asarray(value)
    if batch_axis is None or array.ndim == 0:
        return int(array.size)
    return int(array.size // max(array.shape[batch_axis], 1))


def choose_outputs(choice: tuple[str, ...], top_k: int, manifest: Manifest, reference: Outputs) -> OutputChoice:
    names = [spec.name for spec in manifest.outputs]
    classifier = manifest.classifier_output
    if choice == ("all",):
        return OutputChoice(Postprocessing(None, top_k))
    if choice == ("none",):
        if classifier is None:
            raise LambdafitError(
                "--outputs none leaves /predict nothing to answer with: the model is no classifier, so it has no "
                f"predictions. Name the outputs to return ({', '.join(names)}) or use --outputs all"
            )
        return OutputChoice(Postprocessing((), top_k))
    if choice != ("auto",):
        unknown = [name for name in choice if name not in names]
        if unknown:
            raise LambdafitError(f"--outputs names {unknown}, but the model's outputs are {names}")
        return OutputChoice(Postprocessing(tuple(name for name in names if name in choice), top_k))
    sizes = {spec.name: values_per_row(reference[spec.name], spec.batch_axis) for spec in manifest.outputs}
    large = [name for name in names if sizes[name] > AUTO_MAX_VALUES]
    kept = tuple(name for name in names if name not in large)
    if not large:
        return OutputChoice(Postprocessing(None, top_k))
    described = ", ".join(f"{name} ({sizes[name]:,} numbers a row)" for name in large)
    if not kept and classifier is None:
        note = (
            f"every output is large ({described}): /predict returns them all, which can reach Lambda's 6 MB at a few "
            "rows; pack --outputs NAME to choose, or add a step to the model that reduces them"
        )
        return OutputChoice(Postprocessing(None, top_k), (note,))
    note = (
        f"/predict leaves out {described}" + (f" and answers with {', '.join(kept)}" if kept else "")
        + (" and the predictions" if classifier is not None else "")
        + "; pack --outputs all (or name them) to return them, or ask /v2/models/NAME/infer for them by name"
    )  # fmt: skip
    return OutputChoice(Postprocessing(kept, top_k), (note,))
