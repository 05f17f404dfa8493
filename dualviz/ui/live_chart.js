// The live panel (dualviz/ui/live_chart.py): figures that grow from job streams.
//
// Python draws every figure (dualviz.plots) and names what a stream changes: objective traces
// carry meta {restart, series} (extended with the stream's points), whole-vector traces meta
// {role} (replaced). This module only routes stream batches to traces, a batch per animation
// frame while few wait: a slow browser draws more points per redraw instead of falling behind.
// Streamlit calls the default export again whenever `data` changes (same DOM, no cleanup in
// between), so everything is kept on the root element and rebuilt only for a new version.

function loadPlotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__dvPlotly) {
    window.__dvPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => resolve(window.Plotly);
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }
  return window.__dvPlotly;
}

const MAX_TRACE_POINTS = 3000;  // beyond, a trace keeps every other point (and its last)

function statusText(stream) {
  const s = stream.state;
  if (!s || !s.status) return stream.initial || "starting";
  const now = Date.now() / 1000;
  switch (s.status) {
    case "running": return `running for ${(now - (stream.started || now)).toFixed(1)} s`;
    case "queued": return "queued: waiting for a free worker";
    case "done": return stream.doneText || "done";
    default: return `${s.status}: ${s.error || ""}`;
  }
}

function renderCaption(root, data) {
  const parts = data.streams.map((stream, i) => `${stream.label}: ${statusText(root.__dv.streams[i])}`);
  root.querySelector(".dv-caption p").innerText = [...parts, `experiment ${data.experiment}`].join(" · ");
}

function renderMetrics(root, readout) {
  for (const box of root.querySelectorAll(".dv-metric")) {
    const key = box.dataset.key;
    if (readout[key] !== undefined) box.querySelector(".dv-value").innerText = readout[key];
    const labelKey = `${key}_label`;
    if (readout[labelKey] !== undefined) box.querySelector(".dv-label").innerText = readout[labelKey];
  }
}

function traceIndex(gd, match) {
  return gd.data.findIndex((t) => t.meta && Object.entries(match).every(([k, v]) => t.meta[k] === v));
}

// A growing figure draws its batches one per frame, oldest first, while at most this many
// wait; beyond, it catches up and draws all that wait at once. Batches often arrive two in
// one frame (the server reads its store every 15 ms, the browser paints every ~23 ms under
// load): drawn together, the curve would skip a step the job took.
const PACED_BACKLOG = 3;

function emptyUpdate() {
  return { extend: {}, replace: {} };
}

function merge(into, update) {
  for (const [key, points] of Object.entries(update.extend || {})) {
    const slot = into.extend[key] || (into.extend[key] = { match: points.match, x: [], y: [] });
    // A loop, not push(...points): a step a hidden tab held can pass the engine's limit on
    // the arguments of one call.
    for (const x of points.x) slot.x.push(x);
    for (const y of points.y) slot.y.push(y);
  }
  Object.assign(into.replace, update.replace || {});  // whole vectors: the newest counts
  return into;
}

// dv.pending[figureId]: the updates not yet drawn, oldest first; a batch that extends curves
// is a step of its own, whole vectors join the newest step, and so does everything once more
// than PACED_BACKLOG wait (they are drawn at once anyway: a hidden tab, which draws no frames,
// holds its points, not a step per batch).
function queue(root, figureId, update) {
  const dv = root.__dv;
  const extends_ = Object.keys(update.extend || {}).length > 0;
  if (!extends_ && !Object.keys(update.replace || {}).length) return;  // nothing: no redraw
  const steps = dv.pending[figureId] || (dv.pending[figureId] = []);
  const last = steps[steps.length - 1];
  const own = extends_ && last && Object.keys(last.extend).length &&
    steps.length <= PACED_BACKLOG;
  if (last && !own) merge(last, update);
  else steps.push(merge(emptyUpdate(), update));
  if (!dv.frame) dv.frame = requestAnimationFrame(() => flush(root));
}

// How many of a figure's waiting steps this frame draws, and what they add up to.
function nextSteps(steps) {
  if (steps.length <= PACED_BACKLOG) return { take: 1, update: steps[0] };
  return { take: steps.length, update: steps.reduce(merge, emptyUpdate()) };
}

// Forget the steps drawn (or found empty); true if more wait.
function dropSteps(dv, figureId, take) {
  const steps = dv.pending[figureId];
  steps.splice(0, take);
  if (steps.length) return true;
  delete dv.pending[figureId];
  return false;
}

