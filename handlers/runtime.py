"""The model at run time: one ONNX Runtime session, and the checks a request passes before it runs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handlers.errors import ManifestError, ModelNotReadyError, UnprocessableError, UnsupportedMediaTypeError, reason
from handlers.logs import logger
from handlers.manifest import Manifest, TensorPreprocessing, sha256_file
from handlers.tensors import FloatInput, Output, check_rows, decode_inputs, run_in_chunks

if TYPE_CHECKING:
    import onnxruntime

    from handlers.codecs import Codec
    from handlers.contract import RuntimeSettings


REJECTED_INPUT = ("InvalidArgument", "Fail")
"""onnxruntime's errors for inputs a graph cannot take although they match its signature: a size its
shapes leave open but its ops do not (a feature count, an image side that is not a multiple of 32, audio
too short to pad). The client can fix those: 422, not 500."""


def visible_cores() -> int:
    """The cores this process may run on: the intra-op threads a session gets unless told otherwise."""
    return max(1, len(os.sched_getaffinity(0)))


def open_session(path: Path, intra_op_threads: int | None = None) -> onnxruntime.InferenceSession:
    """The session as a Lambda sandbox runs it: one request at a time, threads matched to its vCPUs.
    The packager measures candidates through this same function."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = intra_op_threads or visible_cores()
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
        self._float_input = FloatInput.of(self.manifest)

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
                raise ManifestError(f"model file {model_path} named by the manifest does not exist", "model_missing")
            if verify and sha256_file(model_path) != manifest.sha256:
                raise ManifestError(
                    f"sha256 of {model_path} does not match the manifest: refusing to serve it", "checksum_mismatch"
                )
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
        if self._float_input is not None and (inputs := self._float_input.decode(payload)) is not None:
            return inputs
        if isinstance(payload, dict) and "inputs" not in payload and self.codec is not None:
            return self.codec.decode(payload)
        return decode_inputs(payload, self.manifest)

    @property
    def raw_media(self) -> tuple[str, ...]:
        """The media types /predict takes as the body itself (an image, a text), by the bundle's codec."""
        return self.codec.media if self.codec is not None else ()

    def decode_raw(self, media: str, body: bytes) -> dict[str, np.ndarray]:
        """A /predict body that is the image or the text itself, as model inputs."""
        if self.codec is None or media not in self.codec.media:
            accepted = ", ".join(("application/json", *self.raw_media))
            raise UnsupportedMediaTypeError(f"this model takes {accepted}, not {media}")
        return self.codec.decode_raw(body)

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
            if type(exc).__name__ not in REJECTED_INPUT:
                raise
            logger.warning("the model rejected an input", extra={"reason": reason(exc)})
            raise UnprocessableError(
                f"the model cannot run on this input: {reason(exc)}", code="model_rejected_input"
            ) from None
        return dict(zip(self._output_names, results, strict=True))


@dataclass
class Service:
    """The model this container serves, or why it cannot serve one yet. A failed load is retried by
    later requests (backing off from 1 s to a minute), so a warm sandbox recovers once the model's
    object appears or its permissions are fixed, without a new deployment."""

    runtime: ModelRuntime | None = None
    failure: str | None = None
    """What callers are told: a kind such as checksum_mismatch, never a path, bucket or key."""
    settings: RuntimeSettings | None = None
    attempts: int = 0
    next_attempt: float = 0.0

    def require(self) -> ModelRuntime:
        if self.runtime is None:
            self.retry()
        if self.runtime is None:
            raise ModelNotReadyError(
                f"the model is not loaded ({self.failure or 'still starting'}); the function retries, "
                "and its logs say why"
            )
        return self.runtime

    def retry(self) -> None:
        if self.settings is None or time.monotonic() < self.next_attempt:
            return
        loaded = load_service(self.settings, attempts=self.attempts)
        self.runtime, self.failure = loaded.runtime, loaded.failure
        self.attempts, self.next_attempt = loaded.attempts, loaded.next_attempt
        if self.runtime is not None:
            logger.info("model loaded on retry", extra={"attempt": self.attempts})


RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


def load_service(settings: RuntimeSettings, attempts: int = 0) -> Service:
    """Never raises: a function that cannot load its model still answers, with 503, and retries later."""
    try:
        return Service(runtime=ModelRuntime.load(settings), settings=settings)
    except ManifestError as exc:
        kind, why = exc.kind, str(exc)
    except OSError as exc:
        kind, why = "unreadable_model", str(exc)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt model
        kind, why = "corrupt_model", f"onnxruntime could not load the model: {reason(exc)}"
    logger.error("model failed to load", extra={"model_dir": str(settings.model_dir), "reason": why, "kind": kind})
    delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempts)
    return Service(failure=kind, settings=settings, attempts=attempts + 1, next_attempt=time.monotonic() + delay)
