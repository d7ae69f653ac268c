"""Benchmark the player's long lists in Chromium: first render and scrolling, 100k tracks.

    .venv/bin/python bench/music/scroll.py [--albums 10000] [--frames 600] [--step 120]

Fills a library database with --albums albums of 10 tracks (the rows of stream.py's
large library), starts a real `homekeep serve`, logs in from a real headless Chromium
(Playwright, desktop size) and, for the tracks view (a virtual list over all tracks)
and the albums grid (pages of 60 fetched as the end comes near, lazy thumbnails):

- the time from the navigation's start to the first row (or tile) on screen;
- scrolling by --step px per animation frame for --frames frames: the frame times
  (p50, p95, worst; 16.7 ms is one frame at 60 Hz), the long tasks the browser
  reports (main-thread work over 50 ms), and how many rows the page holds at the end;
- for the tracks, a jump to the last row: the time until its row is drawn.

The reference is the same Chromium in the same run drawing a plain table of the same
first --plain rows at once (what a page without a virtual list does once scrolled that
far): its time to build and draw it, and its scrolling.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.music.stream import fill, pct
from playwright.sync_api import Page, sync_playwright
from tests.music import player
from tests.support import CHROMIUM, CHROMIUM_ARGS, add_user, serve

LOGIN = "bench-login-123"  # a throwaway user of a temporary server

# Runs in the page: scroll by ``step`` px each animation frame for ``frames`` frames and
# return the frame intervals, the long tasks seen meanwhile, and the rows in the page.
_SCROLL = """async ([frames, step, rows]) => {
  const long = [];
  const seen = new PerformanceObserver(
    (list) => long.push(...list.getEntries().map((e) => e.duration)));
  seen.observe({type: "longtask"});
  const times = [];
  await new Promise((done) => {
    let last = null, n = 0;
    const tick = (now) => {
      if (last !== null) times.push(now - last);
      last = now;
      scrollBy(0, step);
      if (++n < frames) requestAnimationFrame(tick); else done();
    };
    requestAnimationFrame(tick);
  });
  await new Promise((r) => setTimeout(r, 200));
  seen.disconnect();
  return {times, long, rows: document.querySelectorAll(rows).length, y: scrollY};
}"""

# Runs in the page: the time since the navigation started when ``selector`` first shows.
_FIRST = """async (selector) => {
  while (!document.querySelector(selector)) await new Promise((r) => requestAnimationFrame(r));
  return performance.now();
}"""

# Runs in the page: a plain table of every track given, drawn at once (the reference).
_PLAIN = """(tracks) => {
  const start = performance.now();
  const body = document.createElement("tbody");
  for (const t of tracks) {
    const tr = body.insertRow();
    for (const v of [t.id, t.title, t.artist, t.album, t.year, t.format, t.duration])
      tr.insertCell().textContent = v;
    const b = document.createElement("button"); b.textContent = "play"; tr.insertCell().append(b);
  }
  const table = document.createElement("table");
  table.className = "list"; table.id = "plain"; table.append(body);
  document.getElementById("view").replaceChildren(table);
  return new Promise(
    (r) => requestAnimationFrame(() => setTimeout(() => r(performance.now() - start))));
}"""


def login(page: Page, url: str) -> None:
    page.goto(f"{url}/login?next=/music/")
    page.fill("#name", "bench")
    page.fill("#password", LOGIN)
    page.click("#login")
    page.wait_for_url(f"{url}/music/")


def scrolling(page: Page, frames: int, step: int, rows: str) -> dict[str, Any]:
    page.evaluate("scrollTo(0, 0)")
    found: dict[str, Any] = page.evaluate(_SCROLL, [frames, step, rows])
    return found


def row(name: str, first: float | None, s: dict[str, Any]) -> str:
    times = s["times"]
    slow = sum(1 for t in times if t > 1000 / 60 * 1.5)
    first_text = f"{first:.0f}" if first is not None else ""
    return (
        f"| {name} | {first_text} | {pct(times, 0.5):.1f} | {pct(times, 0.95):.1f} |"
        f" {max(times):.1f} | {slow} | {len(s['long'])} ({sum(s['long']):.0f} ms) |"
        f" {s['rows']:,} | {s['y']:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--albums", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--step", type=int, default=120)
    parser.add_argument("--plain", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        flac = player.long_track(base / "music" / "A" / "B" / "01.flac", 5)
        big = base / "big"
        fill(big, flac, args.albums)
        add_user(big, "bench", LOGIN, "music")
        with serve(big) as srv, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            login(page, srv.url)
            lines = []
            page.goto(f"{srv.url}/music/#/tracks")
            page.reload()  # a navigation of its own: its clock starts at zero
            first = page.evaluate(_FIRST, "#tracks [data-track]")
            total = int(page.get_attribute("#tracks", "data-total") or 0)
            tracks = scrolling(page, args.frames, args.step, "#tracks [role=row]")
            lines.append(row(f"tracks, virtual list ({total:,})", first, tracks))
            jump = page.evaluate(
                """async () => { const start = performance.now();
                     scrollTo(0, document.body.scrollHeight);
                     const last = document.getElementById("tracks").dataset.total;
                     const cells = "#tracks [data-track] [role=cell]:first-child";
                     while (![...document.querySelectorAll(cells)]
                              .some((td) => td.textContent === last))
                       await new Promise((r) => requestAnimationFrame(r));
                     return performance.now() - start; }"""
            )
            page.goto(f"{srv.url}/music/#/albums?sort=year")
            page.reload()
            first = page.evaluate(_FIRST, "#albums a.album")
            albums = scrolling(page, args.frames, args.step, "#albums a.album")
            lines.append(row(f"albums grid, paged ({args.albums:,})", first, albums))
            items: list[dict[str, Any]] = []
            for offset in range(0, args.plain, 500):
                items += page.evaluate(
                    "async (o) => (await (await homekeep.fetch(`/api/music/tracks?limit=500"
                    "&offset=${o}`)).json()).items",
                    offset,
                )
            built = page.evaluate(_PLAIN, items[: args.plain])
            plain = scrolling(page, args.frames, args.step, "#plain tr")
            lines.append(row(f"reference: plain table of {len(items):,} tracks", built, plain))
            browser.close()
        print(f"{args.frames} frames of {args.step} px; Chromium headless, 1280x800")
        print()
        print("| list | first render ms | frame p50 ms | p95 ms | worst ms | frames over"
              " 25 ms | long tasks | rows in page | scrolled px |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for line in lines:
            print(line)
        print(f"\njump to the last of {total:,} tracks: {jump:.0f} ms to its row")
        load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
        print(f"load: {load.strip()}")


if __name__ == "__main__":
    main()
