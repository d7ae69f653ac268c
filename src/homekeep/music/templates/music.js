// The player: views drawn from /api/music, one <audio>, the queue kept on the server.
// Text from the library goes in with textContent only, never as markup.
// music.html includes this file through Jinja: no brace followed by "{", "%" or "#" here.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const audio = $("audio");
  const PAGE = 60;

  // -- helpers -------------------------------------------------------------------------
  async function api(path, options) {
    const r = await homekeep.fetch("/api/music" + path, options);
    if (r.status === 204) return null;
    const body = await r.json().catch(() => ({error: {message: r.status + " " + r.statusText}}));
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    return body;
  }
  const send = (method, path, body) => api(path, {
    method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const button = (text, onclick, props = {}) => el("button", {type: "button", onclick, text, ...props});
  function clock(s) {
    if (!isFinite(s) || s < 0) s = 0;
    s = Math.floor(s);
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
  }
  function status(text, bad) { $("status").textContent = text || ""; $("status").className = bad ? "error" : "muted"; }
  const fail = (e) => status(e.message, true);
  const enc = encodeURIComponent;
  const thumb = (album) => `/api/music/albums/${enc(album)}/cover?size=thumb`;
  const image = (digest, size) => `/api/music/images/${digest}?size=${size}`;
  const artistNames = (t) => (t.artists && t.artists.length ? t.artists.map((a) => a.name).join(", ") : t.artist) || "Unknown artist";

  // -- playback ------------------------------------------------------------------------
  // The browser says what it can play from the format's media type, never the extension.
  const MIMES = {
    mp3: "audio/mpeg", flac: "audio/flac", vorbis: 'audio/ogg; codecs="vorbis"',
    opus: 'audio/ogg; codecs="opus"', aac: 'audio/mp4; codecs="mp4a.40.2"', mp4: 'audio/mp4; codecs="mp4a.40.2"',
    alac: 'audio/mp4; codecs="alac"', wav: "audio/wav", aiff: "audio/aiff", wavpack: "audio/x-wavpack",
    ape: "audio/x-ape", wma: "audio/x-ms-wma",
  };
  const state = {
    queue: [], index: -1, shuffle: false, repeat: "off", base: 0, direct: true,
    counted: false, saved: 0, restoring: null,
  };
  const current = () => state.queue[state.index];
  const canPlay = (fmt) => Boolean(MIMES[fmt] && audio.canPlayType(MIMES[fmt]));
  function source(track, offset) {
    if (canPlay(track.format)) return {url: `/api/music/tracks/${track.id}/stream`, direct: true};
    const target = audio.canPlayType(MIMES.opus) ? "opus" : "mp3";
    const from = offset > 0 ? `&offset=${offset.toFixed(1)}` : "";
    return {url: `/api/music/tracks/${track.id}/stream?format=${target}${from}`, direct: false};
  }
  const position = () => state.base + (audio.currentTime || 0);
  const length = () => (current() && current().duration) || (state.direct ? audio.duration : 0) || 0;

  function load(index, offset = 0, autoplay = true) {
    if (index < 0 || index >= state.queue.length) return;
    state.index = index;
    const track = current();
    const src = source(track, offset);
    state.direct = src.direct;
    state.base = src.direct ? 0 : offset;
    state.counted = false;
    state.restoring = src.direct && offset > 0 ? offset : null;
    audio.src = src.url;
    audio.dataset.mode = src.direct ? "direct" : "transcoded";
    audio.dataset.track = track.id;
    if (autoplay) audio.play().catch((e) => { if (e.name !== "AbortError") fail(e); });
    nowPlaying(track);
    drawQueue();
    saveQueue();
  }
  function seek(to) {
    const track = current();
    if (!track) return;
    to = Math.max(0, Math.min(to, length() || to));
    if (state.direct) { audio.currentTime = to; return; }
    // a transcode is not byte-seekable: start a new one at the time asked for
    load(state.index, to, !audio.paused);
  }
  function toggle() {
    if (!current()) { if (state.queue.length) load(0); return; }
    if (audio.paused) audio.play().catch(fail); else audio.pause();
  }
  function stop() {
    audio.pause();
    if (current()) { if (state.direct) audio.currentTime = 0; else load(state.index, 0, false); }
    saveQueue(true);
  }
  function next(auto = false) {
    if (!state.queue.length) return;
    if (auto && state.repeat === "one") { load(state.index); return; }
    let i = state.index + 1;
    if (state.shuffle && state.queue.length > 1) {
      do { i = Math.floor(Math.random() * state.queue.length); } while (i === state.index);
    } else if (i >= state.queue.length) {
      if (state.repeat === "off" && auto) { stop(); return; }
      i = 0;
    }
    load(i);
  }
  function prev() {
    if (position() > 3 || state.index <= 0) { seek(0); return; }
    load(state.index - 1);
  }

  // -- the queue -----------------------------------------------------------------------
  const MAX_QUEUE = 5000;
  function playNow(tracks, start = 0) {
    if (!tracks.length) return;
    state.queue = tracks.slice(0, MAX_QUEUE);
    load(Math.min(start, state.queue.length - 1));
  }
  function playNext(tracks) {
    state.queue.splice(state.index + 1, 0, ...tracks);
    state.queue.length = Math.min(state.queue.length, MAX_QUEUE);
    if (state.index < 0) load(0); else { drawQueue(); saveQueue(); }
    status(`${tracks.length === 1 ? tracks[0].title : tracks.length + " tracks"}: next`);
  }
  function enqueue(tracks) {
    state.queue.push(...tracks.slice(0, MAX_QUEUE - state.queue.length));
    drawQueue(); saveQueue();
    status(`${tracks.length === 1 ? tracks[0].title : tracks.length + " tracks"}: added to the queue`);
  }
  function removeAt(i) {
    const playing = i === state.index;
    state.queue.splice(i, 1);
    if (i < state.index) state.index -= 1;
    if (playing) {
      audio.pause();
      if (state.index >= state.queue.length) state.index = state.queue.length - 1;
      if (state.index >= 0) load(state.index, 0, false); else clearNow();
    }
    drawQueue(); saveQueue(true);
  }
  function move(i, by) {
    const j = i + by;
    if (j < 0 || j >= state.queue.length) return;
    const [t] = state.queue.splice(i, 1);
    state.queue.splice(j, 0, t);
    if (state.index === i) state.index = j; else if (state.index === j) state.index = i;
    drawQueue(); saveQueue(true);
  }
  function clearNow() {
    state.index = -1;
    audio.removeAttribute("src"); audio.load();
    nowPlaying(null);
  }
  function drawQueue() {
    const items = state.queue.map((t, i) => el("li", {class: i === state.index ? "current" : null, dataset: {id: t.id}},
      el("div", {class: "what", title: "Play", onclick: () => load(i)}, t.title || "Untitled", el("small", {text: artistNames(t)})),
      el("span", {class: "mini"},
        button("↑", () => move(i, -1), {"aria-label": "up", class: "up"}),
        button("↓", () => move(i, 1), {"aria-label": "down", class: "down"}),
        button("✕", () => removeAt(i), {"aria-label": "remove", class: "remove"}))));
    $("queue").replaceChildren(...items);
    document.querySelectorAll("tr[data-track]").forEach((tr) => {
      tr.classList.toggle("playing", current() !== undefined && tr.dataset.track === String(current().id));
    });
  }
  // The queue lives on the server for each user: saved on every change, and the position
  // every 10 s while playing (and when the page goes away).
  function saveQueue(now = false) {
    if (!now && Date.now() - state.saved < 1000) { clearTimeout(saveQueue.timer); saveQueue.timer = setTimeout(() => saveQueue(true), 1000); return; }
    state.saved = Date.now();
    const t = current();
    send("PUT", "/queue", {
      track_ids: state.queue.map((x) => x.id), current: t ? t.id : null,
      position_ms: t ? Math.round(position() * 1000) : 0,
    }).catch(fail);
  }
  async function restoreQueue() {
    try {
      const saved = await api("/queue");
      if (!saved.tracks.length) return;
      state.queue = saved.tracks;
      const at = Math.max(0, saved.track_ids.indexOf(saved.current));
      load(at, saved.position_ms / 1000, false);
    } catch (e) { fail(e); }
  }

  // -- the player bar ------------------------------------------------------------------
  function nowPlaying(track) {
    $("now-title").textContent = track ? track.title || "Untitled" : "Nothing playing";
    $("now-artist").textContent = track ? `${artistNames(track)} — ${track.album || ""}` : "";
    const cover = $("now-cover");
    cover.hidden = !(track && track.cover_hash);
    if (track && track.cover_hash) cover.src = image(track.cover_hash, "thumb");
    document.title = track ? `${track.title} · Music · homekeep` : "Music · homekeep";
    if ("mediaSession" in navigator) {
      navigator.mediaSession.metadata = track ? new MediaMetadata({
        title: track.title || "", artist: artistNames(track), album: track.album || "",
        artwork: track.cover_hash ? [{src: image(track.cover_hash, "thumb"), sizes: "300x300", type: "image/jpeg"}] : [],
      }) : null;
    }
  }
  const seekBar = $("seek");
  let dragging = false;
  seekBar.addEventListener("input", () => { dragging = true; $("time").textContent = `${clock(+seekBar.value)} / ${clock(length())}`; });
  seekBar.addEventListener("change", () => { dragging = false; seek(+seekBar.value); });
  audio.addEventListener("loadedmetadata", () => {
    if (state.restoring !== null) { audio.currentTime = state.restoring; state.restoring = null; }
  });
  audio.addEventListener("timeupdate", () => {
    const t = current();
    if (!t) return;
    const pos = position(), len = length();
    seekBar.max = len || 0;
    if (!dragging) seekBar.value = pos;
    $("time").textContent = `${clock(pos)} / ${clock(len)}`;
    if (!state.counted && len > 0 && pos > len / 2 && !audio.paused) {
      state.counted = true;  // a play counts once past half the track
      send("POST", "/plays", {track_id: t.id}).catch(fail);
    }
    if (!audio.paused && Date.now() - state.saved > 10000) saveQueue(true);
    if ("mediaSession" in navigator && len > 0 && navigator.mediaSession.setPositionState) {
      try { navigator.mediaSession.setPositionState({duration: len, position: Math.min(pos, len), playbackRate: audio.playbackRate}); } catch (e) { /* a position past a rounded duration */ }
    }
  });
  audio.addEventListener("play", () => { $("play").textContent = "❚❚"; $("play").setAttribute("aria-label", "pause"); });
  audio.addEventListener("pause", () => { $("play").textContent = "▶"; $("play").setAttribute("aria-label", "play"); saveQueue(true); });
  audio.addEventListener("ended", () => next(true));
  audio.addEventListener("error", () => { if (current() && audio.getAttribute("src")) status(`cannot play ${current().title}: the stream failed`, true); });
  audio.addEventListener("volumechange", () => {
    $("mute").textContent = audio.muted ? "Unmute" : "Mute";
    $("mute").setAttribute("aria-pressed", String(audio.muted));
    $("volume").value = audio.volume;
    localStorage.setItem("homekeep.music.volume", JSON.stringify({volume: audio.volume, muted: audio.muted}));
  });
  const volume = (v) => { audio.volume = Math.max(0, Math.min(1, Math.round(v * 100) / 100)); audio.muted = false; };
  try {
    const saved = JSON.parse(localStorage.getItem("homekeep.music.volume") || "null");
    if (saved) { audio.volume = saved.volume; audio.muted = saved.muted; }
  } catch (e) { /* a broken stored setting: the defaults */ }
  $("volume").value = audio.volume;
  $("volume").addEventListener("input", () => volume(+$("volume").value));
  $("mute").addEventListener("click", () => { audio.muted = !audio.muted; });
  $("play").addEventListener("click", toggle);
  $("stop").addEventListener("click", stop);
  $("next").addEventListener("click", () => next());
  $("prev").addEventListener("click", prev);
  $("shuffle").addEventListener("click", () => { state.shuffle = !state.shuffle; $("shuffle").setAttribute("aria-pressed", String(state.shuffle)); });
  $("repeat").addEventListener("click", () => {
    const modes = ["off", "all", "one"], mode = modes[(modes.indexOf(state.repeat) + 1) % 3];
    state.repeat = mode;
    const b = $("repeat");
    b.dataset.mode = mode; b.title = `Repeat: ${mode}`; b.textContent = mode === "one" ? "↻1" : "↻";
    b.setAttribute("aria-pressed", String(mode !== "off"));
  });
  $("to-playlist").addEventListener("click", () => { if (current()) addToPlaylist([current()]); });
  $("queue-clear").addEventListener("click", () => { audio.pause(); state.queue = []; clearNow(); drawQueue(); saveQueue(true); });
  $("queue-save").addEventListener("click", () => { if (state.queue.length) addToPlaylist(state.queue); });
  window.addEventListener("pagehide", () => {
    const t = current();
    if (!t) return;
    homekeep.fetch("/api/music/queue", {method: "PUT", keepalive: true, headers: {"Content-Type": "application/json"},
      body: JSON.stringify({track_ids: state.queue.map((x) => x.id), current: t.id, position_ms: Math.round(position() * 1000)})});
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, textarea, select, dialog") || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {
      " ": toggle,
      ArrowLeft: () => (e.shiftKey ? prev() : seek(position() - 10)),
      ArrowRight: () => (e.shiftKey ? next() : seek(position() + 10)),
      "+": () => volume(audio.volume + 0.1), "=": () => volume(audio.volume + 0.1),
      "-": () => volume(audio.volume - 0.1), m: () => { audio.muted = !audio.muted; },
    };
    if (!keys[e.key]) return;
    e.preventDefault();
    keys[e.key]();
  });
  if ("mediaSession" in navigator) {
    const handlers = {
      play: () => audio.play(), pause: () => audio.pause(), stop, previoustrack: prev, nexttrack: () => next(),
      seekbackward: (d) => seek(position() - (d.seekOffset || 10)), seekforward: (d) => seek(position() + (d.seekOffset || 10)),
      seekto: (d) => seek(d.seekTime),
    };
    for (const [action, fn] of Object.entries(handlers)) {
      try { navigator.mediaSession.setActionHandler(action, fn); } catch (e) { /* an action this browser lacks */ }
    }
  }

  // -- playlists -----------------------------------------------------------------------
  // The picker: an existing playlist, or a new one named here.
  async function addToPlaylist(tracks) {
    const dialog = $("pick"), list = $("pick-list");
    let lists;
    try { lists = await api("/playlists"); } catch (e) { fail(e); return; }
    $("pick-title").textContent = `Add ${tracks.length === 1 ? `“${tracks[0].title}”` : tracks.length + " tracks"} to a playlist`;
    $("pick-name").value = "";
    const chosen = new Promise((resolve) => {
      list.replaceChildren(...lists.map((p) => el("li", {}, button(`${p.name} (${p.tracks})`, () => { dialog.close(); resolve({id: p.id}); }, {dataset: {playlist: p.id}}))));
      dialog.onclose = () => resolve(dialog.returnValue === "new" ? {name: $("pick-name").value.trim()} : null);
    });
    dialog.returnValue = "";
    dialog.showModal();
    const pick = await chosen;
    if (!pick) return;
    const ids = tracks.map((t) => t.id);
    try {
      if (pick.id) await send("POST", `/playlists/${enc(pick.id)}/tracks`, {track_ids: ids});
      else if (pick.name) await send("POST", "/playlists", {name: pick.name, track_ids: ids});
      else return;
      status(`added ${ids.length} track${ids.length === 1 ? "" : "s"} to ${pick.name || pick.id}`);
      if (location.hash.startsWith("#/playlist")) route();
    } catch (e) { fail(e); }
  }
  async function tracksOf(ids) {
    return (await send("POST", "/track-list", {track_ids: ids})).items;
  }

  // -- views ---------------------------------------------------------------------------
  const view = $("view");
  let drawing = 0;
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
  let current_pager = null;

  function albumTile(a) {
    const art = a.cover_hash ? el("img", {src: thumb(a.id), loading: "lazy", alt: "", width: 150, height: 150}) : el("div", {class: "art"});
    return el("a", {class: "tile album", href: `#/album/${enc(a.id)}`, dataset: {album: a.id}}, art,
      el("div", {class: "title", text: a.title || "Untitled"}),
      el("div", {class: "sub", text: [a.album_artist, a.year].filter(Boolean).join(" · ")}));
  }
  function trackTable(tracks, {sort, onSort, numbered, extra} = {}) {
    const heads = [["#", null, "num"], ["Title", "title"], ["Artist", "artist"], ["Album", "album", "wide"], ["Year", "year", "wide num"], ["Format", "format", "wide"], ["Time", "duration", "num"], ["", null]];
    const th = heads.map(([label, key, cls]) => el("th", {class: cls}, key && onSort
      ? button(label + (sort && sort.key === key ? (sort.desc ? " ▼" : " ▲") : ""), () => onSort(key), {dataset: {sort: key}})
      : label));
    const body = el("tbody");
    const table = el("table", {class: "list tracks"}, el("thead", {}, el("tr", {}, ...th)), body);
    const add = (items, start = 0) => body.append(...items.map((t, i) => {
      const all = () => [...body.querySelectorAll("tr")].map((tr) => tr.track);
      const tr = el("tr", {dataset: {track: t.id}},
        el("td", {class: "num", text: numbered ? (t.track || "") : start + i + 1}),
        el("td", {}, el("a", {class: "link", href: `#/track/${t.id}`, text: t.title || "Untitled"})),
        el("td", {text: artistNames(t)}),
        el("td", {class: "wide"}, t.album_id ? el("a", {class: "link", href: `#/album/${enc(t.album_id)}`, text: t.album || ""}) : ""),
        el("td", {class: "wide num", text: t.year || ""}),
        el("td", {class: "wide", text: t.format || t.ext || ""}),
        el("td", {class: "num", text: clock(t.duration)}),
        el("td", {}, el("span", {class: "mini"},
          button("▶", () => { const list = all(); playNow(list, list.indexOf(t)); }, {title: "Play from here", class: "play"}),
          button("⤵", () => playNext([t]), {title: "Play next", class: "next"}),
          button("+", () => enqueue([t]), {title: "Add to the queue", class: "add"}),
          button("♫", () => addToPlaylist([t]), {title: "Add to a playlist", class: "to-playlist"}),
          extra ? extra(t, start + i) : null)));
      tr.track = t;
      if (current() && current().id === t.id) tr.classList.add("playing");
      return tr;
    }));
    add(tracks);
    return {table, add};
  }
  const scroller = (table) => el("div", {class: "scroll"}, table);
  const pagesOf = (path, params) => (offset) => api(`${path}?${new URLSearchParams({...params, offset, limit: PAGE})}`);

  const views = {
    async albums(params) {
      const sort = params.get("sort") || "artist";
      const select = el("select", {id: "album-sort", "aria-label": "sort", onchange: () => { location.hash = `#/albums?sort=${select.value}`; }},
        ...[["artist", "Artist"], ["title", "Title"], ["year", "Year"]].map(([v, l]) => el("option", {value: v, selected: v === sort, text: `By ${l.toLowerCase()}`})));
      const grid = el("div", {class: "grid", id: "albums"});
      const groups = el("div", {class: "toolbar", id: "groups"});
      view.replaceChildren(el("h1", {text: "Albums"}), el("div", {class: "toolbar"}, select), groups, grid);
      const filter = {sort};
      for (const k of ["release_type", "compilation"]) if (params.get(k)) filter[k] = params.get(k);
      current_pager = pager(grid, pagesOf("/albums", filter), (items) => grid.append(...items.map(albumTile)));
      for (const by of ["release_type", "compilation"]) {
        api(`/album-groups?by=${by}`).then((list) => groups.append(...list.map((g) => el("a", {class: "badge link", href: `#/albums?sort=${sort}&${by}=${enc(g.id)}`, text: `${g.name} (${g.albums})`})))).catch(fail);
      }
    },
    async artists(params) {
      const list = el("ul", {id: "artists"});
      view.replaceChildren(el("h1", {text: "Artists"}), list);
      const q = params.get("q");
      current_pager = pager(list, pagesOf("/artists", q ? {q} : {}), (items) => list.append(
        ...items.map((a) => el("li", {}, el("a", {class: "link", href: `#/artist/${enc(a.id)}`, text: a.name || "Unknown artist"})))));
    },
    async artist(params, id) {
      const a = await api(`/artists/${enc(id)}`);
      const playAll = async () => playNow((await api(`/tracks?${new URLSearchParams({artist_id: id, limit: 500})}`)).items);
      view.replaceChildren(el("h1", {text: a.name || "Unknown artist"}),
        el("div", {class: "toolbar"}, button("▶ Play all", () => playAll().catch(fail), {class: "primary"})),
        el("div", {class: "grid"}, ...a.albums.map(albumTile)));
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
      const {table, add} = trackTable([], {sort, onSort: (key) => go({q, sort: key, desc: key === sort.key && !sort.desc ? 1 : 0})});
      table.id = "tracks";
      const box = scroller(table);
      view.replaceChildren(el("h1", {text: "Tracks"}), form, box);
      const query = {sort: sort.key, desc: sort.desc};
      if (q) query.q = q;
      current_pager = pager(box, pagesOf("/tracks", query), add);
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
      view.replaceChildren(el("h1", {text: "Playlists"}), create,
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
  route();
  restoreQueue();
})();
