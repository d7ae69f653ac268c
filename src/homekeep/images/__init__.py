"""images: image upload and hosting with short random ids, safe against hostile files."""

from __future__ import annotations

from homekeep.core.area import Area

AREA = Area(
    name="images",
    title="Images",
    summary="Upload images (JSON, multipart, ShareX) and share them by short links.",
    config_ref="homekeep.images.config:ImagesConfig",
    cli_ref="homekeep.images.cli:group",
    web_ref="homekeep.images.api:build",
    debian_packages={
        "nginx-light": "images: the nginx-front test and the benchmark's reference",
    },
)
