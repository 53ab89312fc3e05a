"""#10 class 7: `--force` replaces only a lambdafit bundle, and no signal at any point of `pack` loses
the previous bundle or leaves anything behind."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.killing import POINTS, KillPoint, digest, kill_pack
from tests.hostile.running import run_cli


def _file(p: Path) -> None:
    p.write_text("my notes, not a bundle")


def _empty_folder(p: Path) -> None:
    p.mkdir()


def _user_folder(p: Path) -> None:
    (p / "src").mkdir(parents=True)
    (p / "src" / "train.py").write_text("print('weeks of work')")


def _not_json(p: Path) -> None:
    p.mkdir()
    (p / "bundle.json").write_text("{ this is not json")


def _json_list(p: Path) -> None:
    p.mkdir()
    (p / "bundle.json").write_text("[1, 2]")


def _string_version(p: Path) -> None:
    p.mkdir()
    (p / "bundle.json").write_text(json.dumps({"format_version": "1", "app": {}}))


def _no_app(p: Path) -> None:
    p.mkdir()
    (p / "bundle.json").write_text(json.dumps({"format_version": 1}))


def _bundle_json_folder(p: Path) -> None:
    (p / "bundle.json").mkdir(parents=True)


def _dangling_link(p: Path) -> None:
    p.symlink_to(p.parent / "nowhere")


NOT_BUNDLES: dict[str, Callable[[Path], None]] = {
    "file": _file,
    "empty-folder": _empty_folder,
    "user-folder": _user_folder,
    "bundle-json-not-json": _not_json,
    "bundle-json-a-list": _json_list,
    "bundle-json-string-version": _string_version,
    "bundle-json-without-app": _no_app,
    "bundle-json-a-folder": _bundle_json_folder,
    "dangling-symlink": _dangling_link,
}


@pytest.mark.parametrize("kind", list(NOT_BUNDLES))
def test_class7_force_refuses_what_is_not_a_bundle_and_leaves_it_untouched(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    NOT_BUNDLES[kind](out / "digits")
    before = digest(out / "digits")
    result = run_cli("pack", f"{Path('examples/digits/model.py').resolve()}:build", "--name", "digits",
                     "--output", str(out), "--force")  # fmt: skip
    assert result.code == 2, result.err
    assert "--force replaces only a bundle" in result.err and result.err.count("\n") == 1, result.err
    assert digest(out / "digits") == before
    assert sorted(p.name for p in out.iterdir()) == ["digits"]


def test_class7_force_refuses_a_symlink_even_to_a_bundle(tmp_path: Path, digits_bundle: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "digits").symlink_to(digits_bundle)
    result = run_cli("pack", "model.onnx", "--name", "digits", "--output", str(out), "--force")
    assert result.code == 2 and "is a symbolic link that lambdafit did not write" in result.err
    assert (out / "digits").is_symlink() and (digits_bundle / "bundle.json").is_file()


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory, digits_bundle: Path) -> tuple[Path, Path, str]:
    """An output folder holding a bundle from an earlier pack, and that bundle's digest."""
    out = tmp_path_factory.mktemp("kill") / "out"
    shutil.copytree(digits_bundle, out / "digits", symlinks=True)
    return out, digits_bundle, digest(out / "digits")


CASES = [(point, signum) for signum in (signal.SIGINT, signal.SIGTERM) for point in POINTS]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "signum"), CASES, ids=[f"{signal.Signals(s).name}-{p}" for p, s in CASES]
)  # fmt: skip
def test_class7_a_signal_at_any_point_of_pack_keeps_the_previous_bundle_and_leaves_nothing(
    previous: tuple[Path, Path, str], point: KillPoint, signum: int
) -> None:
    """SIGINT goes to the whole process group (a terminal's Ctrl-C reaches the measuring subprocess and
    pip too), SIGTERM to pack alone (`kill PID`)."""
    out, original, before = previous
    outcome = kill_pack(point, signum, out, group=signum == signal.SIGINT)
    after = digest(out / "digits") if (out / "digits").exists() else None
    if after is not None and after != before:  # the next case starts from the previous bundle again
        shutil.rmtree(out / "digits")
        shutil.copytree(original, out / "digits", symlinks=True)
    assert outcome.reached, outcome.stderr
    assert "Traceback" not in outcome.stderr and "internal error" not in outcome.stderr, outcome.stderr
    assert outcome.out_left == ["digits"] and outcome.tmp_left == [] and outcome.cwd_left == []
    assert outcome.processes_left == []
    if outcome.returncode in (0, -signum) and "wrote " in outcome.stdout:
        # The signal came after the new bundle was in place and reported: ignored while the outcome was
        # printed (exit 0), or, in the last instant of the interpreter's exit, its default action.
        assert after != before
        pytest.xfail(f"pack finished before {point}")
    assert outcome.returncode == 128 + signum, outcome.stderr
    name = signal.Signals(signum).name
    assert outcome.stderr.splitlines()[-1] == (
        f"interrupted by {name}: {out / 'digits'} is as it was, and nothing else is left"
    ), outcome.stderr
    assert after == before
