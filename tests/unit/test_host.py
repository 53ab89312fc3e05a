"""What the measuring CPU has, against what Lambda guarantees: the report says what carries over."""

from __future__ import annotations

from pathlib import Path

from packager.config import Arch
from packager.host import Host

ZEN4 = """processor\t: 0
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 sha_ni
"""
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
"""


def test_the_int8_features_are_read_from_cpuinfo(tmp_path: Path) -> None:
    (tmp_path / "zen4").write_text(ZEN4)
    (tmp_path / "n1").write_text(GRAVITON2)
    zen4 = Host.read(tmp_path / "zen4")
    assert zen4.model == "AMD EPYC 9R14 96-Core Processor"
    assert zen4.features == ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")
    assert Host.read(tmp_path / "n1").features == ("asimddp",)
    assert Host.read(tmp_path / "missing").features == ()


def test_what_carries_over_to_each_target() -> None:
    x86 = Host(Arch.X86_64, "AMD EPYC", ("avx2", "avx512f", "avx512_vnni"))
    same = " ".join(x86.carry_over(Arch.X86_64))
    assert "measured on x86_64, AMD EPYC, with avx2, avx512f, avx512_vnni" in same
    assert "Lambda x86_64 guarantees AVX2 only" in same and "VPMADDUBSW" in same
    other = " ".join(x86.carry_over(Arch.ARM64))
    assert "Graviton2 (Neoverse N1): dot product (asimddp), no i8mm, no bf16" in other
    assert "which int8 configuration is fastest on arm64 was not measured here" in other
    plain = Host(Arch.X86_64, "old Xeon", ("avx2",))
    assert len(plain.carry_over(Arch.X86_64)) == 1
