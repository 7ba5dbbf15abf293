// The overview's charts: drawn from the page's JSON (the usage rollup), redrawn from /dashboard/overview.json.
(function () {
  "use strict";
  const BOUNDS = ["≤ 100 ms", "≤ 250 ms", "≤ 500 ms", "≤ 1 s", "≤ 2 s", "≤ 5 s", "≤ 10 s", "≤ 30 s", "≤ 60 s", "> 60 s"];
  const source = document.getElementById("overview-data");
  const plots = {};

  function ms(bound) {
    if (bound === null) return "—";
    return bound < 0 ? "> 60 s" : "≤ " + bound + " ms";
  }

  function colour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#2457c5";
  }

  function bars(id, rows) {
    // A labelled bar per row: text for screen readers, a <meter> for the eye.
    const list = document.getElementById(id);
    list.replaceChildren();
    const top = Math.max(1, ...rows.map((r) => r.value));
    for (const row of rows) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = row.label + ": " + row.text;
      const meter = document.createElement("meter");
      meter.min = 0; meter.max = top; meter.value = row.value;
      meter.setAttribute("aria-hidden", "true");
      item.append(label, meter);
      list.append(item);
    }
    if (!rows.length) {
      const item = document.createElement("li");
      item.textContent = "Nothing in this range.";
      list.append(item);
    }
    list.dataset.drawn = String(rows.length);
  }

  function chart(id, x, y, label, asBars, range, format) {
    const box = document.getElementById(id);
    const width = Math.max(280, box.clientWidth);
    const series = { label: label, stroke: colour("--accent"), fill: asBars ? colour("--accent") : undefined, width: 2,
                     value: (u, v) => (v === null ? "--" : format(v)) };
    if (asBars && window.uPlot.paths && window.uPlot.paths.bars) series.paths = window.uPlot.paths.bars({ size: [0.6, 64] });
    const opts = { width: width, height: 220, series: [{}, series], legend: { show: true },
                   scales: { x: { time: true, range: () => range }, y: { range: (u, lo, hi) => [0, Math.max(hi, 1e-9) * 1.1] } },
                   axes: [{ stroke: colour("--muted") },
                          { stroke: colour("--muted"), size: 84, values: (u, vals) => vals.map(format) }] };
    if (plots[id]) plots[id].destroy();
    plots[id] = new window.uPlot(opts, [x, y], box);
    box.dataset.drawn = String(x.length);
    box.dataset.sum = String(y.reduce((a, b) => a + b, 0));
  }

  function count(v) { return Number.isInteger(v) ? String(v) : v.toFixed(2); }
  function usd(v) { return v === 0 ? "$0" : "$" + (v >= 1 ? v.toFixed(2) : v.toPrecision(2)); }

  function draw(data) {
    const since = Date.parse(data.since) / 1000;
    chart("chart-requests", data.series.t, data.series.requests_per_minute, "requests/min", false, [since, data.until], count);
    const days = data.spend_per_day.map((d) => Date.parse(d.day + "T00:00:00Z") / 1000);
    const first = Math.floor(since / 86400) * 86400;
    chart("chart-spend", days, data.spend_per_day.map((d) => Number(d.cost_usd)), "USD", true,
          [first - 43200, Math.floor(data.until / 86400) * 86400 + 43200], usd);
    bars("bars-tokens", data.tokens_by_model.map((m) => ({ label: m.model,
      text: (m.prompt_tokens + m.completion_tokens) + " tokens", value: m.prompt_tokens + m.completion_tokens })));
    bars("bars-errors", data.errors_by_code.map((e) => ({ label: e.code, text: e.count + " failed", value: e.count })));
    bars("bars-latency", data.latency.counts.map((n, i) => ({ label: BOUNDS[i], text: String(n), value: n }))
      .filter((r) => r.value > 0));
    bars("bars-queues", data.queues.map((q) => ({ label: q.queue,
      text: q.depth + " waiting, " + q.workers + " worker" + (q.workers === 1 ? "" : "s"), value: q.depth })));
    document.getElementById("total-requests").textContent = String(data.totals.requests);
    document.getElementById("total-cost").textContent = "$" + data.totals.cost_usd;
    document.getElementById("p50").textContent = ms(data.latency.p50_ms);
    document.getElementById("p95").textContent = ms(data.latency.p95_ms);
    document.body.dataset.overviewDrawn = String(Date.now());
  }

  function refresh() {
    fetch(source.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((data) => {
        draw(data);
        document.getElementById("refreshed").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(() => { document.getElementById("refreshed").textContent = "Could not refresh"; });
  }

  draw(JSON.parse(source.textContent));
  setInterval(refresh, Number(source.dataset.refresh) * 1000);
})();
