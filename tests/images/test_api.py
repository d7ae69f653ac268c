"""The upload API, the short links and the delete flow, against a real server."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image

from tests.images import samples
from tests.images.conftest import UPLOADERS, Hosted, upload_json, upload_multipart, upload_raw

FIELDS = {
    "id",
    "url",
    "delete_url",
    "file_name",
    "mime_type",
    "size",
    "width",
    "height",
    "sha256",
    "created_at",
    "expires_at",
    "ext",
    "thumbnail_url",
}


FORMATS: list[tuple[str, str, bytes]] = [
    ("image/png", "png", samples.png()),
    ("image/jpeg", "jpg", samples.encode("JPEG", quality=85)),
    ("image/gif", "gif", samples.animated_gif()),
    ("image/webp", "webp", samples.encode("WEBP")),
]
if samples.HAS_AVIF:
    FORMATS.append(("image/avif", "avif", samples.encode("AVIF")))


@pytest.mark.parametrize("send", UPLOADERS)
@pytest.mark.parametrize(("mime", "ext", "data"), FORMATS, ids=[f[1] for f in FORMATS])
def test_each_form_and_format_is_stored_and_served_byte_for_byte(
    hosted: Hosted, send: Any, mime: str, ext: str, data: bytes
) -> None:
    response = send(hosted, data, mime, f"holiday.{ext}")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == FIELDS
    assert re.fullmatch(r"[0-9A-Za-z]{8}", body["id"])
    assert body["url"] == f"{hosted.server.url}/i/{body['id']}.{ext}"
    assert response.headers["location"] == body["url"]
    assert body["delete_url"].startswith(f"{hosted.server.url}/images/delete/{body['id']}/")
    assert body["file_name"] == f"holiday.{ext}"
    assert body["mime_type"] == mime
    assert body["ext"] == ext
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["width"], body["height"]) == (64, 48)
    created = datetime.fromisoformat(body["created_at"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert body["expires_at"] is None
    assert body["thumbnail_url"] == f"{hosted.server.url}/api/images/{body['id']}/thumbnail"
    served = httpx.get(body["url"])
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == mime
    assert (hosted.files / f"{body['id']}.{ext}").read_bytes() == data
    row = hosted.row(body["id"])
    assert row is not None
    assert row["delete_hash"] != body["delete_url"].rsplit("/", 1)[1]  # stored hashed


def test_data_url_prefix_is_accepted(hosted: Hosted) -> None:
    data = samples.png(seed=3)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    with hosted.server.client(hosted.token) as client:
        response = client.post("/api/images", json={"file_name": "a.png", "data": url})
    assert response.status_code == 201, response.text
    assert httpx.get(response.json()["url"]).content == data


def test_link_headers_etag_range_and_head(hosted: Hosted) -> None:
    data = samples.png(seed=4)
    body = upload_raw(hosted, data, "image/png").json()
    bare = f"{hosted.server.url}/i/{body['id']}"
    for url in (body["url"], bare):
        response = httpx.get(url)
        assert response.content == data
        headers = response.headers
        assert headers["content-type"] == "image/png"
        assert headers["cache-control"] == "public, max-age=31536000, immutable"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert headers["etag"] == f'"{body["sha256"]}"'
        assert headers["accept-ranges"] == "bytes"
    etag = httpx.get(bare).headers["etag"]
    again = httpx.get(body["url"], headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert httpx.get(body["url"], headers={"If-None-Match": '"other"'}).status_code == 200
    part = httpx.get(body["url"], headers={"Range": "bytes=8-23"})
    assert part.status_code == 206
    assert part.content == data[8:24]
    assert part.headers["content-range"] == f"bytes 8-23/{len(data)}"
    assert httpx.get(body["url"], headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416
    head = httpx.head(body["url"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(data))
    bare_304 = httpx.get(bare, headers={"If-None-Match": etag})
    bare_206 = httpx.get(bare, headers={"Range": "bytes=0-3"})
    assert (bare_304.status_code, bare_206.status_code) == (304, 206)
    assert bare_206.content == data[:4]
    for response in (again, part, head, bare_304, bare_206, httpx.head(bare)):
        assert response.headers["x-content-type-options"] == "nosniff", response
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("path", ["/i/nosuch12.png", "/i/nosuch12", "/i/", "/i/..%2F..%2Fetc"])
def test_unknown_links_are_404_in_the_error_shape(hosted: Hosted, path: str) -> None:
    response = httpx.get(hosted.server.url + path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_extension_is_404(hosted: Hosted) -> None:
    body = upload_raw(hosted, samples.png(seed=5), "image/png").json()
    assert httpx.get(f"{hosted.server.url}/i/{body['id']}.jpg").status_code == 404


def test_metadata_endpoint(hosted: Hosted) -> None:
    body = upload_json(hosted, samples.png(seed=6), "image/png", "meta.png").json()
    info = httpx.get(f"{hosted.server.url}/api/images/{body['id']}").json()
    expected = {k: v for k, v in body.items() if k != "delete_url"}
    assert info == expected
    assert "owner" not in info
    assert "delete_hash" not in info


def test_list_is_the_callers_own_uploads_paginated(hosted: Hosted) -> None:
    from tests.support import create_token

    other = create_token(hosted.data_dir, "other-uploader", "images")
    ids = []
    with hosted.server.client(other) as client:
        for seed in range(5):
            response = client.post(
                "/api/images",
                content=samples.png(seed=100 + seed),
                headers={"Content-Type": "image/png"},
            )
            ids.append(response.json()["id"])
        first = client.get("/api/images", params={"limit": 3}).json()
        second = client.get("/api/images", params={"limit": 3, "offset": 3}).json()
        assert client.get("/api/images", params={"limit": 0}).status_code == 422
    assert first["total"] == 5
    assert [i["id"] for i in first["images"]] == ids[::-1][:3]
    assert first["next_offset"] == 3
    assert [i["id"] for i in second["images"]] == ids[::-1][3:]
    assert second["next_offset"] is None
    assert all(i["url"].endswith(f"/i/{i['id']}.png") for i in first["images"])
    with hosted.server.client(hosted.token) as client:
        mine = client.get("/api/images", params={"limit": 500}).json()
    assert not set(ids) & {i["id"] for i in mine["images"]}
    assert httpx.get(f"{hosted.server.url}/api/images").status_code == 401


def test_delete_with_the_delete_token(hosted: Hosted) -> None:
    body = upload_raw(hosted, samples.png(seed=7), "image/png").json()
    secret = body["delete_url"].rsplit("/", 1)[1]
    api = f"{hosted.server.url}/api/images/{body['id']}"
    other = "y" if secret[0] == "x" else "x"  # a random secret starts with "x" 1 time in 64
    wrong = httpx.delete(api, headers={"X-Delete-Token": other + secret[1:]})
    assert wrong.status_code == 403
    assert httpx.delete(api).status_code == 401
    assert httpx.get(body["url"]).status_code == 200
    done = httpx.delete(api, headers={"X-Delete-Token": secret})
    assert done.status_code == 200
    assert done.json() == {"deleted": body["id"]}
    assert httpx.get(body["url"]).status_code == 404
    assert hosted.row(body["id"]) is None
    assert not (hosted.files / f"{body['id']}.png").exists()
    assert httpx.delete(api, headers={"X-Delete-Token": secret}).status_code == 404


def test_owner_token_may_delete_but_another_token_may_not(hosted: Hosted) -> None:
    from tests.support import create_token

    body = upload_raw(hosted, samples.png(seed=8), "image/png").json()
    api = f"/api/images/{body['id']}"
    stranger = create_token(hosted.data_dir, "stranger", "images")
    with hosted.server.client(stranger) as client:
        assert client.delete(api).status_code == 403
    with hosted.server.client(hosted.token) as client:
        assert client.delete(api).status_code == 200
    assert httpx.get(body["url"]).status_code == 404


def test_delete_url_confirms_on_get_and_deletes_on_post_only(hosted: Hosted) -> None:
    body = upload_json(
        hosted, samples.png(seed=9), "image/png", "<img src=x onerror=alert(1)>.png"
    ).json()
    wrong = body["delete_url"].rsplit("/", 1)[0] + "/not-the-token"
    for method in ("GET", "POST"):
        refused = httpx.request(method, wrong)
        assert refused.status_code == 403
        assert "not valid" in refused.text
    page = httpx.get(body["delete_url"])
    assert page.status_code == 200
    assert "Delete it" in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page.text  # the name is escaped
    assert "<img src=x" not in page.text
    assert httpx.get(body["delete_url"]).status_code == 200
    assert httpx.get(body["url"]).status_code == 200  # GET never deletes
    done = httpx.post(body["delete_url"])
    assert done.status_code == 200
    assert "Deleted" in done.text
    assert httpx.get(body["url"]).status_code == 404
    assert httpx.get(body["delete_url"]).status_code == 404
    assert httpx.post(wrong).status_code == 404


def test_gps_is_stripped_and_other_exif_kept(hosted: Hosted) -> None:
    data = samples.with_gps("JPEG")
    body = upload_multipart(hosted, data, "image/jpeg", "phone.jpg").json()
    served = httpx.get(body["url"]).content
    assert served != data
    assert body["size"] == len(served)
    assert body["sha256"] == hashlib.sha256(served).hexdigest()
    exif = Image.open(io.BytesIO(served)).getexif()
    assert ExifTags.IFD.GPSInfo not in exif
    assert exif[ExifTags.Base.Make] == "HomeCam"
    # Only the Exif segment changed: the compressed pixels are the same bytes.
    assert served[served.index(b"\xff\xda") :] == data[data.index(b"\xff\xda") :]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_gps_is_stripped_from_png_and_webp(hosted: Hosted, fmt: str) -> None:
    data = samples.with_gps(fmt)
    body = upload_raw(hosted, data, f"image/{fmt.lower()}").json()
    served = httpx.get(body["url"]).content
    assert ExifTags.IFD.GPSInfo not in Image.open(io.BytesIO(served)).getexif()
    assert Image.open(io.BytesIO(served)).convert("RGB").tobytes() == (
        Image.open(io.BytesIO(data)).convert("RGB").tobytes()
    )


@pytest.mark.parametrize(
    ("fmt", "options"), [("JPEG", {}), ("PNG", {}), ("WEBP", {"lossless": True})]
)
def test_orientation_is_applied(hosted: Hosted, fmt: str, options: dict[str, Any]) -> None:
    data = samples.encode(fmt, (40, 20), exif=samples.gps_exif(orientation=6), **options)
    body = upload_raw(hosted, data, f"image/{fmt.lower()}").json()
    assert (body["width"], body["height"]) == (20, 40)
    served = Image.open(io.BytesIO(httpx.get(body["url"]).content))
    assert served.size == (20, 40)
    assert served.getexif().get(ExifTags.Base.Orientation, 1) == 1
    assert ExifTags.IFD.GPSInfo not in served.getexif()
    if fmt != "JPEG":  # lossless: the very pixels, turned
        original = Image.open(io.BytesIO(data)).convert("RGB").transpose(Image.Transpose.ROTATE_270)
        assert served.convert("RGB").tobytes() == original.tobytes()


def test_file_name_is_metadata_only(hosted: Hosted) -> None:
    before = set(hosted.data_dir.rglob("*"))
    body = upload_json(hosted, samples.png(seed=10), "image/png", "../../x.png").json()
    assert body["file_name"] == "x.png"
    assert body["url"].endswith(f"/i/{body['id']}.png")
    added = set(hosted.data_dir.rglob("*")) - before
    assert {p.name for p in added if p.suffix == ".png"} == {f"{body['id']}.png"}
    windows = upload_json(hosted, samples.png(seed=11), "image/png", "C:\\Users\\me\\cat.png")
    assert windows.json()["file_name"] == "cat.png"
    long = upload_json(hosted, samples.png(seed=12), "image/png", "n" * 5000 + ".png")
    assert long.json()["file_name"] == "n" * 255
    emoji = upload_json(
        hosted, samples.png(seed=14), "image/png", "\U0001f469\u200d\U0001f4bb é.png"
    )
    assert emoji.json()["file_name"] == "\U0001f469\u200d\U0001f4bb é.png"  # ZWJ is not a control
    lying = upload_json(hosted, samples.png(seed=13), "image/png", "evil.html")
    assert lying.json()["url"].endswith(".png")


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        (samples.png(seed=400, size=(1000, 500)), "image/png", (320, 160)),
        (samples.encode("JPEG", size=(300, 900), seed=400), "image/jpeg", (107, 320)),
        (samples.animated_gif(), "image/gif", (64, 48)),
    ],
)
def test_thumbnail_is_a_small_webp_removed_with_the_image(
    hosted: Hosted, data: bytes, mime: str, size: tuple[int, int]
) -> None:
    body = upload_raw(hosted, data, mime).json()
    thumb = httpx.get(body["thumbnail_url"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/webp"
    assert thumb.headers["x-content-type-options"] == "nosniff"
    assert Image.open(io.BytesIO(thumb.content)).size == size
    assert httpx.get(body["thumbnail_url"]).content == thumb.content  # kept, not remade
    assert (hosted.data_dir / "images" / "thumbs" / f"{body['id']}.webp").exists()
    assert httpx.post(body["delete_url"]).status_code == 200
    assert httpx.get(body["thumbnail_url"]).status_code == 404
    assert not (hosted.data_dir / "images" / "thumbs" / f"{body['id']}.webp").exists()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1:1"])
def test_links_never_come_from_the_host_header(hosted: Hosted, host: str) -> None:
    """Without public_url, links use the configured address, whatever Host the client sent."""
    fake = {"Host": host, "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    with hosted.server.client(hosted.token) as client:
        response = client.post(
            "/api/images",
            content=samples.png(seed=600),
            headers={"Content-Type": "image/png", **fake},
        )
        # A front that refuses unknown hosts (4xx) is as good as links that ignore them.
        assert response.status_code in (201, 400, 421), response.text
        if response.status_code != 201:
            return
        body = response.json()
        listed = client.get("/api/images", headers=fake).json()["images"]
        info = client.get(f"/api/images/{body['id']}", headers=fake).json()
    links = [body["url"], body["delete_url"], body["thumbnail_url"], response.headers["location"]]
    links += [image["url"] for image in listed] + [info["url"], info["thumbnail_url"]]
    for link in links:
        assert link.startswith(f"{hosted.server.url}/"), link
