// The dashboard: one page, three views, each drawn from the metrics API (`api/stat`,
// `api/routes`, `api/edges`). Paths are Linkerd's: /namespaces, /namespaces/NS,
// /namespaces/NS/deployments/NAME. The page may sit under a prefix (the API server's Service
// proxy), so every URL is built from the root the current path reveals.
"use strict";

const ROUTE = /\/(overview|namespaces(\/[^/]+(\/deployments\/[^/]+)?)?)\/?$/;
const root = location.pathname.replace(ROUTE, "").replace(/\/$/, "");
const REFRESH_MS = 10000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function link(path, text) {
  return el("a", { href: root + path }, text);
}

async function api(path, params) {
  const query = new URLSearchParams(params).toString();
  const res = await fetch(root + "/api/" + path + "?" + query, { headers: { Accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.message || res.status + " " + res.statusText);
  return body;
}

// Numbers as the CLI prints them; the raw value rides along in data-value.
const fmt = {
  success: (v) => (v === null || v === undefined ? "-" : (v * 100).toFixed(2) + "%"),
  rps: (v) => (v === null || v === undefined ? "-" : v.toFixed(1)),
  ms: (v) => (v === null || v === undefined ? "-" : Math.round(v) + " ms"),
  count: (v) => (v === null || v === undefined ? "-" : String(Math.round(v))),
};

function cell(column, value, text, cls) {
  return el("td", { "data-column": column, "data-value": value === null || value === undefined ? "" : value, class: cls }, text);
}

function successClass(v) {
  if (v === null || v === undefined) return undefined;
  return v >= 0.95 ? "good" : v >= 0.8 ? "warn" : "bad";
}

function metricCells(stats) {
  const s = stats || {};
  const lat = s.latency_ms || [null, null, null];
  return [
    cell("success", s.success, fmt.success(s.success), successClass(s.success)),
    cell("rps", stats ? s.rps : null, fmt.rps(stats ? s.rps : null)),
    cell("latency_p50", lat[0], fmt.ms(lat[0])),
    cell("latency_p95", lat[1], fmt.ms(lat[1])),
    cell("latency_p99", lat[2], fmt.ms(lat[2])),
  ];
}

function table(id, headers, rows, empty) {
  if (!rows.length) return el("p", { id, class: "empty" }, empty);
  return el("table", { id },
    el("thead", null, el("tr", null, ...headers.map((h) => el("th", null, h)))),
    el("tbody", null, ...rows));
}

function statTable(id, rows, nameCell, withStatus) {
  const headers = ["NAME"];
  if (withStatus) headers.push("STATUS");
  headers.push("MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN");
  const trs = rows.map((r) => {
    const s = r.stats;
    const tr = el("tr", { "data-name": r.listed.name, "data-namespace": r.listed.namespace });
    tr.append(el("td", { "data-column": "name", class: "text" }, nameCell(r)));
    if (withStatus) tr.append(cell("status", r.listed.status, r.listed.status || "", "text"));
    tr.append(cell("meshed", r.listed.meshed + "/" + r.listed.pods, r.listed.meshed + "/" + r.listed.pods));
    tr.append(...metricCells(s));
    const tcp = s ? s.tcp_connections : null;
    tr.append(cell("tcp_conn", tcp, fmt.count(tcp)));
    return tr;
  });
  return table(id, headers, trs, "No resources found.");
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren();
  parts.forEach((p, i) => {
    if (i) nav.append(" / ");
    nav.append(p);
  });
}

async function overview() {
  crumbs(link("/namespaces", "Namespaces"));
  const stat = await api("stat", { resource: "ns", all_namespaces: "true" });
  return [
    el("h1", null, "Namespaces"),
    statTable("namespaces", stat.rows, (r) => link("/namespaces/" + encodeURIComponent(r.listed.name), r.listed.name)),
  ];
}

async function namespace(ns) {
  crumbs(link("/namespaces", "Namespaces"), link("/namespaces/" + encodeURIComponent(ns), ns));
  const [deploys, pods] = await Promise.all([
    api("stat", { resource: "deploy", namespace: ns }),
    api("stat", { resource: "po", namespace: ns }),
  ]);
  const deployLink = (r) => link("/namespaces/" + encodeURIComponent(ns) + "/deployments/" + encodeURIComponent(r.listed.name), r.listed.name);
  return [
    el("h1", null, "Namespace: " + ns),
    el("h2", null, "Deployments"),
    statTable("deployments", deploys.rows, deployLink),
    el("h2", null, "Pods"),
    statTable("pods", pods.rows, (r) => r.listed.name, true),
  ];
}

async function deployment(ns, name) {
  const nsPath = "/namespaces/" + encodeURIComponent(ns);
  crumbs(link("/namespaces", "Namespaces"), link(nsPath, ns), link(nsPath + "/deployments/" + encodeURIComponent(name), name));
  const [stat, routes, edges] = await Promise.all([
    api("stat", { resource: "deploy/" + name, namespace: ns }),
    api("routes", { resource: "deploy/" + name, namespace: ns }),
    api("edges", { resource: "deploy", namespace: ns }),
  ]);
  const routeRows = routes.rows.map((r) => el("tr", { "data-name": r.route, "data-service": r.service },
    el("td", { "data-column": "route", class: "text" }, r.route),
    el("td", { "data-column": "service", class: "text" }, r.service),
    ...metricCells(r.stats)));
  const mine = edges.edges.filter((e) => e.src === name || e.dst === name);
  const edgeRows = mine.map((e) => el("tr", { "data-name": e.src + ">" + e.dst },
    el("td", { "data-column": "src", class: "text" }, e.src),
    el("td", { "data-column": "dst", class: "text" }, e.dst),
    el("td", { "data-column": "src_ns", class: "text" }, e.src_namespace),
    el("td", { "data-column": "dst_ns", class: "text" }, e.dst_namespace),
    el("td", { "data-column": "secured", "data-value": e.server_id ? "true" : "false", class: "text " + (e.server_id ? "good" : "bad") }, e.server_id ? "√" : "×"),
    el("td", { "data-column": "client_id", class: "text" }, e.client_id),
    el("td", { "data-column": "server_id", class: "text" }, e.server_id || e.no_tls_reason)));
  return [
    el("h1", null, "Deployment: " + name),
    statTable("deployment", stat.rows, (r) => r.listed.name),
    el("h2", null, "Routes"),
    table("routes", ["ROUTE", "SERVICE", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"], routeRows, "No routes found."),
    el("h2", null, "Edges"),
    table("edges", ["SRC", "DST", "SRC_NS", "DST_NS", "SECURED", "CLIENT_ID", "SERVER_ID"], edgeRows, "No edges found."),
  ];
}

async function render() {
  const m = location.pathname.match(ROUTE);
  const parts = m && m[1].startsWith("namespaces") ? m[1].split("/").slice(1).map(decodeURIComponent) : [];
  const view = document.getElementById("view");
  try {
    let content;
    if (parts.length >= 3) content = await deployment(parts[0], parts[2]);
    else if (parts.length === 1) content = await namespace(parts[0]);
    else content = await overview();
    view.replaceChildren(...content);
    view.setAttribute("data-loaded", new Date().toISOString());
  } catch (e) {
    view.replaceChildren(el("p", { class: "error", id: "error" }, "The metrics API answered: " + e.message));
  }
}

document.getElementById("home").setAttribute("href", root + "/");
render();
setInterval(render, REFRESH_MS);
