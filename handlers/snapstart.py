"""Lambda SnapStart: what the function does before its snapshot is taken and after a sandbox is restored.

With SnapStart, Lambda runs the init phase once, when a version is published, snapshots the memory and
disk of that sandbox, and starts every later sandbox from the snapshot. The model is already loaded at
import (handlers.lambda_function); before the snapshot the hooks finish what a first request would still
pay for: a model that failed to load is loaded again, and a few warm-up inferences run through the
decode -> session -> encode path so onnxruntime's lazily built kernels and arenas are in the snapshot.
After a restore, every sandbox from the same snapshot would otherwise share the same random state:
Python's and numpy's generators are reseeded from the OS, tempfile's name sequence is dropped, and a
failed model load is retried on the first request instead of after a backoff timed in another sandbox.

The hooks come from `snapshot_restore_py`, which Lambda's Python runtimes provide (it is not vendored:
a second copy on the path would hold a registry the runtime never reads). Where it is absent (local
runs, `sam local`, other runtimes) `register` does nothing. Lambda runs before-snapshot hooks in
reverse registration order and after-restore hooks in order; the restore hooks must finish in 10 s.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.contract import WARMUP_FILE
from handlers.logs import logger

if TYPE_CHECKING:
    from handlers.runtime import Service

WARMUP_RUNS = 3
"""Inferences before the snapshot: the first builds kernels and buffers, the next ones confirm them."""
RESTORE_BUDGET_S = 10.0
"""Lambda's limit on the runtime's restore plus the after-restore hooks."""


@dataclass
class SnapStartHooks:
    """The two hooks for one service, and what they did (for the logs and the tests)."""

    service: Service
    warmup_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def before_snapshot(self) -> None:
        start = time.perf_counter()
        if self.service.runtime is None:
            self.service.next_attempt = 0.0
            self.service.retry()
        runs = self.warm_up() if self.service.runtime is not None else 0
        event = {
            "phase": "before_snapshot",
            "model_ready": self.service.runtime is not None,
            "warmup_runs": runs,
            "ms": round((time.perf_counter() - start) * 1000, 2),
        }
        self.events.append(event)
        logger.info("ready for the snapshot", extra=event)

    def warm_up(self) -> int:
        """Run the bundle's sample request through the model; 0 when the bundle has none."""
        from handlers.app import encode_outputs

        runtime = self.service.runtime
        if runtime is None or not self.warmup_path.is_file():
            return 0
        body = json.loads(self.warmup_path.read_text(encoding="utf-8"))
        for _ in range(WARMUP_RUNS):
            encode_outputs(runtime.run(runtime.decode(body)))
        return WARMUP_RUNS

    def after_restore(self) -> None:
        start = time.perf_counter()
        reseed()
        if self.service.runtime is None:
            self.service.next_attempt = 0.0
        ms = (time.perf_counter() - start) * 1000
        event = {"phase": "after_restore", "reseeded": True, "ms": round(ms, 3), "budget_ms": RESTORE_BUDGET_S * 1000}
        self.events.append(event)
        logger.info("restored from a snapshot", extra=event)


def reseed() -> None:
    """New random state from the OS for everything that would otherwise repeat across sandboxes. A module
    the snapshot does not hold (the handlers do not import random or tempfile) seeds itself when imported."""
    if (random := sys.modules.get("random")) is not None:
        random.seed()
    if (tempfile := sys.modules.get("tempfile")) is not None:
        tempfile._name_sequence = None  # type: ignore[attr-defined]  # rebuilt from the reseeded generator on next use
    if (numpy := sys.modules.get("numpy")) is not None:
        numpy.random.seed()


def register(service: Service, model_dir: Path) -> SnapStartHooks | None:
    """Register the hooks with the runtime's snapshot_restore_py; None where the runtime has none."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return None
    hooks = SnapStartHooks(service, model_dir / WARMUP_FILE)
    register_before_snapshot(hooks.before_snapshot)
    register_after_restore(hooks.after_restore)
    return hooks