// Figures that only replace whole vectors (spectra, layer spectra, fitted functions) are
// redrawn at most this often; the objective curve, whose growth is the live view, gets every
// frame. A figure costs a full Plotly redraw per call, and these would otherwise take most of
// each frame on a slow laptop.
const VECTOR_REDRAW_MS = 250;

// A growing curve is drawn without Plotly's full redraw (axes, legend, annotations: about
// two thirds of a redraw) whenever that redraw would change nothing but the curves: every
// extended trace already has points (its legend entry is drawn) and every new point lies
// within the axes' ranges. Autoranged axes are given headroom when a point leaves them, so
// that this holds for most batches: the x axis grows by half its span, a y axis by a quarter
// (a log axis in decades), instead of fitting the data anew at every batch. An axis the
// viewer zoomed or panned is left as they set it.
const HEADROOM = { x: 0.5, y: 0.25 };
const IN_PLACE = { transition: { duration: 0 }, frame: { duration: 0, redraw: false } };
// A figure's axes grow by a full redraw at most this often; in between, points beyond them
// are drawn in place (clipped at the plot's edge for a moment) and the growth they ask for
// is kept for the next one. A full redraw of the objective figure costs 30..200 ms while two
// jobs train: one per batch would hold the curves to a few frames a second.
const GROW_EVERY_MS = 300;

function axisName(trace, letter) {
  const id = trace[`${letter}axis`] || letter;  // "x", "x2", ...
  return `${letter}axis${id.slice(1)}`;
}

// The ranges the axes need for new points on `traces` (each {trace, x, y}), starting from
// the growth a figure still owes; fits: every trace already has points.
function plannedRanges(spec, traces) {
  const full = spec.gd._fullLayout;
  spec.ranges = spec.ranges || {};  // axis -> the range this module gave it
  const grow = { ...(spec.owed || {}) };
  let fits = true;
  for (const { trace, x, y } of traces) {
    if (!trace.x || !trace.x.length) fits = false;  // its first points: the legend changes
    for (const [letter, values] of [["x", x], ["y", y]]) {
      const name = axisName(trace, letter);
      const axis = full[name];
      if (!axis || !axis.range) { fits = false; continue; }
      const ours = spec.ranges[name];
      const managed = axis.autorange === true ||
        (ours && ours[0] === axis.range[0] && ours[1] === axis.range[1]);
      if (!managed) continue;
      const log = axis.type === "log";
      for (const v of values) {
        if (v === null || v === undefined || (log && !(v > 0))) continue;
        const u = log ? Math.log10(v) : v;
        const [a, b] = grow[name] || axis.range;
        if (u >= a && u <= b) continue;
        const low = Math.min(a, u), high = Math.max(b, u);
        // At least half a decade on a log axis: a nearly constant gap would otherwise
        // grow it by slivers, each a full redraw with long tick labels.
        const pad = Math.max(HEADROOM[letter] * (high - low), log ? 0.5 : 0) || 1;
        grow[name] = [u < a ? low - pad : a, u > b ? high + pad : b];
      }
    }
  }
  return { fits, grow };
}

// Give the axes their grown ranges (and the axes that match them: one shared iteration
// axis), for the full redraw that follows.
function applyRanges(spec, grow) {
  const gd = spec.gd;
  for (const [name, range] of Object.entries(grow)) {
    for (const other of matchedAxes(gd, name)) {
      gd.layout[other] = { ...(gd.layout[other] || {}), range, autorange: false };
      spec.ranges[other] = range;
    }
  }
  spec.owed = null;
}

// The points of a trace as last handed to Plotly: an in-place draw reaches gd.data a frame
// or two later, and the next one must not wait for it (it would halve the frame rate).
function latestPoints(spec, index) {
  return (spec.latest && spec.latest.get(index)) || spec.gd.data[index];
}

