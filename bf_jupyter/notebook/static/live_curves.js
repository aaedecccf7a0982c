// Live training curves for bf-jupyter: drawn on canvas from the widget state, no dependencies.
//
// State (see bf_jupyter/notebook/curve_widget.py): `curves` maps "batch:loss", "epoch:val_loss", ...
// to {count, points, x: float64 LE bytes, y: float32 LE bytes}; `progress`, `status`, `stoppable`,
// `stop_hint`, `title`. The x of a point is the number of batches seen before it, so batch values
// and epoch values share one axis. Redraws are coalesced into animation frames.

const PANEL_HEIGHT = 200;
const MARGIN = { left: 56, right: 14, top: 10, bottom: 24 };
const STYLE = {
  batch: { color: "rgba(37, 99, 235, 0.38)", width: 1, dash: [], markers: false },
  train: { color: "#2563eb", width: 2, dash: [], markers: true },
  val: { color: "#ea580c", width: 2, dash: [5, 3], markers: true },
};
const FIRST_FAMILIES = ["loss", "accuracy", "acc"];

function bytesOf(value) {
  if (value instanceof DataView) return value;
  if (value instanceof ArrayBuffer) return new DataView(value);
  if (ArrayBuffer.isView(value)) return new DataView(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function decode(value, size) {
  // Little-endian floats from a DataView (unaligned offsets are fine), or a plain array.
  const view = bytesOf(value);
  if (view === null) return Float64Array.from(Array.isArray(value) ? value : [], (v) => (v === null ? NaN : v));
  const count = Math.floor(view.byteLength / size);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = size === 8 ? view.getFloat64(i * 8, true) : view.getFloat32(i * 4, true);
  }
  return out;
}

function readSeries(curves) {
  const series = [];
  for (const [key, entry] of Object.entries(curves || {})) {
    const cut = key.indexOf(":");
    if (cut < 0 || !entry) continue;
    const scope = key.slice(0, cut);
    const name = key.slice(cut + 1);
    const x = decode(entry.x, 8);
    const y = decode(entry.y, 4);
    const n = Math.min(x.length, y.length);
    series.push({ key, scope, name, x: x.subarray(0, n), y: y.subarray(0, n), count: entry.count || n });
  }
  return series;
}

function familyOf(name) {
  return name.startsWith("val_") ? name.slice(4) : name;
}

function groupIntoPanels(series) {
  const families = new Map();
  for (const s of series) {
    const family = familyOf(s.name);
    if (!families.has(family)) families.set(family, []);
    const kind = s.scope === "batch" ? "batch" : s.name.startsWith("val_") ? "val" : "train";
    const label = s.scope === "batch" ? `${s.name} (batch)` : s.name;
    families.get(family).push({ ...s, kind, label });
  }
  const rank = (f) => {
    const i = FIRST_FAMILIES.indexOf(f);
    return i < 0 ? FIRST_FAMILIES.length : i;
  };
  const order = { batch: 0, train: 1, val: 2 };
  return [...families.entries()]
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([family, lines]) => ({ family, lines: lines.sort((a, b) => order[a.kind] - order[b.kind]) }));
}

