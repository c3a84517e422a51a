// The gateway's live dashboard. Reads /api/live (server-sent events, one update a second) and
// draws: service cards, a rates chart, the mesh map, top subjects, connections, recent events.
// Everything a client or peer chose (subjects, names) is inserted as text, never as HTML.
"use strict";

const HISTORY_SECONDS = 300;
const state = {
  selected: decodeURIComponent(location.hash.slice(1)) || null,
  source: null,
  history: [],          // [{at_ms, messages_in, messages_out}] of the selected service
  subjects: [], connections: [],
  sort: { subjects: { key: "messages_per_second", asc: false }, connections: { key: "rate", asc: false } },
};

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "class") node.className = value; else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function rate(value) {
  if (value >= 1e6) return (value / 1e6).toFixed(2) + " M";
  if (value >= 1e4) return (value / 1e3).toFixed(1) + " k";
  return value >= 10 ? Math.round(value).toString() : value.toFixed(1);
}

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return (unit === 0 ? Math.round(value) : value.toFixed(1)) + " " + units[unit];
}

function duration(ms) {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400); s %= 86400;
  const h = Math.floor(s / 3600); s %= 3600;
  const m = Math.floor(s / 60); s %= 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
}

// ---------------------------------------------------------------------------------------------
// The feed
// ---------------------------------------------------------------------------------------------

function connect() {
  if (state.source) state.source.close();
  const url = "/api/live" + (state.selected ? "?service=" + encodeURIComponent(state.selected) : "");
  const source = new EventSource(url);
  state.source = source;
  source.addEventListener("update", (event) => {
    setConnectionState("live", "live");
    render(JSON.parse(event.data));
  });
  source.onerror = () => {
    setConnectionState("down", "reconnecting…");
    // A 401 closes the stream for good: say how to get in.
    fetch("/api/gateway").then((response) => {
      if (response.status === 401) {
        source.close();
        showNotice("This gateway's monitoring requires a token: open /?token=YOUR_TOKEN once.");
      }
    }).catch(() => {});
  };
}

function setConnectionState(kind, text) {
  const badge = $("#connection-state");
  badge.className = "state " + kind;
  badge.textContent = text;
}

function showNotice(text) {
  const notice = $("#notice");
  notice.textContent = text;
  notice.hidden = false;
}