// The curves grown in place; the draw counts once Plotly has drawn it. Calls queue in Plotly
// (one drawn per frame, in order), each with every point of its traces: gd.data has not yet
// got the previous call's points. Full redraws wait until these are drawn (`inFlight`):
// they rewrite gd.data.
function drawInPlace(spec, indices, xs, ys, counted) {
  const gd = spec.gd;
  spec.latest = spec.latest || new Map();
  const data = indices.map((index, k) => {
    const trace = latestPoints(spec, index);
    const points = { x: trace.x.concat(xs[k]), y: trace.y.concat(ys[k]) };
    spec.latest.set(index, points);
    return points;
  });
  spec.inFlight = (spec.inFlight || 0) + 1;
  spec.inFlightSince = performance.now();
  const settled = () => { spec.inFlight = Math.max(0, spec.inFlight - 1); };
  Plotly.animate(gd, { data, traces: indices }, { ...IN_PLACE, mode: "afterall" })
    .then(() => { settled(); counted(); }, settled);
}

function matchedAxes(gd, name) {
  const id = (axis) => axis.replace(/^([xy])axis/, "$1");  // "xaxis2" -> "x2"
  const group = new Set([name]);
  for (let grew = true; grew;) {  // the closure of "matches", either way round
    grew = false;
    for (const [other, axis] of Object.entries(gd.layout)) {
      if (!/^[xy]axis\d*$/.test(other) || group.has(other) || !axis) continue;
      const linked = [...group].some((g) => axis.matches === id(g) ||
                                            (gd.layout[g] || {}).matches === id(other));
      if (linked) { group.add(other); grew = true; }
    }
  }
  return group;
}

// In-place draws not yet drawn (one that never settles, say on a figure Plotly dropped,
// counts for a second at most).
function drawing(spec, now) {
  return spec.inFlight > 0 && now - spec.inFlightSince < 1000;
}

// gd.data given every point handed to in-place draws (a full redraw draws from it).
function adoptLatest(spec) {
  for (const [index, points] of spec.latest || []) Object.assign(spec.gd.data[index], points);
  spec.latest = null;
}

// A full redraw of every point drawn so far, the axes given the growth they need.
function redrawFull(spec, grow, now) {
  adoptLatest(spec);
  applyRanges(spec, grow);
  Plotly.redraw(spec.gd);
  spec.fullAt = now;
}

// The trace of a restart that started after the page was drawn, from the figure's template.
function restartTrace(dv, spec, match) {
  const template = spec.templates[match.series];
  if (!template) return null;
  const trace = JSON.parse(JSON.stringify(template));
  trace.meta = { ...trace.meta, ...match };
  trace.line = { ...trace.line, color: spec.colors[match.restart % spec.colors.length] };
  trace.legendgroup = String(match.restart);
  const label = (dv.labels || {})[match.restart];
  trace.name = trace.name.replace("{restart}", String(match.restart + 1) +
                                  (label ? ` (${label})` : ""));
  return trace;
}

// A figure's draw counter and the milliseconds it spent in Plotly (what benchmarks read).
function countDraw(dv, figureId, gd, ms) {
  dv.draws[figureId] = (dv.draws[figureId] || 0) + 1;
  gd.dataset.draws = String(dv.draws[figureId]);
  dv.drawMs[figureId] = (dv.drawMs[figureId] || 0) + ms;
  gd.dataset.drawMs = dv.drawMs[figureId].toFixed(1);
}

