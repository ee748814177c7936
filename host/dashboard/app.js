// CodeAI Jobs dashboard: a single page over the public HTTP API.
//
// The page keeps the visitor's API token in the browser (this tab, or this device when asked)
// and sends it as `Authorization: Bearer` with every call; it holds no other secret and calls
// nothing the API does not document. Views re-read their data every few seconds while the tab
// is visible. Everything the API returns is put into the page as text, never as HTML.

const REFRESH_MS = 3000;
const TOKEN_KEY = "codeai.token";
const VIEWER_TZ = Intl.DateTimeFormat().resolvedOptions().timeZone;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || "",
  me: null,
  view: null,
  timer: null,
  refreshing: false,
};

// ---------------------------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------------------------

/** Creates an element: `h("a", {href, class}, "text", child, …)`. Strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces `el`'s content, keeping keyboard focus on the element with the same `data-key`. */
function replace(el, ...children) {
  const focused = document.activeElement;
  const key = focused && el.contains(focused) ? focused.dataset.key : undefined;
  el.replaceChildren();
  append(el, children);
  if (key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast ${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

// ---------------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "The server does not answer.");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    const error = new ApiError(response.status, err.code || "error", err.message || `HTTP ${response.status}`);
    if (response.status === 401 && state.me) signOut("Your token is no longer accepted; sign in again.");
    throw error;
  }
  return data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

const formatters = new Map();
/** Dates in `timeZone`: `precise` with seconds and the zone's name, otherwise to the minute. */
function formatter(timeZone, precise) {
  const key = `${timeZone}|${precise}`;
  if (!formatters.has(key)) {
    const options = { timeZone, weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
    if (precise) {
      options.second = "2-digit";
      options.timeZoneName = "short";
    }
    formatters.set(key, new Intl.DateTimeFormat(undefined, options));
  }
  return formatters.get(key);
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
function ago(date) {
  const s = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(s);
  if (abs < 60) return relative.format(s, "second");
  if (abs < 3600) return relative.format(Math.round(s / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(s / 3600), "hour");
  return relative.format(Math.round(s / 86400), "day");
}

/**
 * A time in the viewer's zone and how far from now, with the same instant in the job's zone
 * beneath when that zone is another. `precise` adds seconds (an execution's times).
 */
function when(iso, jobTz, precise = false) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  let tz = jobTz;
  try {
    if (tz) formatter(tz, false);
  } catch {
    tz = null;
  }
  return h(
    "time",
    { datetime: date.toISOString(), title: `${date.toISOString()} (UTC)` },
    h("span", { class: "local" }, formatter(VIEWER_TZ, precise).format(date)),
    h("span", { class: "rel" }, ago(date)),
    tz && tz !== VIEWER_TZ ? h("span", { class: "jobtz" }, `${formatter(tz, false).format(date)} ${tz}`) : null,
  );
}

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60000);
  const s = Math.round((ms % 60000) / 1000);
  return `${m} min ${s} s`;
}

function number(n) {
  return n === null || n === undefined ? "—" : new Intl.NumberFormat().format(n);
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

const STATUS_KIND = {
  completed: "ok",
  skipped: "ok",
  failed: "bad",
  timed_out: "bad",
  fuel_exhausted: "bad",
  memory_exceeded: "bad",
  trapped: "bad",
  dead: "bad",
  running: "run",
  cancelling: "run",
  pending: "wait",
  queued: "wait",
  retrying: "wait",
  cancelled: "muted",
  active: "bad",
  resolved: "ok",
  held: "wait",
  enabled: "ok",
  paused: "muted",
};

function badge(status) {
  if (!status) return h("span", { class: "muted" }, "—");
  return h("span", { class: `badge ${STATUS_KIND[status] || "muted"}`, "data-status": status }, status.replace(/_/g, " "));
}

function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

/** Shows in `el` the table of `rows` (or `empty` when there are none). */
function fill(el, caption, headers, rows, empty) {
  replace(el, table(caption, headers, rows, empty));
}

/**
 * A search form of labelled controls for the view at `route`: submitting it opens the view with
 * the non-empty values in its address (`#/route?name=value…`), and "Clear" (when `anySet`) opens
 * it without. A field reads its control's trimmed value unless it says how (`value`).
 */
function filterForm(route, label, submit, fields, anySet) {
  const form = h(
    "form",
    { class: "bar filters", role: "search", "aria-label": label },
    ...fields.flatMap((f) => [h("label", { for: f.control.id }, `${f.label} `), f.control]),
    h("button", { type: "submit" }, submit),
    anySet ? h("a", { href: route, id: "clear-filters" }, "Clear") : null,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of fields) {
      const value = f.value ? f.value() : f.control.value.trim();
      if (value) q.set(f.name, value);
    }
    const query = q.toString();
    location.hash = `${route}${query ? `?${query}` : ""}`;
  });
  return form;
}

function table(caption, headers, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  // Each cell carries its column's name: on a phone the rows become cards labelled by it.
  for (const row of rows) {
    [...row.children].forEach((cell, i) => {
      if (headers[i]) cell.dataset.label = headers[i];
    });
  }
  return h(
    "div",
    { class: "scroll", tabindex: "0", role: "region", "aria-label": caption, "data-key": `region-${caption}` },
    h(
      "table",
      {},
      h("caption", { class: "sr" }, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e instanceof ApiError ? `${e.message} (${e.code})` : String(e));
}

// ---------------------------------------------------------------------------------------------
// Sign in / out
// ---------------------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  state.token = "";
  state.me = null;
  showLogin(message);
}

function showLogin(message) {
  stopTimer();
  state.view = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, message || "");
  if (!message) error.hidden = true;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
    placeholder: "cai_…",
    "aria-describedby": "token-help",
  });
  const remember = h("input", { id: "remember", type: "checkbox" });
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("label", { for: "token" }, "API token"),
    input,
    h(
      "p",
      { id: "token-help", class: "help" },
      "An admin token sees every tenant; a tenant's token sees its own jobs. ",
      "The admin token is the one ",
      h("code", {}, "codeai host run"),
      " printed at its first start (or the one in ",
      h("code", {}, "CODEAI_ADMIN_TOKEN"),
      "). Make another with ",
      h("code", {}, "codeai token create --tenant NAME"),
      " or ",
      h("code", {}, "--admin"),
      ".",
    ),
    h("label", { class: "check" }, remember, " Remember on this device"),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    state.token = input.value.trim();
    try {
      state.me = await api("GET", "/me");
    } catch (e) {
      state.token = "";
      error.hidden = false;
      error.textContent = e.status === 401 ? "This token is not valid." : e.message;
      input.focus();
      return;
    }
    (remember.checked ? localStorage : sessionStorage).setItem(TOKEN_KEY, state.token);
    startSession();
  });
  const root = document.getElementById("view");
  root.replaceChildren(form);
  document.title = "Sign in · CodeAI Jobs";
  input.focus();
}

