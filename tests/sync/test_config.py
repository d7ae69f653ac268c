"""The [sync] section: keys of earlier releases still read, in the new units, with a warning."""

from __future__ import annotations

from pathlib import Path

from homekeep.core.config import load_settings
from homekeep.sync.config import SyncConfig


def test_old_unit_keys_are_read_in_the_new_units(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[sync]\nmax_request_mb = 8\nstaging_ttl_hours = 2\nsettle_ms = 300\n"
        "rescan_interval_s = 60\nbackoff_max_s = 5\n",
        encoding="utf-8",
    )
    settings = load_settings(path, {"sync": SyncConfig}, env={})
    sync = settings.section("sync", SyncConfig)
    assert sync.max_request_bytes == 8 << 20
    assert sync.staging_ttl_seconds == 7200
    assert sync.settle_seconds == 0.3
    assert sync.rescan_interval_seconds == 60
    assert sync.backoff_max_seconds == 5
    assert len(settings.warnings) == 5
    assert "[sync] max_request_mb is now max_request_bytes" in settings.warnings[0]


def test_the_defaults_keep_their_old_values() -> None:
    sync = SyncConfig()
    assert sync.max_request_bytes == 64 << 20
    assert sync.staging_ttl_seconds == 24 * 3600
    assert sync.settle_seconds == 0.15
