"""The web dashboard, served by the coordinator: jobs with filters, a job's steps and each
party's task state live, public metrics with a chart, its staged artifacts (name, SHA-256
and size of the stored, encrypted object: never contents), logs, history, approvals waiting,
nodes with their health and the data-plane slots running jobs hold, the privacy budgets of
the parties' data sources, and forms to submit, cancel and retry. One page, its script and
its style, all served by the coordinator (no CDN: it works without internet), readable at
1280 px, every control labelled.

The page holds no data of its own: it reads the REST API with the user's token (kept in
the browser tab's session storage) and shows what the API shows, i.e. metadata only (see
`jointml.orchestration`). Every text from the API is inserted as text, never as HTML, so a
job name or a log line cannot run script in the page; the Content-Security-Policy allows
scripts from the coordinator only.

>>> "<main" in PAGE and "fetch(" in SCRIPT
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["PAGE", "SCRIPT", "STYLE", "add_dashboard"]

CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jointml coordinator</title>
<link rel="stylesheet" href="/dashboard.css">
</head>
<body>
<header>
  <h1>jointml</h1>
  <nav aria-label="Sections">
    <a href="#/jobs">Jobs</a>
    <a href="#/approvals">Approvals waiting</a>
    <a href="#/nodes">Nodes</a>
    <a href="#/submit">Submit a job</a>
  </nav>
  <form id="login" aria-label="Sign in" method="post" action="/dashboard">
    <label for="token">API token</label>
    <input id="token" name="token" type="password" autocomplete="off">
    <button type="submit">Sign in</button>
    <span id="who" role="status"></span>
  </form>
</header>
<main id="main" aria-live="polite"></main>
<script src="/dashboard.js"></script>
</body>
</html>
"""

STYLE = """
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f5f7fa; }
header { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; padding: 10px 24px; background: #1d3557; color: #fff; }
header h1 { font-size: 20px; margin: 0 12px 0 0; }
header a { color: #fff; margin-right: 14px; }
header form { margin-left: auto; display: flex; gap: 8px; align-items: center; }
main { padding: 18px 24px; max-width: 1280px; }
h2 { font-size: 18px; margin: 18px 0 8px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 12px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #dde3ea; vertical-align: top; }
td.wrap { word-break: break-all; }
td.digest { font: 12px/1.3 monospace; }
td.nowrap { white-space: nowrap; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; background: #e3e8ef; }
.state.succeeded { background: #cdebd3; } .state.failed { background: #f6c9c9; } .state.running { background: #cfe2fb; }
.state.queued { background: #f3e6bd; } .state.awaiting_approval { background: #eadcf7; } .state.cancelled { background: #ddd; }
.dag { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 8px 0; }
.dag .step { padding: 6px 10px; border: 1px solid #9fb0c5; border-radius: 6px; background: #fff; }
.dag .arrow { color: #6b7a8c; }
.filters { display: flex; gap: 12px; align-items: center; margin-bottom: 8px; }
textarea { width: 100%; min-height: 260px; font: 13px/1.4 monospace; }
pre { background: #fff; padding: 8px; border: 1px solid #dde3ea; max-height: 320px; overflow: auto; white-space: pre-wrap; }
.error { color: #a00; }
button { cursor: pointer; }
svg text { font: 12px system-ui, sans-serif; }
"""