function startSession() {
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  document.getElementById("who").textContent =
    state.me.role === "admin" ? "admin" : `tenant ${state.me.tenant}`;
  if (!location.hash || location.hash === "#") location.hash = "#/";
  route();
}

// ---------------------------------------------------------------------------------------------
// Router and refresh loop
// ---------------------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/?$/, () => overviewView()],
  [/^#\/jobs\/?$/, () => jobsView()],
  [/^#\/jobs\/([^/?]+)(?:\?(.*))?$/, (m) => jobView(decodeURIComponent(m[1]), new URLSearchParams(m[2] || ""))],
  [/^#\/executions\/?(?:\?(.*))?$/, (m) => executionsView(new URLSearchParams(m[1] || ""))],
  [/^#\/executions\/([^/?]+)$/, (m) => executionView(decodeURIComponent(m[1]))],
  [/^#\/reports\/?$/, () => reportsView()],
  [/^#\/outbox\/?$/, () => outboxView()],
  [/^#\/events\/?(?:\?(.*))?$/, (m) => eventsView(new URLSearchParams(m[1] || ""))],
];

function route() {
  if (!state.me) return;
  const hash = location.hash || "#/";
  let view = null;
  for (const [pattern, make] of ROUTES) {
    const m = hash.match(pattern);
    if (m) {
      view = make(m);
      break;
    }
  }
  view = view || notFoundView();
  for (const a of document.querySelectorAll("#nav a")) {
    const target = a.getAttribute("href");
    const current = target === "#/" ? hash === "#/" || hash === "#" : hash.startsWith(target);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  state.view = view;
  const root = document.getElementById("view");
  root.replaceChildren(view.root);
  document.title = `${view.title} · CodeAI Jobs`;
  root.focus({ preventScroll: true });
  refresh(true);
  startTimer();
}

function startTimer() {
  stopTimer();
  state.timer = setInterval(() => refresh(false), REFRESH_MS);
}

function stopTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

async function refresh(first) {
  const view = state.view;
  if (!view) return;
  if (state.refreshing) {
    // Asked while one runs (after an action): run once more when it ends.
    if (!first) state.again = true;
    return;
  }
  if (!first && (document.hidden || document.querySelector("dialog[open]"))) return;
  state.refreshing = true;
  const live = document.getElementById("live");
  try {
    await view.refresh(first);
    if (state.view === view) {
      live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
      live.classList.remove("stale");
    }
  } catch (e) {
    if (state.view === view) {
      live.textContent = `Not updated: ${e.message}`;
      live.classList.add("stale");
      if (first) view.fail?.(e);
    }
  } finally {
    state.refreshing = false;
  }
  if (state.again) {
    state.again = false;
    await refresh(false);
  }
}

/** A view: its root element, a title, and what to do on each refresh. */
function makeView(title, build) {
  const root = h("section", { class: "view", "aria-labelledby": "view-title" });
  const view = { title, root, refresh: async () => {}, fail: (e) => root.append(errorBox(e)) };
  build(view, root);
  return view;
}

/** What a part of a view shows until its first answer. */
function loading() {
  return h("p", { class: "empty loading", role: "status" }, "Loading…");
}

function notFoundView() {
  return makeView("Not found", (view, root) => {
    root.append(h("h1", { id: "view-title" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
  });
}

// ---------------------------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------------------------

function overviewView() {
  return makeView("Overview", (view, root) => {
    // Each card says it is loading until its first answer arrives.
    const queues = h("div", { id: "queues" }, loading());
    const workers = h("div", { id: "workers" }, loading());
    const chart = h("div", { id: "throughput" }, loading());
    const alerts = h("div", { id: "alerts" }, loading());
    root.append(
      h("h1", { id: "view-title" }, "Overview"),
      h(
        "div",
        { class: "grid" },
        h("article", { class: "card wide" }, h("h2", {}, "Queues"), queues),
        h("article", { class: "card" }, h("h2", {}, "Workers"), workers),
        h("article", { class: "card wide" }, h("h2", {}, "Throughput, last hour"), chart),
        h("article", { class: "card" }, h("h2", {}, "Active alerts"), alerts),
      ),
    );
    view.refresh = async () => {
      const [status, stats, active] = await Promise.all([
        api("GET", "/queues/status"),
        api("GET", "/stats/throughput?minutes=60"),
        api("GET", "/alerts?status=active&limit=50"),
      ]);
      fill(
        queues,
        "Queues",
        ["Queue", "Pending", "Active", "Scheduled", "Completed", "Failed"],
        status.queues.map((q) =>
          h(
            "tr",
            { "data-queue": q.name },
            h("th", { scope: "row" }, q.name),
            h("td", { class: "num" }, number(q.pending)),
            h("td", { class: "num" }, number(q.active)),
            h("td", { class: "num" }, number(q.scheduled)),
            h("td", { class: "num" }, number(q.completed)),
            h("td", { class: "num" }, number(q.failed)),
          ),
        ),
        "No queue has any task yet.",
      );
      const w = status.workers;
      const busy = w.total ? Math.round((w.active / w.total) * 100) : 0;
      replace(
        workers,
        h(
          "dl",
          { class: "stats" },
          h("div", {}, h("dt", {}, "Slots"), h("dd", { id: "workers-total" }, number(w.total))),
          h("div", {}, h("dt", {}, "Busy"), h("dd", { id: "workers-active" }, number(w.active))),
          h("div", {}, h("dt", {}, "Idle"), h("dd", { id: "workers-idle" }, number(w.idle))),
        ),
        h("meter", { min: 0, max: 100, value: busy, high: 90, optimum: 50, "aria-label": `Worker slots busy: ${busy}%` }),
        h("p", { class: "help" }, `${busy}% of the worker slots are running an execution.`),
      );
      replace(chart, throughputChart(stats));
      replace(
        alerts,
        active.data.length
          ? h(
              "ul",
              { class: "alerts" },
              active.data.map((a) =>
                h(
                  "li",
                  { class: "alert" },
                  h("strong", {}, a.kind.replace(/_/g, " ")),
                  " ",
                  h("span", {}, a.message),
                  h("div", { class: "help" }, "since ", when(a.started_at)),
                ),
              ),
            )
          : h("p", { class: "empty" }, "No active alert."),
      );
    };
  });
}

/** Finished executions per minute as stacked bars (SVG), with a text summary for screen readers. */
function throughputChart(stats) {
  const data = stats.data;
  const total = data.reduce((s, b) => s + b.completed + b.failed + b.cancelled, 0);
  const failed = data.reduce((s, b) => s + b.failed, 0);
  const max = Math.max(1, ...data.map((b) => b.completed + b.failed + b.cancelled));
  const W = 600;
  const H = 160;
  const pad = 28;
  const bw = (W - pad) / data.length;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${total} executions finished in the last hour, ${failed} failed; at most ${max} in a minute.`);
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  el("line", { x1: pad, y1: H, x2: W, y2: H, class: "axis" });
  el("text", { x: pad - 4, y: 10, class: "tick", "text-anchor": "end" }, String(max));
  el("text", { x: pad - 4, y: H, class: "tick", "text-anchor": "end" }, "0");
  data.forEach((b, i) => {
    const x = pad + i * bw;
    let y = H;
    for (const [key, cls] of [
      ["completed", "ok"],
      ["failed", "bad"],
      ["cancelled", "muted"],
    ]) {
      if (!b[key]) continue;
      const height = (b[key] / max) * (H - 12);
      y -= height;
      const rect = el("rect", { x: x + 0.5, y, width: Math.max(1, bw - 1), height, class: `bar ${cls}` });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${new Date(b.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${b[key]} ${key}`;
      rect.append(title);
    }
    if (i % 15 === 0 || i === data.length - 1) {
      el("text", { x: x + bw / 2, y: H + 14, class: "tick", "text-anchor": "middle" }, new Date(b.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
    }
  });
  return h(
    "figure",
    {},
    svg,
    h(
      "figcaption",
      { class: "help" },
      h("span", { class: "key ok" }), " completed ",
      h("span", { class: "key bad" }), " failed ",
      h("span", { class: "key muted" }), " cancelled · ",
      `${number(total)} finished in the last hour`,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/** Success rates by job id, read from the job details at most every 15 s. */
const successRates = new Map();
async function loadSuccessRates(jobs) {
  const now = Date.now();
  const stale = jobs.filter((j) => !successRates.has(j.id) || now - successRates.get(j.id).at > 15000);
  await Promise.all(
    stale.map(async (j) => {
      try {
        const detail = await api("GET", `/jobs/${enc(j.id)}`);
        successRates.set(j.id, { at: now, stats: detail.stats });
      } catch {
        // A job deleted meanwhile: no rate.
      }
    }),
  );
}

function rate(jobId) {
  const entry = successRates.get(jobId);
  if (!entry || entry.stats.success_rate === null || entry.stats.success_rate === undefined) {
    return h("span", { class: "muted" }, "—");
  }
  const s = entry.stats;
  return h("span", { title: `${s.completed} completed, ${s.failed} failed, ${s.skipped} skipped of ${s.finished}` }, `${(s.success_rate * 100).toFixed(1)}%`);
}

function scheduleCell(job) {
  const s = job.schedule;
  return h(
    "div",
    { class: "schedule" },
    h("span", {}, scheduleWords(s)),
    h("span", { class: "zone" }, s.cron ? h("code", {}, s.cron) : null, s.cron ? " · " : null, job.timezone),
  );
}

function scheduleWords(s) {
  if (s.cron) {
    // The API describes a cron schedule as `EXPR (in words)`.
    const m = s.description.match(/^.*? \((.*)\)$/);
    return m ? m[1] : s.description;
  }
  return s.description;
}

function jobActions(job, after) {
  const act = async (label, method, path, body, done) => {
    try {
      const result = await api(method, path, body);
      toast(done(result), "ok");
      await after();
    } catch (e) {
      toast(`${label} failed: ${e.message}`, "error");
    }
  };
  return h(
    "div",
    { class: "actions compact" },
    h("button", { type: "button", "data-key": `run-${job.id}`, "data-action": "run", onclick: () => runDialog(job) }, "Run now"),
    toggle(job, act),
    h("button", { type: "button", "data-key": `schedule-${job.id}`, "data-action": "schedule", onclick: () => scheduleDialog(job) }, "Edit schedule"),
  );
}

/** Pause for an enabled job, Resume for a paused one. */
function toggle(job, act) {
  const [action, label, done] = job.is_enabled ? ["pause", "Pause", "paused"] : ["resume", "Resume", "resumed"];
  return h(
    "button",
    {
      type: "button",
      "data-key": `toggle-${job.id}`,
      "data-action": action,
      onclick: () => act(label, "POST", `/jobs/${enc(job.id)}/${action}`, undefined, () => `${job.name} ${done}`),
    },
    label,
  );
}

function jobsView() {
  return makeView("Jobs", (view, root) => {
    const list = h("div", { id: "jobs" }, loading());
    root.append(
      h("h1", { id: "view-title" }, "Jobs"),
      h("p", { class: "help" }, `Times are in your timezone (${VIEWER_TZ}), with the job's own beneath when it differs.`),
      list,
    );
    view.refresh = async () => {
      const jobs = [];
      let cursor = null;
      do {
        const page = await api("GET", `/jobs?limit=500${cursor ? `&cursor=${enc(cursor)}` : ""}`);
        jobs.push(...page.data);
        cursor = page.next_cursor;
      } while (cursor);
      await loadSuccessRates(jobs);
      const admin = state.me.role === "admin";
      fill(
        list,
        "Jobs",
        ["Job", admin ? "Tenant" : null, "Schedule", "Queue", "Enabled", "Next run", "Last run", "Success", "Actions"].filter(Boolean),
        jobs.map((j) =>
          h(
            "tr",
            { "data-job": j.name },
            h(
              "th",
              { scope: "row" },
              h("a", { href: `#/jobs/${enc(j.id)}`, "data-key": `open-${j.id}` }, j.name),
              j.description ? h("div", { class: "help" }, j.description) : null,
            ),
            admin ? h("td", {}, j.tenant) : null,
            h("td", {}, scheduleCell(j)),
            h("td", {}, j.queue),
            h("td", { class: "enabled" }, j.is_enabled ? badge("enabled") : badge("paused")),
            h("td", {}, j.is_enabled ? when(j.next_run_at, j.timezone) : h("span", { class: "muted" }, "paused")),
            h("td", {}, badge(j.last_run_status), j.last_run_at ? h("div", {}, when(j.last_run_at, j.timezone)) : null),
            h("td", { class: "num" }, rate(j.id)),
            h("td", {}, jobActions(j, () => refresh(false))),
          ),
        ),
        "No job yet. Upload one with POST /jobs, or start the host on a .codeai file.",
      );
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Dialogs: run now, edit schedule
// ---------------------------------------------------------------------------------------------

function dialog(title, body, submitLabel, onSubmit) {
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", {}, title),
    body,
    error,
    h("div", { class: "actions end" }, h("button", { type: "button", value: "cancel", onclick: () => dlg.close() }, "Cancel"), submit),
  );
  const dlg = h("dialog", { "aria-label": title }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      await onSubmit();
      dlg.close();
      refresh(false);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

function runDialog(job) {
  const input = h("textarea", { id: "run-input", rows: 6, spellcheck: "false", "aria-describedby": "run-help" }, "{}");
  dialog(
    `Run ${job.name} now`,
    [
      h("label", { for: "run-input" }, "Input (a JSON object)"),
      input,
      h("p", { id: "run-help", class: "help" }, "The job runs once, now, on its queue; its schedule does not change."),
    ],
    "Run",
    async () => {
      let value;
      try {
        value = JSON.parse(input.value || "{}");
      } catch (e) {
        throw new Error(`The input is not JSON: ${e.message}`);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("The input must be a JSON object, like {\"key\": \"value\"}.");
      }
      const run = await api("POST", `/jobs/${enc(job.id)}/run`, { input: value });
      toast(`${job.name}: execution ${shortId(run.execution_id)} queued`, "ok");
      location.hash = `#/executions/${enc(run.execution_id)}`;
    },
  );
  input.focus();
  input.select();
}

function timezones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "America/Los_Angeles", "Asia/Tokyo"];
  }
}

function scheduleDialog(job) {
  const cron = h("input", { id: "cron", value: job.schedule.cron || job.cron_expression || "0 * * * *", spellcheck: "false", autocomplete: "off", "aria-describedby": "cron-help" });
  const zone = h("input", { id: "timezone", value: job.timezone || "UTC", list: "zones", autocomplete: "off" });
  const zones = h("datalist", { id: "zones" }, timezones().map((z) => h("option", { value: z })));
  const preview = h("div", { id: "preview", class: "preview", "aria-live": "polite" });
  let timer = null;
  let seq = 0;
  const update = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const p = await api("GET", `/schedule/preview?cron_expression=${enc(cron.value)}&timezone=${enc(zone.value)}&count=5`);
        if (mine !== seq) return;
        if (!p.valid) {
          replace(preview, h("p", { class: "error" }, p.error));
          return;
        }
        replace(
          preview,
          h("p", {}, h("strong", {}, p.description), ` (${p.timezone})`),
          h(
            "ol",
            { class: "fires" },
            p.next.map((f) => {
              const date = new Date(f.at);
              return h(
                "li",
                {},
                h("time", { datetime: f.at }, formatter(p.timezone, true).format(date)),
                h("span", { class: "help" }, ` · ${ago(date)}`),
                p.timezone !== VIEWER_TZ ? h("div", { class: "help" }, `your time: ${formatter(VIEWER_TZ, false).format(date)}`) : null,
              );
            }),
          ),
        );
      } catch (e) {
        if (mine !== seq) return;
        replace(preview, h("p", { class: "error" }, e.message));
      }
    }, 200);
  };
  cron.addEventListener("input", update);
  zone.addEventListener("input", update);
  dialog(
    `Schedule of ${job.name}`,
    [
      h("label", { for: "cron" }, "Cron expression"),
      cron,
      h("p", { id: "cron-help", class: "help" }, "minute hour day-of-month month day-of-week, e.g. ", h("code", {}, "0 7 * * 1-5"), " = 07:00 on weekdays."),
      h("label", { for: "timezone" }, "Timezone"),
      zone,
      zones,
      h("h3", {}, "Next fire times"),
      preview,
    ],
    "Save schedule",
    async () => {
      await api("PUT", `/jobs/${enc(job.id)}/schedule`, { cron_expression: cron.value, timezone: zone.value });
      toast(`${job.name}: schedule saved`, "ok");
    },
  );
  update();
  cron.focus();
}

// ---------------------------------------------------------------------------------------------
// One job and its executions
// ---------------------------------------------------------------------------------------------

const EXECUTION_STATUSES = ["pending", "running", "retrying", "completed", "skipped", "failed", "timed_out", "fuel_exhausted", "memory_exceeded", "trapped", "cancelling", "cancelled"];

function jobView(id, params) {
  return makeView("Job", (view, root) => {
    const status = params.get("status") || "";
    const header = h("div", { id: "job" });
    const filter = h(
      "select",
      { id: "status-filter", "aria-label": "Show executions with status" },
      h("option", { value: "" }, "All statuses"),
      EXECUTION_STATUSES.map((s) => h("option", { value: s, selected: s === status }, s.replace(/_/g, " "))),
    );
    filter.addEventListener("change", () => {
      location.hash = `#/jobs/${enc(id)}${filter.value ? `?status=${enc(filter.value)}` : ""}`;
    });
    const list = h("div", { id: "executions" }, loading());
    let shown = 25;
    let more = false;
    const moreButton = h("button", { type: "button", id: "more", hidden: true, onclick: async () => { shown += 25; await refresh(false); } }, "Show more");
    root.append(
      h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / "),
      header,
      h("div", { class: "bar" }, h("h2", {}, "Executions"), h("label", {}, "Status ", filter)),
      list,
      moreButton,
    );
    view.refresh = async () => {
      const q = `limit=${Math.min(shown, 500)}${status ? `&status=${enc(status)}` : ""}`;
      const [detail, executions] = await Promise.all([
        api("GET", `/jobs/${enc(id)}`),
        api("GET", `/jobs/${enc(id)}/executions?${q}`),
      ]);
      const job = detail;
      view.title = job.name;
      document.title = `${job.name} · CodeAI Jobs`;
      more = Boolean(executions.next_cursor);
      moreButton.hidden = !more;
      const s = detail.stats;
      replace(
        header,
        h("h1", { id: "view-title" }, job.name, " ", job.is_enabled ? badge("enabled") : badge("paused")),
        job.description ? h("p", {}, job.description) : null,
        jobActions(job, () => refresh(false)),
        h(
          "dl",
          { class: "facts" },
          fact("Schedule", scheduleCell(job)),
          fact("Queue", job.queue),
          fact("Type", job.job_type),
          fact("Timeout", duration(job.timeout_ms)),
          fact("Retries", detail.retry.description),
          fact("Overlap", detail.overlap),
          fact("Runs on", detail.trigger ? `every ${detail.trigger} event` : "—"),
          fact("Next run", job.is_enabled ? when(job.next_run_at, job.timezone) : "paused"),
          fact("Last run", h("span", {}, badge(job.last_run_status), " ", when(job.last_run_at, job.timezone))),
          fact("Success rate", s.success_rate === null || s.success_rate === undefined ? "—" : `${(s.success_rate * 100).toFixed(1)}% of ${number(s.finished)}`),
          fact("Capabilities", detail.capabilities.join(", ") || "none"),
          fact("Version", `${job.version} (${detail.versions.length} in all)`),
          state.me.role === "admin" ? fact("Tenant", job.tenant) : null,
        ),
      );
      fill(
        list,
        `Executions of ${job.name}`,
        ["Execution", "Status", "Trigger", "Attempt", "Started", "Duration", "Fuel", "Error"],
        executions.data.map((e) =>
          h(
            "tr",
            { "data-execution": e.id },
            h("th", { scope: "row" }, h("a", { href: `#/executions/${enc(e.id)}`, "data-key": `exec-${e.id}` }, h("code", {}, shortId(e.id)))),
            h("td", {}, badge(e.status)),
            h("td", {}, e.trigger || "—"),
            h("td", { class: "num" }, `${e.attempt}/${e.max_attempts}`),
            h("td", {}, when(e.started_at || e.scheduled_at || e.created_at, job.timezone)),
            h("td", { class: "num" }, duration(e.duration_ms)),
            h("td", { class: "num" }, number(e.fuel_used)),
            h("td", { class: "error-cell" }, e.error || ""),
          ),
        ),
        status ? `No ${status.replace(/_/g, " ")} execution.` : "No execution yet.",
      );
    };
  });
}

function fact(term, value) {
  return h("div", {}, h("dt", {}, term), h("dd", {}, value));
}

// ---------------------------------------------------------------------------------------------
// One execution
// ---------------------------------------------------------------------------------------------

const CANCELLABLE = new Set(["pending", "queued", "running", "retrying"]);
const RETRYABLE = new Set(["failed", "cancelled", "timed_out", "fuel_exhausted", "memory_exceeded", "trapped", "dead"]);

function executionView(id) {
  return makeView("Execution", (view, root) => {
    const body = h("div", { id: "execution" });
    root.append(body);
    view.refresh = async () => {
      const d = await api("GET", `/executions/${enc(id)}`);
      const e = d;
      view.title = `${e.job_name || e.job_id} ${shortId(e.id)}`;
      document.title = `${view.title} · CodeAI Jobs`;
      const act = async (label, path) => {
        try {
          const r = await api("POST", path);
          toast(`${label}: ${r.status}`, "ok");
          await refresh(false);
        } catch (err) {
          toast(`${label} failed: ${err.message}`, "error");
        }
      };
      const calls = Array.isArray(d.calls) ? d.calls : [];
      const log = Array.isArray(d.log) ? d.log : [];
      const longest = Math.max(1, ...calls.map((c) => c.duration_ms || 0));
      replace(
        body,
        h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs"), " / ", h("a", { href: `#/jobs/${enc(e.job_id)}` }, e.job_name || e.job_id), " / "),
        h("h1", { id: "view-title" }, "Execution ", h("code", {}, shortId(e.id)), " ", h("span", { id: "execution-status" }, badge(e.status))),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", id: "cancel", "data-key": "cancel", disabled: !CANCELLABLE.has(e.status), onclick: () => act("Cancel", `/executions/${enc(e.id)}/cancel`) }, "Cancel"),
          h("button", { type: "button", id: "retry", "data-key": "retry", disabled: !RETRYABLE.has(e.status), onclick: () => act("Retry", `/executions/${enc(e.id)}/retry`) }, "Retry"),
        ),
        h(
          "dl",
          { class: "facts" },
          fact("Id", h("code", {}, e.id)),
          fact("Job", h("span", {}, h("a", { href: `#/jobs/${enc(e.job_id)}` }, e.job_name || e.job_id), e.job_version ? ` v${e.job_version}` : "")),
          fact("Trigger", e.event_id ? h("span", {}, "event ", h("code", { id: "event-id" }, e.event_id)) : e.trigger || "—"),
          fact("Queue", e.queue || "—"),
          fact("Attempt", `${e.attempt} of ${e.max_attempts}`),
          fact("Scheduled", when(e.scheduled_at, null, true)),
          fact("Started", when(e.started_at, null, true)),
          fact("Finished", when(e.finished_at, null, true)),
          fact("Duration", duration(e.duration_ms)),
          fact("Fuel", number(e.fuel_used)),
          e.step ? fact("Step", h("code", {}, e.step)) : null,
          // A skip is a decision of the job, not an error: its reason in plain text.
          e.error ? (e.status === "skipped" ? fact("Skipped", h("span", { id: "skip-reason" }, e.error)) : fact("Error", h("span", { class: "error-text" }, e.error))) : null,
        ),
        h("h2", {}, "Capability calls"),
        table(
          "Capability calls",
          ["#", "Call", "Detail", "At", "Duration", "Error"],
          calls.map((c, i) =>
            h(
              "tr",
              {},
              h("td", { class: "num" }, i + 1),
              h("td", {}, h("code", {}, c.call)),
              h("td", { class: "detail" }, c.detail || ""),
              h("td", { class: "num" }, `${(c.at_ms || 0).toFixed(1)} ms`),
              h("td", { class: "num timing" }, h("span", { class: "timebar", style: null, "data-w": Math.round(((c.duration_ms || 0) / longest) * 100) }), `${(c.duration_ms || 0).toFixed(2)} ms`),
              h("td", { class: "error-cell" }, c.error || ""),
            ),
          ),
          "No capability call.",
        ),
        d.attempts.length > 1 || (d.attempts[0] && d.attempts[0].error)
          ? [
              h("h2", {}, "Attempts"),
              table(
                "Attempts",
                ["Attempt", "Status", "Started", "Duration", "Fuel", "Error"],
                d.attempts.map((a) =>
                  h(
                    "tr",
                    {},
                    h("td", { class: "num" }, a.attempt),
                    h("td", {}, badge(a.status)),
                    h("td", {}, when(a.started_at)),
                    h("td", { class: "num" }, duration(a.duration_ms)),
                    h("td", { class: "num" }, number(a.fuel_used)),
                    h("td", { class: "error-cell" }, a.error || ""),
                  ),
                ),
                "",
              ),
            ]
          : null,
        h("h2", {}, "Steps"),
        stepResults(d.output, e),
        h("h2", {}, "Log"),
        log.length
          ? h("pre", { class: "log", tabindex: "0", "aria-label": "Log" }, log.map((l) => h("div", { class: `line ${l.level}` }, h("span", { class: "level" }, l.level), " ", l.message)))
          : h("p", { class: "empty" }, "Nothing logged."),
        h(
          "div",
          { class: "io" },
          h("div", {}, h("h2", {}, "Input"), h("pre", { tabindex: "0", "aria-label": "Input" }, JSON.stringify(d.input, null, 2))),
          h("div", {}, h("h2", {}, "Output"), h("pre", { id: "output", tabindex: "0", "aria-label": "Output" }, d.output === null ? "—" : JSON.stringify(d.output, null, 2))),
        ),
      );
      // Widths set from script (the page's policy allows no inline style attributes).
      for (const bar of body.querySelectorAll(".timebar")) bar.style.width = `${bar.dataset.w}%`;
    };
  });
}

/** What each step bound (`as: name`), in the job's output, summarised; the failing step. */
function stepResults(output, e) {
  const results = output && typeof output === "object" && !Array.isArray(output) ? Object.entries(output) : [];
  const failed = !e.step ? null : e.status === "skipped" ? h("p", {}, "Skipped at step ", h("code", {}, e.step), ".") : h("p", { class: "error" }, `Failed in step `, h("code", {}, e.step), ".");
  if (!results.length) return failed || h("p", { class: "empty" }, "No step result recorded.");
  const summary = (v) => {
    if (v === null) return "null";
    if (Array.isArray(v)) return `${v.length} item${v.length === 1 ? "" : "s"}`;
    if (typeof v === "object") {
      const keys = Object.keys(v);
      return `{ ${keys.slice(0, 6).join(", ")}${keys.length > 6 ? ", …" : ""} }`;
    }
    const text = String(v);
    return text.length > 120 ? `${text.slice(0, 117)}…` : text;
  };
  return [
    failed,
    table(
      "Step results",
      ["Step result", "Value"],
      results.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, name)), h("td", { class: "detail" }, summary(value)))),
      "",
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// Reports and outbox
// ---------------------------------------------------------------------------------------------

async function download(report) {
  try {
    const link = await api("GET", `/reports/${enc(report.id)}/download`);
    const a = h("a", { href: link.download_url, download: report.name || `${report.job}.${report.format}`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    toast(`Downloading ${report.name || report.id}`, "ok");
  } catch (e) {
    toast(`Download failed: ${e.message}`, "error");
  }
}

function reportsView() {
  return makeView("Reports", (view, root) => {
    const list = h("div", { id: "reports" }, loading());
    root.append(h("h1", { id: "view-title" }, "Reports"), list);
    view.refresh = async () => {
      const page = await api("GET", "/reports?limit=100");
      fill(
        list,
        "Reports",
        ["Report", "Job", "Format", "Size", "Created", "Expires", ""],
        page.data.map((r) =>
          h(
            "tr",
            { "data-report": r.id },
            h("th", { scope: "row" }, r.name || shortId(r.id)),
            h("td", {}, r.job),
            h("td", {}, r.format.toUpperCase()),
            h("td", { class: "num" }, bytes(r.size)),
            h("td", {}, when(r.created_at)),
            h("td", {}, when(r.expires_at)),
            h("td", {}, h("button", { type: "button", "data-key": `dl-${r.id}`, onclick: () => download(r) }, "Download")),
          ),
        ),
        "No report yet. Jobs with a report step put their files here.",
      );
    };
  });
}

/** A held message's recipients in one line. */
function recipients(m) {
  return Array.isArray(m.recipient) ? m.recipient.join(", ") : String(m.recipient);
}

function outboxView() {
  return makeView("Outbox", (view, root) => {
    const list = h("div", { id: "outbox" }, loading());
    root.append(
      h("h1", { id: "view-title" }, "Outbox"),
      h("p", { class: "help" }, "Mail and Slack messages held because no SMTP server or Slack webhook is configured."),
      list,
    );
    view.refresh = async () => {
      const page = await api("GET", "/outbox?limit=100");
      replace(
        list,
        page.data.length
          ? h(
              "ul",
              { class: "messages" },
              page.data.map((m) =>
                h(
                  "li",
                  { class: "card" },
                  h(
                    "details",
                    {},
                    h(
                      "summary",
                      { "data-key": `msg-${m.id}` },
                      h("span", { class: `badge ${m.kind === "email" ? "wait" : "run"}` }, m.kind),
                      " ",
                      // The subject and the recipients; a Slack message has no subject: its channel once.
                      h("strong", {}, m.subject || recipients(m)),
                      m.subject ? ` · ${recipients(m)}` : "",
                      m.job ? ` · ${m.job}` : "",
                      " · ",
                      when(m.created_at),
                    ),
                    h("pre", { class: "body" }, m.body),
                    Array.isArray(m.attachments) && m.attachments.length
                      ? h("p", {}, "Attachments: ", m.attachments.map((a) => a.name || a.id).join(", "))
                      : null,
                    m.reason ? h("p", { class: "help" }, `Held: ${m.reason}`) : null,
                  ),
                ),
              ),
            )
          : h("p", { class: "empty" }, "The outbox is empty."),
      );
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/** JSON data in one line, cut to `max` characters. */
function brief(value, max = 160) {
  const text = value === undefined || value === null ? "" : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function eventsView(params) {
  return makeView("Events", (view, root) => {
    const type = params.get("type") || "";
    const job = params.get("job") || "";
    const form = filterForm("#/events", "Filter events", "Filter", [
      { name: "type", label: "Type", control: h("input", { id: "event-type", name: "type", value: type, autocomplete: "off", placeholder: "JobCompleted" }) },
      { name: "job", label: "Job", control: h("input", { id: "event-job", name: "job", value: job, autocomplete: "off", placeholder: "DailySalesReport" }) },
    ], Boolean(type || job));
    const list = h("div", { id: "events" }, loading());
    let shown = 50;
    const moreButton = h("button", { type: "button", id: "more-events", hidden: true, onclick: async () => { shown += 50; await refresh(false); } }, "Show more");
    root.append(
      h("h1", { id: "view-title" }, "Events"),
      h("p", { class: "help" }, "What jobs emitted: their emit steps and their on_complete and on_fail events, newest first."),
      form,
      list,
      moreButton,
    );
    view.refresh = async () => {
      const q = new URLSearchParams({ limit: String(Math.min(shown, 500)) });
      if (type) q.set("type", type);
      if (job) q.set("job", job);
      const page = await api("GET", `/events?${q}`);
      moreButton.hidden = !page.next_cursor;
      const admin = state.me.role === "admin";
      fill(
        list,
        "Events",
        ["Event", "Job", "Execution", "Data", "Emitted"].concat(admin ? ["Tenant"] : []),
        page.data.map((ev) =>
          h(
            "tr",
            { "data-event": ev.id, "data-type": ev.type },
            h("th", { scope: "row" }, ev.type),
            h("td", {}, ev.job || "—"),
            h("td", {}, ev.execution_id ? h("a", { href: `#/executions/${enc(ev.execution_id)}` }, h("code", {}, shortId(ev.execution_id))) : "—"),
            h("td", { class: "detail" }, h("code", {}, brief(ev.data))),
            h("td", {}, when(ev.created_at)),
            admin ? h("td", {}, ev.tenant) : null,
          ),
        ),
        type || job ? "No event matches these filters." : "No event yet. Jobs with emit steps, on_complete or on_fail put theirs here.",
      );
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Executions: search, and retry or cancel what the search found
// ---------------------------------------------------------------------------------------------

const FILTERS = ["job", "status", "since", "until", "error"];

/** `datetime-local` text (the viewer's zone) as an RFC 3339 instant, and back. */
function instantOf(local) {
  return local ? new Date(local).toISOString() : "";
}
function localOf(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function executionsView(params) {
  return makeView("Executions", (view, root) => {
    const given = Object.fromEntries(FILTERS.map((f) => [f, params.get(f) || ""]));
    const input = (name, attrs) => h("input", { id: `exec-${name}`, name, autocomplete: "off", ...attrs });
    const job = input("job", { value: given.job, placeholder: "DailySalesReport" });
    const status = h(
      "select",
      { id: "exec-status", name: "status" },
      ["", "failed", "timed_out", "cancelled", "pending", "running", "retrying", "completed", "skipped"].map((s) =>
        h("option", { value: s, selected: s === given.status }, s || "any"),
      ),
    );
    const since = input("since", { type: "datetime-local", value: localOf(given.since) });
    const until = input("until", { type: "datetime-local", value: localOf(given.until) });
    const error = input("error", { value: given.error, placeholder: "timed out" });
    const form = filterForm("#/executions", "Search executions", "Search", [
      { name: "job", label: "Job", control: job },
      { name: "status", label: "Status", control: status },
      { name: "since", label: "From", control: since, value: () => instantOf(since.value) },
      { name: "until", label: "To", control: until, value: () => instantOf(until.value) },
      { name: "error", label: "Error", control: error },
    ], FILTERS.some((f) => given[f]));
    // The filter as the bulk endpoints take it.
    const filter = Object.fromEntries(FILTERS.filter((f) => given[f]).map((f) => [f, given[f]]));
    const bulk = (action, verb, applies) => {
      const body = [
        h("p", {}, `${verb} up to 100 ${applies} executions that match `, FILTERS.some((f) => given[f]) ? "these filters" : h("strong", {}, "no filter (all of them)"), ", newest first?"),
        h("p", { class: "help" }, "Executions the action does not apply to are left as they are."),
      ];
      dialog(`${verb} matching executions`, body, `${verb} executions`, async () => {
        const r = await api("POST", `/executions/${action}`, { ...filter, limit: 100 });
        const refused = r.refused.length ? `, ${r.refused.length} refused` : "";
        toast(`${verb}: ${r.done.length} of ${r.matched}${refused}${r.more ? "; more match" : ""}`, "ok");
      });
    };
    const actions = h(
      "div",
      { class: "actions" },
      h("button", { type: "button", id: "retry-matching", onclick: () => bulk("retry", "Retry", "failed or cancelled") }, "Retry matching…"),
      h("button", { type: "button", id: "cancel-matching", onclick: () => bulk("cancel", "Cancel", "pending or running") }, "Cancel matching…"),
    );
    const list = h("div", { id: "executions" }, loading());
    let shown = 50;
    const moreButton = h("button", { type: "button", id: "more-executions", hidden: true, onclick: async () => { shown += 50; await refresh(false); } }, "Show more");
    root.append(h("h1", { id: "view-title" }, "Executions"), form, actions, list, moreButton);
    view.refresh = async () => {
      const q = new URLSearchParams({ limit: String(Math.min(shown, 500)) });
      for (const f of FILTERS) if (given[f]) q.set(f, given[f]);
      const page = await api("GET", `/executions?${q}`);
      moreButton.hidden = !page.next_cursor;
      fill(
        list,
        "Executions",
        ["Execution", "Job", "Status", "Trigger", "Started", "Duration", "Error or reason"],
        page.data.map((e) =>
          h(
            "tr",
            { "data-execution": e.id, "data-status": e.status },
            h("th", { scope: "row" }, h("a", { href: `#/executions/${enc(e.id)}` }, h("code", {}, shortId(e.id)))),
            h("td", {}, e.job_name || e.job_id),
            h("td", {}, badge(e.status)),
            h("td", {}, e.trigger || "—"),
            h("td", {}, when(e.started_at || e.scheduled_at)),
            h("td", { class: "num" }, duration(e.duration_ms)),
            h("td", { class: e.status === "skipped" ? "detail" : "error-cell" }, e.error || ""),
          ),
        ),
        FILTERS.some((f) => given[f]) ? "No execution matches these filters." : "No execution yet.",
      );
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh(false);
});

(async () => {
  if (!state.token) return showLogin();
  try {
    state.me = await api("GET", "/me");
  } catch (e) {
    return e.status === 401 ? signOut("Your saved token is no longer accepted; sign in again.") : showLogin(e.message);
  }
  startSession();
})();