function select(name) {
  if (name === state.selected) return;
  state.selected = name;
  state.history = [];
  location.hash = encodeURIComponent(name);
  connect();
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

function render(update) {
  renderGateway(update.gateway);
  const services = update.services || [];
  if (!state.selected || !services.some((s) => s.name === state.selected)) {
    const first = services.find((s) => !s.name.startsWith("_")) || services[0];
    if (first && first.name !== state.selected) { select(first.name); }
  }
  renderServices(services);
  for (const node of document.querySelectorAll(".selected-name")) node.textContent = state.selected || "—";
  const selected = update.selected && update.selected.name === state.selected ? update.selected : null;
  if (selected) {
    if (selected.history) {
      state.history = selected.history.map((s) => ({ at_ms: s.at_ms, in: s.messages_in, out: s.messages_out }));
    } else {
      state.history.push({ at_ms: Date.now(), in: selected.rates.messages_in, out: selected.rates.messages_out });
    }
    if (state.history.length > HISTORY_SECONDS) state.history.splice(0, state.history.length - HISTORY_SECONDS);
    state.subjects = mergeSubjects(selected.top_subjects);
    state.connections = ((selected.connections && selected.connections.connections) || []).map((c) => ({
      ...c, rate: c.rates.messages_in + c.rates.messages_out,
    }));
    $("#window-note").textContent = selected.top_subjects.closed_at_ms
      ? "(last " + selected.top_subjects.window_seconds.toFixed(1) + " s)" : "(first window not closed yet)";
  }
  drawChart();
  renderSubjects();
  renderConnections();
  renderMesh(update.gateway, update.mesh || []);
  renderEvents(update.events || []);
}

function renderGateway(gateway) {
  $("#gateway-name").textContent = gateway.name;
  document.title = gateway.name + " — Messaging Mesh";
  const facts = $("#gateway-facts");
  facts.replaceChildren(
    "version ", el("b", {}, gateway.version),
    " · up ", el("b", {}, duration(gateway.uptime_ms)),
    " · memory ", el("b", {}, bytes(gateway.memory.resident_bytes)),
    " · clients ", el("b", {}, gateway.totals.clients),
    " · in ", el("b", {}, rate(gateway.totals.rates.messages_in) + " msg/s"),
    " · out ", el("b", {}, rate(gateway.totals.rates.messages_out) + " msg/s"),
    " · refused ", el("b", {}, gateway.totals.refused_connections),
  );
}

function renderServices(services) {
  const box = $("#services");
  if (services.length === 0) {
    box.replaceChildren(el("p", { class: "empty" }, "No service is running yet."));
    return;
  }
  box.replaceChildren(...services.map((service) => {
    const classes = ["card"];
    if (service.name === state.selected) classes.push("selected");
    if (!service.responsive) classes.push("unresponsive");
    const card = el("div", { class: classes.join(" "), "data-service": service.name,
                             "data-rate": service.responsive ? service.rates.messages_in + service.rates.messages_out : 0 });
    card.append(el("h3", {}, service.name));
    if (!service.responsive) {
      card.append(el("p", {}, "did not answer in time"));
    } else {
      const rows = [
        ["clients", service.clients, "clients"],
        ["links", service.links, "links"],
        ["subscriptions", service.subscriptions, "subscriptions"],
        ["msg/s in", rate(service.rates.messages_in), "messages-in"],
        ["msg/s out", rate(service.rates.messages_out), "messages-out"],
        ["bytes/s in", bytes(service.rates.bytes_in), "bytes-in"],
        ["slow consumers", service.counters.slow_consumers, "slow-consumers"],
      ];
      const list = el("dl");
      for (const [label, value, key] of rows) list.append(el("dt", {}, label), el("dd", { "data-field": key }, value));
      card.append(list);
    }
    card.addEventListener("click", () => select(service.name));
    return card;
  }));
}

function mergeSubjects(top) {
  const bySubject = new Map();
  for (const entry of [...(top.by_messages || []), ...(top.by_bytes || [])]) bySubject.set(entry.subject, entry);
  return [...bySubject.values()];
}

function sorted(rows, sort) {
  const factor = sort.asc ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[sort.key], y = b[sort.key];
    if (typeof x === "number" && typeof y === "number") return (x - y) * factor;
    return String(x).localeCompare(String(y)) * factor;
  });
}

function markSorted(table, sort) {
  for (const th of table.querySelectorAll("th")) {
    th.classList.toggle("sorted", th.dataset.key === sort.key);
    th.classList.toggle("asc", th.dataset.key === sort.key && sort.asc);
  }
}

function renderSubjects() {
  const table = $("#subjects");
  const sort = state.sort.subjects;
  markSorted(table, sort);
  const rows = sorted(state.subjects, sort).map((s) => el("tr", { "data-subject": s.subject },
    el("td", { class: "subject", title: s.subject }, s.subject),
    el("td", { class: "num" }, rate(s.messages_per_second)),
    el("td", { class: "num" }, bytes(s.bytes_per_second) + "/s")));
  table.tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 3, class: "empty" }, "No messages in the last window."))]));
}

function renderConnections() {
  const table = $("#connections");
  const sort = state.sort.connections;
  markSorted(table, sort);
  const rows = sorted(state.connections, sort).map((c) => el("tr", { "data-connection": c.id },
    el("td", { class: "num" }, c.id), el("td", {}, c.kind), el("td", {}, c.name), el("td", {}, c.address),
    el("td", { class: "num" }, rate(c.rate)), el("td", { class: "num" }, c.subscriptions),
    el("td", { class: "num" }, bytes(c.pending_bytes))));
  table.tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No connections."))]));
}

