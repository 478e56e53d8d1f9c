"use strict";
// The live view: polls the JSON API once a second and draws each chart on a
// canvas. History is kept here, in the page (the server keeps only the
// query's recent reports), for at most MAX_WINDOW_MS.
(function () {
  const POLL_MS = 1000;
  const MAX_WINDOW_MS = 15 * 60 * 1000;
  const COLORS = ["#2f6fdf", "#e0752d", "#2a9d5c", "#a04ad0", "#c23b3b", "#7a8599"];

  const view = { runId: null, reports: [], lastBatch: null, seconds: [], lastSecond: null, query: null, charts: {} };

  const num = (v) => (typeof v === "number" && isFinite(v) ? v : null);
  const sumDropped = (p) => p.stateOperators.reduce((s, o) => s + o.numRowsDroppedByWatermark, 0);
  const ckptMs = (p) => {
    const d = p.durationMs || {};
    return num(d.walCommit !== undefined ? d.walCommit : d.commitOffsets);
  };
  const backlog = (p) => {
    const s = p.sources && p.sources[0];
    return s && s.metrics ? num(s.metrics.offsetsBehindLatest) : null;
  };
  const latencyMs = (key) => (p) => (p.latencyMicros && p.latencyMicros.count > 0 ? p.latencyMicros[key] / 1000 : null);
  const pct = (v) => (v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 0) + " %";
  const hasState = (rs) => rs.some((p) => p.stateOperators && p.stateOperators.length > 0);

  // Each chart: its series (name, value of a report, or of a second of
  // latency for `source: "seconds"`) and, when the query cannot have it, why.
  const CHARTS = [
    { id: "rates", title: "Rows per second", unit: "rows/s",
      series: () => [["input", (p) => num(p.inputRowsPerSecond)], ["processed", (p) => num(p.processedRowsPerSecond)]] },
    { id: "latency", title: "End-to-end latency per second", unit: "ms", source: "seconds",
      series: () => [["p50", latencyMs("p50")], ["p99", latencyMs("p99")], ["p99.9", latencyMs("p999")]] },
    { id: "duration", title: "Epoch / batch duration", unit: "ms",
      series: () => [["duration", (p) => num((p.durationMs || {}).triggerExecution)]] },
    { id: "watermark", title: "Watermark gap to wall time", unit: "s",
      series: () => [["gap", (p) => (p.eventTime && p.eventTime.watermark
        ? (Date.parse(p.timestamp) - Date.parse(p.eventTime.watermark)) / 1000 : null)]],
      unavailable: (rs) => (rs.some((p) => p.eventTime && p.eventTime.watermark) ? null : "no watermark in this query (yet)") },
    { id: "state", title: "State rows per operator", unit: "rows",
      series: (rs) => {
        const names = [];
        rs.forEach((p) => p.stateOperators.forEach((o) => { if (!names.includes(o.operatorName)) names.push(o.operatorName); }));
        return names.map((n) => [n, (p) => {
          const o = p.stateOperators.find((x) => x.operatorName === n);
          return o ? o.numRowsTotal : null;
        }]);
      },
      unavailable: (rs) => (hasState(rs) ? null : "no stateful operator in this query") },
    { id: "late", title: "Late rows dropped per interval", unit: "rows",
      series: () => [["dropped", sumDropped]],
      unavailable: (rs) => (hasState(rs) ? null : "no stateful operator: nothing is dropped as late") },
    { id: "backlog", title: "Source backlog", unit: "offsets",
      series: () => [["behind the end", backlog]],
      unavailable: (rs) => (rs.some((p) => backlog(p) !== null && backlog(p) !== undefined) ? null : "not reported by this source") },
    { id: "ckpt-duration", title: "Checkpoint commit duration", unit: "ms",
      series: () => [["commit", (p) => (p.checkpointBytes === undefined ? null : ckptMs(p))]],
      unavailable: () => (view.query && view.query.checkpointed ? null : "no checkpoint") },
    { id: "ckpt-size", title: "Checkpoint state written per interval", unit: "KiB",
      series: () => [["written", (p) => (p.checkpointBytes === undefined ? null : p.checkpointBytes / 1024)]],
      unavailable: () => (view.query && view.query.checkpointed ? null : "no checkpoint") },
  ];

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => e.setAttribute(k, v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return "0";
    return v.toPrecision(2);
  }

  function fmtMicros(us) {
    if (!us) return "–";
    if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
    if (us >= 1e3) return (us / 1e3).toFixed(2) + " ms";
    return us.toFixed(1) + " µs";
  }

  const clock = (t) => new Date(t).toISOString().substring(11, 19);

  function buildCharts() {
    const box = document.getElementById("charts");
    CHARTS.forEach((c) => {
      const fig = el("figure", { class: "chart", "data-chart": c.id, "data-points": "0", "data-state": "waiting" });
      const cap = el("figcaption");
      cap.append(el("span", {}, c.title + " (" + c.unit + ")"), el("span", { class: "now" }, ""));
      const canvas = el("canvas", { width: "600", height: "170" });
      const note = el("div", { class: "note", hidden: "" }, "");
      fig.append(cap, canvas, note, el("div", { class: "legend" }));
      box.append(fig);
      view.charts[c.id] = { fig, canvas, note, legend: fig.querySelector(".legend"), now: cap.querySelector(".now") };
    });
  }

  // Draws one chart over [t1 - span, t1]; returns the points drawn.
  function draw(chart, c, reports, t1, span) {
    const why = c.unavailable ? c.unavailable(reports) : null;
    chart.fig.dataset.state = why ? "unavailable" : reports.length ? "drawn" : "waiting";
    chart.note.hidden = !why;
    chart.note.textContent = why || "";
    if (why) {
      chart.fig.dataset.points = "0";
      chart.legend.textContent = "";
      chart.now.textContent = "";
      return 0;
    }
    const series = c.series(reports).map(([name, f], i) => ({
      name, color: COLORS[i % COLORS.length],
      pts: reports.map((p) => [p._t, f(p)]).filter(([t, v]) => v !== null && v !== undefined && t >= t1 - span),
    }));
    const canvas = chart.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 600, h = canvas.clientHeight || 170;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const L = 46, R = 8, T = 8, B = 20;
    let lo = 0, hi = 0;
    series.forEach((s) => s.pts.forEach(([, v]) => { lo = Math.min(lo, v); hi = Math.max(hi, v); }));
    if (hi === lo) hi = lo + 1;
    hi += (hi - lo) * 0.08;
    const x = (t) => L + ((t - (t1 - span)) / span) * (w - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (h - T - B);
    g.font = "11px system-ui, sans-serif";
    g.strokeStyle = "#e6e9ef";
    g.fillStyle = "#6b7385";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4, yy = Math.round(y(v)) + 0.5;
      g.beginPath(); g.moveTo(L, yy); g.lineTo(w - R, yy); g.stroke();
      g.textAlign = "right"; g.fillText(fmt(v), L - 4, yy + 4);
    }
    g.textAlign = "left"; g.fillText(clock(t1 - span), L, h - 5);
    g.textAlign = "right"; g.fillText(clock(t1), w - R, h - 5);
    let drawn = 0;
    series.forEach((s, i) => {
      g.strokeStyle = s.color; g.fillStyle = s.color; g.lineWidth = 1.5;
      // Every other series dashed: equal series (input and processing rate
      // in continuous mode) stay both visible.
      g.setLineDash(i % 2 ? [6, 4] : []);
      g.beginPath();
      s.pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
      g.stroke();
      if (s.pts.length === 1) { g.fillRect(x(s.pts[0][0]) - 2, y(s.pts[0][1]) - 2, 4, 4); }
      drawn += s.pts.length;
    });
    g.setLineDash([]);
    chart.fig.dataset.points = String(drawn);
    chart.legend.textContent = "";
    series.forEach((s) => {
      const item = el("span");
      const sw = el("i"); sw.style.background = s.color;
      const last = s.pts.length ? s.pts[s.pts.length - 1][1] : null;
      item.append(sw, document.createTextNode(s.name + " " + fmt(last)));
      chart.legend.append(item);
    });
    return drawn;
  }

  function renderCharts() {
    const rs = view.reports, secs = view.seconds;
    const span = Number(document.getElementById("window").value) * 60000;
    const ends = [rs, secs].filter((a) => a.length);
    const t1 = ends.length ? Math.max(...ends.map((a) => a[a.length - 1]._t)) : Date.now();
    const t0 = ends.length ? Math.min(...ends.map((a) => a[0]._t)) : t1;
    // Less history than the window: the charts span what there is.
    const shown = ends.length ? Math.min(span, Math.max(t1 - t0, 1000)) : span;
    CHARTS.forEach((c) => draw(view.charts[c.id], c, c.source === "seconds" ? secs : rs, t1, shown));
    const last = rs[rs.length - 1];
    const wm = last && last.eventTime && last.eventTime.watermark;
    document.getElementById("watermark").textContent = wm || "–";
  }

  function renderList(queries) {
    const body = document.querySelector("#queries tbody");
    body.textContent = "";
    queries.forEach((q) => {
      const tr = el("tr", { "data-run-id": q.runId });
      if (q.runId === view.runId) tr.className = "selected";
      const link = el("a", { href: "#" + q.runId }, q.name || q.id);
      const name = el("td"); name.append(link);
      tr.append(name, el("td", {}, q.mode), el("td", {}, q.status), el("td", {}, q.startTime),
        el("td", {}, q.endTime || ""), el("td", {}, q.error || ""));
      body.append(tr);
    });
  }

  function renderQuery(q) {
    document.getElementById("detail").hidden = false;
    document.getElementById("q-name").textContent = q.name || q.id;
    document.getElementById("q-mode").textContent = q.mode;
    document.getElementById("q-guarantee").textContent = q.guarantee + (q.checkpointed ? "" : " (no checkpoint)");
    const st = document.getElementById("q-status");
    st.textContent = q.status; st.className = "badge " + q.status;
    document.getElementById("q-ids").textContent = "id " + q.id + " · run " + q.runId + " · started " + q.startTime +
      (q.endTime ? " · ended " + q.endTime : "");
    const err = document.getElementById("q-error");
    err.hidden = !q.error; err.textContent = q.error || "";
    document.getElementById("tot-in").textContent = fmt(q.totals.inputRows);
    document.getElementById("tot-out").textContent = fmt(q.totals.outputRows);
    document.getElementById("tot-late").textContent = fmt(q.totals.lateRows);
    const body = document.querySelector("#tasks tbody");
    body.textContent = "";
    q.taskGraph.forEach((t) => {
      const tr = el("tr");
      tr.append(el("td", {}, String(t.task)), el("td", {}, t.runs));
      body.append(tr);
    });
    const rings = document.querySelector("#rings tbody");
    rings.textContent = "";
    q.rings.forEach((r) => {
      const tr = el("tr", { "data-fill": String(r.fillRatio) });
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.min(100, r.fillRatio * 100).toFixed(1) + "%";
      const fill = el("td"); fill.append(el("span", { class: "meter" }), document.createTextNode(" " + pct(r.fillRatio)));
      fill.firstChild.append(bar);
      const count = (v) => el("td", {}, Number(v).toLocaleString("en-US"));
      tr.append(el("td", {}, "task " + r.from + " → task " + r.to), count(r.capacity),
        count(r.waiting), fill, count(r.peak), count(r.fullWaits));
      rings.append(tr);
    });
    document.getElementById("rings").hidden = q.rings.length === 0;
    const note = document.getElementById("rings-note");
    note.hidden = !q.ringsNote;
    note.textContent = q.ringsNote || "";
  }

  function renderLatency(l) {
    const e = l.endToEnd;
    [["lat-p50", e.p50], ["lat-p99", e.p99], ["lat-p999", e.p999], ["lat-max", e.max]].forEach(([id, v]) => {
      const n = document.getElementById(id);
      n.textContent = fmtMicros(v);
      n.dataset.value = String(v || 0);
    });
  }

  async function getJson(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  async function tick() {
    try {
      const queries = await getJson("/api/queries");
      const wanted = decodeURIComponent(location.hash.replace(/^#/, ""));
      const q = queries.find((x) => x.runId === wanted || x.id === wanted) ||
        queries.find((x) => x.status === "running") || queries[0];
      if (q && q.runId !== view.runId) {
        view.runId = q.runId; view.reports = []; view.lastBatch = null; view.seconds = []; view.lastSecond = null;
      }
      view.query = q || null;
      renderList(queries);
      if (q) {
        const base = "/api/queries/" + encodeURIComponent(q.runId);
        const after = view.lastBatch === null ? "?history" : "?after=" + view.lastBatch;
        const afterSecond = view.lastSecond === null ? "" : "?after=" + view.lastSecond;
        const [fresh, lat, secs] = await Promise.all([
          getJson(base + "/progress" + after),
          getJson(base + "/latency"),
          getJson(base + "/latency/seconds" + afterSecond),
        ]);
        fresh.forEach((p) => { p._t = Date.parse(p.timestamp); view.reports.push(p); });
        if (fresh.length) view.lastBatch = fresh[fresh.length - 1].batchId;
        secs.forEach((s) => { s._t = s.timeMs; view.seconds.push(s); });
        if (secs.length) view.lastSecond = secs[secs.length - 1].timeMs;
        [view.reports, view.seconds].forEach((a) => {
          const newest = a.length ? a[a.length - 1]._t : 0;
          while (a.length && a[0]._t < newest - MAX_WINDOW_MS) a.shift();
        });
        renderQuery(q);
        renderLatency(lat);
        renderCharts();
      }
      document.getElementById("conn").textContent = "updated " + new Date().toISOString().substring(11, 19) + " UTC";
    } catch (e) {
      document.getElementById("conn").textContent = "not connected: " + e.message;
    }
    setTimeout(tick, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    buildCharts();
    document.getElementById("window").addEventListener("change", renderCharts);
    window.addEventListener("hashchange", () => { view.runId = null; });
    window.addEventListener("resize", renderCharts);
    tick();
  });
})();
