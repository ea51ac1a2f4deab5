/* nsl web interface. One page, no build step, nothing loaded from anywhere else: it talks only to this
   server's public REST API under /api/v1 with fetch(), sending the token kept in localStorage as
   "Authorization: Bearer ..." when there is one (the page asks for it when the server answers 401).

   The location's hash names the view, so every view can be bookmarked and Back works:
     #/                                  tables, and a form to add objects
     #/t/T?where=&sort=&limit=&skip=     browse table T: a predicate (JSON where), sort, paging
     #/t/T/new                           add an object to T
     #/t/T/o/K                           object K of T: view, edit (PUT), delete
     #/t/T/o/K/history                   its versions, and a field-by-field diff between two of them
     #/log?table=&key=                   the commit log        #/commit/C   one commit
     #/status                            head and verify       #/api        the API explorer
   Ctrl+Enter (or Cmd+Enter) in a text area submits its form. */
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "nsl.token";
  const PAGE_SIZES = [10, 20, 50, 100, 500];
  const LOG_PAGE = 50;

  // ---- JSON that keeps numbers exactly as the server wrote them -----------------------------------
  // A number whose text JavaScript would change (an integer beyond 2^53, 3.0, 1e+300) is kept as its
  // text, so viewing and editing an object never rounds an integer or turns a REAL into an INTEGER.
  class Num {
    constructor(src) { this.src = src; }
    toString() { return this.src; }
    toJSON() { return typeof JSON.rawJSON === "function" ? JSON.rawJSON(this.src) : Number(this.src); }
  }
  function parseJSON(text) {
    return JSON.parse(text, (k, v, ctx) =>
      (typeof v === "number" && ctx && typeof ctx.source === "string" && String(v) !== ctx.source)
        ? new Num(ctx.source) : v);
  }
  const compact = (v) => JSON.stringify(v);
  const pretty = (v) => JSON.stringify(v, null, 2);
  const isPlainObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Num);

  // ---- DOM ------------------------------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);

  /** h("a", {href: "#/", class: "x", onclick: fn}, "text", child, [more]) — text is always text. */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    const props = {};
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" || k === "checked" || k === "selected") props[k] = v;
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    Object.assign(el, props);
    return el;
  }
  let uid = 0;
  const newId = (stem) => `${stem}-${++uid}`;

  /** A labelled input: field("Where (JSON)", h("input", ...)) */
  function field(label, control, extraClass) {
    if (!control.id) control.id = newId("f");
    return h("div", { class: "field" + (extraClass ? " " + extraClass : "") },
      h("label", { for: control.id }, label), control);
  }

  function short(hash) { return hash ? String(hash).slice(0, 10) : ""; }
  function when(iso) {
    if (!iso) return "";
    const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(iso);
    return m ? `${m[1]} ${m[2]}` : iso;
  }
  const OPS = { I: "insert", U: "update", D: "delete" };
  const opTag = (op) => h("span", { class: `op op-${op}`, title: OPS[op] || op }, op);

  // ---- the token -----------------------------------------------------------------------------------
  function getToken() { try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; } }
  function setToken(t) {
    try { if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
  }

  function showTokenPanel(reason, focus) {
    const panel = $("#token-panel");
    $("#token-reason").textContent = reason || "";
    const wasHidden = panel.hidden;
    panel.hidden = false;
    $("#token-button").setAttribute("aria-expanded", "true");
    if (focus && wasHidden) $("#token-input").focus();
  }
  function hideTokenPanel() {
    $("#token-panel").hidden = true;
    $("#token-reason").textContent = "";
    $("#token-button").setAttribute("aria-expanded", "false");
  }
  function askToken(err) {
    const had = getToken();
    let reason = "This server needs a token: enter one to continue.";
    if (err && err.code === "invalid_token" && had) reason = "The server refused this token: " + err.message + ". Enter another one.";
    else if (err && err.code === "invalid_token") reason = "The server refused the token: " + err.message;
    showTokenPanel(reason, true);
  }

  // ---- the API -------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message, hint) {
      super(message);
      this.status = status; this.code = code; this.hint = hint || "";
    }
  }
  function errorOf(r) {
    const e = r.data && r.data.error;
    if (e && typeof e === "object") return new ApiError(r.status, String(e.code), String(e.message), e.hint ? String(e.hint) : "");
    return new ApiError(r.status, `http_${r.status}`, `${r.status} ${r.statusText || ""} ${r.text.slice(0, 200)}`.trim());
  }

  /** One request to this server; resolves to {status, ok, text, data, ms, ...} whatever the status. */
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store", credentials: "same-origin", redirect: "error" };
    if (body !== undefined && body !== null && method !== "GET" && method !== "HEAD") {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const started = performance.now();
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network_error", `cannot reach the server (${e.message})`);
    }
    const text = await resp.text();
    let data;
    try { data = text ? parseJSON(text) : null; } catch { data = undefined; }
    const out = { method, path, status: resp.status, statusText: resp.statusText, ok: resp.ok, text, data,
                  ms: performance.now() - started, headers: resp.headers };
    if (resp.status === 401) askToken(errorOf(out));
    return out;
  }
  /** A call to /api/v1: the parsed answer, or an ApiError thrown. */
  async function api(method, path, body) {
    const r = await request(method, API + path, body);
    if (!r.ok) throw errorOf(r);
    return r.data;
  }

  // Paths: each segment percent-encoded (a key holding "/" stays one segment; "." and ".." stay names).
  function seg(s) {
    const e = encodeURIComponent(String(s));
    return e === "." ? "%2E" : e === ".." ? "%2E%2E" : e;
  }
  function qs(params) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
    const s = p.toString();
    return s ? "?" + s : "";
  }
  const tablePath = (t) => `/tables/${seg(t)}/objects`;
  const objPath = (t, k) => `/tables/${seg(t)}/objects/${seg(k)}`;
  const tableHash = (t, q) => `#/t/${seg(t)}${qs(q || {})}`;
  const objHash = (t, k) => `#/t/${seg(t)}/o/${seg(k)}`;
  const historyHash = (t, k) => `#/t/${seg(t)}/o/${seg(k)}/history`;
  const commitHash = (c) => `#/commit/${seg(c)}`;

  // ---- messages ------------------------------------------------------------------------------------
  function errorBox(err) {
    const box = h("div", { class: "error", role: "alert" });
    if (err instanceof ApiError) {
      box.append(h("span", { class: "code-tag" }, err.status ? `${err.status} ${err.code}` : err.code), " ", err.message);
      if (err.hint) box.append(h("span", { class: "hint" }, "Hint: " + err.hint));
    } else {
      box.append(String(err && err.message ? err.message : err));
    }
    return box;
  }
  function showIn(slot, node) { slot.replaceChildren(node); }
  let pendingFlash = null;
  function flash(kind, text) {
    $("#flash").replaceChildren(h("div", { class: kind === "ok" ? "success" : kind === "error" ? "error" : "note" }, text));
  }
  /** Go to a view, showing a message there (e.g. "Saved ..."). */
  function go(hash, message) {
    pendingFlash = message || null;
    if (location.hash === hash) route(); else location.hash = hash;
  }
  /** Disable a button while its request runs; keyboard focus comes back to it afterwards. */
  function busy(button, on) {
    if (on) {
      button.dataset.hadFocus = document.activeElement === button ? "1" : "";
      button.disabled = true;
    } else {
      button.disabled = false;
      const lost = !document.activeElement || document.activeElement === document.body;
      if (button.dataset.hadFocus && lost && button.isConnected) button.focus();
    }
    button.setAttribute("aria-busy", on ? "true" : "false");
  }

  // ---- the head in the top bar ---------------------------------------------------------------------
  async function refreshHead() {
    const el = $("#head");
    try {
      const r = await request("GET", API + "/head");
      if (!r.ok) { el.textContent = "head ?"; return; }
      const head = r.data && r.data.head;
      el.textContent = head ? "head " + short(head) : "no commits yet";
      el.title = head ? "head " + head : "no commits yet";
    } catch { el.textContent = "head ?"; }
  }

  // ---- router --------------------------------------------------------------------------------------
  let navSeq = 0;

  async function route() {
    const seq = ++navSeq;
    const raw = location.hash || "#/";
    const qi = raw.indexOf("?");
    const path = qi < 0 ? raw.slice(1) : raw.slice(1, qi);
    const params = new URLSearchParams(qi < 0 ? "" : raw.slice(qi + 1));
    let parts;
    try { parts = path.split("/").filter(Boolean).map(decodeURIComponent); } catch { parts = null; }

    $("#flash").replaceChildren();
    if (pendingFlash) { flash("ok", pendingFlash); pendingFlash = null; }
    const view = h("div", { class: "view" });
    const errors = h("div", { class: "view-errors" });
    const ctx = {
      el: view, params, raw,
      alive: () => seq === navSeq,
      title(text) { document.title = `${text} · nsl`; },
      error(err) { errors.append(errorBox(err)); },
      clearErrors() { errors.replaceChildren(); },
      errors,
    };
    $("#main").replaceChildren(view);

    let nav = "tables";
    let run;
    const p = parts || [];
    if (parts === null) run = () => notFound(ctx);
    else if (p.length === 0 || (p.length === 1 && p[0] === "tables")) run = () => viewTables(ctx);
    else if (p[0] === "t" && p.length === 2) run = () => viewBrowse(ctx, p[1]);
    else if (p[0] === "t" && p.length === 3 && p[2] === "new") run = () => viewNew(ctx, p[1]);
    else if (p[0] === "t" && p.length === 4 && p[2] === "o") run = () => viewObject(ctx, p[1], p[3]);
    else if (p[0] === "t" && p.length === 5 && p[2] === "o" && p[4] === "history") run = () => viewHistory(ctx, p[1], p[3]);
    else if (p[0] === "log" && p.length === 1) { nav = "log"; run = () => viewLog(ctx); }
    else if (p[0] === "commit" && p.length === 2) { nav = "log"; run = () => viewCommit(ctx, p[1]); }
    else if (p[0] === "status" && p.length === 1) { nav = "status"; run = () => viewStatus(ctx); }
    else if (p[0] === "conflicts" && p.length === 1) { nav = "conflicts"; run = () => viewConflicts(ctx); }
    else if (p[0] === "api" && p.length === 1) { nav = "api"; run = () => viewExplorer(ctx); }
    else run = () => notFound(ctx);

    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
    try {
      await run();
    } catch (e) {
      if (ctx.alive()) ctx.error(e);
    }
    // The view's errors go first, under its heading.
    const h1 = view.querySelector("h1");
    if (h1) h1.after(errors); else view.prepend(errors);
    if (ctx.alive()) refreshHead();
  }

  function heading(ctx, text, ...extra) {
    ctx.title(text);
    const h1 = h("h1", { tabindex: "-1" }, text);
    ctx.el.append(h1, ...extra);
    return h1;
  }

  function notFound(ctx) {
    heading(ctx, "Not found");
    ctx.el.append(h("p", {}, "No such view. ", h("a", { href: "#/" }, "See the tables.")));
  }

  // ---- values in cells -----------------------------------------------------------------------------
  function cell(v) {
    if (v === null) return h("td", {}, h("span", { class: "null" }, "null"));
    if (v === undefined) return h("td", {});
    if (typeof v === "string") return h("td", { title: v.length > 60 ? v : null }, v.length > 200 ? v.slice(0, 200) + "…" : v);
    if (typeof v === "number" || v instanceof Num || typeof v === "boolean") return h("td", { class: "num" }, String(v));
    const text = compact(v);
    return h("td", { class: "json", title: text.length > 60 ? text.slice(0, 2000) : null }, text);
  }
  function tableOf(caption, head, rows) {
    return h("div", { class: "scroll" },
      h("table", { class: "data" },
        caption ? h("caption", {}, caption) : null,
        h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)));
  }

  // ---- view: tables --------------------------------------------------------------------------------
  async function viewTables(ctx) {
    heading(ctx, "Tables");
    const list = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    ctx.el.append(list,
      h("section", { class: "panel", "aria-labelledby": "add-title" },
        h("h2", { id: "add-title" }, "Add objects"),
        h("p", { class: "muted small" }, "One JSON object, or an array of objects, saved in one commit. A new table name makes a new table."),
        addForm(ctx, null)));
    let tables;
    try {
      tables = (await api("GET", "/tables")).tables;
    } catch (e) {
      if (!ctx.alive()) return;
      list.replaceChildren();
      throw e;
    }
    if (!ctx.alive()) return;
    if (!tables.length) {
      list.replaceChildren(h("p", { class: "note" }, "No tables yet: add the first object below."));
      return;
    }
    const rows = tables.map((t) => h("tr", {},
      h("td", {}, h("a", { href: tableHash(t.name) }, t.name)),
      h("td", { class: "num" }, t.count === null ? "?" : String(t.count)),
      h("td", {}, h("code", {}, t.key)),
      h("td", { class: "muted" }, (t.columns || []).join(", ")),
      h("td", {}, h("a", { href: `#/log${qs({ table: t.name })}`, "aria-label": `log of ${t.name}` }, "log"))));
    list.replaceChildren(tableOf(`${tables.length} table${tables.length === 1 ? "" : "s"}`,
      ["Table", "Objects", "Key", "Columns", ""], rows));
  }

  /** The form that POSTs objects to a table (table === null: the user names the table). */
  function addForm(ctx, table) {
    const tableInput = table === null
      ? h("input", { name: "table", class: "code", required: true, autocomplete: "off", spellcheck: "false", placeholder: "people" })
      : null;
    const text = h("textarea", { name: "json", class: "code", rows: "9", spellcheck: "false", autocomplete: "off",
      placeholder: '{"id": 1, "name": "Ada", "born": 1815}' });
    const message = h("input", { name: "message", autocomplete: "off", placeholder: "optional" });
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    const out = h("div", { "aria-live": "polite" });
    const form = h("form", {
      class: "stack add-form",
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.replaceChildren();
        const t = table !== null ? table : tableInput.value.trim();
        if (!t) { showIn(out, errorBox("Name the table.")); tableInput.focus(); return; }
        const body = text.value;
        try { parseJSON(body); } catch (e) { showIn(out, errorBox("That is not valid JSON: " + e.message)); text.focus(); return; }
        busy(save, true);
        try {
          const res = await api("POST", tablePath(t) + qs({ message: message.value.trim() }), body);
          const keys = res.keys || [];
          const note = res.commit
            ? `Saved ${res.count} object${res.count === 1 ? "" : "s"} to ${t} in commit ${short(res.commit)}.`
            : `Nothing changed: ${keys.length === 1 ? "the object was" : "the objects were"} already saved like this.`;
          go(keys.length === 1 ? objHash(t, keys[0]) : tableHash(t), note);
        } catch (e) {
          showIn(out, errorBox(e));
        } finally {
          busy(save, false);
        }
      },
    },
    tableInput ? h("div", { class: "fields" }, field("Table", tableInput)) : null,
    field("Object (JSON)", text),
    h("div", { class: "fields" }, field("Commit message", message, "wide")),
    h("div", { class: "row" }, save, h("span", { class: "kbd-hint" }, "Ctrl+Enter in the text saves")),
    out);
    return form;
  }

  function viewNew(ctx, table) {
    heading(ctx, `New object in ${table}`);
    ctx.el.append(h("p", {}, h("a", { href: tableHash(table) }, `← back to ${table}`)),
      h("section", { class: "panel" }, addForm(ctx, table)));
    ctx.el.querySelector("textarea").focus();
  }

  // ---- view: browse a table ------------------------------------------------------------------------
  function count(text, fallback, max) {
    const n = /^\d{1,9}$/.test(text || "") ? parseInt(text, 10) : fallback;
    return max === undefined ? n : Math.min(n, max);
  }

  async function viewBrowse(ctx, table) {
    const p = ctx.params;
    const state = {
      where: p.get("where") || "", sort: p.get("sort") || "",
      limit: count(p.get("limit"), 20, 500), skip: count(p.get("skip"), 0),
    };
    if (!state.limit) state.limit = 20;
    heading(ctx, table,
      h("div", { class: "bar" },
        h("a", { class: "button", href: `#/t/${seg(table)}/new` }, "Add object"),
        h("a", { class: "button", href: `#/log${qs({ table })}` }, "Log of this table"),
        h("span", { class: "grow" }),
        h("span", { class: "muted small", id: "table-meta" })));

    const whereIn = h("input", { name: "where", class: "code", value: state.where, autocomplete: "off", spellcheck: "false",
      placeholder: '{"age": {"$gte": 18}, "name": {"$in": ["Ada", "Alan"]}}', "aria-describedby": "where-help" });
    const sortIn = h("input", { name: "sort", class: "code", value: state.sort, autocomplete: "off", spellcheck: "false", placeholder: "-age,name", size: "14" });
    const limitIn = h("select", { name: "limit" }, PAGE_SIZES.map((n) => h("option", { value: String(n) }, String(n))));
    if (!PAGE_SIZES.includes(state.limit)) limitIn.append(h("option", { value: String(state.limit) }, String(state.limit)));
    limitIn.value = String(state.limit);
    const findBtn = h("button", { type: "submit", class: "primary" }, "Find");
    const clearBtn = h("button", { type: "button", onclick: () => { whereIn.value = ""; sortIn.value = ""; state.skip = 0; submit(); } }, "Clear");
    const form = h("form", { class: "panel stack", role: "search", "aria-label": `Find in ${table}`, onsubmit: (ev) => { ev.preventDefault(); state.skip = 0; submit(); } },
      h("div", { class: "fields" },
        field("Where (JSON predicate)", whereIn, "wide"),
        field("Sort", sortIn),
        field("Per page", limitIn),
        h("div", { class: "row" }, findBtn, clearBtn)),
      h("p", { class: "muted small", id: "where-help" },
        "MongoDB-style: ", h("code", {}, '{"name": "Ada"}'), ", ", h("code", {}, '{"born": {"$lt": 1900}}'), ", ",
        h("code", {}, '{"$or": [{"a": 1}, {"b": {"$exists": false}}]}'), ". Sort: attributes, - for descending."));
    limitIn.addEventListener("change", () => { state.skip = 0; submit(); });
    const results = h("div", { class: "results", "aria-live": "polite" });
    ctx.el.append(form, results);

    // The table's key and columns (for the column order), fetched once.
    let meta = null;
    try {
      const all = (await api("GET", "/tables")).tables;
      meta = all.find((t) => t.name === table) || null;
      if (meta) $("#table-meta").textContent = `${meta.count} object${meta.count === 1 ? "" : "s"} · key ${meta.key}`;
    } catch (e) {
      if (!ctx.alive()) return;
      ctx.error(e);
      return;
    }
    if (!ctx.alive()) return;

    function submit() {
      state.where = whereIn.value.trim();
      state.sort = sortIn.value.trim();
      state.limit = count(limitIn.value, 20, 500);
      load(true);
    }

    async function load(push) {
      const hash = tableHash(table, { where: state.where, sort: state.sort, limit: state.limit === 20 ? "" : state.limit, skip: state.skip || "" });
      if (push && hash !== location.hash) history.pushState(null, "", hash);
      ctx.clearErrors();
      if (state.where) {
        let parsed;
        try { parsed = parseJSON(state.where); } catch (e) { results.replaceChildren(errorBox("The predicate is not valid JSON: " + e.message)); return; }
        if (!isPlainObject(parsed)) { results.replaceChildren(errorBox("The predicate must be a JSON object, like {\"name\": \"Ada\"}.")); return; }
      }
      results.replaceChildren(h("p", { class: "loading" }, "Loading…"));
      let found;
      try {
        found = await api("GET", tablePath(table) + qs({ where: state.where, sort: state.sort, limit: state.limit + 1, skip: state.skip }));
      } catch (e) {
        if (ctx.alive()) results.replaceChildren(errorBox(e));
        return;
      }
      if (!ctx.alive()) return;
      const objs = found.objects.slice(0, state.limit);
      const more = found.objects.length > state.limit;
      renderPage(objs, more);
    }

    function renderPage(objs, more) {
      const key = meta ? meta.key : "id";
      const cols = [key];
      for (const c of (meta ? meta.columns : [])) if (!cols.includes(c)) cols.push(c);
      for (const o of objs) for (const c of Object.keys(o)) if (!cols.includes(c)) cols.push(c);
      const first = state.skip + 1, last = state.skip + objs.length;
      const prev = h("button", { type: "button", disabled: state.skip === 0, onclick: () => { state.skip = Math.max(0, state.skip - state.limit); load(true); } }, "← Previous");
      const next = h("button", { type: "button", disabled: !more, onclick: () => { state.skip += state.limit; load(true); } }, "Next →");
      const summary = objs.length
        ? `Objects ${first}–${last}${state.where ? " matching the predicate" : ""}`
        : (state.skip ? "No more objects." : state.where ? "No object matches the predicate." : "This table is empty.");
      const pager = h("nav", { class: "bar pager", "aria-label": "Pages" }, prev, next, h("span", { class: "muted", id: "page-summary" }, summary));
      if (!objs.length) { results.replaceChildren(pager); return; }
      const rows = objs.map((o) => {
        const k = o[key];
        const keyCell = k === undefined ? h("td", {}, "") : h("td", {}, h("a", { href: objHash(table, String(k)) }, String(k)));
        return h("tr", {}, keyCell, cols.slice(1).map((c) => cell(o[c])));
      });
      results.replaceChildren(pager, tableOf(null, cols, rows));
      // Keep keyboard focus on the pager button that was used.
      if (document.activeElement === document.body) next.focus();
    }

    await load(false);
  }

  // ---- view: one object ----------------------------------------------------------------------------
  async function viewObject(ctx, table, key) {
    heading(ctx, `${table} / ${key}`);
    const editBtn = h("button", { type: "button", disabled: true }, "Edit");
    const delBtn = h("button", { type: "button", class: "danger", disabled: true }, "Delete");
    const toolbar = h("div", { class: "bar" },
      editBtn,
      h("a", { class: "button", href: historyHash(table, key) }, "History"),
      delBtn,
      h("span", { class: "grow" }),
      h("a", { href: tableHash(table) }, `← all of ${table}`));
    const body = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    const out = h("div", { "aria-live": "polite" });
    ctx.el.append(toolbar, out, body);

    let text;  // the object as pretty JSON
    async function load() {
      let obj;
      try {
        obj = await api("GET", objPath(table, key));
      } catch (e) {
        if (!ctx.alive()) return false;
        body.replaceChildren(errorBox(e));
        if (e.code === "unknown_object") {
          body.append(h("p", {}, "If it was deleted, its ", h("a", { href: historyHash(table, key) }, "history"), " still shows every version."));
        }
        return false;
      }
      if (!ctx.alive()) return false;
      text = pretty(obj);
      show();
      return true;
    }
    function show() {
      body.replaceChildren(h("pre", { class: "json", id: "object-json", tabindex: "0", "aria-label": "the object as JSON" }, text));
      editBtn.disabled = false; delBtn.disabled = false;
    }

    editBtn.addEventListener("click", () => {
      editBtn.disabled = true; delBtn.disabled = true;
      out.replaceChildren();
      const ta = h("textarea", { name: "json", class: "code", rows: String(Math.min(30, Math.max(8, text.split("\n").length + 1))), spellcheck: "false" }, text);
      const message = h("input", { name: "message", autocomplete: "off", placeholder: "optional" });
      const save = h("button", { type: "submit", class: "primary" }, "Save");
      const cancel = h("button", { type: "button", onclick: () => { out.replaceChildren(); show(); editBtn.focus(); } }, "Cancel");
      const formOut = h("div", { "aria-live": "polite" });
      const form = h("form", {
        class: "panel stack edit-form",
        onsubmit: async (ev) => {
          ev.preventDefault();
          formOut.replaceChildren();
          let parsed;
          try { parsed = parseJSON(ta.value); } catch (e) { formOut.replaceChildren(errorBox("That is not valid JSON: " + e.message)); ta.focus(); return; }
          if (!isPlainObject(parsed)) { formOut.replaceChildren(errorBox("An object must be one JSON object.")); ta.focus(); return; }
          busy(save, true);
          try {
            const res = await api("PUT", objPath(table, key) + qs({ message: message.value.trim() }), ta.value);
            if (await load()) {
              out.replaceChildren(h("div", { class: "success" }, res.commit ? `Saved in commit ${short(res.commit)}.` : "Nothing changed."));
              editBtn.focus();
            }
            refreshHead();
          } catch (e) {
            formOut.replaceChildren(errorBox(e));
          } finally {
            busy(save, false);
          }
        },
      },
      h("p", { class: "muted small" }, "Saving replaces the object: attributes left out are gone in the new version."),
      field("Object (JSON)", ta),
      h("div", { class: "fields" }, field("Commit message", message, "wide")),
      h("div", { class: "row" }, save, cancel, h("span", { class: "kbd-hint" }, "Ctrl+Enter saves · Escape cancels")),
      formOut);
      form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.preventDefault(); cancel.click(); } });
      body.replaceChildren(form);
      ta.focus();
    });

    delBtn.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger primary" }, "Delete it");
      const no = h("button", { type: "button" }, "Keep it");
      const message = h("input", { name: "message", autocomplete: "off", placeholder: "optional" });
      const confirmBox = h("div", { class: "panel stack", role: "alertdialog", "aria-label": "Confirm delete" },
        h("p", {}, `Delete ${table} / ${key}? Its history stays.`),
        h("div", { class: "fields" }, field("Commit message", message, "wide")),
        h("div", { class: "row" }, yes, no));
      no.addEventListener("click", () => { out.replaceChildren(); delBtn.focus(); });
      yes.addEventListener("click", async () => {
        busy(yes, true);
        try {
          const res = await api("DELETE", objPath(table, key) + qs({ message: message.value.trim() }));
          go(tableHash(table), `Deleted ${table} / ${key} in commit ${short(res.commit)}.`);
        } catch (e) {
          confirmBox.append(errorBox(e));
          busy(yes, false);
        }
      });
      out.replaceChildren(confirmBox);
      no.focus();
    });

    await load();
  }

  // ---- view: history and diff ----------------------------------------------------------------------
  /** {"a": {"b": 1}, "c": [1]} -> Map {"a.b" => 1, "c" => [1]} (arrays are compared whole). */
  function flatten(v, prefix, out) {
    if (isPlainObject(v) && (Object.keys(v).length || !prefix)) {
      for (const k of Object.keys(v)) flatten(v[k], prefix ? `${prefix}.${k}` : k, out);
    } else {
      out.set(prefix, v);
    }
    return out;
  }
  function diffRows(a, b) {
    const fa = isPlainObject(a) ? flatten(a, "", new Map()) : new Map();
    const fb = isPlainObject(b) ? flatten(b, "", new Map()) : new Map();
    const names = [...fa.keys()];
    for (const k of fb.keys()) if (!fa.has(k)) names.push(k);
    return names.map((name) => {
      const inA = fa.has(name), inB = fb.has(name);
      const kind = !inA ? "added" : !inB ? "removed" : compact(fa.get(name)) === compact(fb.get(name)) ? "same" : "changed";
      return { name, kind, a: fa.get(name), b: fb.get(name), inA, inB };
    });
  }
  function diffValue(v, present, cls) {
    if (!present) return h("td", { class: cls }, h("span", { class: "absent" }, "—"));
    return h("td", { class: cls }, typeof v === "string" ? compact(v) : v === null ? "null" : compact(v));
  }

  async function viewHistory(ctx, table, key) {
    heading(ctx, `History of ${table} / ${key}`,
      h("div", { class: "bar" }, h("a", { class: "button", href: objHash(table, key) }, "The object now"),
        h("a", { class: "button", href: `#/log${qs({ table, key })}` }, "Its commits in the log")));
    const versions = (await api("GET", `${objPath(table, key)}/history`)).history;
    if (!ctx.alive()) return;
    if (!versions.length) { ctx.el.append(h("p", { class: "note" }, "No history.")); return; }
    const n = versions.length;
    const label = (i) => `v${n - i} · ${when(versions[i].date)} · ${OPS[versions[i].op] || versions[i].op} · ${short(versions[i].commit)}`;
    const rows = versions.map((v, i) => h("tr", {},
      h("td", { class: "num" }, `v${n - i}`),
      h("td", { title: v.date }, when(v.date)),
      h("td", {}, opTag(v.op), " ", OPS[v.op] || ""),
      h("td", {}, h("a", { class: "hash", href: commitHash(v.commit) }, short(v.commit))),
      h("td", {}, v.author || h("span", { class: "null" }, "—")),
      h("td", {}, v.message || h("span", { class: "null" }, "—"))));
    ctx.el.append(tableOf(`${n} version${n === 1 ? "" : "s"}, newest first`, ["", "Date", "Change", "Commit", "Author", "Message"], rows));

    const selA = h("select", { name: "a" }, versions.map((v, i) => h("option", { value: String(i) }, label(i))));
    const selB = h("select", { name: "b" }, versions.map((v, i) => h("option", { value: String(i) }, label(i))));
    selA.value = String(Math.min(1, n - 1));
    selB.value = "0";
    const showSame = h("input", { type: "checkbox", name: "same", id: newId("same") });
    const diffOut = h("div", { class: "diff-out", "aria-live": "polite" });
    ctx.el.append(h("section", { class: "panel", "aria-labelledby": "diff-title" },
      h("h2", { id: "diff-title" }, "Compare two versions"),
      h("div", { class: "fields" }, field("From (A)", selA), field("To (B)", selB),
        h("div", { class: "row" }, showSame, h("label", { for: showSame.id }, "show unchanged fields"))),
      diffOut));

    function render() {
      const a = versions[+selA.value], b = versions[+selB.value];
      const rowsD = diffRows(a.object, b.object);
      const changed = rowsD.filter((r) => r.kind !== "same");
      const shown = showSame.checked ? rowsD : changed;
      const note = a === b ? "The same version on both sides."
        : changed.length === 0 ? "No field differs."
          : `${changed.length} field${changed.length === 1 ? "" : "s"} differ${changed.length === 1 ? "s" : ""}.`;
      const parts = [h("p", { class: "muted", id: "diff-summary" }, note)];
      if (a.object === null) parts.push(h("p", { class: "muted small" }, `A (${label(+selA.value)}) is a deletion: the object did not exist.`));
      if (b.object === null) parts.push(h("p", { class: "muted small" }, `B (${label(+selB.value)}) is a deletion: the object did not exist.`));
      if (shown.length) {
        parts.push(h("div", { class: "scroll" }, h("table", { class: "data diff" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, `A: v${n - +selA.value}`),
            h("th", { scope: "col" }, `B: v${n - +selB.value}`), h("th", { scope: "col" }, ""))),
          h("tbody", {}, shown.map((r) => h("tr", { class: r.kind, "data-field": r.name },
            h("td", { class: "field" }, r.name), diffValue(r.a, r.inA, "a"), diffValue(r.b, r.inB, "b"),
            h("td", { class: "muted small kind" }, r.kind === "same" ? "" : r.kind)))))));
      }
      diffOut.replaceChildren(...parts);
    }
    selA.addEventListener("change", render);
    selB.addEventListener("change", render);
    showSame.addEventListener("change", render);
    render();
  }

  // ---- view: log and one commit --------------------------------------------------------------------
  async function viewLog(ctx) {
    const table = ctx.params.get("table") || "", key = ctx.params.get("key") || "";
    let n = count(ctx.params.get("n"), LOG_PAGE, 100000) || LOG_PAGE;
    heading(ctx, key ? `Log of ${table} / ${key}` : table ? `Log of ${table}` : "Log");
    if (table) ctx.el.append(h("p", {}, h("a", { href: "#/log" }, "← the whole log")));
    const out = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    ctx.el.append(out);
    async function load() {
      const commits = (await api("GET", "/log" + qs({ table, key, n }))).commits;
      if (!ctx.alive()) return;
      if (!commits.length) { out.replaceChildren(h("p", { class: "note" }, "No commits yet.")); return; }
      const rows = commits.map((c) => h("tr", {},
        h("td", { title: c.date }, when(c.date)),
        h("td", {}, h("a", { class: "hash", href: commitHash(c.commit) }, short(c.commit))),
        h("td", {}, c.author || h("span", { class: "null" }, "—")),
        h("td", {}, c.message || h("span", { class: "null" }, "—")),
        h("td", { class: "num", title: `${c.inserted} inserted, ${c.updated} updated, ${c.deleted} deleted` },
          `+${c.inserted} ~${c.updated} −${c.deleted}`)));
      const more = commits.length >= n
        ? h("button", { type: "button", onclick: async (ev) => { n += LOG_PAGE; busy(ev.target, true); try { await load(); } catch (e) { ctx.error(e); } } }, "Show more")
        : null;
      out.replaceChildren(tableOf(`${commits.length} commit${commits.length === 1 ? "" : "s"}, newest first`,
        ["Date", "Commit", "Author", "Message", "Changes"], rows), h("p", {}, more));
    }
    try { await load(); } catch (e) { out.replaceChildren(); throw e; }
  }

  async function viewCommit(ctx, ref) {
    heading(ctx, `Commit ${short(ref)}`);
    const c = await api("GET", `/commits/${seg(ref)}`);
    if (!ctx.alive()) return;
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "Commit"), h("dd", { class: "hash" }, c.commit),
      h("dt", {}, "Date"), h("dd", {}, c.date),
      h("dt", {}, "Parents"), h("dd", {}, c.parents.length ? c.parents.map((p, i) => [i ? ", " : "", h("a", { class: "hash", href: commitHash(p) }, short(p))]) : "none (the first commit)"),
      h("dt", {}, "Author"), h("dd", {}, c.author || "—"),
      h("dt", {}, "Message"), h("dd", {}, c.message || "—"),
      h("dt", {}, "Changes"), h("dd", {}, `${c.inserted} inserted, ${c.updated} updated, ${c.deleted} deleted`),
      c.meta && Object.keys(c.meta).length ? [h("dt", {}, "Meta"), h("dd", { class: "hash" }, compact(c.meta))] : null,
      c.objects_uuid ? [h("dt", {}, "Objects hash"), h("dd", { class: "hash" }, c.objects_uuid)] : null);
    ctx.el.append(h("section", { class: "panel" }, facts));
    const lines = c.lines || [];
    const rows = lines.map((l) => h("tr", {},
      h("td", {}, opTag(l.op), " ", OPS[l.op] || ""),
      h("td", {}, h("a", { href: tableHash(l.table) }, l.table)),
      h("td", {}, h("a", { href: historyHash(l.table, String(l.key)) }, String(l.key))),
      h("td", { class: "hash" }, l.version ? short(l.version) : "—")));
    const shownNote = lines.length < c.changes ? ` (the first ${lines.length} of ${c.changes})` : "";
    ctx.el.append(tableOf(`${lines.length} line${lines.length === 1 ? "" : "s"}${shownNote}`, ["Change", "Table", "Key (history)", "Version"], rows));
  }

  // ---- view: status (head and verify) --------------------------------------------------------------
  async function viewStatus(ctx) {
    heading(ctx, "Status");
    const headOut = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    const verifyBtn = h("button", { type: "button", class: "primary", id: "verify" }, "Verify");
    const verifyOut = h("div", { "aria-live": "polite", id: "verify-result" });
    ctx.el.append(
      h("section", { class: "panel" }, h("h2", {}, "Head"),
        h("p", { class: "muted small" }, "The newest commit's hash: one value standing for all the data and its whole history."), headOut),
      h("section", { class: "panel" }, h("h2", {}, "Verify"),
        h("p", { class: "muted small" }, "Recompute every hash and compare the tables with the history (POST /api/v1/verify). Nothing is changed."),
        h("div", { class: "row" }, verifyBtn), verifyOut));
    verifyBtn.addEventListener("click", async () => {
      busy(verifyBtn, true);
      verifyOut.replaceChildren(h("p", { class: "loading" }, "Verifying…"));
      try {
        const r = await api("POST", "/verify");
        const problems = r.problems || [];
        verifyOut.replaceChildren(
          h("p", {}, r.ok ? h("span", { class: "badge ok" }, "✓ verified") : h("span", { class: "badge bad" }, `✗ ${problems.length} problem${problems.length === 1 ? "" : "s"}`),
            " ", r.ok ? "Every hash matches and the tables agree with the history." : "The data does not match its history."),
          h("dl", { class: "facts" },
            h("dt", {}, "Head"), h("dd", { class: "hash" }, r.head || "none"),
            h("dt", {}, "Commits"), h("dd", {}, String(r.commits)),
            h("dt", {}, "Versions"), h("dd", {}, String(r.versions)),
            h("dt", {}, "Rows"), h("dd", {}, String(r.rows)),
            h("dt", {}, "Uncommitted"), h("dd", {}, String(r.uncommitted))),
          h("ul", { class: "problems" }, problems.map((p) => h("li", {}, typeof p === "string" ? p : compact(p)))));
      } catch (e) {
        verifyOut.replaceChildren(errorBox(e));
      } finally {
        busy(verifyBtn, false);
      }
    });
    const r = await api("GET", "/head");
    if (!ctx.alive()) return;
    headOut.replaceChildren(r.head
      ? h("p", {}, h("a", { class: "hash", id: "head-full", href: commitHash(r.head) }, r.head))
      : h("p", { class: "note", id: "head-full" }, "No commits yet."));
  }

  // ---- view: conflicts -----------------------------------------------------------------------------
  // Objects a sync left with two sides: what the table shows (ours), the others (theirs), their common
  // base and what each side changed; keeping one side is one commit that merges them all.
  function changes(changed) {
    if (changed["(deleted)"]) return h("span", { class: "null" }, "deleted it");
    const names = Object.keys(changed);
    if (!names.length) return h("span", { class: "null" }, "no change from the base");
    return names.map((f, i) => [i ? ", " : "", h("code", {}, f), ": ", compact(changed[f][0]), " → ", compact(changed[f][1])]);
  }

  async function viewConflicts(ctx) {
    heading(ctx, "Conflicts");
    ctx.el.append(h("p", { class: "muted small" },
      "Objects changed on two databases before they synced. Every version is kept; the table shows the one its policy " +
      "picks (by default the newest). Keeping a side makes one commit that merges them; sync it and the conflict is gone everywhere."));
    const out = h("div", {}, h("p", { class: "loading" }, "Loading…"));
    ctx.el.append(out);
    const found = (await api("GET", "/conflicts")).conflicts;
    if (!ctx.alive()) return;
    if (!found.length) { out.replaceChildren(h("p", { class: "note", id: "no-conflicts" }, "No conflicts: every object has one current version.")); return; }
    out.replaceChildren(...found.map((c) => {
      const key = String(c.key);
      const side = (label, s) => {
        const keep = h("button", { type: "button", class: label === "ours" ? "" : "primary" }, "Keep this one");
        keep.addEventListener("click", async () => {
          busy(keep, true);
          try {
            const r = await api("POST", `/tables/${seg(c.table)}/objects/${seg(key)}/resolve`,
              { take: s.version || "deleted", message: `Keep ${label} side of ${c.table}/${key}` });
            go("#/conflicts", `Resolved ${c.table}/${key} in commit ${short(r.commit)}`);
          } catch (e) { ctx.error(e); busy(keep, false); }
        });
        return h("tr", { "data-side": label },
          h("th", { scope: "row" }, label),
          h("td", { class: "hash" }, s.version ? short(s.version) : "deleted"),
          h("td", {}, h("a", { class: "hash", href: commitHash(s.commit) }, short(s.commit))),
          h("td", { title: s.date }, when(s.date)),
          h("td", {}, changes(s.changed)),
          h("td", {}, keep));
      };
      return h("section", { class: "panel conflict", "data-key": `${c.table}/${key}` },
        h("h2", {}, h("a", { href: objHash(c.table, key) }, `${c.table} / ${key}`), " ",
          h("span", { class: "muted small" }, `${c.state}, policy ${c.policy}`)),
        tableOf(c.base ? `Base ${short(c.base.version)}: ${compact(c.base.object)}` : "No common base (made on both sides)",
          ["Side", "Version", "Commit", "Date", "What it changed", ""],
          [side("ours", c.ours), ...c.theirs.map((t) => side("theirs", t))]),
        h("p", { class: "small" }, "The table shows: ", h("code", {}, compact(c.shown))));
    }));
  }

  // ---- view: API explorer --------------------------------------------------------------------------
  const EXAMPLES = [
    ["GET", "/api/v1/tables", ""],
    ["GET", "/api/v1/head", ""],
    ["GET", "/api/v1/log?n=5", ""],
    ["POST", "/api/v1/find", '{\n  "table": "people",\n  "where": {},\n  "limit": 10\n}'],
    ["POST", "/api/v1/sql", '{\n  "sql": "SELECT name FROM sqlite_master WHERE type = \'table\'"\n}'],
    ["POST", "/api/v1/verify", ""],
    ["GET", "/api/v1/conflicts", ""],
    ["GET", "/openapi.json", ""],
  ];
  let explorerState = { method: "GET", path: "/api/v1/tables", body: "" };

  function viewExplorer(ctx) {
    heading(ctx, "API explorer");
    ctx.el.append(h("p", { class: "muted" }, "Send any request to this server's API (with the token, if one is set) and see the answer. ",
      "Every endpoint is described in docs/server.md and in the OpenAPI document at /openapi.json."));
    const method = h("select", { name: "method" }, ["GET", "POST", "PUT", "DELETE"].map((m) => h("option", { value: m }, m)));
    method.value = explorerState.method;
    const path = h("input", { name: "path", class: "code", value: explorerState.path, autocomplete: "off", spellcheck: "false", size: "50" });
    const body = h("textarea", { name: "body", class: "code", rows: "7", spellcheck: "false", placeholder: "JSON body (POST and PUT)" }, explorerState.body);
    const send = h("button", { type: "submit", class: "primary" }, "Send");
    const out = h("div", { class: "explorer-out", "aria-live": "polite" });
    const syncBody = () => { body.disabled = method.value === "GET"; };
    method.addEventListener("change", syncBody);
    syncBody();
    const form = h("form", {
      class: "panel stack explorer",
      onsubmit: async (ev) => {
        ev.preventDefault();
        explorerState = { method: method.value, path: path.value.trim(), body: body.value };
        const p = explorerState.path;
        let url;
        try { url = new URL(p, location.origin); } catch { url = null; }
        if (!p.startsWith("/") || p.startsWith("//") || p.includes("\\") || !url || url.origin !== location.origin) {
          out.replaceChildren(errorBox("The path must start with / (for example /api/v1/tables): the explorer talks to this server only."));
          path.focus();
          return;
        }
        busy(send, true);
        out.replaceChildren(h("p", { class: "loading" }, "Sending…"));
        try {
          const r = await request(method.value, p, method.value === "GET" || !body.value.trim() ? undefined : body.value);
          const shown = r.data !== undefined && r.data !== null ? pretty(r.data) : r.text;
          out.replaceChildren(
            h("p", {}, h("span", { class: "status-line " + (r.ok ? "ok" : "bad"), id: "explorer-status" }, `${r.status} ${r.statusText}`),
              h("span", { class: "muted small" }, ` · ${Math.round(r.ms)} ms · ${r.headers.get("Content-Type") || "no content type"}`)),
            h("pre", { class: "json", id: "explorer-body", tabindex: "0", "aria-label": "the response body" }, shown || "(empty body)"));
          if (r.ok && method.value !== "GET") refreshHead();
        } catch (e) {
          out.replaceChildren(errorBox(e));
        } finally {
          busy(send, false);
        }
      },
    },
    h("div", { class: "fields" }, field("Method", method), field("Path", path, "wide"), h("div", { class: "row" }, send)),
    field("Body", body),
    h("div", {}, h("span", { class: "muted small" }, "Examples: "),
      h("div", { class: "examples" }, EXAMPLES.map(([m, p, b]) => h("button", {
        type: "button",
        onclick: () => { method.value = m; path.value = p; body.value = b; syncBody(); path.focus(); },
      }, `${m} ${p}`)))),
    out);
    ctx.el.append(form);
  }

  // ---- start ---------------------------------------------------------------------------------------
  function start() {
    $("#token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("#token-input").value.trim();
      if (!t) { $("#token-reason").textContent = "Enter a token (or close this)."; $("#token-input").focus(); return; }
      setToken(t);
      $("#token-input").value = "";
      hideTokenPanel();
      route();
    });
    $("#token-forget").addEventListener("click", () => {
      setToken("");
      $("#token-input").value = "";
      hideTokenPanel();
      flash("note", "The token is forgotten (removed from this browser).");
      $("#token-button").focus();
    });
    $("#token-close").addEventListener("click", () => { hideTokenPanel(); $("#token-button").focus(); });
    $("#token-button").addEventListener("click", () => {
      if ($("#token-panel").hidden) {
        showTokenPanel(getToken() ? "A token is set. Enter another one to replace it." : "No token is set (this server may not need one).", false);
        $("#token-input").focus();
      } else {
        hideTokenPanel();
      }
    });
    $("#token-panel").addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { hideTokenPanel(); $("#token-button").focus(); }
    });
    $("#skip").addEventListener("click", (ev) => { ev.preventDefault(); $("#main").focus(); });
    // Ctrl+Enter / Cmd+Enter in a text area submits its form.
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && ev.target instanceof HTMLTextAreaElement && ev.target.form) {
        ev.preventDefault();
        ev.target.form.requestSubmit();
      }
    });
    // After a navigation, put keyboard focus on the new view's heading. Only hash changes move it:
    // the first load leaves focus where the browser put it, and a navigation made before the first
    // view finished loading still gets its focus.
    window.addEventListener("hashchange", () => {
      route().then(() => {
        const h1 = $("#main h1");
        if (h1 && !$("#main").contains(document.activeElement)) h1.focus();
      });
    });
    route();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
