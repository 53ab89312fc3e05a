"""The CPU the candidates were measured on, against what AWS Lambda guarantees for the target, so a
report says which of its figures carry over.

Lambda x86_64 guarantees AVX2 and nothing newer: no AVX-512, VNNI or AMX. Lambda arm64 is Graviton2
(Neoverse N1): dot-product instructions (asimddp), no i8mm, no bf16.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from packager.config import Arch

INT8_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)
"""The /proc/cpuinfo flags that decide onnxruntime's int8 and fp16 kernels."""
LAMBDA_GUARANTEES: dict[Arch, str] = {
    Arch.X86_64: "Lambda x86_64 guarantees AVX2 only (no AVX-512, VNNI or AMX)",
    Arch.ARM64: "Lambda arm64 is Graviton2 (Neoverse N1): dot product (asimddp), no i8mm, no bf16",
}
MACHINES = {"x86_64": Arch.X86_64, "amd64": Arch.X86_64, "aarch64": Arch.ARM64, "arm64": Arch.ARM64}


@dataclass(frozen=True)
class Host:
    arch: Arch | None
    model: str
    features: tuple[str, ...]
    """The INT8_FEATURES this CPU has."""

    @classmethod
    def read(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> Host:
        model, flags = "", set[str]()
        try:
            text = cpuinfo.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "features"):
                flags |= set(value.split())
        return cls(
            arch=MACHINES.get(platform.machine().lower()),
            model=model or platform.processor() or "unknown CPU",
            features=tuple(feature for feature in INT8_FEATURES if feature in flags),
        )

    def describe(self) -> str:
        machine = self.arch.value if self.arch else platform.machine()
        return f"{machine}, {self.model}, with {', '.join(self.features) or 'none of ' + ', '.join(INT8_FEATURES)}"

    def carry_over(self, target: Arch) -> tuple[str, ...]:
        """What a reader must know before trusting this machine's latencies for `target`."""
        notes = [f"measured on {self.describe()}; {LAMBDA_GUARANTEES[target]}"]
        if self.arch is not target:
            notes.append(
                f"--arch {target.value}: latencies were measured on this {self.arch.value if self.arch else 'other'} "
                f"CPU, so which int8 configuration is fastest on {target.value} was not measured here (sizes and "
                "quality carry over; latency ratios, the int8 choices and the 'slower than fp32' verdicts do not)"
            )
        elif target is Arch.X86_64 and {"avx512_vnni", "avx_vnni", "amx_int8"} & set(self.features):
            notes.append(
                "this CPU runs int8 through VNNI (or AMX); a Lambda CPU with AVX2 only runs the same U8S8 kernels "
                "through VPMADDUBSW, slower (int8's gain here is an upper bound) and with int16 sums that can "
                "saturate: int8-static-7bit avoids that at some quality"
            )
        return tuple(notes)
