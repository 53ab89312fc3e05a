from __future__ import annotations

import yaml

from packager.config import Arch
from packager.template import FunctionModel, render_samconfig, render_template
from tests.conftest import ROOT


def digits(**changes: object) -> FunctionModel:
    base = {
        "name": "digits",
        "description": "lambdafit example endpoint: the digits CNN (make demo packs build/digits)",
        "code_dir": "./build/digits/function",
        "python": "3.12",
        "arch": Arch.X86_64,
        "memory_mb": 512,
    }
    return FunctionModel(**(base | changes))  # type: ignore[arg-type]


def test_root_template_is_what_the_packager_renders_for_the_example() -> None:
    committed = yaml.safe_load((ROOT / "template.yaml").read_text())
    assert committed == render_template(digits())


def test_function_wiring() -> None:
    template = render_template(digits(name="my-model", arch=Arch.ARM64, memory_mb=2048))
    fn = template["Resources"]["MyModelFunction"]
    assert fn["Properties"]["Architectures"] == ["arm64"]
    assert template["Globals"]["Function"]["MemorySize"] == 2048
    events = fn["Properties"]["Events"]
    assert {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events.values()} == {
        ("/predict", "post"),
        ("/health", "get"),
        ("/{proxy+}", "any"),
    }
    assert fn["Metadata"]["DockerTag"] == "python3.12-v1"


def test_samconfig_names_the_stack() -> None:
    import tomllib

    config = tomllib.loads(render_samconfig("digits"))
    assert config["default"]["global"]["parameters"]["stack_name"] == "digits"
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
