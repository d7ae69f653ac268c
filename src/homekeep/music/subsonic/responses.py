"""Subsonic answers: the same tree as XML (the default), JSON (``f=json``) or JSONP.

A payload is a dict: scalar values are XML attributes, a dict is a child element, a list
is repeated child elements of the key's name, and the key ``value`` is an element's text
(a genre's name). JSON keeps the tree as it is, under ``subsonic-response``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from starlette.responses import Response

from homekeep import __version__

API_VERSION = "1.16.1"
NAMESPACE = "http://subsonic.org/restapi"
_CALLBACK_RE = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")
# what XML 1.0 cannot carry (control characters), and lone surrogates (file names that
# are not UTF-8) that neither XML nor UTF-8 JSON can
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

# Subsonic error codes (the API answers 200 with the code in the body)
GENERIC, MISSING, CLIENT_TOO_OLD, WRONG_CREDENTIALS = 0, 10, 20, 40
TOKEN_UNSUPPORTED, AUTH_UNSUPPORTED, CONFLICTING_AUTH, BAD_API_KEY = 41, 42, 43, 44
NOT_AUTHORISED, NOT_FOUND = 50, 70


class SubsonicError(Exception):
    """An error the client sees as ``<error code message/>``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope(payload: dict[str, Any], ok: bool = True) -> dict[str, Any]:
    """The attributes every answer carries (OpenSubsonic's among them), then the payload."""
    return {
        "status": "ok" if ok else "failed",
        "version": API_VERSION,
        "type": "homekeep",
        "serverVersion": __version__,
        "openSubsonic": True,
        **payload,
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _UNSAFE.sub("\ufffd", str(value))


def _fill(element: ET.Element, tree: dict[str, Any]) -> None:
    for key, value in tree.items():
        if value is None:
            continue
        if key == "value":
            element.text = _text(value)
        elif isinstance(value, dict):
            _fill(ET.SubElement(element, key), value)
        elif isinstance(value, list):
            for item in value:
                child = ET.SubElement(element, key)
                if isinstance(item, dict):
                    _fill(child, item)
                else:
                    child.text = _text(item)
        else:
            element.set(key, _text(value))


def to_xml(tree: dict[str, Any]) -> bytes:
    root = ET.Element("subsonic-response", xmlns=NAMESPACE)
    _fill(root, tree)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _drop_none(value: Any) -> Any:
    """The tree for JSON: no null values, text made safe as for XML."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    if isinstance(value, str):
        return _UNSAFE.sub("\ufffd", value)
    return value


def render(
    payload: dict[str, Any], fmt: str | None, callback: str | None, ok: bool = True
) -> Response:
    """The answer in the format asked for (``f``): xml (default), json or jsonp."""
    tree = envelope(payload, ok)
    if fmt == "json" or (fmt == "jsonp" and not (callback and _CALLBACK_RE.match(callback))):
        body = json.dumps({"subsonic-response": _drop_none(tree)}, ensure_ascii=False)
        return Response(body, media_type="application/json")
    if fmt == "jsonp":
        assert callback is not None
        body = json.dumps({"subsonic-response": _drop_none(tree)}, ensure_ascii=False)
        return Response(f"{callback}({body});", media_type="application/javascript")
    return Response(to_xml(tree), media_type="application/xml")


def error(exc: SubsonicError, fmt: str | None, callback: str | None) -> Response:
    return render({"error": {"code": exc.code, "message": exc.message}}, fmt, callback, ok=False)
