"""A candidate's quality job, written by the packing process and read by the fresh measuring process
(packager.probe): the evaluation data, fp32's outputs on it, the metric and the manifest.

Arrays go to one .npz (read with allow_pickle=False), everything else to JSON; a metric is stored as
its class name (one of packager.quality's) and its attributes. Nothing is unpickled: the file format
holds data only, and a `--metric file.py:function` is imported again from the file the user named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from handlers.manifest import Manifest
from handlers.tensors import Output
from packager import quality
from packager.data import Dataset
from packager.quality import Metric, Outputs

_ARRAYS = "arrays.npz"
_JOB = "job.json"


@dataclass(frozen=True)
class QualityCheck:
    """What a candidate's quality is measured with: the evaluation data, fp32's outputs on it, the metric,
    and the manifest the handler runs the model by. Saved once per pack for the worker processes."""

    data: Dataset
    reference: Outputs
    metric: Metric
    manifest: Manifest

    def saved(self, folder: Path) -> Path:
        """The job's folder under `folder`, written on first use."""
        path = folder / f"quality-{id(self):x}"
        if not (path / _JOB).is_file():
            write(self, path)
        return path


def write(check: QualityCheck, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {f"input/{name}": array for name, array in check.data.inputs.items()}
    if check.data.labels is not None:
        arrays["labels"] = check.data.labels
    lists = {}
    for name, value in check.reference.items():
        if isinstance(value, list):
            lists[name] = [[[key, float(score)] for key, score in row.items()] for row in value]
        else:
            arrays[f"reference/{name}"] = value
    state: dict[str, Any] = {}
    for attribute, value in vars(check.metric).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, np.ndarray):
            arrays[f"metric/{attribute}"] = value
        elif isinstance(value, Path):
            state[attribute] = {"path": str(value)}
        elif isinstance(value, tuple | list):
            state[attribute] = {"tuple" if isinstance(value, tuple) else "list": list(value)}
        else:
            state[attribute] = value
    objects = [key for key, array in arrays.items() if array.dtype == object]  # texts, string labels
    for key in objects:
        arrays[key] = arrays[key].astype(str)
    job = {
        "axes": check.data.axes,
        "object_arrays": objects,
        "source": check.data.source,
        "synthetic": check.data.synthetic,
        "reference_lists": lists,
        "metric": {"class": type(check.metric).__name__, "state": state},
        "manifest": check.manifest.to_dict(),
    }
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / _ARRAYS, **arrays)  # type: ignore[arg-type]
    (path / _JOB).write_text(json.dumps(job), encoding="utf-8")


def read(path: Path) -> QualityCheck:
    job = json.loads((path / _JOB).read_text(encoding="utf-8"))
    with np.load(path / _ARRAYS, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key in job["object_arrays"]:
        arrays[key] = arrays[key].astype(object)
    inputs = {key.removeprefix("input/"): array for key, array in arrays.items() if key.startswith("input/")}
    data = Dataset(
        inputs=inputs, axes=job["axes"], labels=arrays.get("labels"), source=job["source"], synthetic=job["synthetic"]
    )
    reference: dict[str, Output] = {
        key.removeprefix("reference/"): array for key, array in arrays.items() if key.startswith("reference/")
    }
    for name, rows in job["reference_lists"].items():
        reference[name] = [dict((key, score) for key, score in row) for row in rows]
    return QualityCheck(
        data=data,
        reference=reference,
        metric=_metric(job["metric"], arrays),
        manifest=Manifest.from_dict(job["manifest"]),
    )


def _metric(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Metric:
    classes = {cls.__name__: cls for cls in vars(quality).values() if isinstance(cls, type) and issubclass(cls, Metric)}
    cls = classes[spec["class"]]  # only packager.quality's own metrics
    metric = cls.__new__(cls)
    for attribute, value in spec["state"].items():
        if isinstance(value, dict) and len(value) == 1:
            ((tag, item),) = value.items()
            value = {"path": Path, "tuple": tuple, "list": list}[tag](item)
        setattr(metric, attribute, value)
    for key, array in arrays.items():
        if key.startswith("metric/"):
            setattr(metric, key.removeprefix("metric/"), array)
    if isinstance(metric, quality.UserMetric):
        metric._call = None
    return metric