function niceTicks(lo, hi, target) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, target);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function formatValue(v) {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function formatMiB(mib) {
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GiB` : `${Math.round(mib)} MiB`;
}

function formatRate(rate) {
  return rate >= 100 ? Math.round(rate).toLocaleString() : rate.toFixed(1);
}

function progressText(p) {
  const parts = [];
  if (p.epoch) parts.push(`Epoch ${p.epoch}${p.epochs ? `/${p.epochs}` : ""}`);
  if (p.step) parts.push(`Step ${p.step}${p.steps ? `/${p.steps}` : ""}`);
  if (p.samples_per_second) parts.push(`${formatRate(p.samples_per_second)} samples/s`);
  else if (p.batches_per_second) parts.push(`${formatRate(p.batches_per_second)} batches/s`);
  if (p.eta_seconds !== null && p.eta_seconds !== undefined) parts.push(`ETA ${formatDuration(p.eta_seconds)}`);
  if (p.elapsed_seconds) parts.push(`elapsed ${formatDuration(p.elapsed_seconds)}`);
  if (p.gpu_memory_used_mib !== null && p.gpu_memory_used_mib !== undefined) {
    const total = p.gpu_memory_total_mib ? ` / ${formatMiB(p.gpu_memory_total_mib)}` : "";
    parts.push(`GPU memory ${formatMiB(p.gpu_memory_used_mib)}${total}`);
  } else if (p.gpu_memory_total_mib) {
    parts.push(`GPU memory limit ${formatMiB(p.gpu_memory_total_mib)}`);
  }
  // The kernel's GPU meter, the same reading as the sidebar's running-kernels list.
  if (p.gpu_utilization_percent !== null && p.gpu_utilization_percent !== undefined) {
    parts.push(`GPU ${p.gpu_utilization_percent} %`);
  }
  if (p.gpu_over_share) parts.push("over its GPU share");
  if (p.gpu_reading === false && (p.gpu_memory_used_mib === null || p.gpu_memory_used_mib === undefined)) {
    parts.push("no GPU reading");
  }
  return parts.join(" · ");
}

function extent(lines, axis) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const line of lines) {
    for (const v of line[axis]) {
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  if (lo === Infinity) return null;
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 0.5;
    return [lo - pad, hi + pad];
  }
  return axis === "y" ? [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05] : [lo, hi];
}

function drawPanel(canvas, panel, epochMarks, colors) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(160, canvas.parentElement.clientWidth || 480);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${PANEL_HEIGHT}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(PANEL_HEIGHT * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, PANEL_HEIGHT);
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const xr = extent(panel.lines, "x");
  const yr = extent(panel.lines, "y");
  if (!xr || !yr) return null;
  const [x0, x1] = xr[0] === xr[1] ? [xr[0] - 1, xr[1] + 1] : xr;
  const sx = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y) => MARGIN.top + (1 - (y - yr[0]) / (yr[1] - yr[0])) * plotH;

  ctx.font = "11px var(--jp-ui-font-family, sans-serif)";
  ctx.lineWidth = 1;
  ctx.strokeStyle = colors.grid;
  ctx.fillStyle = colors.text;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of niceTicks(yr[0], yr[1], 4)) {
    const y = Math.round(sy(t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(MARGIN.left, y);
    ctx.lineTo(MARGIN.left + plotW, y);
    ctx.stroke();
    ctx.fillText(formatValue(t), MARGIN.left - 6, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const marks = epochMarks.filter((m) => m.x >= x0 && m.x <= x1);
  if (marks.length) {
    const every = Math.max(1, Math.ceil(marks.length / Math.max(1, Math.floor(plotW / 40))));
    ctx.setLineDash([2, 3]);
    marks.forEach((m, i) => {
      const x = Math.round(sx(m.x)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, MARGIN.top + plotH);
      ctx.stroke();
      if (i % every === every - 1 || i === marks.length - 1) ctx.fillText(`${m.epoch}`, x, MARGIN.top + plotH + 5);
    });
    ctx.setLineDash([]);
    ctx.textAlign = "left";
    ctx.fillText("epoch", MARGIN.left - 40, MARGIN.top + plotH + 5);
  } else {
    for (const t of niceTicks(x0, x1, Math.max(2, Math.floor(plotW / 90)))) {
      ctx.fillText(formatValue(t), sx(t), MARGIN.top + plotH + 5);
    }
  }

  ctx.save();
  ctx.beginPath();
  ctx.rect(MARGIN.left, MARGIN.top, plotW, plotH);
  ctx.clip();
  for (const line of panel.lines) {
    const style = STYLE[line.kind];
    ctx.strokeStyle = style.color;
    ctx.fillStyle = style.color;
    ctx.lineWidth = style.width;
    ctx.setLineDash(style.dash);
    ctx.beginPath();
    let drawing = false;
    for (let i = 0; i < line.x.length; i++) {
      const y = line.y[i];
      if (!Number.isFinite(y)) {
        drawing = false;
        continue;
      }
      const px = sx(line.x[i]);
      const py = sy(y);
      if (drawing) ctx.lineTo(px, py);
      else ctx.moveTo(px, py);
      drawing = true;
    }
    ctx.stroke();
    ctx.setLineDash([]);
    if (style.markers && line.x.length <= 200) {
      for (let i = 0; i < line.x.length; i++) {
        if (!Number.isFinite(line.y[i])) continue;
        ctx.beginPath();
        ctx.arc(sx(line.x[i]), sy(line.y[i]), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
  }
  ctx.restore();
  return { sx, sy, x0, x1, plotW };
}

function nearest(xs, x) {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el }) {
  const root = element("div", "bf-lc");
  const head = element("div", "bf-lc-head");
  const title = element("span", "bf-lc-title");
  const status = element("span", "bf-lc-status");
  const stats = element("span", "bf-lc-stats");
  const stop = element("button", "bf-lc-stop", "Stop");
  stop.type = "button";
  head.append(title, status, stats, stop);
  const body = element("div", "bf-lc-panels");
  const empty = element("div", "bf-lc-empty", "Waiting for the first batch…");
  root.append(head, body, empty);
  el.append(root);

  let frame = 0;
  let panels = [];

  function colors() {
    const style = getComputedStyle(root);
    return { text: style.color || "#333", grid: "rgba(128, 128, 128, 0.25)" };
  }

  function draw() {
    frame = 0;
    const p = model.get("progress") || {};
    const state = model.get("status") || "waiting";
    title.textContent = model.get("title") || "Training";
    status.textContent = state;
    status.className = `bf-lc-status bf-lc-status-${state}`;
    stats.textContent = progressText(p);
    const running = state === "running" || state === "stopping";
    stop.hidden = !running;
    stop.disabled = !(model.get("stoppable") && state === "running");
    stop.textContent = state === "stopping" ? "Stopping…" : "Stop";
    stop.title = model.get("stoppable") ? "Stop training after the current batch" : model.get("stop_hint") || "Interrupt the kernel to stop";

    const series = readSeries(model.get("curves"));
    const epochSeries = series.filter((s) => s.scope === "epoch");
    const marks = [];
    if (epochSeries.length) {
      const longest = epochSeries.reduce((a, b) => (b.x.length > a.x.length ? b : a));
      longest.x.forEach((x, i) => marks.push({ x, epoch: i + 1 }));
    }
    const groups = groupIntoPanels(series);
    empty.hidden = groups.length > 0;
    while (panels.length > groups.length) panels.pop().node.remove();
    while (panels.length < groups.length) {
      const node = element("div", "bf-lc-panel");
      const legend = element("div", "bf-lc-legend");
      const canvas = element("canvas", "bf-lc-canvas");
      const tip = element("div", "bf-lc-tip");
      tip.hidden = true;
      node.append(legend, canvas, tip);
      body.append(node);
      const entry = { node, legend, canvas, tip, group: null, scale: null };
      canvas.addEventListener("mousemove", (event) => showTip(entry, event));
      canvas.addEventListener("mouseleave", () => (entry.tip.hidden = true));
      panels.push(entry);
    }
    const palette = colors();
    groups.forEach((group, i) => {
      const entry = panels[i];
      entry.group = group;
      entry.legend.replaceChildren(
        element("span", "bf-lc-family", group.family),
        ...group.lines.map((line) => {
          const item = element("span", `bf-lc-key bf-lc-key-${line.kind}`, line.label);
          item.style.setProperty("--bf-lc-color", STYLE[line.kind].color);
          return item;
        }),
      );
      entry.scale = drawPanel(entry.canvas, group, marks, palette);
    });
  }

  function showTip(entry, event) {
    if (!entry.scale || !entry.group) return;
    const { x0, x1, plotW } = entry.scale;
    const rect = entry.canvas.getBoundingClientRect();
    const px = event.clientX - rect.left - MARGIN.left;
    if (px < 0 || px > plotW) {
      entry.tip.hidden = true;
      return;
    }
    const x = x0 + (px / plotW) * (x1 - x0);
    const rows = entry.group.lines
      .map((line) => {
        const i = nearest(line.x, x);
        return i < 0 ? null : `${line.label}: ${formatValue(line.y[i])} @ ${Math.round(line.x[i])}`;
      })
      .filter(Boolean);
    entry.tip.textContent = rows.join("\n");
    entry.tip.style.left = `${Math.min(rect.width - 160, Math.max(0, event.clientX - rect.left + 12))}px`;
    entry.tip.hidden = false;
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  stop.addEventListener("click", () => {
    stop.disabled = true;
    stop.textContent = "Stopping…";
    model.send({ event: "stop" });
  });
  const events = ["change:curves", "change:progress", "change:status", "change:stoppable", "change:title", "change:stop_hint"];
  for (const name of events) model.on(name, schedule);
  const resize = typeof ResizeObserver === "undefined" ? null : new ResizeObserver(schedule);
  if (resize) resize.observe(root);
  draw();

  return () => {
    for (const name of events) model.off(name, schedule);
    if (resize) resize.disconnect();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
