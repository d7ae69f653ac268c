"""Config loading in-process: precedence, env parsing, masking, and rewriting a section."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field, SecretStr, model_validator

from homekeep.core.config import (
    CORE_SECTIONS,
    Renamed,
    Section,
    default_config_text,
    load_settings,
    save_section,
)
from homekeep.core.errors import ConfigError
from homekeep.core.files import write_atomic


class DemoSection(Section):
    """A demo area."""

    password: SecretStr = Field(default=SecretStr("hunter2"), description="A secret.")
    roots: list[str] = Field(default_factory=list, description="Folders.")
    ratio: float = Field(default=0.5, description="A ratio.")
    codes: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"rsync": {"24": "warning"}, "odd key": {}},
        description="A table.",
    )


SECTIONS: dict[str, type[Section]] = {**CORE_SECTIONS, "demo": DemoSection}


def test_defaults_then_file_then_env(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9000\n[demo]\nroots = ["/a"]\n')
    env = {"HOMEKEEP_DEMO_ROOTS": '["/b", "/c"]', "HOMEKEEP_SERVER_HOST": "::1", "OTHER": "x"}
    settings = load_settings(path, SECTIONS, env=env)
    assert settings.server.port == 9000
    assert settings.server.host == "::1"
    assert settings.server.base_url() == "http://[::1]:9000"
    assert settings.section("demo", DemoSection).roots == ["/b", "/c"]
    assert settings.logging.backup_count == 5


def test_secrets_are_masked_in_show() -> None:
    settings = load_settings(None, SECTIONS, env={"HOMEKEEP_DEMO_PASSWORD": "s3cret"})
    text = settings.to_toml()
    assert "s3cret" not in text
    assert "hunter2" not in text
    assert "password = " in text
    assert settings.section("demo", DemoSection).password.get_secret_value() == "s3cret"


def test_default_config_text_parses_back_to_the_defaults(tmp_path: Path) -> None:
    text = default_config_text(SECTIONS)
    assert tomllib.loads(text) == {name: {} for name in SECTIONS}
    uncommented = "\n".join(
        line[2:] if line.startswith("# ") and " = " in line else line for line in text.splitlines()
    )
    data = tomllib.loads(uncommented)
    assert data["server"]["port"] == 8080
    assert data["demo"]["ratio"] == 0.5
    assert data["demo"]["codes"] == {"rsync": {"24": "warning"}, "odd key": {}}


def test_save_section_keeps_comments_and_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("# my notes\n[server]\nport = 9000  # my port\n\n[demo]\nratio = 0.1\n")
    save_section(path, "demo", {"ratio": 0.9, "roots": ["/x"], "password": None})
    text = path.read_text()
    assert "# my notes" in text
    assert "# my port" in text
    settings = load_settings(path, SECTIONS, env={})
    assert settings.server.port == 9000
    assert settings.section("demo", DemoSection).ratio == 0.9
    assert not list(tmp_path.glob(".*.tmp"))


def test_wrong_float_names_key() -> None:
    with pytest.raises(ConfigError, match=r"HOMEKEEP_DEMO_RATIO: \[demo\] ratio"):
        load_settings(None, SECTIONS, env={"HOMEKEEP_DEMO_RATIO": "half"})


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "c.toml"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]
    write_atomic(target, b"new", mode=0o600)
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600


class PairSection(Section):
    """Two keys that must differ."""

    low: int = 1
    high: int = 2

    @model_validator(mode="after")
    def _ordered(self) -> PairSection:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        return self


def test_a_cross_key_error_is_stated_once_without_the_section_dump() -> None:
    sections: dict[str, type[Section]] = {**CORE_SECTIONS, "pair": PairSection}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, sections, env={"HOMEKEEP_PAIR_LOW": "5"})
    assert str(caught.value) == "the embedded defaults: [pair] low must be below high"


class _Renaming(Section):
    """A section whose keys were renamed in a release."""

    renamed: ClassVar[Mapping[str, Renamed]] = {
        "wait_ms": Renamed("wait_seconds", lambda ms: ms / 1000),
        "limit_mb": Renamed("limit_bytes", lambda mb: int(mb) << 20),
    }
    wait_seconds: float = 1.0
    limit_bytes: int = 1024


def test_a_renamed_key_is_read_converted_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[r]\nwait_ms = 250\nlimit_mb = 2\n", encoding="utf-8")
    settings = load_settings(path, {"r": _Renaming}, env={})
    section = settings.section("r", _Renaming)
    assert section.wait_seconds == 0.25
    assert section.limit_bytes == 2 << 20
    assert len(settings.warnings) == 2
    assert "[r] wait_ms is now wait_seconds" in settings.warnings[0]
    env = {"HOMEKEEP_R_WAIT_MS": "500"}
    assert (
        load_settings(None, {"r": _Renaming}, env=env).section("r", _Renaming).wait_seconds == 0.5
    )


def test_the_new_name_wins_over_the_old_and_a_bad_old_value_names_the_new_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[r]\nwait_ms = 250\nwait_seconds = 3\n", encoding="utf-8")
    settings = load_settings(path, {"r": _Renaming}, env={})
    assert settings.section("r", _Renaming).wait_seconds == 3
    assert "wait_ms is ignored" in settings.warnings[0]
    path.write_text('[r]\nlimit_mb = "lots"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"limit_mb.*set limit_bytes instead"):
        load_settings(path, {"r": _Renaming}, env={})