function flush(root) {
  const dv = root.__dv;
  dv.frame = null;
  const now = performance.now();
  let waiting = false;
  let vectorDrawn = false;
  // Growing curves first; then at most one whole-vector figure per frame (the one drawn
  // longest ago), so that no frame holds several full redraws and the curves keep their pace.
  const entries = Object.entries(dv.pending).map(([figureId, steps]) => {
    const spec = dv.figures[figureId];
    const { take, update: pending } = nextSteps(steps);
    return { figureId, pending, take, spec, onlyVectors: !Object.keys(pending.extend).length,
             drawnAt: (spec && spec.drawnAt) || -Infinity };
  }).sort((a, b) => (a.onlyVectors - b.onlyVectors) || (a.drawnAt - b.drawnAt));
  for (const { figureId, pending, take, spec, onlyVectors } of entries) {
    const gd = spec && spec.gd;
    if (!gd || !gd.data) { delete dv.pending[figureId]; continue; }
    if (onlyVectors && (vectorDrawn || now - (spec.drawnAt || -Infinity) < VECTOR_REDRAW_MS)) {
      waiting = true;  // kept: the newest vectors are drawn on a later frame
      continue;
    }
    const began = performance.now();
    const indices = [], xs = [], ys = [];
    const added = [];  // traces of restarts that started after the page was drawn
    for (const slot of Object.values(pending.extend)) {
      const index = traceIndex(gd, slot.match);
      if (index >= 0) {
        indices.push(index);
        xs.push(slot.x);
        ys.push(slot.y);
      } else {
        const trace = restartTrace(dv, spec, slot.match);
        if (trace) added.push({ ...trace, x: slot.x, y: slot.y });
      }
    }
    // Every replaced trace, keyed by index: {x, y} or {z}.
    const replaced = new Map();
    for (const [role, value] of Object.entries(pending.replace)) {
      gd.data.forEach((trace, index) => {
        if (!trace.meta || trace.meta.role !== role) return;
        const update = role === "layer" ? value[trace.meta.index] : value;
        if (!update) return;
        if (trace.type === "heatmap") {
          const [rows, cols] = trace.meta.shape;
          const z = [];
          for (let r = 0; r < rows; r++) z.push(update.slice(r * cols, (r + 1) * cols));
          replaced.set(index, { z });
        } else if (Array.isArray(update)) {
          replaced.set(index, { x: update.map((_, i) => i + 1), y: update });
        } else {
          replaced.set(index, { x: update.x || trace.x, y: update.y });
        }
      });
    }
    const extended = indices.map((index, k) => ({ trace: latestPoints(spec, index), x: xs[k],
                                                  y: ys[k], index }));
    const { fits, grow } = plannedRanges(spec, [...extended, ...added.map((trace) => (
      { trace: { ...trace, x: [] }, x: trace.x, y: trace.y }))]);
    const light = extended.every(({ trace, x }) => (trace.x || []).length + x.length <=
                                 MAX_TRACE_POINTS);
    const grown = Object.keys(grow).length > 0;
    const early = now - (spec.fullAt || -Infinity) < GROW_EVERY_MS;
    const inPlace = indices.length && fits && light && !added.length && !replaced.size &&
      (!grown || early);
    if (!indices.length && !added.length && !replaced.size) {
      waiting = dropSteps(dv, figureId, take) || waiting;  // nothing for this figure's traces
      continue;
    }
    if (!inPlace && drawing(spec, now)) { waiting = true; continue; }  // a full redraw waits
    if (onlyVectors) vectorDrawn = true;
    waiting = dropSteps(dv, figureId, take) || waiting;
    spec.drawnAt = now;
    if (inPlace) {
      spec.owed = grown ? grow : null;
      let ms = 0;  // the call's own cost; Plotly draws on a later frame
      drawInPlace(spec, indices, xs, ys, () => countDraw(dv, figureId, gd, ms));
      ms = performance.now() - began;
      continue;
    }
    // One full redraw for all this frame changes in the figure: new traces, new points,
    // replaced vectors, grown axes, long traces thinned.
    adoptLatest(spec);
    extended.forEach(({ index, x, y }) => {
      const trace = gd.data[index];
      trace.x = (trace.x || []).concat(x);
      trace.y = (trace.y || []).concat(y);
    });
    gd.data.push(...added);
    for (const [index, update] of replaced) Object.assign(gd.data[index], update);
    for (const trace of gd.data) {  // long runs: keep traces light
      if (trace.x && trace.x.length > MAX_TRACE_POINTS && trace.type !== "heatmap") {
        const keep = (_, k, a) => k % 2 === 0 || k === a.length - 1;
        trace.x = trace.x.filter(keep);
        trace.y = trace.y.filter(keep);
      }
    }
    redrawFull(spec, grow, now);
    countDraw(dv, figureId, gd, performance.now() - began);
  }
  // Growth owed by figures that have nothing new to draw (the run ended, or a pause): their
  // full redraw once GROW_EVERY_MS has passed since the last one.
  for (const [figureId, spec] of Object.entries(dv.figures)) {
    if (!spec.owed) continue;
    if (dv.pending[figureId] || drawing(spec, now) || now - spec.fullAt < GROW_EVERY_MS) {
      waiting = true;
      continue;
    }
    const began = performance.now();
    redrawFull(spec, spec.owed, now);
    countDraw(dv, figureId, spec.gd, performance.now() - began);
  }
  if (waiting && !dv.frame) dv.frame = requestAnimationFrame(() => flush(root));
}