SCRIPT = r"""
"use strict";
const $ = (sel) => document.querySelector(sel);
let timer = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function badge(state) { return el("span", {class: "state " + state, text: state}); }
function token() { return sessionStorage.getItem("jointml-token") || ""; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({headers: {"Authorization": "Bearer " + token(),
                                                       "Content-Type": "application/json"}}, opts || {}));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = body.detail;
    throw new Error(r.status + " " + (d && d.message ? d.message : JSON.stringify(d)));
  }
  return body;
}

function show(...nodes) { const m = $("#main"); m.replaceChildren(...nodes); }
function fail(e) { show(el("p", {class: "error", role: "alert", text: String(e.message || e)})); }

async function jobsView() {
  const state = sessionStorage.getItem("jointml-filter-state") || "";
  const name = sessionStorage.getItem("jointml-filter-name") || "";
  const jobs = await api("/api/jobs" + (state ? "?state=" + encodeURIComponent(state) : ""));
  const sel = el("select", {id: "state-filter",
                            onchange: (e) => { sessionStorage.setItem("jointml-filter-state", e.target.value); route(); }},
    ...["", "awaiting_approval", "queued", "running", "succeeded", "failed", "cancelled"].map(
      (s) => { const o = el("option", {value: s, text: s || "any"}); if (s === state) o.selected = true; return o; }));
  const txt = el("input", {id: "name-filter", type: "search", value: name,
    onchange: (e) => { sessionStorage.setItem("jointml-filter-name", e.target.value); route(); }});
  const rows = jobs.filter((j) => !name || j.name.includes(name)).map((j) => el("tr", {},
    el("td", {}, el("a", {href: "#/job/" + j.id, text: j.id.slice(0, 12)})), el("td", {text: j.name}),
    el("td", {}, badge(j.state)), el("td", {text: j.current_step}), el("td", {text: j.attempt}),
    el("td", {text: j.submitted_by}), el("td", {text: j.created_at.replace("T", " ").slice(0, 19)})));
  show(el("h2", {text: "Jobs"}),
    el("div", {class: "filters"}, el("label", {for: "state-filter", text: "State"}), sel,
       el("label", {for: "name-filter", text: "Name contains"}), txt),
    el("table", {"aria-label": "Jobs"}, el("thead", {}, el("tr", {}, ...["Job", "Name", "State", "Step", "Attempt",
       "Submitted by", "Created (UTC)"].map((h) => el("th", {scope: "col", text: h})))), el("tbody", {}, ...rows)));
}

function dag(st) {
  const steps = [...new Map(st.tasks.map((t) => [t.step, t.name])).entries()].sort((a, b) => a[0] - b[0]);
  const box = el("div", {class: "dag", role: "list", "aria-label": "Pipeline steps"});
  steps.forEach(([i, name], k) => {
    if (k) box.append(el("span", {class: "arrow", "aria-hidden": "true", text: "\u2192"}));
    const states = st.tasks.filter((t) => t.step === i).map((t) => t.state);
    const all = states.every((s) => s === states[0]) ? states[0] : "mixed";
    box.append(el("span", {class: "step", role: "listitem"}, `${i} ${name} `, badge(all)));
  });
  return box;
}

function grid(st) {
  const steps = [...new Map(st.tasks.map((t) => [t.step, t.name])).entries()].sort((a, b) => a[0] - b[0]);
  const cell = (p, i) => st.tasks.find((t) => t.party === p && t.step === i);
  return el("table", {"aria-label": "Tasks by party and step"},
    el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Party"}),
       ...steps.map(([i, n]) => el("th", {scope: "col", text: `${i} ${n}`})))),
    el("tbody", {}, ...st.parties.map((p) => el("tr", {}, el("th", {scope: "row", text: p}),
       ...steps.map(([i]) => { const t = cell(p, i); return el("td", {title: t.message || ""}, badge(t.state),
         " a" + t.attempt + (t.checkpoint ? " \u2713" : "")); })))));
}

function chart(metrics) {
  const ms = metrics.filter((m) => m.value >= 0 && m.value <= 1);
  const w = 520, bh = 22, h = ms.length * bh + 10;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Public metrics between 0 and 1");
  ms.forEach((m, k) => {
    const y = 5 + k * bh;
    const t = document.createElementNS(ns, "text"); t.setAttribute("x", 0); t.setAttribute("y", y + 15);
    t.textContent = `${m.party}.${m.name}`; svg.append(t);
    const r = document.createElementNS(ns, "rect"); r.setAttribute("x", 150); r.setAttribute("y", y + 3);
    r.setAttribute("height", bh - 8); r.setAttribute("width", Math.max(1, m.value * 300)); r.setAttribute("fill", "#457b9d");
    svg.append(r);
    const v = document.createElementNS(ns, "text"); v.setAttribute("x", 160 + m.value * 300); v.setAttribute("y", y + 15);
    v.textContent = m.value.toFixed(4); svg.append(v);
  });
  return svg;
}

function size(n) {
  const u = ["B", "kB", "MB", "GB", "TB"];
  let k = 0, v = n;
  while (v >= 1000 && k < u.length - 1) { v /= 1000; k++; }
  return (k ? v.toFixed(1) : String(v)) + " " + u[k];
}

// staged objects: names, SHA-256 of the stored (encrypted) bytes and sizes; never contents
function artifacts(arts) {
  if (!arts.length) return el("p", {id: "no-artifacts", text: "No staged artifacts (the nodes of this job stage none)."});
  return el("table", {"aria-label": "Artifacts"},
    el("thead", {}, el("tr", {}, ...["Party", "Step", "Attempt", "Name", "SHA-256", "Size"].map(
      (h) => el("th", {scope: "col", text: h})))),
    el("tbody", {}, ...arts.map((a) => el("tr", {}, el("td", {text: a.party}), el("td", {text: a.step ?? ""}),
      el("td", {text: a.attempt}), el("td", {class: "wrap", text: a.name}),
      el("td", {class: "wrap digest", title: a.sha256, text: a.sha256}),
      el("td", {class: "nowrap", title: a.size + " bytes", text: size(a.size)})))));
}

async function jobView(id) {
  const [st, logs, arts] = await Promise.all([api("/api/jobs/" + id), api("/api/jobs/" + id + "/logs"),
                                              api("/api/jobs/" + id + "/artifacts")]);
  const decided = new Set(st.approvals.map((a) => a.party));
  const waiting = st.state === "awaiting_approval" ? st.parties.filter((p) => !decided.has(p)) : [];
  const act = (what) => async () => {
    try { await api(`/api/jobs/${id}/${what}`, {method: "POST", body: "{}"}); route(); } catch (e) { fail(e); }
  };
  show(el("h2", {}, `Job ${st.name} `, badge(st.state)),
    el("p", {}, `id ${st.id} \u00b7 attempt ${st.attempt} \u00b7 step ${st.current_step} \u00b7 resumes at ${st.resume_from}`
       + ` \u00b7 pipeline hash ${st.pipeline_hash.slice(0, 16)}\u2026`),
    st.reason ? el("p", {class: "error", id: "reason", text: "Reason: " + st.reason}) : "",
    waiting.length ? el("p", {id: "waiting", text: "Waiting for the approval of: " + waiting.join(", ")
       + " (each organisation approves at its own node: jointml approve " + st.id + " --node node.yaml)"}) : "",
    el("div", {}, el("button", {type: "button", onclick: act("cancel"), text: "Cancel job"}), " ",
       el("button", {type: "button", onclick: act("retry"), text: "Retry job"})),
    el("h2", {text: "Steps"}), dag(st), grid(st),
    el("h2", {text: "Public metrics"}), chart(st.metrics),
    el("table", {"aria-label": "Public metrics"}, el("thead", {}, el("tr", {}, ...["Party", "Step", "Metric", "Value"].map(
       (h) => el("th", {scope: "col", text: h})))), el("tbody", {}, ...st.metrics.map((m) => el("tr", {},
       el("td", {text: m.party}), el("td", {text: m.step}), el("td", {text: m.name}), el("td", {text: m.value}))))),
    el("h2", {text: "Artifacts"}), artifacts(arts),
    el("h2", {text: "Approvals"}), el("ul", {}, ...st.approvals.map((a) => el("li", {text:
       `${a.party}: ${a.approved ? "approved" : "refused"} (${a.mode})${a.reason ? " \u2014 " + a.reason : ""}`}))),
    el("h2", {text: "Logs"}), el("pre", {id: "logs", tabindex: "0", "aria-label": "Logs",
       text: logs.map((l) => `${l.at.slice(11, 19)} [${l.party}] ${l.message}`).join("\n") || "(none yet)"}),
    el("h2", {text: "History"}), el("table", {"aria-label": "State transitions"},
       el("thead", {}, el("tr", {}, ...["Time (UTC)", "Party", "Step", "From", "To", "Reason"].map(
         (h) => el("th", {scope: "col", text: h})))),
       el("tbody", {}, ...st.transitions.slice(-40).map((t) => el("tr", {}, el("td", {text: t.at.slice(11, 23)}),
         el("td", {text: t.party || "job"}), el("td", {text: t.step ?? ""}), el("td", {text: t.from || ""}),
         el("td", {text: t.to}), el("td", {class: "wrap", text: t.reason || ""}))))));
}

async function approvalsView() {
  const jobs = await api("/api/jobs?state=awaiting_approval");
  const rows = [];
  for (const j of jobs) {
    const st = await api("/api/jobs/" + j.id);
    const decided = new Set(st.approvals.map((a) => a.party));
    rows.push(el("tr", {}, el("td", {}, el("a", {href: "#/job/" + j.id, text: j.id.slice(0, 12)})),
      el("td", {text: j.name}), el("td", {text: st.parties.filter((p) => !decided.has(p)).join(", ")})));
  }
  show(el("h2", {text: "Approvals waiting"}), el("table", {"aria-label": "Approvals waiting"},
    el("thead", {}, el("tr", {}, ...["Job", "Name", "Waiting for"].map((h) => el("th", {scope: "col", text: h})))),
    el("tbody", {}, ...rows)));
}

function slotsCell(slots) {
  if (!slots || !slots.length) return el("td", {class: "slots", text: "none"});
  return el("td", {class: "slots"}, ...slots.map((x, k) => el("span", {}, k ? ", " : "",
    el("a", {href: "#/job/" + x.job_id, title: x.name, text: "slot " + x.slot}), ` (${x.name})`)));
}

async function nodesView() {
  const [nodes, budgets] = await Promise.all([api("/api/nodes"), api("/api/ledger")]);
  const now = Date.now();
  show(el("h2", {text: "Nodes"}), el("table", {"aria-label": "Nodes"},
    el("thead", {}, el("tr", {}, ...["Party", "Last seen (UTC)", "Health", "Data-plane slots in use"].map(
      (h) => el("th", {scope: "col", text: h})))),
    el("tbody", {}, ...nodes.map((n) => { const age = (now - Date.parse(n.last_seen)) / 1000;
      return el("tr", {}, el("td", {text: n.party}), el("td", {text: n.last_seen.replace("T", " ").slice(0, 19)}),
        el("td", {}, badge(age < 30 ? "succeeded" : "failed"), age < 30 ? " online" : ` silent for ${Math.round(age)} s`),
        slotsCell(n.slots)); }))),
    el("h2", {text: "Privacy budgets"}), budgets.length ? el("table", {"aria-label": "Privacy budgets"},
      el("thead", {}, el("tr", {}, ...["Party", "Data source", "Budget epsilon", "Spent", "Remaining", "Delta remaining",
        "Releases"].map((h) => el("th", {scope: "col", text: h})))),
      el("tbody", {}, ...budgets.map((b) => el("tr", {}, el("td", {text: b.party}), el("td", {text: b.source}),
        el("td", {text: b.epsilon}), el("td", {text: b.spent_epsilon.toFixed(4)}),
        el("td", {text: b.remaining_epsilon.toFixed(4)}), el("td", {text: b.remaining_delta.toExponential(2)}),
        el("td", {text: b.charges})))))
      : el("p", {id: "no-budgets", text: "No privacy budget declared in the job store."}));
}

function submitView() {
  const area = el("textarea", {id: "spec", name: "spec", spellcheck: "false"});
  const retries = el("input", {id: "retries", type: "number", min: "0", max: "10", value: "0"});
  const form = el("form", {"aria-label": "Submit a job", onsubmit: async (e) => {
    e.preventDefault();
    try {
      const got = await api("/api/jobs", {method: "POST", body: JSON.stringify({spec_yaml: area.value,
        max_retries: Number(retries.value)})});
      location.hash = "#/job/" + got.job_id;
    } catch (err) { $("#submit-error").textContent = String(err.message || err); }
  }}, el("label", {for: "spec", text: "Pipeline YAML (inputs name data sources registered at the nodes)"}), area,
     el("p", {}, el("label", {for: "retries", text: "Automatic retries "}), retries, " ",
        el("button", {type: "submit", text: "Submit"})), el("p", {id: "submit-error", class: "error", role: "alert"}));
  show(el("h2", {text: "Submit a job"}), form);
}

async function route() {
  clearTimeout(timer);
  if (!token()) { show(el("p", {text: "Sign in with an API token (jointml coordinator token NAME)."})); return; }
  const h = location.hash || "#/jobs";
  try {
    if (h.startsWith("#/job/")) await jobView(h.slice(6));
    else if (h === "#/nodes") await nodesView();
    else if (h === "#/approvals") await approvalsView();
    else if (h === "#/submit") { submitView(); return; }
    else await jobsView();
  } catch (e) { fail(e); }
  timer = setTimeout(route, 1000);  // live: refresh the view every second
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("jointml-token", $("#token").value);
  $("#token").value = "";
  $("#who").textContent = "signed in";
  route();
});
window.addEventListener("hashchange", route);
if (token()) $("#who").textContent = "signed in";
route();
"""


def add_dashboard(app: Any) -> None:
    """Serve the dashboard at `/dashboard` (and `/`), with its script and style."""
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/dashboard", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=headers)

    @app.get("/dashboard.js", include_in_schema=False)
    def script() -> Response:
        return Response(SCRIPT, media_type="text/javascript", headers=headers)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/dashboard.css", include_in_schema=False)
    def style() -> Response:
        return Response(STYLE, media_type="text/css", headers=headers)
