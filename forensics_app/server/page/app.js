"use strict";
// The page of forensics-serve: drop images, follow the scan, show the rows, Grad-CAM on click.
// Every text that comes from a file (names, metadata) is set with textContent, never as HTML.
(function () {
  const $ = (id) => document.getElementById(id);
  let job = null;
  let listTimer = null;
  let followed = null;
  const STATUSES = ["queued", "running", "finished", "cancelled", "interrupted", "failed"];
  const FORMATS = [["html", "HTML"], ["pdf", "PDF"], ["csv", "CSV"], ["jsonl", "JSONL"]];

  function headers() {
    const t = $("token").value.trim();
    return t ? { Authorization: "Bearer " + t } : {};
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ headers: headers() }, options || {}));
    if (response.status === 401) {
      $("token-box").hidden = false;
      throw new Error("this server needs its access token (enter it above, then drop again)");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      } catch (e) { /* not JSON */ }
      throw new Error(response.status + ": " + detail);
    }
    return response;
  }

  function status(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  async function showModel() {
    try {
      const m = await (await api("/api/v1/model")).json();
      $("model").textContent = "Model " + m.model_id + " on " + m.device + " — threshold " +
        Math.round(m.threshold * 100) + "% ± " + Math.round(m.inconclusive_band * 100) + "%";
    } catch (e) {
      $("model").textContent = "Model facts unavailable: " + e.message;
    }
  }

  async function upload(files) {
    if (!files.length) return;
    const form = new FormData();
    for (const f of files) form.append("image", f, f.name);
    status("Uploading " + files.length + " image(s)…");
    $("reports").hidden = true;
    $("heatmap").hidden = true;
    try {
      job = await (await api("/api/v1/scans", { method: "POST", body: form })).json();
      refreshScans();
      await follow(job.id);
    } catch (e) {
      status("Not scanned: " + e.message, true);
    }
  }

  async function follow(id) {
    const mine = {};  // the scan shown is the one asked for last: an older loop stops
    followed = mine;
    for (;;) {
      const s = await (await api("/api/v1/scans/" + id)).json();
      if (followed !== mine) return;
      status("Scan " + s.status + ": " + s.done + " of " + s.total + " image(s)");
      await showRows(id);
      if (followed !== mine) return;
      if (s.status !== "queued" && s.status !== "running") {
        const counts = Object.entries(s.counts).map(([k, v]) => k + ": " + v).join(", ");
        status("Scan " + s.status + " — " + s.done + " image(s)" + (counts ? " (" + counts + ")" : "") +
               (s.message ? " — " + s.message : ""), s.status !== "finished");
        for (const fmt of ["html", "pdf", "csv", "jsonl"]) {
          $("r-" + fmt).href = "/api/v1/scans/" + encodeURIComponent(id) + "/report." + fmt;
        }
        $("reports").hidden = false;
        refreshScans();
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  async function showRows(id) {
    const rows = await (await api("/api/v1/scans/" + id + "/results")).json();
    const body = $("results").querySelector("tbody");
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      tr.className = "v-" + r.verdict_code;
      tr.dataset.index = r.index;
      cell(tr, String(r.index + 1));
      cell(tr, r.filename || "(unnamed)", "name");
      cell(tr, r.verdict, "verdict");
      cell(tr, r.prob_fake_percent === null ? "—" : r.prob_fake_percent.toFixed(1) + "%", "score");
      cell(tr, r.provenance ? r.provenance.summary : "");
      cell(tr, r.sha256 ? r.sha256.slice(0, 16) + "…" : "", "hash");
      cell(tr, r.error || (r.notes || []).join("; "));
      if (r.ok) tr.addEventListener("click", () => heatmap(id, r));
      body.appendChild(tr);
    }
    $("results").hidden = rows.length === 0;
  }

  async function heatmap(id, r) {
    for (const tr of $("results").querySelectorAll("tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.index === String(r.index));
    }
    $("heatmap").hidden = false;
    $("heatmap-name").textContent = (r.filename || "(unnamed)") + " — computing…";
    try {
      const blob = await (await api("/api/v1/scans/" + id + "/results/" + r.index + "/gradcam.png")).blob();
      const old = $("heatmap-img").src;
      $("heatmap-img").src = URL.createObjectURL(blob);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      $("heatmap-name").textContent = r.filename || "(unnamed)";
    } catch (e) {
      $("heatmap-name").textContent = (r.filename || "(unnamed)") + " — " + e.message;
    }
  }

  // -- report downloads: fetched with the token header (a plain <a download> sends none),
  // then saved from a blob: URL under the name the server gives.
  async function download(href) {
    try {
      const response = await api(href);
      const blob = await response.blob();
      const given = /filename="?([^";]+)"?/.exec(response.headers.get("content-disposition") || "");
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = given ? given[1] : href.split("/").pop();
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
    } catch (e) {
      status("Report not downloaded: " + e.message, true);
    }
  }

  function onReportClick(e) {
    const a = e.target.closest("a.report");
    if (!a) return;
    e.preventDefault();
    download(a.getAttribute("href"));
  }

  // -- the list of scans (GET /api/v1/scans), refreshed while any of them runs
  function link(parent, href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    a.className = "report";
    parent.appendChild(a);
    return a;
  }

  function button(parent, text, cls, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.className = cls;
    b.addEventListener("click", onClick);
    parent.appendChild(b);
    return b;
  }

  function scheduleList(ms) {
    if (listTimer !== null) clearTimeout(listTimer);
    listTimer = setTimeout(refreshScans, ms);
  }

  async function refreshScans() {
    if (listTimer !== null) { clearTimeout(listTimer); listTimer = null; }
    let jobs;
    try {
      jobs = await (await api("/api/v1/scans")).json();
    } catch (e) {
      $("scans-status").textContent = "Scans not listed: " + e.message;
      return;
    }
    showScans(jobs);
    if (jobs.some((j) => j.status === "queued" || j.status === "running")) scheduleList(1000);
  }

  function showScans(jobs) {
    const body = $("scan-list").querySelector("tbody");
    body.replaceChildren();
    for (const j of jobs) {
      const state = STATUSES.includes(j.status) ? j.status : "failed";
      const running = state === "queued" || state === "running";
      const tr = document.createElement("tr");
      tr.className = "s-" + state;
      tr.dataset.id = j.id;
      cell(tr, j.created ? new Date(j.created * 1000).toLocaleString() : "", "created");
      // The title is the first upload's name or the folder: evidence controls it, so text only.
      cell(tr, j.title || "(unnamed)", "title");
      cell(tr, state + (j.message && !running ? " — " + j.message : ""), "status");
      cell(tr, String(j.total) + (j.skipped ? " (" + j.skipped + " not images)" : ""), "files");
      const progressCell = document.createElement("td");
      progressCell.className = "progress";
      const bar = document.createElement("progress");
      bar.max = Math.max(j.total, 1);
      bar.value = Math.min(j.done, bar.max);
      progressCell.appendChild(bar);
      progressCell.appendChild(document.createTextNode(" " + j.done + " of " + j.total));
      tr.appendChild(progressCell);
      cell(tr, Object.entries(j.counts || {}).map(([k, v]) => k + ": " + v).join(", "), "counts");
      const reports = document.createElement("td");
      reports.className = "reports";
      if (!running) {
        FORMATS.forEach(([fmt, label], i) => {
          if (i) reports.appendChild(document.createTextNode(" · "));
          link(reports, "/api/v1/scans/" + encodeURIComponent(j.id) + "/report." + fmt, label);
        });
      }
      tr.appendChild(reports);
      const actions = document.createElement("td");
      actions.className = "actions";
      button(actions, "Rows", "show", () => showJob(j.id));
      if (j.resumable) button(actions, "Resume", "resume", (e) => resume(j.id, e.target));
      tr.appendChild(actions);
      body.appendChild(tr);
    }
    $("scan-list").hidden = jobs.length === 0;
    $("scans-status").textContent = jobs.length ? "" : "No scans yet.";
  }

  async function showJob(id) {
    $("heatmap").hidden = true;
    try {
      await follow(id);
    } catch (e) {
      status("Scan not shown: " + e.message, true);
    }
  }

  async function resume(id, btn) {
    btn.disabled = true;
    $("heatmap").hidden = true;
    $("reports").hidden = true;
    try {
      await api("/api/v1/scans/" + encodeURIComponent(id) + "/resume", { method: "POST" });
      refreshScans();
      await follow(id);
    } catch (e) {
      status("Not resumed: " + e.message, true);
      btn.disabled = false;
    }
  }

  function init() {
    const drop = $("drop");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      upload(Array.from(e.dataTransfer.files));
    });
    $("files").addEventListener("change", (e) => { upload(Array.from(e.target.files)); e.target.value = ""; });
    document.addEventListener("click", onReportClick);
    // A token typed in: show what the server holds at once (model facts, the scan list).
    $("token").addEventListener("change", () => { showModel(); refreshScans(); });
    showModel();
    refreshScans();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
