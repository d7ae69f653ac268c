// Long lists: album tiles paged in as the end comes into sight, and track tables, either
// whole (an album, a playlist) or a virtual window over any number of rows (all tracks).
const musicLists = (() => {
  "use strict";
  const {api, el, button, clock, fail, enc, thumb, artistNames, PAGE, current, playNow, playNext, enqueue, addToPlaylist} = music;

  // Pages of a long list, the next one fetched when the end comes into sight.
  function pager(container, fetchPage, drawItems, after) {
    let offset = 0, total = Infinity, busy = false, ended = false;
    const more = el("div", {class: "more"});
    const moreButton = button("More", () => step());
    async function step() {
      if (busy || offset >= total) return;
      busy = true;
      try {
        const page = await fetchPage(offset);
        total = page.total;
        offset += page.items.length;
        drawItems(page.items, offset - page.items.length);
        more.replaceChildren(offset < total ? moreButton : el("span", {class: "muted", text: `${total} in all`}));
        if (after) after(page);
      } catch (e) { fail(e); } finally { busy = false; }
      if (!ended && offset < total && more.getBoundingClientRect().top < innerHeight + 400) step();
    }
    const seen = new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) step(); }, {rootMargin: "400px"});
    seen.observe(more);
    container.after(more);
    step();
    return {stop: () => { ended = true; seen.disconnect(); }};
  }

  function albumTile(a) {
    const art = a.cover_hash ? el("img", {src: thumb(a.id), loading: "lazy", alt: "", width: 150, height: 150}) : el("div", {class: "art"});
    return el("a", {class: "tile album", href: `#/album/${enc(a.id)}`, dataset: {album: a.id}}, art,
      el("div", {class: "title", text: a.title || "Untitled"}),
      el("div", {class: "sub", text: [a.album_artist, a.year].filter(Boolean).join(" · ")}));
  }

  const HEADS = [["#", null, "num"], ["Title", "title"], ["Artist", "artist"], ["Album", "album", "wide"], ["Year", "year", "wide num"], ["Format", "format", "wide"], ["Time", "duration", "num"], ["", null, "acts"]];
  function tableHead(sort, onSort) {
    return el("thead", {}, el("tr", {}, ...HEADS.map(([label, key, cls]) => el("th", {class: cls}, key && onSort
      ? button(label + (sort && sort.key === key ? (sort.desc ? " ▼" : " ▲") : ""), () => onSort(key), {dataset: {sort: key}})
      : label))));
  }
  // One track's row (a table's, or a virtual list's: ``kind`` names the elements);
  // ``from`` gives the tracks to play when its ▶ is pressed.
  function trackRow(t, number, from, extra, kind = {row: "tr", cell: "td"}) {
    const cell = (props, ...children) => el(kind.cell, {role: kind.cell === "td" ? null : "cell", ...props}, ...children);
    const tr = el(kind.row, {dataset: {track: t.id}, role: kind.row === "tr" ? null : "row"},
      cell({class: "num", text: number}),
      cell({}, el("a", {class: "link", href: `#/track/${t.id}`, text: t.title || "Untitled"})),
      cell({text: artistNames(t)}),
      cell({class: "wide"}, t.album_id ? el("a", {class: "link", href: `#/album/${enc(t.album_id)}`, text: t.album || ""}) : ""),
      cell({class: "wide num", text: t.year || ""}),
      cell({class: "wide", text: t.format || t.ext || ""}),
      cell({class: "num", text: clock(t.duration)}),
      cell({}, el("span", {class: "mini"},
        button("▶", () => { const [list, at] = from(); playNow(list, at); }, {title: "Play from here", class: "play"}),
        button("⤵", () => playNext([t]), {title: "Play next", class: "next"}),
        button("+", () => enqueue([t]), {title: "Add to the queue", class: "add"}),
        button("♫", () => addToPlaylist([t]), {title: "Add to a playlist", class: "to-playlist"}),
        extra ? extra(t) : null)));
    tr.track = t;
    if (current() && current().id === t.id) tr.classList.add("playing");
    return tr;
  }
  function trackTable(tracks, {sort, onSort, numbered, extra} = {}) {
    const body = el("tbody");
    const table = el("table", {class: "list tracks"}, tableHead(sort, onSort), body);
    const add = (items, start = 0) => body.append(...items.map((t, i) => {
      const from = () => { const list = [...body.querySelectorAll("tr")].map((tr) => tr.track); return [list, list.indexOf(t)]; };
      return trackRow(t, numbered ? (t.track || "") : start + i + 1, from, extra);
    }));
    add(tracks);
    return {table, add};
  }

  // A window over a list of any length: only the rows in sight, and a screenful either side,
  // are in the page; each page of rows is fetched when it first comes near. Rows have one
  // fixed height and are placed absolutely at their index times that height, so a row
  // coming in or going out is laid out and painted alone (a table would redo it all).
  function virtualTracks(fetchPage, {sort, onSort} = {}) {
    const head = el("div", {class: "vhead", role: "row"}, ...HEADS.map(([label, key, cls]) => el("div", {class: cls, role: "columnheader"}, key && onSort
      ? button(label + (sort && sort.key === key ? (sort.desc ? " ▼" : " ▲") : ""), () => onSort(key), {dataset: {sort: key}})
      : label)));
    const body = el("div", {class: "vbody", role: "rowgroup"});
    const table = el("div", {class: "list tracks virtual", role: "table"}, head, body);
    const items = [];  // sparse: the tracks fetched so far, by index
    const asked = new Set();  // the pages fetched or being fetched
    const rows = new Map();  // index -> its row while in the window
    const kind = {row: "div", cell: "div"};
    let total = null, height = 0, frame = 0, stopped = false;
    const MAX_PLAY = 500;
    // ▶ plays from this track on, as far as the rows fetched go without a hole
    const from = (i) => () => { let end = i; while (end < i + MAX_PLAY && items[end]) end += 1; return [items.slice(i, end), 0]; };
    function fetch(page) {
      if (asked.has(page) || stopped) return;
      asked.add(page);
      fetchPage(page * PAGE).then((r) => {
        total = r.total;
        table.dataset.total = total;
        body.style.height = `${total * (height || 36)}px`;
        r.items.forEach((t, n) => {
          const i = page * PAGE + n;
          items[i] = t;
          if (rows.has(i)) { rows.get(i).remove(); rows.delete(i); }  // its placeholder
        });
        schedule();
      }).catch((e) => { asked.delete(page); fail(e); });
    }
    function place(i) {
      const row = items[i] ? trackRow(items[i], i + 1, from(i), null, kind) : el("div", {class: "pending", role: "row"}, el("div", {role: "cell", text: "…"}));
      row.style.transform = `translateY(${i * (height || 36)}px)`;
      row.setAttribute("aria-rowindex", i + 2);
      return row;
    }
    function draw() {
      frame = 0;
      if (stopped) return;
      if (total === null) { fetch(0); return; }
      const h = height || 36, top = body.getBoundingClientRect().top;
      const first = Math.max(0, Math.min(total, Math.floor((-top - innerHeight) / h)));
      const last = Math.max(first, Math.min(total, Math.ceil((2 * innerHeight - top) / h)));
      for (let p = Math.floor(first / PAGE); p * PAGE < last; p += 1) fetch(p);
      for (const [i, row] of rows) if (i < first || i >= last) { row.remove(); rows.delete(i); }
      const fresh = [];
      for (let i = first; i < last; i += 1) if (!rows.has(i)) { const row = place(i); rows.set(i, row); fresh.push(row); }
      if (fresh.length) body.append(...fresh);
      if (!height && rows.size) {
        // the first rows tell the height all rows have (CSS fixes it): place them again
        height = rows.values().next().value.getBoundingClientRect().height || 36;
        body.style.height = `${total * height}px`;
        for (const [i, row] of rows) row.style.transform = `translateY(${i * height}px)`;
        schedule();
      }
    }
    const schedule = () => { if (!frame) frame = requestAnimationFrame(draw); };
    addEventListener("scroll", schedule, {passive: true});
    addEventListener("resize", schedule);
    schedule();
    const stop = () => { stopped = true; removeEventListener("scroll", schedule); removeEventListener("resize", schedule); };
    return {table, stop};
  }

  const scroller = (table) => el("div", {class: "scroll"}, table);
  const pagesOf = (path, params) => (offset) => api(`${path}?${new URLSearchParams({...params, offset, limit: PAGE})}`);
  return {pager, albumTile, trackTable, virtualTracks, scroller, pagesOf};
})();