function onBatch(root, streamIndex, batch) {
  const dv = root.__dv;
  if (streamIndex === dv.data.featured) dv.labels = { ...(dv.labels || {}), ...(batch.labels || {}) };
  for (const [figureId, spec] of Object.entries(dv.figures)) {
    if (spec.stream !== streamIndex && !(spec.streams || []).includes(streamIndex)) continue;
    const update = { extend: {}, replace: {} };
    if (spec.role === "objective" || spec.role === "comparison") {
      for (const [restart, series] of Object.entries(batch.restarts)) {
        for (const [name, points] of Object.entries(series)) {
          if (!spec.templates[name] || !points[0].length) continue;
          const match = spec.role === "comparison"
            ? { curve: spec.curves[streamIndex], restart: +restart, series: name }
            : { restart: +restart, series: name };
          update.extend[JSON.stringify(match)] = { match, x: points[0], y: points[1] };
        }
      }
    }
    const vectors = batch.vectors || {};
    if (spec.role === "spectrum" && vectors.learned) update.replace.learned = vectors.learned;
    if (spec.role === "layers" && vectors.layers) update.replace.layer = vectors.layers;
    if (spec.role === "fit" && vectors.trained) update.replace.trained = vectors.trained;
    queue(root, figureId, update);
  }
  if (streamIndex === dv.data.featured && batch.readout) renderMetrics(root, batch.readout);
}

function onState(root, streamIndex, state) {
  const dv = root.__dv;
  const stream = dv.streams[streamIndex];
  stream.state = state;
  if (state.started) stream.started = state.started;
  if (state.status === "done" && state.took !== undefined) stream.doneText = `done in ${state.took.toFixed(1)} s`;
  if (streamIndex === dv.data.featured) {
    renderMetrics(root, state.readout || {});
    const spec = Object.values(dv.figures).find((f) => f.role === "objective");
    const layout = state.layout && JSON.stringify(state.layout);
    if (spec && spec.gd && layout && layout !== dv.layout) {  // a relayout is a redraw
      dv.layout = layout;
      const font = (spec.figure.layout.font || {}).size || 15;
      const keep = (items, yref) => (spec.gd.layout[items] || []).filter((s) => s.yref !== yref);
      const notes = state.layout.annotations.map((a) => ({ ...a, font: { ...a.font, size: font - 1 } }));
      Plotly.relayout(spec.gd, { shapes: [...keep("shapes", "y"), ...state.layout.shapes],
                                 annotations: [...keep("annotations", "y"), ...notes] });
    }
  }
  renderCaption(root, dv.data);
}

const REOPEN_MS = 2000;  // a refused stream (the server's cap) is asked again after 2-4 s

function openStream(root, i) {
  const dv = root.__dv;
  const spec = dv.data.streams[i];
  const stream = dv.streams[i];
  const url = new URL(spec.url, location.href);
  if (stream.cursor !== undefined) url.searchParams.set("after", String(stream.cursor));
  const source = new EventSource(url);
  stream.source = source;
  source.addEventListener("batch", (ev) => {
    if (ev.lastEventId) stream.cursor = +ev.lastEventId;
    onBatch(root, i, JSON.parse(ev.data));
  });
  source.addEventListener("state", (ev) => onState(root, i, JSON.parse(ev.data)));
  source.addEventListener("end", (ev) => {
    onState(root, i, JSON.parse(ev.data));
    source.close();
    stream.ended = true;
    // One rerun draws the final result; a follower's comes as the presenter's next panel.
    if (!dv.data.room && dv.streams.every((s, k) => s.ended || !dv.data.streams[k].url)) {
      dv.setTriggerValue("ended", dv.data.version);
    }
  });
  // EventSource reconnects by itself after a dropped connection, but not after an HTTP error
  // (503: the server's stream cap): then this page asks again, from the last batch it drew.
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED || stream.ended) return;
    setTimeout(() => {
      if (root.__dv === dv && !stream.ended) openStream(root, i);
    }, REOPEN_MS * (1 + Math.random()));
  });
}

function openStreams(root) {
  root.__dv.data.streams.forEach((spec, i) => { if (spec.url) openStream(root, i); });
}

function closeStreams(root) {
  for (const stream of (root.__dv && root.__dv.streams) || []) {
    if (stream.source) stream.source.close();
  }
}

