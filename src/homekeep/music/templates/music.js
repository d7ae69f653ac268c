// The player: one <audio>, the queue kept on the server, the player bar, the keys, the
// Media Session; music-lists.js and music-views.js draw the views from what it returns.
// Text from the library goes in with textContent only, never as markup.
// music.html includes this file through Jinja: no brace followed by "{", "%" or "#" here.
const music = (() => {
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
  // Move the queue's entry at ``from`` to ``to``; the playing track keeps playing.
  function moveTo(from, to) {
    if (from === to || to < 0 || to >= state.queue.length) return;
    const [t] = state.queue.splice(from, 1);
    state.queue.splice(to, 0, t);
    if (state.index === from) state.index = to;
    else if (from < state.index && to >= state.index) state.index -= 1;
    else if (from > state.index && to <= state.index) state.index += 1;
    drawQueue(); saveQueue(true);
  }
  function clearNow() {
    state.index = -1;
    audio.removeAttribute("src"); audio.load();
    nowPlaying(null);
  }
  // Each entry can be dragged onto another to take its place; the buttons do the same
  // without a mouse (a phone, the keyboard).
  let dragged = null;
  function drawQueue() {
    const items = state.queue.map((t, i) => el("li", {class: i === state.index ? "current" : null, dataset: {id: t.id}, draggable: "true",
      ondragstart: (e) => { dragged = i; e.dataTransfer.effectAllowed = "move"; e.dataTransfer.setData("text/plain", String(t.id)); },
      ondragover: (e) => { if (dragged !== null) { e.preventDefault(); e.currentTarget.classList.add("drop"); } },
      ondragleave: (e) => e.currentTarget.classList.remove("drop"),
      ondrop: (e) => { e.preventDefault(); const from = dragged; dragged = null; if (from !== null) moveTo(from, i); },
      ondragend: () => { dragged = null; }},
      el("div", {class: "what", title: "Play", onclick: () => load(i)}, t.title || "Untitled", el("small", {text: artistNames(t)})),
      el("span", {class: "mini"},
        button("↑", () => moveTo(i, i - 1), {"aria-label": "up", class: "up"}),
        button("↓", () => moveTo(i, i + 1), {"aria-label": "down", class: "down"}),
        button("✕", () => removeAt(i), {"aria-label": "remove", class: "remove"}))));
    $("queue").replaceChildren(...items);
    document.querySelectorAll("tr[data-track], [role=row][data-track]").forEach((tr) => {
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
  // the lock screen shows what the page does: playing or paused
  const playback = (what) => { if ("mediaSession" in navigator) navigator.mediaSession.playbackState = what; };
  audio.addEventListener("play", () => { $("play").textContent = "❚❚"; $("play").setAttribute("aria-label", "pause"); playback("playing"); });
  audio.addEventListener("pause", () => { $("play").textContent = "▶"; $("play").setAttribute("aria-label", "play"); playback("paused"); saveQueue(true); });
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
      if (location.hash.startsWith("#/playlist")) hooks.route();
    } catch (e) { fail(e); }
  }
  async function tracksOf(ids) {
    return (await send("POST", "/track-list", {track_ids: ids})).items;
  }

  const hooks = {route: () => {}};  // the views' router, set by music-views.js
  restoreQueue();
  return {
    $, audio, api, send, el, button, clock, status, fail, enc, thumb, image, artistNames, PAGE,
    state, current, canPlay, playNow, playNext, enqueue, addToPlaylist, tracksOf, hooks,
  };
})();
