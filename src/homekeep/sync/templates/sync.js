(() => {
  // Everything comes from /api/sync with the session (homekeep.fetch adds the CSRF token).
  // Names from clients are shown as text, never as markup.
  const $ = (id) => document.getElementById(id);
  const api = (path, options) => homekeep.fetch("/api/sync" + path, options);
  const say = (text, bad) => { $("say").textContent = text; $("say").className = bad ? "error" : ""; };
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  };
  const size = (n) => {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  };
  const ago = (iso) => {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return new Date(iso).toLocaleDateString();
  };
  const when = (iso) => iso ? new Date(iso).toLocaleString() : "";
  async function json(response) {
    const body = await response.json().catch(() => ({error: {message: response.statusText}}));
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    return body;
  }

  // -- folders and their devices -----------------------------------------------------------
  let shared = [];
  function folderCard(f) {
    const card = el("div", null, "card folder");
    card.dataset.folder = f.name;
    const title = el("h2", f.name);
    if (f.shared) title.append(" ", el("span", "shared", "badge shared"));
    card.append(title);
    const dl = el("dl", null, "summary");
    dl.append(el("dt", "files"), el("dd", String(f.files), "files"));
    dl.append(el("dt", "size"), el("dd", size(f.bytes), "size"));
    dl.append(el("dt", "last change"), el("dd", f.last_change ? ago(f.last_change) : "none"));
    if (f.last_change) dl.lastChild.title = when(f.last_change);
    card.append(dl);
    const list = el("ul", null, "devices");
    for (const d of f.clients) {
      const li = el("li");
      li.dataset.device = d.device;
      li.dataset.online = d.online ? "yes" : "no";
      li.append(el("span", d.online ? "online" : "offline", "badge " + (d.online ? "online" : "offline")));
      li.append(el("strong", d.device), el("span", d.address, "muted"));
      const seen = el("span", ago(d.last_contact), "muted contact");
      seen.title = "last contact " + when(d.last_contact);
      li.append(seen);
      list.append(li);
    }
    if (!f.clients.length) list.append(el("li", "no client has called yet", "muted"));
    card.append(list);
    return card;
  }
  function fillSelect(select, names, keepAll) {
    const current = select.value;
    const options = names.map((n) => { const o = el("option", n); o.value = n; return o; });
    if (keepAll) { const all = el("option", "all"); all.value = ""; options.unshift(all); }
    select.replaceChildren(...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }
  async function overview() {
    const body = await json(await api("/overview"));
    const cards = body.folders.map(folderCard);
    $("folders").replaceChildren(...(cards.length ? cards : [el("p", "No folders yet: share one with `homekeep sync share NAME`.", "muted")]));
    const before = shared.join("/");
    shared = body.folders.filter((f) => f.shared).map((f) => f.name);
    fillSelect($("shared-folder"), shared, false);
    fillSelect($("f-folder"), body.folders.map((f) => f.name), true);
    if (before !== shared.join("/")) { conflictsLoad(); versionsLoad(); }
  }

  // -- transfers in flight ------------------------------------------------------------------
  function transferRow(t) {
    const tr = el("tr");
    tr.dataset.path = t.path;
    const pct = t.bytes_total ? Math.min(100, Math.floor(100 * t.bytes_done / t.bytes_total)) : 0;
    tr.dataset.percent = String(pct);
    tr.append(el("td", t.path || "(a batch)", "path"), el("td", t.folder), el("td", `${t.device} · ${t.address}`));
    const cell = el("td", null, "wide-cell");
    const bar = el("span", null, "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = el("span");
    fill.style.width = pct + "%";
    bar.append(fill);
    const rate = t.bytes_per_second ? ` · ${size(t.bytes_per_second)}/s` : "";
    cell.append(bar, el("span", ` ${pct}% · ${size(t.bytes_done)} of ${size(t.bytes_total)}${rate}`, "muted"));
    tr.append(cell);
    return tr;
  }
  async function transfers() {
    const body = await json(await api("/transfers"));
    $("transfers").tBodies[0].replaceChildren(...body.transfers.map(transferRow));
    $("transfers").hidden = !body.count;
    $("no-transfers").hidden = !!body.count;
    $("transfer-count").textContent = body.count ? `(${body.count})` : "";
  }

  // -- conflicts ----------------------------------------------------------------------------
  function versionBox(label, info, keep, c, folder) {
    const box = el("div");
    box.append(el("strong", label), el("div", info ? `${size(info.size)} · changed ${when(info.modified_at)}` : "", "muted"));
    const b = el("button", "Keep this version");
    b.type = "button";
    b.dataset.keep = keep;
    b.onclick = async () => {
      b.disabled = true;
      try {
        const r = await json(await api(`/folders/${encodeURIComponent(folder)}/conflicts/resolve`, {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({copy: c.copy, keep})}));
        say(`kept the ${keep === "copy" ? "conflict copy" : "file's version"} of ${r.path}; the other is in the kept versions`);
      } catch (e) { say(e.message, true); }
      conflictsLoad(); versionsLoad(); history(true); overview();
    };
    box.append(b);
    return box;
  }
  async function conflictsLoad() {
    const folder = $("shared-folder").value;
    if (!folder) { $("conflicts").replaceChildren(el("p", "No shared folder.", "muted")); return; }
    try {
      const body = await json(await api(`/folders/${encodeURIComponent(folder)}/conflicts`));
      const cards = body.conflicts.map((c) => {
        const card = el("div", null, "card conflict");
        card.dataset.path = c.path;
        card.dataset.copy = c.copy;
        card.append(el("h3", c.path, "path"));
        const choice = el("div", null, "choice");
        choice.append(versionBox("The file", c.file, "file", c, folder));
        choice.append(versionBox("The conflict copy: " + c.copy.split("/").pop(), c.copy_file, "copy", c, folder));
        card.append(choice);
        return card;
      });
      $("conflicts").replaceChildren(...(cards.length ? cards : [el("p", "No conflicts in " + folder + ".", "muted none")]));
    } catch (e) { say(e.message, true); }
  }
  $("shared-folder").onchange = () => { conflictsLoad(); versionsLoad(); };

  // -- kept versions --------------------------------------------------------------------------
  async function versionsLoad() {
    const folder = $("shared-folder").value;
    if (!folder) { $("versions").replaceChildren(); return; }
    const under = $("versions-under").value.trim();
    try {
      const q = under ? "?under=" + encodeURIComponent(under) : "";
      const body = await json(await api(`/folders/${encodeURIComponent(folder)}/versions${q}`));
      const groups = new Map();
      for (const v of body.versions) {
        if (!groups.has(v.path)) groups.set(v.path, []);
        groups.get(v.path).push(v);
      }
      const out = [];
      for (const [path, kept] of groups) {
        const g = el("div", null, "version-group");
        g.dataset.path = path;
        g.append(el("h3", path));
        const table = el("table", null, "cardy");
        const tbody = el("tbody");
        for (const v of kept) {
          const tr = el("tr");
          tr.dataset.version = v.version;
          tr.append(el("td", "replaced " + when(v.replaced_at)), el("td", size(v.size)));
          const td = el("td");
          const b = el("button", "Restore");
          b.type = "button";
          b.onclick = async () => {
            b.disabled = true;
            try {
              const r = await json(await api(`/folders/${encodeURIComponent(folder)}/versions/restore`, {
                method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({version: v.version})}));
              say(`restored ${r.path}; what was there is now a kept version`);
            } catch (e) { say(e.message, true); }
            versionsLoad(); conflictsLoad(); history(true); overview();
          };
          td.append(b);
          tr.append(td);
          tbody.append(tr);
        }
        table.append(tbody);
        g.append(table);
        out.push(g);
      }
      if (body.truncated) out.push(el("p", "Only the newest are shown; narrow with a path.", "muted"));
      $("versions").replaceChildren(...(out.length ? out : [el("p", "No kept versions.", "muted none")]));
    } catch (e) { say(e.message, true); }
  }
  $("versions-filter").onsubmit = (e) => { e.preventDefault(); versionsLoad(); };

  // -- history --------------------------------------------------------------------------------
  let nextBefore = null;
  function filters() {
    const q = new URLSearchParams();
    const add = (key, value) => { if (value) q.set(key, value); };
    add("folder", $("f-folder").value);
    add("action", $("f-action").value);
    add("path", $("f-path").value.trim());
    const utc = (v) => v ? new Date(v).toISOString() : "";
    add("since", utc($("f-since").value));
    add("until", utc($("f-until").value));
    return q;
  }
  async function history(fresh) {
    const q = filters();
    q.set("limit", "50");
    if (!fresh && nextBefore) q.set("before", String(nextBefore));
    try {
      const body = await json(await api("/history?" + q));
      const rows = body.events.map((e) => {
        const tr = el("tr");
        tr.dataset.action = e.action;
        tr.dataset.id = String(e.id);
        const t = el("td", when(e.at));
        tr.append(t, el("td", e.client), el("td", e.action, "action"));
        tr.append(el("td", e.dest ? `${e.path} → ${e.dest}` : e.path, "path"));
        tr.append(el("td", e.size ? size(e.size) : "", "wide"), el("td", e.via || "", "wide"));
        return tr;
      });
      const tbody = $("history").tBodies[0];
      if (fresh) tbody.replaceChildren(...rows); else tbody.append(...rows);
      nextBefore = body.next_before;
      $("older").hidden = !nextBefore;
      $("history-note").textContent = tbody.rows.length ? "" : "Nothing matches.";
    } catch (e) { say(e.message, true); }
  }
  $("history-filter").onsubmit = (e) => { e.preventDefault(); history(true); };
  $("f-clear").onclick = () => { $("history-filter").reset(); history(true); };
  $("older").onclick = () => history(false);

  // -- polling, only while the page is visible ------------------------------------------------
  let ticks = 0;
  async function tick() {
    if (document.visibilityState !== "visible") return;
    ticks += 1;
    try {
      await transfers();
      if (ticks % 5 === 0) await overview();
    } catch (e) { say(e.message, true); }
  }
  overview().then(() => { if (!shared.length) conflictsLoad(); }).catch((e) => say(e.message, true));
  transfers().catch((e) => say(e.message, true));
  history(true);
  setInterval(tick, 1000);
  document.addEventListener("visibilitychange", tick);
})();
