// Mini Meter twin front panel: one EventSource, the meter drawn from its registers.
// Field names are the register map's (GET /api/registers); commands are twin.control's.
"use strict";

const $ = (id) => document.getElementById(id);
const LCD_CELLS = 8;
const SCREEN_NAMES = ["off", "boot", "total kWh", "max demand", "instantaneous kW", "error"];
const LED_HALF_WH = 5; // the load LED mirrors the 10 Wh output: 5 Wh on, 5 Wh off
const CHART_POINTS = 600;
const SEGMENTS = { // seven segments a..g per character
  "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg", "5": "acdfg", "6": "acdefg",
  "7": "abc", "8": "abcdefg", "9": "abcdfg", "-": "g", " ": "", "E": "adefg", "r": "eg",
  "o": "cdeg", "b": "cdefg", "t": "defg", "n": "ceg", "P": "abefg", "F": "aefg", "L": "def",
  "H": "bcefg", "A": "abcefg", "d": "bcdeg", "C": "adef", "U": "bcdef",
};
const SEG_SHAPES = { // 12 x 20 cell, slanted a little like the real glass
  a: "2.5,1 9.5,1 8.5,2.6 3.5,2.6", b: "9.9,1.4 10.9,2.4 10.4,9.2 9.1,9.6 8.6,3",
  c: "9.1,10.4 10.4,10.8 9.9,17.6 8.9,18.6 7.9,17 ", d: "2.5,19 9.5,19 8.3,17.4 3.3,17.4",
  e: "1.9,10.8 3.2,10.4 2.6,17 1.6,18.6 0.6,17.6", f: "1.6,1.4 3.4,3 2.9,9.6 1.6,9.2 1.1,2.4",
  g: "2.4,10 3.4,9.2 8.6,9.2 9.6,10 8.6,10.8 3.4,10.8",
};

const state = {
  info: null, serial: null, token: sessionStorage.getItem("minimeter-token") || "",
  snap: null, meter: null, fleet: [], source: null, frames: [], rate: 0,
  led: { e: null, k: 0, maxK: 0, toggles: 0, lastWall: 0, frameE: 0, power: 0 },
  chart: [], faults: [],
};

// ------------------------------------------------------------------ LCD

function buildDigits() {
  const box = $("lcd-digits");
  const ns = "http://www.w3.org/2000/svg";
  for (let i = 0; i < LCD_CELLS; i++) {
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 13 20");
    for (const [name, pts] of Object.entries(SEG_SHAPES)) {
      const p = document.createElementNS(ns, "polygon");
      p.setAttribute("points", pts);
      p.setAttribute("class", "seg");
      p.dataset.seg = name;
      svg.appendChild(p);
    }
    const dp = document.createElementNS(ns, "circle");
    dp.setAttribute("cx", "11.8"); dp.setAttribute("cy", "18.6"); dp.setAttribute("r", "0.9");
    dp.setAttribute("class", "seg"); dp.dataset.seg = "dp";
    svg.appendChild(dp);
    box.appendChild(svg);
  }
}

function cellsOf(text) { // "123.4" -> right-aligned cells with decimal points on the digit before
  const cells = [];
  for (const ch of text) {
    if (ch === "." && cells.length) cells[cells.length - 1].dp = true;
    else cells.push({ ch, dp: false });
  }
  while (cells.length < LCD_CELLS) cells.unshift({ ch: " ", dp: false });
  return cells.slice(-LCD_CELLS);
}

function showDigits(text) {
  const cells = cellsOf(text);
  const svgs = $("lcd-digits").children;
  cells.forEach((cell, i) => {
    const lit = SEGMENTS[cell.ch] ?? "";
    for (const seg of svgs[i].children) {
      const on = seg.dataset.seg === "dp" ? cell.dp : lit.includes(seg.dataset.seg);
      seg.classList.toggle("on", on);
    }
  });
  $("lcd").dataset.text = text.trim();
}

function fixed(v, digits) { return v === null || v === undefined ? "----" : v.toFixed(digits); }

