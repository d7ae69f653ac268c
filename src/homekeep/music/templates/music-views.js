// The views, drawn into #view by the part of the address after "#/", and the router.
(() => {
  "use strict";
  const {$, api, send, el, button, clock, fail, status, enc, thumb, image, artistNames, state, canPlay, playNow, playNext, enqueue, addToPlaylist, tracksOf, hooks} = music;
  const {pager, albumTile, trackTable, virtualTracks, scroller, pagesOf} = musicLists;
  const view = $("view");
  let drawing = 0;
  let current_pager = null;  // the long list in sight: stopped when the view changes
  let imported = null;  // the report of the last import, shown once on the playlists view
  const views = {
    async albums(params) {
      const sort = params.get("sort") || "artist";
      const filter = {sort};
      for (const k of GROUPS.map(([by]) => by)) if (params.get(k)) filter[k] = params.get(k);
      const go = (changes) => { location.hash = `#/albums?${new URLSearchParams(Object.fromEntries(Object.entries({...filter, ...changes}).filter(([, v]) => v !== "")))}`; };
      const select = el("select", {id: "album-sort", "aria-label": "sort", onchange: () => go({sort: select.value})},
        ...[["artist", "By artist"], ["title", "By title"], ["year", "By year"], ["added", "Recently added"]].map(([v, l]) => el("option", {value: v, selected: v === sort, text: l})));
      const grid = el("div", {class: "grid", id: "albums"});
      const groups = el("div", {class: "toolbar", id: "groups"});
      view.replaceChildren(el("h1", {text: "Albums"}), el("div", {class: "toolbar"}, select), groups, grid);
      current_pager = pager(grid, pagesOf("/albums", filter), (items) => grid.append(...items.map(albumTile)));
      // the album groups: each a menu of its groups with their album counts
      for (const [by, label] of GROUPS) {
        const menu = el("select", {id: `group-${by}`, "aria-label": label, onchange: () => go({[by]: menu.value})}, el("option", {value: "", text: `${label}: all`}));
        groups.append(menu);
        api(`/album-groups?by=${by}`).then((list) => menu.append(...list.map((g) => {
          const value = by === "decade" && g.id === "unknown" ? "-1" : g.id;
          return el("option", {value, selected: filter[by] === value, text: `${g.name} (${g.albums})`});
        }))).catch(fail);
      }
    },
    async artists(params) {
      const all = params.get("role") === "any";
      const list = el("ul", {id: "artists"});
      const toggle = el("a", {class: "badge link", id: "artist-role", href: all ? "#/artists" : "#/artists?role=any", text: all ? "Album artists only" : "Every artist"});
      view.replaceChildren(el("h1", {text: all ? "Artists" : "Album artists"}), el("div", {class: "toolbar"}, toggle), list);
      const q = params.get("q");
      current_pager = pager(list, pagesOf("/artists", {role: all ? "any" : "album_artist", ...(q ? {q} : {})}), (items) => list.append(
        ...items.map((a) => el("li", {}, el("a", {class: "link", href: `#/artist/${enc(a.id)}`, text: a.name || "Unknown artist"}),
          el("span", {class: "muted", text: a.album_count ? ` · ${a.album_count} album${a.album_count === 1 ? "" : "s"}` : ""})))));
    },
    async artist(params, id) {
      const a = await api(`/artists/${enc(id)}`);
      const playAll = async () => playNow((await api(`/tracks?${new URLSearchParams({artist_id: id, limit: 500})}`)).items);
      const own = a.albums.filter((x) => !x.appears_on), others = a.albums.filter((x) => x.appears_on);
      view.replaceChildren(el("h1", {text: a.name || "Unknown artist"}),
        el("div", {class: "toolbar"}, button("▶ Play all", () => playAll().catch(fail), {class: "primary"})),
        el("div", {class: "grid", id: "artist-albums"}, ...own.map(albumTile)),
        others.length ? el("h2", {text: "Appears on"}) : null,
        others.length ? el("div", {class: "grid", id: "appears-on"}, ...others.map(albumTile)) : null);
    },
    // the folders as on disk: first the roots, then one root's folders, each on its own
    async folders(params) {
      const root = params.get("root");
      if (!root) {
        const roots = await api("/roots");
        view.replaceChildren(el("h1", {text: "Folders"}), el("ul", {id: "roots"}, ...roots.map((r) => el("li", {},
          el("a", {class: "link", href: `#/folders?root=${r.id}`, text: r.path}), el("span", {class: "muted", text: ` · ${r.files} files`})))));
        return;
      }
      const f = await api(`/folders?${new URLSearchParams({root, path: params.get("path") || ""})}`);
      const at = (path) => `#/folders?${new URLSearchParams({root, path})}`;
      const crumbs = [el("a", {class: "link", href: "#/folders", text: "Roots"}), " / ", el("a", {class: "link", href: at(""), text: f.root.path})];
      f.path.split("/").filter(Boolean).forEach((name, i, all) => crumbs.push(" / ", el("a", {class: "link", href: at(all.slice(0, i + 1).join("/")), text: name})));
      const everything = async () => (await api(`/folders/tracks?${new URLSearchParams({root, path: f.path})}`)).items;
      const {table} = trackTable(f.tracks, {numbered: false});
      view.replaceChildren(el("h1", {text: f.path ? f.path.split("/").pop() : f.root.path}), el("p", {id: "crumbs"}, ...crumbs),
        el("div", {class: "toolbar"},
          button("▶ Play folder", () => everything().then((t) => playNow(t)).catch(fail), {class: "primary", id: "play-folder"}),
          button("+ Queue", () => everything().then(enqueue).catch(fail), {id: "queue-folder"})),
        el("ul", {id: "folders", class: "folders"}, ...f.folders.map((d) => el("li", {},
          d.cover_hash ? el("img", {src: image(d.cover_hash, "thumb"), loading: "lazy", alt: "", width: 40, height: 40}) : el("span", {class: "art"}),
          el("a", {class: "link", href: at(d.path), text: d.name}), el("span", {class: "muted", text: ` · ${d.tracks} tracks`})))),
        f.tracks.length ? scroller(table) : null);
      table.id = "folder-tracks";
    },
    async album(params, id) {
      const a = await api(`/albums/${enc(id)}`);
      const cover = a.cover_hash ? el("img", {id: "album-cover", src: image(a.cover_hash, "thumb"), alt: `cover of ${a.title}`, onclick: () => zoom(image(a.cover_hash, "full"))}) : el("div", {class: "art"});
      const {table} = trackTable(a.tracks, {numbered: true});
      const gallery = el("div", {class: "gallery", id: "gallery"});
      view.replaceChildren(
        el("div", {class: "album-head"}, cover, el("div", {},
          el("h1", {text: a.title || "Untitled"}),
          el("p", {}, a.album_artist_id ? el("a", {class: "link", href: `#/artist/${enc(a.album_artist_id)}`, text: a.album_artist || ""}) : a.album_artist || "",
            el("span", {class: "muted", text: ` · ${[a.year, a.genre, `${a.track_count} tracks`, clock(a.duration)].filter(Boolean).join(" · ")}`})),
          el("div", {class: "toolbar"},
            button("▶ Play", () => playNow(a.tracks), {class: "primary", id: "play-album"}),
            button("⇄ Shuffle", () => { state.shuffle = true; $("shuffle").setAttribute("aria-pressed", "true"); playNow(a.tracks, Math.floor(Math.random() * a.tracks.length)); }),
            button("⤵ Next", () => playNext(a.tracks)),
            button("+ Queue", () => enqueue(a.tracks), {id: "queue-album"}),
            button("♫ Playlist", () => addToPlaylist(a.tracks), {id: "album-to-playlist"})),
          el("p", {class: "muted", text: a.folder}))),
        gallery, scroller(table));
      // the other embedded pictures of the album's tracks: back cover, booklet, artist...
      const seen = new Set([a.cover_hash]);
      for (const t of a.tracks.slice(0, 30)) {
        const full = await api(`/tracks/${t.id}`).catch(() => null);
        if (!full || !view.contains(gallery)) return;
        for (const p of full.pictures) {
          if (seen.has(p.hash) || p.error) continue;
          seen.add(p.hash);
          gallery.append(el("figure", {}, el("img", {src: image(p.hash, "thumb"), loading: "lazy", alt: p.description || "", onclick: () => zoom(image(p.hash, "full"))}),
            el("figcaption", {text: PICTURE_TYPES[p.type] || `picture ${p.type}`})));
        }
      }
    },
    async track(params, id) {
      const t = await api(`/tracks/${enc(id)}`);
      const {table} = trackTable([t]);
      view.replaceChildren(el("h1", {text: t.title || "Untitled"}), scroller(table),
        el("dl", {class: "summary"}, ...[["Path", t.path], ["Format", `${t.format || "?"}${canPlay(t.format) ? "" : " (transcoded to play here)"}`],
          ["Genres", (t.genres || []).join(", ")], ["Bit rate", t.bitrate ? `${Math.round(t.bitrate / 1000)} kbit/s` : ""]]
          .flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v || "—"})])),
        el("div", {class: "gallery"}, ...t.pictures.filter((p) => !p.error).map((p) => el("figure", {},
          el("img", {src: image(p.hash, "thumb"), alt: "", onclick: () => zoom(image(p.hash, "full"))}), el("figcaption", {text: PICTURE_TYPES[p.type] || ""})))));
    },
    async tracks(params) {
      const sort = {key: params.get("sort") || "artist", desc: params.get("desc") === "1"};
      const q = params.get("q") || "";
      const go = (p) => { location.hash = `#/tracks?${new URLSearchParams(p)}`; };
      const filter = el("input", {type: "text", id: "track-filter", placeholder: "Filter by title, artist or album", value: q, maxlength: 200, "aria-label": "filter"});
      const form = el("form", {class: "toolbar", onsubmit: (e) => { e.preventDefault(); go({q: filter.value, sort: sort.key, desc: sort.desc ? 1 : 0}); }}, filter, el("button", {type: "submit", text: "Filter"}));
      const query = {sort: sort.key, desc: sort.desc};
      if (q) query.q = q;
      const list = virtualTracks(pagesOf("/tracks", query), {sort, onSort: (key) => go({q, sort: key, desc: key === sort.key && !sort.desc ? 1 : 0})});
      list.table.id = "tracks";
      view.replaceChildren(el("h1", {text: "Tracks"}), form, scroller(list.table));
      current_pager = list;
    },
    async search(params) {
      const q = params.get("q") || "";
      $("q").value = q;
      const [artists, albums, tracks] = await Promise.all([
        api(`/artists?${new URLSearchParams({q, limit: 20})}`), api(`/albums?${new URLSearchParams({q, limit: 24})}`),
        api(`/tracks?${new URLSearchParams({q, limit: 100})}`)]);
      const {table} = trackTable(tracks.items);
      view.replaceChildren(el("h1", {text: `Search: ${q}`}),
        el("h2", {text: `Artists (${artists.total})`}), el("ul", {}, ...artists.items.map((a) => el("li", {}, el("a", {class: "link", href: `#/artist/${enc(a.id)}`, text: a.name})))),
        el("h2", {text: `Albums (${albums.total})`}), el("div", {class: "grid"}, ...albums.items.map(albumTile)),
        el("h2", {text: `Tracks (${tracks.total})`}), el("div", {class: "toolbar"}, button("▶ Play these", () => playNow(tracks.items), {id: "play-results"})), scroller(table));
    },
    async playlists() {
      const lists = await api("/playlists");
      const name = el("input", {type: "text", id: "new-playlist", placeholder: "New playlist name", maxlength: 200, "aria-label": "new playlist name"});
      const create = el("form", {class: "toolbar", onsubmit: async (e) => {
        e.preventDefault();
        try { const p = await send("POST", "/playlists", {name: name.value}); location.hash = `#/playlist/${enc(p.id)}`; } catch (err) { fail(err); }
      }}, name, el("button", {type: "submit", class: "primary", text: "Create"}));
      const rows = lists.map((p) => el("tr", {dataset: {playlist: p.id}},
        el("td", {}, el("a", {class: "link", href: `#/playlist/${enc(p.id)}`, text: p.name})),
        el("td", {class: "num", text: p.tracks}), el("td", {class: "num wide", text: clock(p.duration)}),
        el("td", {class: "wide", text: p.problems ? `${p.problems} not found` : ""})));
      // an .m3u/.m3u8 from this computer: the server matches its entries to the library
      const file = el("input", {type: "file", id: "import-file", accept: ".m3u,.m3u8,audio/x-mpegurl", "aria-label": "playlist file"});
      const importer = el("form", {class: "toolbar", id: "import", onsubmit: async (e) => {
        e.preventDefault();
        const chosen = file.files[0];
        if (!chosen) { fail(new Error("choose an .m3u or .m3u8 file first")); return; }
        try {
          const name = chosen.name.replace(/\.m3u8?$/i, "") || "Imported";
          imported = await api(`/playlists/import?${new URLSearchParams({name})}`, {method: "POST", headers: {"Content-Type": "audio/x-mpegurl"}, body: await chosen.arrayBuffer()});
          route();
        } catch (err) { fail(err); }
      }}, el("label", {}, "Import ", file), el("button", {type: "submit", text: "Import"}));
      const report = imported ? el("section", {id: "import-report"},
        el("p", {text: `${imported.playlist.name}: ${imported.imported} imported, ${imported.not_found.length} not found`}),
        imported.not_found.length ? el("ul", {}, ...imported.not_found.map((m) => el("li", {text: `line ${m.line + 1}: ${m.path} (${m.problem})`}))) : null) : null;
      imported = null;
      view.replaceChildren(el("h1", {text: "Playlists"}), create, importer, report,
        lists.length ? scroller(el("table", {class: "list", id: "playlists"}, el("thead", {}, el("tr", {}, el("th", {text: "Name"}), el("th", {class: "num", text: "Tracks"}), el("th", {class: "num wide", text: "Time"}), el("th", {class: "wide"}))), el("tbody", {}, ...rows)))
          : el("p", {class: "muted", text: "No playlists yet."}));
    },
    async playlist(params, id) {
      const p = await api(`/playlists/${enc(id)}`);
      const ids = p.items.filter((e) => e.track_id !== null).map((e) => e.track_id);
      const tracks = ids.length ? await tracksOf(ids) : [];
      const byId = new Map(tracks.map((t) => [t.id, t]));
      const change = (promise) => promise.then(() => route()).catch(fail);
      const order = (from, to) => { const o = p.items.map((e) => e.position); o.splice(to, 0, ...o.splice(from, 1)); return change(send("PUT", `/playlists/${enc(id)}/order`, {order: o})); };
      const rows = p.items.map((e, i) => {
        const t = byId.get(e.track_id);
        return el("tr", {dataset: {position: e.position, track: e.track_id ?? ""}},
          el("td", {class: "num", text: i + 1}),
          el("td", {}, t ? el("a", {class: "link", href: `#/track/${t.id}`, text: t.title || "Untitled"}) : el("span", {class: "error", text: `${e.label || e.path}: ${e.problem || "not found"}`})),
          el("td", {text: t ? artistNames(t) : ""}), el("td", {class: "num", text: clock(e.seconds)}),
          el("td", {}, el("span", {class: "mini"},
            t ? button("▶", () => playNow(tracks, tracks.indexOf(t)), {class: "play"}) : null,
            button("↑", () => i && order(i, i - 1), {class: "up", "aria-label": "up"}),
            button("↓", () => i < p.items.length - 1 && order(i, i + 1), {class: "down", "aria-label": "down"}),
            button("✕", () => change(send("POST", `/playlists/${enc(id)}/remove`, {positions: [e.position]})), {class: "remove", "aria-label": "remove"}))));
      });
      const rename = el("input", {type: "text", id: "rename", value: p.name, maxlength: 200, "aria-label": "playlist name"});
      view.replaceChildren(el("h1", {text: p.name}),
        el("div", {class: "toolbar"},
          button("▶ Play", () => playNow(tracks), {class: "primary", id: "play-playlist"}),
          button("+ Queue", () => enqueue(tracks)),
          el("a", {href: `/api/music/playlists/${enc(id)}/m3u8`, download: `${p.name}.m3u8`, id: "download", text: "Download .m3u8"}),
          button("Delete", async () => { if (!confirm(`Delete the playlist ${p.name}?`)) return; try { await api(`/playlists/${enc(id)}`, {method: "DELETE"}); location.hash = "#/playlists"; } catch (err) { fail(err); } }, {id: "delete-playlist"})),
        el("form", {class: "toolbar", onsubmit: async (e) => { e.preventDefault(); try { const r = await send("PATCH", `/playlists/${enc(id)}`, {name: rename.value}); location.hash = `#/playlist/${enc(r.id)}`; } catch (err) { fail(err); } }},
          rename, el("button", {type: "submit", text: "Rename"})),
        scroller(el("table", {class: "list", id: "playlist"}, el("tbody", {}, ...rows))));
    },
    async recent() {
      const r = await api("/recent?limit=100");
      const {table} = trackTable(r.items, {extra: (t) => el("span", {class: "badge", title: `last played ${t.last_played}`, text: `${t.play_count}×`})});
      table.id = "recent";
      view.replaceChildren(el("h1", {text: "Recently played"}), r.items.length ? scroller(table) : el("p", {class: "muted", text: "Nothing played yet."}));
    },
    async reports(params) {
      const kind = params.get("kind") || "missing-tags";
      const tabs = el("div", {class: "toolbar"}, ...[["missing-tags", "Missing tags"], ["artwork", "Artwork"], ["errors", "Unreadable files"], ["types", "File types"]]
        .map(([k, l]) => el("a", {class: "badge link", href: `#/reports?kind=${k}`, "aria-current": k === kind ? "page" : null, text: l})));
      const rows = await api(`/reports/${kind}`);
      const table = (heads, cells) => scroller(el("table", {class: "list", id: `report-${kind}`},
        el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", {text: h})))), el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cells(r).map((c) => el("td", {}, c)))))));
      const reports = {
        "missing-tags": () => table(["Level", "Missing", "File"], (r) => [r.level, [...r.missing, ...r.warnings].join(", "), el("a", {class: "link", href: `#/track/${r.track_id}`, text: r.path})]),
        artwork: () => table(["Cover", "Album", "Problem"], (r) => [
          r.problem === "missing" ? "—" : el("img", {src: thumb(r.album_id), loading: "lazy", alt: "", width: 64, height: 64, onerror: (e) => { e.target.replaceWith("?"); }}),
          el("a", {class: "link", href: `#/album/${enc(r.album_id)}`, text: `${r.album_artist || ""} — ${r.album || "Untitled"}`}), r.reason]),
        errors: () => table(["Level", "File", "Why"], (r) => [r.level, r.path, r.message]),
        types: () => table(["Extension", "Kind", "Detected", "Files", "Bytes"], (r) => [r.ext || "(none)", r.kind, r.detected || "", String(r.files), String(r.bytes)]),
      };
      view.replaceChildren(el("h1", {text: "Reports"}), tabs, rows.length ? reports[kind]() : el("p", {class: "muted", text: "Nothing to report."}));
    },
  };
  const GROUPS = [["release_type", "Type"], ["compilation", "Compilation"], ["genre", "Genre"], ["decade", "Decade"]];
  const PICTURE_TYPES = {0: "other", 1: "icon", 3: "front cover", 4: "back cover", 5: "leaflet", 6: "medium", 7: "lead artist", 8: "artist", 9: "conductor", 10: "band", 11: "composer", 12: "lyricist", 13: "location", 14: "recording", 15: "performance", 18: "illustration", 19: "band logo", 20: "publisher logo"};
  function zoom(src) { $("lightbox-img").src = src; $("lightbox").showModal(); }

  async function route() {
    const [path, query] = (location.hash.slice(1) || "/albums").split("?");
    const [name, ...rest] = path.split("/").filter(Boolean);
    const draw = views[name] || views.albums;
    const mine = ++drawing;
    if (current_pager) { current_pager.stop(); current_pager = null; }
    document.querySelectorAll(".more").forEach((m) => m.remove());
    document.querySelectorAll("#tabs a").forEach((a) => {
      const tab = a.getAttribute("href").slice(2);
      if (tab === name || tab === name + "s" || (name === undefined && tab === "albums")) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    });
    status("");
    try {
      await draw(new URLSearchParams(query || ""), rest.map(decodeURIComponent).join("/"));
    } catch (e) { if (mine === drawing) fail(e); }
  }
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#/search?q=${enc($("q").value)}`; });
  window.addEventListener("hashchange", route);
  hooks.route = route;
  route();
})();