// A room's follower: the room's stream brings the presenter's view at every change, with the
// live panel to draw (dualviz.service.rooms). A panel is drawn here, and the address becomes
// the presenter's query, without a rerun; a view on another page, or without a panel (a page
// with no live panel), reruns the page, which moves there. (openRoomStream: room_stream.js.)
function followRoom(root, room, setTriggerValue) {
  const current = root.__room;
  if (current && current.url === room.url && !current.stream.closed) {
    // The page ran again (it moved to the presenter's page): the stream stays, and what it
    // is compared with becomes what this run shows.
    Object.assign(current, { room, setTriggerValue });
    return;
  }
  if (current) current.stream.close();
  const address = (page, query) => location.pathname.replace(/[^/]*$/, "") + page + "?" +
    (query ? query + "&" : "") + "follow=" + encodeURIComponent(room.name);
  const follow = root.__room = { url: room.url, room, setTriggerValue, stream: null };
  follow.stream = openRoomStream(room.url, root, {
    view: (view) => {
      // A follower's address names its room until it explores on its own: from then on (its
      // page may still be running, this element not yet removed) nothing more is followed.
      if (new URLSearchParams(location.search).get("follow") !== room.name) {
        follow.stream.close();
        return;
      }
      const shown = follow.room;
      if (!view.panel || view.page !== shown.page) {  // another page: the page moves there
        if (view.seq !== shown.seq) follow.setTriggerValue("moved", view.seq);
        return;
      }
      history.replaceState(history.state, "", address(view.page, view.query));
      root.dataset.roomSeq = String(view.seq);
      if (!root.__dv || root.__dv.data.version !== view.panel.version) {
        mount(root, { ...view.panel, room: shown }, follow.setTriggerValue);
      }
    },
    closed: () => { follow.stream.close(); follow.setTriggerValue("closed", true); },
  });
  const gone = setInterval(() => {  // the panel's job streams go with the element too
    if (root.isConnected) return;
    clearInterval(gone);
    closeStreams(root);
  }, 1000);
}

export default function ({ data, parentElement, setTriggerValue }) {
  const root = parentElement.querySelector(".dv-live");
  if (data.room) {
    followRoom(root, data.room, setTriggerValue);
    const drawn = root.__dv && root.__dv.data.room;
    if (drawn && drawn.page === data.room.page) return;  // the room's stream is ahead of the page
  } else if (root.__room) {
    root.__room.stream.close();
    root.__room = null;
  }
  if (root.__dv && root.__dv.data.version === data.version) return;  // same run: keep streaming
  mount(root, data, setTriggerValue);
  return () => {
    closeStreams(root);
    if (root.__dv) clearInterval(root.__dv.clock);
    if (root.__room) root.__room.stream.close();
  };
}

function mount(root, data, setTriggerValue) {
  closeStreams(root);
  if (root.__dv && root.__dv.clock) clearInterval(root.__dv.clock);
  root.classList.toggle("dv-presenter", !!data.presenter);
  root.__dv = { data, setTriggerValue, figures: {}, pending: {}, draws: {}, drawMs: {}, frame: null,
                streams: data.streams.map((s) => ({ initial: s.status, started: s.started,
                                                    doneText: s.done_text })) };
  const metrics = root.querySelector(".dv-metrics");
  metrics.innerHTML = "";
  for (const m of data.metrics) {
    const box = document.createElement("div");
    box.className = "dv-metric";
    box.dataset.key = m.key;
    box.setAttribute("data-testid", "stMetric");
    box.title = m.help || "";
    box.innerHTML = '<div class="dv-label" data-testid="stMetricLabel"></div>' +
                    '<div class="dv-value" data-testid="stMetricValue"></div>';
    box.querySelector(".dv-label").innerText = m.label;
    box.querySelector(".dv-value").innerText = m.value;
    metrics.appendChild(box);
  }
  renderCaption(root, data);
  const grid = root.querySelector(".dv-figures");
  grid.innerHTML = "";
  loadPlotly(data.plotly).then((Plotly) => {
    if (root.__dv.data !== data) return;  // replaced meanwhile
    for (const spec of data.figures) {
      const cell = document.createElement("div");
      cell.className = `dv-cell dv-span-${spec.span || 1}`;
      const gd = document.createElement("div");
      gd.className = `dv-figure dv-fig-${spec.id}`;
      cell.appendChild(gd);
      grid.appendChild(cell);
      Plotly.newPlot(gd, spec.figure.data, spec.figure.layout,
                     { displaylogo: false, responsive: true });
      root.__dv.figures[spec.id] = { ...spec, gd };
    }
    openStreams(root);
  });
  root.__dv.clock = setInterval(() => renderCaption(root, data), 500);  // "running for ..."
  if (data.retry_after) setTimeout(() => setTriggerValue("retry", Date.now()), data.retry_after * 1000);
}
