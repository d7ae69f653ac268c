"""music: the library scanner, its reports, artwork and the API the player stands on."""

from __future__ import annotations

from homekeep.core.area import Area

AREA = Area(
    name="music",
    title="Music",
    summary="Scan music folders into a library of artists, albums, tracks and covers.",
    config_ref="homekeep.music.config:MusicConfig",
    cli_ref="homekeep.music.cli:group",
    web_ref="homekeep.music.api:build",
    debian_packages={
        "ffmpeg": "music: test fixtures and transcoding",
    },
)
