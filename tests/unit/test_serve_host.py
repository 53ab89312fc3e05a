"""`serve --host`: loopback unless asked; asked, it warns. No test binds anything but 127.0.0.1: the
non-loopback case uses an address this machine does not have, so the bind fails after the warning."""

from __future__ import annotations

import pytest

from packager.emulator import is_loopback, serve_bundle
from packager.errors import LambdafitError
from tests.unit.test_cli_output import driver, in_pipe


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("0.0.0.0", False),
     ("192.0.2.7", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_library_refuses_other_addresses_unless_asked(tmp_path: object) -> None:
    with pytest.raises(LambdafitError, match="lambdafit serve --host ADDRESS allows it, with a warning"):
        serve_bundle(tmp_path, host="0.0.0.0", port=0)  # type: ignore[arg-type]


def test_the_cli_warns_before_listening_beyond_loopback(tmp_path: object) -> None:
    from packager.pack import pack
    from tests.unit.test_pack_stages import FAKES, config

    bundle = pack(config(tmp_path, recipes=("slim",)), collaborators=FAKES).bundle  # type: ignore[arg-type]
    result = in_pipe(driver("serve", str(bundle), "--host", "192.0.2.7", "--port", "0"), bundle)
    assert result.stderr.startswith("warning: listening on 192.0.2.7, not loopback: anyone who can reach this machine")
    assert "error: cannot listen on 192.0.2.7:0" in result.stderr and result.returncode == 2