function renderLcd(s) {
  const lcd = $("lcd");
  const screen = s.lcd_screen;
  const ind = s.indicators;
  lcd.dataset.screen = String(screen);
  lcd.classList.toggle("off", screen === 0);
  $("screen-name").textContent = SCREEN_NAMES[screen] ?? "";
  let text = "", unit = "", max = false, demand = false, err = false;
  if (screen === 1) { text = "8.8.8.8.8.8.8.8."; unit = "kWh"; max = demand = err = true; }
  else if (screen === 2) { text = (s.energy_delivered_hwh / 10).toFixed(1); unit = "kWh"; }
  else if (screen === 3) { text = fixed(s.demand_max_kw, 2); unit = "kW"; max = demand = true; }
  else if (screen === 4) { text = s.power_w === null ? "----" : (s.power_w / 1000).toFixed(2); unit = "kW"; }
  else if (screen === 5) { text = "Err-" + String(s.error_code).padStart(2, "0"); err = true; }
  showDigits(text);
  $("ann-unit").textContent = unit;
  $("ann-max").classList.toggle("on", max);
  $("ann-demand").classList.toggle("on", demand);
  $("ann-err").classList.toggle("on", err);
  const bit = (b) => (ind >> b) & 1;
  const boot = screen === 1;
  $("ann-rev").classList.toggle("on", boot || bit(1) === 1);
  $("ann-l1").classList.toggle("on", boot || bit(2) === 1);
  $("ann-l2").classList.toggle("on", boot || bit(3) === 1);
  $("ann-l1").classList.toggle("blink", bit(4) === 1);
  $("ann-l2").classList.toggle("blink", bit(5) === 1);
  $("ann-lead").classList.toggle("on", boot || bit(7) === 1 || bit(8) === 1);
}

// ------------------------------------------------------------------ load LED

function ledResync(s) {
  const led = state.led;
  const e = s.energy_delivered_wh;
  if (led.e === null || led.e < e || led.e >= e + 1) led.e = e + 0.5; // the register is floor(Wh)
  led.frameE = e;
  led.power = s.powered && s.power_w !== null ? Math.max(s.power_w, 0) : 0;
  ledShow();
}

function ledShow() {
  const led = state.led;
  const k = Math.floor(led.e / LED_HALF_WH);
  if (k > led.maxK) { if (led.maxK || led.toggles) led.toggles += k - led.maxK; led.maxK = k; }
  else if (k < led.maxK - 2) led.maxK = k; // energy cleared
  led.k = k;
  const el = $("led");
  const periodS = led.power > 0 && state.rate > 0 ? (LED_HALF_WH * 3600) / (led.power * state.rate) : Infinity;
  el.classList.toggle("on", k % 2 === 1 && state.snap?.powered);
  el.classList.toggle("fast", periodS < 0.12 && state.snap?.powered);
  el.dataset.toggles = String(led.toggles);
  el.dataset.periodS = Number.isFinite(periodS) ? periodS.toFixed(3) : "";
}

function ledTick(now) {
  const led = state.led;
  const dt = led.lastWall ? (now - led.lastWall) / 1000 : 0;
  led.lastWall = now;
  if (led.e !== null && dt > 0 && dt < 1) {
    // between frames the energy grows at the last power and measured clock rate; never
    // more than 1.5 Wh past the last register value plus what two frames would add
    const limit = led.frameE + 1 + (led.power * state.rate * 2 * frameInterval()) / 3600;
    led.e = Math.min(led.e + (led.power * state.rate * dt) / 3600, limit);
    ledShow();
  }
  requestAnimationFrame(ledTick);
}

function frameInterval() { return state.info ? state.info.stream_interval_s : 0.5; }

// ------------------------------------------------------------------ device, readings

function setText(id, text) { const el = $(id); if (el.textContent !== text) el.textContent = text; }

function renderDevice(s) {
  const out = s.output_states;
  [["out-10", 0], ["out-100", 1], ["out-1000", 2], ["out-counter", 3]].forEach(([id, b]) =>
    $(id).classList.toggle("closed", ((out >> b) & 1) === 1));
  setText("pulses-10", String(s.pulses_10wh));
  setText("pulses-100", String(s.pulses_100wh));
  setText("pulses-1000", String(s.pulses_1000wh));
  const digits = String(s.counter_counts).padStart(6, "0").slice(-6);
  const odo = $("counter");
  if (odo.dataset.v !== digits) {
    odo.dataset.v = digits;
    odo.replaceChildren(...[...digits].map((d, i) => {
      const span = document.createElement("span");
      span.textContent = d;
      if (i === 5 && state.meter?.counter_wh_per_count === 100) span.className = "tenth";
      return span;
    }));
  }
  setText("model", s.model);
  setText("serial", s.serial_number);
  setText("status-bits", "0x" + s.status_bits.toString(16).padStart(8, "0"));
  setText("error-code", String(s.error_code));
}

