"""The model at run time: one ONNX Runtime session, and the checks a request passes before it runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.errors import BadRequestError, ManifestError, ModelNotReadyError, reason
from handlers.logs import logger
from handlers.manifest import Manifest, TensorPreprocessing, sha256_file
from handlers.tensors import Output, check_rows, decode_inputs, run_in_chunks

if TYPE_CHECKING:
    import onnxruntime

    from handlers.codecs import Codec
    from handlers.contract import RuntimeSettings


REJECTED_INPUT = ("InvalidArgument", "Fail")
"""onnxruntime's errors for inputs a graph cannot take although they match its signature: a size its
shapes leave open but its ops do not (a feature count, an image side that is not a multiple of 32, audio
too short to pad). The client can fix those: 400, not 500."""


def open_session(path: Path, intra_op_threads: int | None = None) -> onnxruntime.InferenceSession:
    """The session as a Lambda sandbox runs it: one request at a time, threads matched to its vCPUs.
    The packager measures candidates through this same function."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = intra_op_threads or max(1, len(os.sched_getaffinity(0)))
    options.log_severity_level = 4  # errors reach the caller as exceptions; onnxruntime's own copy on stderr is noise
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class ModelRuntime:
    manifest: Manifest
    session: onnxruntime.InferenceSession
    timings: dict[str, float] = field(default_factory=dict)
    """What loading cost, in ms: verify (manifest, checksum, any download) and session creation."""
    codec: Codec | None = None
    """How `{"image": ...}` or `{"text": ...}` requests become tensors, when the bundle takes them."""

    def __post_init__(self) -> None:
        self._output_names = [spec.name for spec in self.manifest.outputs]
        self._fixed = self.manifest.fixed_batch

    @classmethod
    def load(cls, settings: RuntimeSettings, *, verify: bool = True) -> ModelRuntime:
        start = time.perf_counter()
        manifest = Manifest.load(settings.model_dir)
        if settings.model_uri is not None:
            from handlers.model_store import fetch

            model_path = fetch(settings.model_uri, manifest.sha256, cache_dir=settings.cache_dir)
        else:
            model_path = settings.model_dir / manifest.model_file
            if not model_path.is_file():
                raise ManifestError(f"model file {model_path} named by the manifest does not exist")
            if verify and sha256_file(model_path) != manifest.sha256:
                raise ManifestError(f"sha256 of {model_path} does not match the manifest: refusing to serve it")
        verified = time.perf_counter()
        session = open_session(model_path, manifest.runtime.intra_op_threads)
        timings = {"verify_ms": (verified - start) * 1000, "session_ms": (time.perf_counter() - verified) * 1000}
        codec = None
        if not isinstance(manifest.preprocessing, TensorPreprocessing):
            from handlers.codecs import make_codec

            codec = make_codec(manifest, settings.model_dir)
        return cls(manifest=manifest, session=session, timings=timings, codec=codec)

    def decode(self, payload: Any) -> dict[str, np.ndarray]:
        """A /predict body as model inputs: tensors under "inputs", or what the bundle's codec takes."""
        if isinstance(payload, dict) and "inputs" not in payload and self.codec is not None:
            return self.codec.decode(payload)
        return decode_inputs(payload, self.manifest)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, Output]:
        """The model's outputs by name; a fixed-batch graph is fed its batch at a time."""
        if self._fixed is not None:
            rows = check_rows(inputs, self.manifest)
            if rows != self._fixed:
                return run_in_chunks(self._run, inputs, self.manifest, rows)
        return self._run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, Output]:
        try:
            results = self.session.run(self._output_names, inputs)
        except Exception as exc:
            if type(exc).__name__ in REJECTED_INPUT:
                raise BadRequestError(
                    f"the model cannot run on these inputs: {reason(exc)}", code="model_rejected_input"
                ) from exc
            raise
        return dict(zip(self._output_names, results, strict=True))


@dataclass
class Service:
    """The model this container serves, or why it cannot serve one."""

    runtime: ModelRuntime | None = None
    failure: str | None = None

    def require(self) -> ModelRuntime:
        if self.runtime is None:
            raise ModelNotReadyError(f"the model is not loaded: {self.failure or 'still starting'}")
        return self.runtime


def load_service(settings: RuntimeSettings) -> Service:
    """Never raises: a function that cannot load its model still answers, with 503 and the reason."""
    try:
        return Service(runtime=ModelRuntime.load(settings))
    except (ManifestError, OSError) as exc:
        why = str(exc)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt model
        why = f"onnxruntime could not load the model: {reason(exc)}"
    logger.error("model failed to load", extra={"model_dir": str(settings.model_dir), "reason": why})
    return Service(failure=why)