function drawChart() {
  const canvas = $("#rates-chart");
  const context = canvas.getContext("2d");
  const width = canvas.width, height = canvas.height, left = 56, bottom = 20;
  context.clearRect(0, 0, width, height);
  const points = state.history;
  const top = Math.max(10, ...points.map((p) => Math.max(p.in, p.out))) * 1.1;
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = "#667085";
  context.strokeStyle = "#e4e7ec";
  for (let i = 0; i <= 4; i++) {
    const y = (height - bottom) * (1 - i / 4);
    context.beginPath(); context.moveTo(left, y); context.lineTo(width, y); context.stroke();
    context.fillText(rate(top * i / 4), 4, Math.max(10, y - 2));
  }
  // The axis spans the history there is, from one minute up to five.
  const span = Math.min(HISTORY_SECONDS, Math.max(60, points.length));
  context.fillText(span >= 120 ? "-" + Math.round(span / 60) + " min" : "-" + span + " s", left, height - 4);
  context.fillText("now", width - 24, height - 4);
  const x = (index) => left + (width - left) * (span - points.length + index) / (span - 1);
  const y = (value) => (height - bottom) * (1 - value / top);
  for (const [key, color] of [["in", "#2f6fdf"], ["out", "#17a673"]]) {
    context.strokeStyle = color;
    context.lineWidth = 2;
    context.beginPath();
    points.forEach((p, i) => (i === 0 ? context.moveTo(x(i), y(p[key])) : context.lineTo(x(i), y(p[key]))));
    context.stroke();
  }
  canvas.dataset.samples = points.length;
  canvas.dataset.last = points.length ? points[points.length - 1].in : 0;
}

// The mesh map: this gateway in the middle, every peer it knows of (configured addresses and
// peers that dialled in) around it, one edge per peer coloured by the state of its links.
function renderMesh(gateway, meshes) {
  const peers = new Map();
  const key = (id, fallback) => id || fallback;
  for (const mesh of meshes) {
    for (const peer of mesh.peers) {
      if (peer.state === "self") continue;
      const k = key(peer.peer_id, peer.address);
      const entry = peers.get(k) || { name: "", up: false, services: new Set() };
      entry.name = peer.peer_name || entry.name || peer.address;
      entry.up = entry.up || peer.state === "up";
      entry.services.add(mesh.service);
      peers.set(k, entry);
    }
    for (const link of mesh.links) {
      const k = key(link.peer_id, link.address);
      const entry = peers.get(k) || { name: "", up: false, services: new Set() };
      entry.name = link.peer_name || entry.name || link.address;
      entry.up = true;
      entry.rtt = link.rtt_ms != null ? link.rtt_ms : entry.rtt;
      entry.services.add(mesh.service);
      peers.set(k, entry);
    }
  }
  const map = $("#mesh-map");
  const nodes = [...peers.values()].sort((a, b) => a.name.localeCompare(b.name));
  const children = [];
  nodes.forEach((peer, index) => {
    const angle = (2 * Math.PI * index) / nodes.length;
    const px = Math.cos(angle) * 150, py = Math.sin(angle) * 100;
    const status = peer.up ? "up" : "down";
    children.push(svg("line", { class: "edge " + status, x1: 0, y1: 0, x2: px, y2: py }));
    const group = svg("g", { class: "node " + status, "data-peer": peer.name, transform: `translate(${px},${py})` });
    group.append(svg("circle", { r: 14 }));
    group.append(svg("text", { y: 28 }, peer.name));
    const detail = (peer.rtt != null ? peer.rtt.toFixed(2) + " ms · " : "") + [...peer.services].join(", ");
    group.append(svg("text", { y: 41, class: "detail" }, detail));
    children.push(group);
  });
  const self = svg("g", { class: "node self", "data-peer": gateway.name });
  self.append(svg("circle", { r: 18 }));
  self.append(svg("text", { y: 34 }, gateway.name + " (this gateway)"));
  children.push(self);
  map.replaceChildren(...children);
}

function renderEvents(events) {
  const list = $("#events");
  if (events.length === 0) {
    list.replaceChildren(el("li", { class: "empty" }, "Nothing yet."));
    return;
  }
  list.replaceChildren(...[...events].reverse().map((event) => el("li", { class: event.kind },
    el("time", {}, new Date(event.at_ms).toLocaleTimeString()),
    el("span", { class: "kind" }, event.kind.replace(/_/g, " ")),
    (event.service ? "[" + event.service + "] " : "") + event.subject + (event.detail ? " — " + event.detail : ""))));
}

function sortable(tableId, sortKey) {
  $(tableId).tHead.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th) return;
    const sort = state.sort[sortKey];
    if (sort.key === th.dataset.key) sort.asc = !sort.asc; else { sort.key = th.dataset.key; sort.asc = false; }
    if (sortKey === "subjects") renderSubjects(); else renderConnections();
  });
}

window.addEventListener("DOMContentLoaded", () => {
  sortable("#subjects", "subjects");
  sortable("#connections", "connections");
  connect();
});