const READINGS = [
  ["Energy"], ["energy_delivered_wh", "delivered", "Wh", 0], ["energy_received_wh", "received", "Wh", 0],
  ["energy_l1_wh", "L1", "Wh", 0], ["energy_l2_wh", "L2", "Wh", 0], ["energy_delivered_kwh", "delivered", "kWh", 3],
  ["Power"], ["power_w", "total", "W", 1], ["power_l1_w", "L1", "W", 1], ["power_l2_w", "L2", "W", 1],
  ["Lines"], ["voltage_l1_v", "voltage L1", "V", 1], ["voltage_l2_v", "voltage L2", "V", 1],
  ["voltage_l1_l2_v", "voltage L1-L2", "V", 1], ["current_l1_a", "current L1", "A", 2],
  ["current_l2_a", "current L2", "A", 2], ["power_factor_l1", "PF L1", "", 3],
  ["power_factor_l2", "PF L2", "", 3], ["frequency_hz", "frequency", "Hz", 2],
  ["Demand"], ["demand_kw", "present", "kW", 3], ["demand_max_kw", "maximum", "kW", 3],
  ["demand_max_at_s", "max set at", "s", 0], ["demand_subinterval_elapsed_s", "into sub-interval", "s", 0],
  ["Meter"], ["temperature_c", "temperature", "°C", 1], ["uptime_s", "uptime", "s", 0],
  ["power_up_count", "power-ups", "", 0],
];

function buildReadings() {
  const body = $("readings").tBodies[0];
  for (const row of READINGS) {
    const tr = document.createElement("tr");
    if (row.length === 1) { tr.className = "group"; tr.innerHTML = `<td colspan="2">${row[0]}</td>`; }
    else {
      const [name, label, unit] = row;
      tr.innerHTML = `<td>${label}</td><td class="v"><span data-field="${name}">—</span> ${unit}</td>`;
    }
    body.appendChild(tr);
  }
}

function renderReadings(s) {
  for (const row of READINGS) {
    if (row.length === 1) continue;
    const [name, , , digits] = row;
    const v = s[name];
    const el = document.querySelector(`[data-field="${name}"]`);
    const text = v === null || v === undefined ? "n/a" : digits ? v.toFixed(digits) : String(v);
    if (el.textContent !== text) el.textContent = text;
  }
}

// ------------------------------------------------------------------ chart

function drawChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pts = state.chart;
  const padL = 56, padR = 10, padT = 8, padB = 22;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8b939c";
  if (pts.length < 2) { ctx.fillText("waiting for data…", padL, h / 2); return; }
  const t0 = pts[0].t, t1 = pts[pts.length - 1].t || t0 + 1;
  let lo = 0, hi = 1;
  for (const p of pts) for (const v of [p.p, p.d, p.m]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  hi += (hi - lo) * 0.08;
  const x = (t) => padL + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (w - padL - padR);
  const y = (v) => padT + (1 - (v - lo) / (hi - lo)) * (h - padT - padB);
  ctx.strokeStyle = "#343b43"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(w - padR, yy); ctx.stroke();
    ctx.fillText(v >= 1000 || v <= -1000 ? (v / 1000).toFixed(1) + " k" : v.toFixed(0), 4, yy + 4);
  }
  ctx.fillText(fmtDuration(t0), padL, h - 6);
  const last = fmtDuration(t1);
  ctx.fillText(last, w - padR - ctx.measureText(last).width, h - 6);
  for (const [key, color] of [["m", "#c77dff"], ["d", "#ffb648"], ["p", "#4fb3ff"]]) {
    ctx.strokeStyle = color; ctx.lineWidth = key === "p" ? 1.6 : 2;
    ctx.beginPath();
    let pen = false;
    for (const p of pts) {
      if (p[key] === null) { pen = false; continue; }
      if (pen) ctx.lineTo(x(p.t), y(p[key])); else ctx.moveTo(x(p.t), y(p[key]));
      pen = true;
    }
    ctx.stroke();
  }
}

function fmtDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  const hms = `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
  return d ? `${d}d ${hms}` : hms;
}

// ------------------------------------------------------------------ frames

function onMeter(frame) {
  if (frame.serial !== state.serial) return;
  const now = performance.now();
  state.frames.push({ wall: now, t: frame.meter_time_s });
  if (state.frames.length > 6) state.frames.shift();
  const f0 = state.frames[0], f1 = state.frames[state.frames.length - 1];
  state.rate = f1.wall > f0.wall ? Math.max(0, ((f1.t - f0.t) * 1000) / (f1.wall - f0.wall)) : frame.speed;
  const s = frame.snapshot;
  state.snap = s;
  renderLcd(s);
  ledResync(s);
  renderDevice(s);
  renderReadings(s);
  setText("meter-time", fmtDuration(frame.meter_time_s));
  setText("speed", "×" + frame.speed);
  setText("lag", frame.lag_s > Math.max(1, frame.speed * 0.5) ? `lag ${frame.lag_s.toFixed(0)} s` : "");
  const last = state.chart[state.chart.length - 1];
  if (!last || frame.meter_time_s > last.t) {
    state.chart.push({ t: frame.meter_time_s, p: s.power_w,
      d: s.demand_kw === null ? null : s.demand_kw * 1000, m: s.demand_max_kw === null ? null : s.demand_max_kw * 1000 });
    if (state.chart.length > CHART_POINTS) state.chart.shift();
  } else if (frame.meter_time_s < last.t) state.chart = [];
  drawChart();
}

function onFleet(frame) {
  state.fleet = frame.meters;
  renderFleet();
}

function onEvents(batch) {
  const list = $("events");
  for (const ev of batch.events) {
    const li = document.createElement("li");
    const { type, serial, time_s, ...rest } = ev;
    const detail = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === "number" ? +v.toFixed(3) : v}`).join(" ");
    li.textContent = `${fmtDuration(time_s ?? 0)} ${serial} ${type} ${detail}`;
    list.prepend(li);
  }
  if (batch.dropped) {
    const li = document.createElement("li");
    li.textContent = `… ${batch.dropped} older events dropped (slow connection)`;
    list.prepend(li);
  }
  while (list.children.length > 60) list.lastChild.remove();
}

function renderFleet() {
  const q = $("search").value.trim().toLowerCase();
  const list = $("fleet-list");
  const shown = state.fleet.filter((m) => !q ||
    [m.serial, `unit ${m.unit}`, `port ${m.port}`, m.model, m.profile].join(" ").toLowerCase().includes(q));
  setText("fleet-count", `${shown.length} of ${state.fleet.length} meters`);
  const items = shown.map((m) => {
    const li = document.createElement("li");
    li.dataset.serial = m.serial;
    li.className = (m.serial === state.serial ? "sel " : "") + (m.powered ? "" : "dark");
    const kw = m.power_w === null ? "n/a" : (m.power_w / 1000).toFixed(2) + " kW";
    li.innerHTML = `<span>${m.serial}</span><span>${m.error ? `<span class="err">Err ${m.error}</span>` : kw}</span>` +
      `<span class="sub">unit ${m.unit} · port ${m.port ?? "RTU"} · ${m.model} · ${m.profile}</span>`;
    return li;
  });
  list.replaceChildren(...items);
}

function connect() {
  if (state.source) state.source.close();
  const fleet = state.info.meters > 1 ? "1" : "0";
  const url = `/api/stream?serial=${encodeURIComponent(state.serial)}&fleet=${fleet}`;
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener("open", () => $("link").classList.add("up"));
  source.addEventListener("error", () => $("link").classList.remove("up"));
  source.addEventListener("meter", (e) => onMeter(JSON.parse(e.data)));
  source.addEventListener("fleet", (e) => onFleet(JSON.parse(e.data)));
  source.addEventListener("events", (e) => onEvents(JSON.parse(e.data)));
}

function select(serial) {
  if (serial === state.serial) return;
  state.serial = serial;
  state.chart = []; state.frames = []; state.snap = null;
  state.led = { e: null, k: 0, maxK: 0, toggles: 0, lastWall: 0, frameE: 0, power: 0 };
  const m = state.fleet.find((x) => x.serial === serial);
  state.meter = m ?? null;
  if (m) { setText("counter-kh", `${m.counter_wh_per_count} Wh/count`); setText("unit", String(m.unit)); setText("port", m.port === null ? "RTU" : String(m.port)); }
  if (location.hash.slice(1) !== serial) history.replaceState(null, "", "#" + serial);
  renderFleet();
  connect();
  refreshFaults();
}

// ------------------------------------------------------------------ commands

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await resp.json(); } catch { data = { ok: false, error: `HTTP ${resp.status}` }; }
  return { status: resp.status, data };
}

async function command(name, body = {}, fleetWide = false) {
  const path = fleetWide ? `/api/commands/${name}` : `/api/meters/${encodeURIComponent(state.serial)}/commands/${name}`;
  const { status, data } = await api("POST", path, body);
  showResult(status, data, name);
  if (name.includes("fault")) refreshFaults();
  return data;
}

