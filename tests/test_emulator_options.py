"""The emulator's JVM runs with the options that halve its CPU per message (tools/local/emulator.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncinfer.tools.local.emulator import (
    DEFAULT_JAVA_OPTIONS,
    JAVA_OPTIONS_ENV,
    PubSubEmulator,
    emulator_environment,
)


def test_the_default_options_go_first_so_the_callers_own_win() -> None:
    env = emulator_environment({"JAVA_TOOL_OPTIONS": "-XX:+UseG1GC", "PATH": "/bin"})
    assert env["JAVA_TOOL_OPTIONS"] == f"{DEFAULT_JAVA_OPTIONS} -XX:+UseG1GC"
    assert env["PATH"] == "/bin"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("", None), ("-Xmx256m", "-Xmx256m")],
    ids=["empty: the JVM's defaults", "replaced"],
)
def test_the_options_can_be_replaced(setting: str, expected: str | None) -> None:
    env = emulator_environment({JAVA_OPTIONS_ENV: setting})
    assert env.get("JAVA_TOOL_OPTIONS") == expected


def _java_environ(emulator: PubSubEmulator) -> dict[str, str]:
    for pid in emulator.pids():
        if Path(f"/proc/{pid}/exe").resolve().name == "java":
            raw = Path(f"/proc/{pid}/environ").read_bytes()
            return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    raise AssertionError("no java process in the emulator's process group")


def test_the_emulators_jvm_gets_the_options(tmp_path: Path) -> None:
    with PubSubEmulator("asyncinfer-jvm-test", data_dir=tmp_path) as emulator:
        assert _java_environ(emulator)["JAVA_TOOL_OPTIONS"].startswith(DEFAULT_JAVA_OPTIONS)
        assert "Picked up JAVA_TOOL_OPTIONS" in emulator.log_tail(200)  # the JVM says it took them
