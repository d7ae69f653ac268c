"""`homekeep music ...`: scan the library, report on it, show scan timings."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from homekeep.core.errors import NotFound, UsageError
from homekeep.core.output import (
    console,
    human_duration,
    human_size,
    json_option,
    new_table,
    plural,
    print_json,
)
from homekeep.core.progress import progress
from homekeep.core.runtime import Runtime, pass_runtime
from homekeep.core.users_cli import read_password
from homekeep.music.pool import prestart_pool
from homekeep.music.scanner import STEPS
from homekeep.music.service import Service, open_service

STEP_NAMES = {
    "walk": "walk",
    "stat_diff": "stat and diff",
    "tag_read": "tag read",
    "artwork": "artwork",
    "database": "database",
}


@contextmanager
def _service(rt: Runtime) -> Iterator[Service]:
    """The music service, closed when the command ends."""
    svc = open_service(rt.area("music"))
    try:
        yield svc
    finally:
        svc.close()


@click.group("music")
def group() -> None:
    """Scan music folders; report on tags, artwork and errors."""


@group.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path))
@click.option("--full", is_flag=True, help="Re-read the tags of every file, changed or not.")
@json_option()
@pass_runtime
def scan(rt: Runtime, roots: tuple[Path, ...], full: bool, as_json: bool) -> None:
    """Scan ROOT folders (default: [music] roots, else the roots scanned before).

    Only new and changed files (size or mtime) are read; moved files keep their data.
    """
    with _service(rt) as svc:
        paths = svc.scan_roots(roots)
        scanner = svc.scanner()
        pool = prestart_pool(scanner.workers)  # before the progress display's thread
        try:
            with progress(enabled=None if not as_json else False) as display:
                result = scanner.scan(paths, full=full, display=display, pool=pool)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    if as_json:
        print_json(result.to_json())
        return
    c = result.counts
    total = sum(result.timings.values())
    click.echo(
        f"scanned {len(result.roots)} root{'s' * (len(result.roots) != 1)}: {c['files']} files,"
        f" {c['audio']} audio, in {human_duration(total)}"
        f" ({plural(result.workers, 'process', 'processes')} reading tags)"
    )
    click.echo(
        f"  new {c['new']}, changed {c['changed']}, moved {c['moved']}, deleted {c['deleted']},"
        f" unchanged {c['unchanged']}; tags read {c['tags_read']}; new images {c['images_new']}"
    )
    click.echo(
        f"  library: {plural(c['tracks'], 'track')}, {plural(c['albums'], 'album')},"
        f" {plural(c['artists'], 'artist')};"
        f" {plural(c['errors'], 'unreadable file')}, {plural(c['warnings'], 'warning')}"
        + (" (see 'homekeep music report errors')" if c["errors"] or c["warnings"] else "")
    )
    if c.get("unreadable_folders"):
        click.echo(
            f"  warning: {c['unreadable_folders']} folders could not be listed (permissions?);"
            " what they held is kept as it was"
        )
    table = new_table("step", "time")
    for step in STEPS:
        table.add_row(STEP_NAMES[step], human_duration(result.timings[step]))
    console().print(table)


@group.command("subsonic-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read it from standard input's first line.")
@click.option("--generate", is_flag=True, help="Make a random password and print it once.")
@click.option("--remove", is_flag=True, help="Remove it: NAME's apps can no longer log in.")
@pass_runtime
def subsonic_password(
    rt: Runtime, name: str, password_stdin: bool, generate: bool, remove: bool
) -> None:
    """Set the password user NAME's Subsonic apps log in with (not their login password).

    It is kept encrypted with the key file subsonic.key of the music data folder, because
    the Subsonic token scheme needs the server to read it back; see docs/music.md.
    """
    user = rt.accounts().users.get(name)
    if not user.may_use("music"):
        raise UsageError(
            f"{user.name!r} may not use music; first: homekeep user access {user.name} --area music"
        )
    with _service(rt) as svc:
        store = svc.subsonic_passwords()
        if remove:
            if not store.remove(user.id):
                raise NotFound(f"{user.name!r} has no Subsonic password")
            click.echo(f"removed the Subsonic password of {user.name}")
            return
        password = secrets.token_urlsafe(18) if generate else read_password(password_stdin)
        store.set(user.id, password)
    if generate:
        click.echo(password)
    else:
        click.echo(f"set the Subsonic password of {user.name}")


@group.group()
def report() -> None:
    """Reports on the library: types, missing-tags, artwork, errors."""


@report.command("types")
@json_option()
@pass_runtime
def report_types(rt: Runtime, as_json: bool) -> None:
    """Every file under the roots by extension and detected kind, with count and size."""
    with _service(rt) as svc:
        rows = svc.reports.types()
    if as_json:
        print_json(rows)
        return
    table = new_table("extension", "kind", "detected", "files", "size")
    for row in rows:
        table.add_row(
            f".{row['ext']}" if row["ext"] else "(none)",
            row["kind"],
            row["detected"] or "-",
            str(row["files"]),
            human_size(row["bytes"]),
        )
    console().print(table)
    click.echo(
        f"{sum(r['files'] for r in rows)} files, {human_size(sum(r['bytes'] for r in rows))}"
    )


@report.command("missing-tags")
@click.option("--fields", help="Comma-separated critical tags (default: [music] critical_tags).")
@json_option()
@pass_runtime
def report_missing(rt: Runtime, fields: str | None, as_json: bool) -> None:
    """Tracks missing critical tags; album artist and track number are warnings."""
    with _service(rt) as svc:
        wanted = svc.tag_fields(fields)
        rows = svc.reports.missing_tags(wanted)
    if as_json:
        print_json(rows)
        return
    table = new_table("level", "missing", "file")
    for row in rows:
        table.add_row(row["level"], ", ".join(row["missing"] or row["warnings"]), row["path"])
    console().print(table)
    problems = sum(1 for r in rows if r["level"] == "problem")
    click.echo(f"{problems} tracks miss {', '.join(wanted)}; {len(rows) - problems} warnings")


@report.command("artwork")
@click.option(
    "--min-size",
    type=click.IntRange(0, 100_000),
    help="Smallest acceptable cover side in pixels (default: [music] min_cover_size, 500).",
)
@json_option()
@pass_runtime
def report_artwork(rt: Runtime, min_size: int | None, as_json: bool) -> None:
    """Albums with no front cover, a cover too small, or one that cannot be decoded."""
    with _service(rt) as svc:
        size = svc.min_cover_size(min_size)
        rows = svc.reports.artwork(size)
    if as_json:
        print_json(rows)
        return
    table = new_table("problem", "album", "album artist", "reason", "folder")
    for row in rows:
        table.add_row(
            row["problem"], row["album"], row["album_artist"], row["reason"], row["folder"]
        )
    console().print(table)
    click.echo(f"{len(rows)} albums with cover problems (minimum {size} px)")


@report.command("errors")
@json_option()
@pass_runtime
def report_errors(rt: Runtime, as_json: bool) -> None:
    """Files that could not be read, and why; files whose content is not their extension."""
    with _service(rt) as svc:
        rows = svc.reports.errors()
    if as_json:
        print_json(rows)
        return
    table = new_table("level", "file", "why")
    for row in rows:
        table.add_row(row["level"], row["path"], row["message"])
    console().print(table)
    click.echo(f"{sum(1 for r in rows if r['level'] == 'error')} unreadable files")


@group.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=10, help="Scans to show.")
@json_option()
@pass_runtime
def timings(rt: Runtime, limit: int, as_json: bool) -> None:
    """The time each step of recent scans took, newest first."""
    with _service(rt) as svc:
        rows = svc.reports.timings(limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        raise NotFound("no scans yet; run 'homekeep music scan ROOT' first")
    table = new_table("scan", "finished", "files", "read", *(STEP_NAMES[s] for s in STEPS), "total")
    for row in rows:
        t = row["timings"]
        table.add_row(
            str(row["scan_id"]) + (" full" if row["full"] else ""),
            row["finished_at"],
            str(row["counts"].get("files", 0)),
            str(row["counts"].get("tags_read", 0)),
            *(human_duration(t.get(s, 0)) for s in STEPS),
            human_duration(sum(t.values())),
        )
    console().print(table)


@group.group()
def roots() -> None:
    """The folders the library was scanned from."""


@roots.command("list")
@json_option()
@pass_runtime
def roots_list(rt: Runtime, as_json: bool) -> None:
    """Every scanned root with its file count and last scan."""
    with _service(rt) as svc:
        rows = svc.library.roots()
    if as_json:
        print_json(rows)
        return
    table = new_table("root", "files", "size", "last scan")
    for row in rows:
        table.add_row(
            row["path"], str(row["files"]), human_size(row["bytes"]), row["scanned_at"] or "-"
        )
    console().print(table)


@roots.command("remove")
@click.argument("path", type=click.Path(path_type=Path))
@pass_runtime
def roots_remove(rt: Runtime, path: Path) -> None:
    """Forget a root and its tracks (the files on disk are not touched)."""
    with _service(rt) as svc:
        count = svc.remove_root(path)
    click.echo(f"removed root {path} and the {count} files the library knew under it")