function showResult(status, data, name) {
  const el = $("result");
  el.className = "result " + (data && data.ok ? "ok" : "bad");
  el.textContent = data && data.ok ? `${name}: ok` : `${name}: refused (${status}) — ${data?.error ?? "?"}`;
}

async function refreshFaults() {
  const resp = await fetch("/api/faults");
  if (!resp.ok) return;
  state.faults = await resp.json();
  const list = $("faults");
  list.replaceChildren(...state.faults.map((f) => {
    const li = document.createElement("li");
    const scope = f.units ? `unit ${f.units.join(",")}` : "all units";
    li.innerHTML = `<span>#${f.id} ${f.kind} · ${scope}</span>`;
    const x = document.createElement("button");
    x.textContent = "×"; x.title = "disarm";
    x.addEventListener("click", async () => {
      const r = await api("DELETE", `/api/faults/${f.id}`); showResult(r.status, r.data, "clear_faults"); refreshFaults();
    });
    li.appendChild(x);
    return li;
  }));
  if (!state.faults.length) list.innerHTML = '<li class="muted">no fault armed</li>';
}

function num(id) { const v = $(id).value; return v === "" ? null : Number(v); }

function wireControls() {
  $("btn-set-load").addEventListener("click", () => {
    const el = (n) => ({ voltage_v: num(`${n}-v`), current_a: num(`${n}-a`), pf: num(`${n}-pf`) ?? 1 });
    const body = { l1: el("l1"), for_s: num("load-for") };
    if (state.snap && state.snap.elements === 2) body.l2 = el("l2");
    command("set_load", body);
  });
  $("btn-clear-load").addEventListener("click", () => command("clear_load"));
  $("btn-profile").addEventListener("click", () => command("switch_profile", { profile: $("profile").value }));
  for (const b of document.querySelectorAll("[data-speed]"))
    b.addEventListener("click", () => command("set_speed", { speed: Number(b.dataset.speed) }, true));
  $("btn-speed").addEventListener("click", () => command("set_speed", { speed: num("speed-in") }, true));
  for (const b of document.querySelectorAll("[data-inject]"))
    b.addEventListener("click", () => command("inject_error", { kind: b.dataset.inject }));
  for (const b of document.querySelectorAll("[data-clear]"))
    b.addEventListener("click", () => command("clear_error", { kind: b.dataset.clear }));
  for (const b of document.querySelectorAll("[data-cmd]"))
    b.addEventListener("click", () => command(b.dataset.cmd));
  for (const b of document.querySelectorAll("[data-fault]"))
    b.addEventListener("click", () => command("add_fault", { spec: b.dataset.fault }));
  $("btn-clear-faults").addEventListener("click", async () => {
    const r = await api("DELETE", "/api/faults"); showResult(r.status, r.data, "clear_faults"); refreshFaults();
  });
  $("search").addEventListener("input", renderFleet);
  $("fleet-list").addEventListener("click", (e) => {
    const li = e.target.closest("li[data-serial]");
    if (li) select(li.dataset.serial);
  });
  $("token").value = state.token;
  $("token").addEventListener("change", () => {
    state.token = $("token").value.trim(); sessionStorage.setItem("minimeter-token", state.token);
  });
  window.addEventListener("hashchange", () => { const s = location.hash.slice(1); if (s) select(decodeURIComponent(s)); });
  window.addEventListener("resize", drawChart);
}

function applyMode(info) {
  const mode = $("mode");
  mode.textContent = info.writes ? "WRITES ON" : "READ-ONLY";
  mode.className = "mode " + (info.writes ? "rw" : "ro");
  $("controls-set").disabled = !info.writes;
  $("readonly-note").hidden = info.writes;
  $("token-box").hidden = !info.token_required;
  const ce = $("btn-clear-energy");
  ce.disabled = !info.energy_reset;
  ce.title = info.energy_reset ? "" : "locked: start the twin with --allow-energy-reset";
  $("profiles").replaceChildren(...info.profiles.map((p) => { const o = document.createElement("option"); o.value = p; return o; }));
}

async function main() {
  buildDigits();
  buildReadings();
  wireControls();
  state.info = await (await fetch("/api/info")).json();
  applyMode(state.info);
  state.fleet = await (await fetch("/api/meters")).json();
  $("fleet").hidden = state.fleet.length < 2;
  const wanted = decodeURIComponent(location.hash.slice(1));
  select(state.fleet.some((m) => m.serial === wanted) ? wanted : state.fleet[0].serial);
  setInterval(refreshFaults, 3000);
  requestAnimationFrame(ledTick);
}

main();
