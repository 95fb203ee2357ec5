// The dms dashboard: reads the node through /dashboard/api/* with a session token kept
// in this tab's sessionStorage (see crates/dms-api/src/dashboard.rs for the login).
'use strict';

const KEY = 'dms-session';
const $ = (id) => document.getElementById(id);
const state = { session: null, chosen: null, watch: 0, logLine: 0, logFor: null };

// ---- talking to the daemon -------------------------------------------------------

async function login() {
  const m = /^#login=([0-9a-f]+)$/.exec(location.hash);
  if (m) {
    history.replaceState(null, '', location.pathname);
    const r = await fetch('/dashboard/session', { method: 'POST', body: m[1] });
    const body = await r.json();
    if (!r.ok) throw new Error(body.message);
    sessionStorage.setItem(KEY, body.token);
  }
  state.session = sessionStorage.getItem(KEY);
  if (!state.session) {
    throw new Error('Not logged in: run `dms dashboard` (or `dms dashboard --url`) for a login link.');
  }
}

async function get(url) {
  const r = await fetch(url, { headers: { Authorization: 'Bearer ' + state.session } });
  const body = r.status === 204 ? null : await r.json();
  if (r.status === 401) {
    sessionStorage.removeItem(KEY);
    state.session = null;
  }
  if (!r.ok) throw new Error(body && body.message ? body.message : r.statusText);
  return body;
}

function call(behavior, payload) {
  const q = new URLSearchParams({ behavior, payload: payload ? JSON.stringify(payload) : '' });
  return get('/dashboard/api/call?' + q);
}

// ---- drawing helpers ---------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ''));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function facts(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function rows(table, list, render) {
  $(table).querySelector('tbody').replaceChildren(...list.map(render));
}

const short = (s) => (s && s.length > 22 ? s.slice(0, 12) + '…' + s.slice(-6) : s || '—');
const bytes = (n) => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
};
const cpu = (m) => (m / 1000).toFixed(m % 1000 ? 2 : 0) + ' CPU';
const res = (r) => (r ? `${cpu(r.cpu_millicores)}, ${bytes(r.ram_bytes)} RAM, ${bytes(r.disk_bytes)} disk` : '—');
const duration = (secs) => {
  const d = Math.floor(secs / 86400), h = Math.floor(secs / 3600) % 24, m = Math.floor(secs / 60) % 60;
  return [d && d + 'd', h && h + 'h', m && m + 'm', (secs % 60) + 's'].filter(Boolean).slice(0, 2).join(' ');
};
const when = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');
const ago = (ms) => (ms ? Math.max(0, Math.round((Date.now() - ms) / 1000)) + ' s ago' : '—');
const badge = (s) => el('span', { class: 'badge ' + s }, s);

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

// ---- the node ----------------------------------------------------------------------

async function node() {
  const [status, peers, onboarding] = await Promise.all([
    call('/public/status'), call('/dms/node/peers/list'), call('/dms/node/onboarding/status'),
  ]);
  $('node-did').textContent = status.did;
  facts('node-facts', [
    ['identity', el('span', { class: 'mono' }, status.did)],
    ['up', duration(status.uptime_secs)],
    ['peers', `${peers.length} (${peers.filter((p) => p.path === 'direct').length} direct)`],
  ]);
  const on = onboarding.onboarded;
  facts('resources', on ? [
    ['onboarded', res(on.resources)],
    ['free', res(onboarding.free)],
    ['reserved', res(onboarding.committed)],
    ['allocated', res(onboarding.allocated)],
    ['hosting', Object.keys(onboarding.allocations || {}).length + ' allocations'],
  ] : [['onboarded', 'not onboarded (`dms onboard --cpu 2 --ram 4GiB --disk 20GiB`)']]);
  const scores = onboarding.benchmark ? onboarding.benchmark.scores : null;
  facts('benchmarks', scores
    ? Object.entries(scores).map(([k, v]) => [k, typeof v === 'number' ? v.toFixed(1) : JSON.stringify(v)])
    : [['scores', onboarding.benchmark_running ? 'running now' : 'none yet (`dms benchmark`)']]);
  rows('peers', peers, (p) => el('tr', {},
    el('td', { class: 'mono' }, p.peer_id), el('td', {}, p.path),
    el('td', { class: 'mono' }, p.addrs.join(' ')), el('td', {}, p.rtt_ms == null ? '—' : p.rtt_ms + ' ms')));
}

async function deployments() {
  const list = await call('/dms/node/deployment/list');
  rows('deployment-list', list, (d) => {
    const tr = el('tr', { class: 'pick' + (d.id === state.chosen ? ' chosen' : ''), 'data-id': d.id },
      el('td', { class: 'mono' }, d.id), el('td', {}, badge(d.state)),
      el('td', {}, `${d.running}/${d.allocations}`), el('td', {}, d.peers.length),
      el('td', {}, when(d.created_ms)), el('td', { class: 'reason' }, d.reason || ''));
    tr.addEventListener('click', () => choose(d.id));
    return tr;
  });
  if (!state.chosen && list.length) choose(list[0].id);
}

async function capabilities() {
  const contexts = await get('/dashboard/api/caps');
  rows('contexts', contexts, (c) => el('tr', {},
    el('td', {}, c.name), el('td', { class: 'mono' }, short(c.did)),
    el('td', {}, c.roots.length), el('td', {}, c.require.length),
    el('td', {}, c.provide.length), el('td', {}, c.revoked.length)));
}

// ---- one deployment: map, allocations, live events, logs ---------------------------

function choose(id) {
  if (state.chosen === id) return;
  state.chosen = id;
  state.watch += 1;
  state.logFor = null;
  $('deployment').hidden = false;
  $('deployment-id').textContent = id;
  $('events').replaceChildren();
  $('logs').textContent = '';
  $('log-allocation').replaceChildren();
  for (const tr of document.querySelectorAll('#deployment-list tbody tr')) {
    tr.classList.toggle('chosen', tr.dataset.id === id);
  }
  watch(id, state.watch);
}

// Long-polls the deployment's status: each answer brings the events after the last
// one seen, so new events appear as they happen.
async function watch(id, generation) {
  let after = 0;
  while (state.watch === generation) {
    try {
      const s = await call('/dms/node/deployment/status', { id, after, wait_ms: 10000 });
      if (state.watch !== generation) return;
      show(s);
      for (const e of s.events) {
        $('events').append(el('li', { value: e.seq, 'data-seq': e.seq },
          el('time', {}, when(e.at_ms)), e.allocation ? `[${e.allocation}] ` : '', e.message));
        after = Math.max(after, e.seq);
      }
      if (s.events.length) {
        $('events').scrollTop = $('events').scrollHeight;
        deployments().catch(() => {});
      }
      live(true);
    } catch (error) {
      live(false, error.message);
      if (!state.session) return;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function show(s) {
  $('deployment-state').replaceWith(Object.assign(badge(s.state), { id: 'deployment-state' }));
  $('deployment-reason').hidden = !s.reason;
  $('deployment-reason').textContent = s.reason || '';
  const allocations = Object.entries(s.allocations);
  rows('allocations', allocations, ([name, a]) => el('tr', { 'data-allocation': name },
    el('td', {}, name), el('td', {}, a.executor), el('td', { class: 'mono' }, short(a.peer)),
    el('td', {}, badge(a.status.state), a.status.message ? ' ' + a.status.message : ''),
    el('td', {}, ago(a.heard_ms)),
    el('td', { class: 'mono' }, (a.status.endpoints || []).map((e) => e.address || JSON.stringify(e)).join(' '))));
  map(allocations);
  const pick = $('log-allocation');
  if (pick.options.length !== allocations.length) {
    pick.replaceChildren(...allocations.map(([name]) => el('option', { value: name }, name)));
    if (state.logFor) pick.value = state.logFor;
    else if (allocations.length) follow(allocations[0][0]);
  }
}

// Providers on a circle around this node; each allocation a dot on its provider.
function map(allocations) {
  const byPeer = new Map();
  for (const [name, a] of allocations) {
    const peer = a.peer || 'not placed';
    if (!byPeer.has(peer)) byPeer.set(peer, []);
    byPeer.get(peer).push([name, a]);
  }
  const root = $('map');
  const cx = 240, cy = 160, r = 115;
  const parts = [svg('circle', { cx, cy, r: 14, class: 'self' }), svg('text', { x: cx - 38, y: cy + 30 }, 'this node')];
  [...byPeer.entries()].forEach(([peer, list], i, all) => {
    const angle = (2 * Math.PI * i) / all.length - Math.PI / 2;
    const x = cx + r * Math.cos(angle), y = cy + r * Math.sin(angle);
    parts.push(svg('line', { x1: cx, y1: cy, x2: x, y2: y, class: 'link' }));
    parts.push(svg('circle', { cx: x, cy: y, r: 22, class: 'provider', 'data-peer': peer }));
    parts.push(svg('text', { x: x - 34, y: y + 36 }, short(peer).slice(0, 14)));
    list.forEach(([name, a], j) => {
      const k = a.status.state === 'running' ? 'running' : ['failed', 'lost'].includes(a.status.state) ? a.status.state : 'other';
      const dx = x - 12 + (j % 3) * 12, dy = y - 8 + Math.floor(j / 3) * 12;
      const dot = svg('circle', { cx: dx, cy: dy, r: 5, class: 'alloc ' + k, 'data-allocation': name });
      dot.append(svg('title', {}, `${name}: ${a.status.state}`));
      parts.push(dot);
      if (list.length <= 3) parts.push(svg('text', { x: x + 26, y: y - 10 + j * 13 }, name));
    });
  });
  root.replaceChildren(...parts);
}

function follow(name) {
  state.logFor = name;
  state.logLine = 0;
  $('log-allocation').value = name;
  $('logs').textContent = '';
}

async function logs() {
  const name = state.logFor;
  if (!state.chosen || !name || (!$('follow').checked && state.logLine > 0)) return;
  const answer = await call('/dms/node/deployment/logs', { id: state.chosen, allocation: name, from: state.logLine });
  const entry = answer[name];
  if (!entry || state.logFor !== name) return;
  if (entry.error) { $('logs').textContent = entry.error; return; }
  const text = entry.lines.map((l) => (l.stream === 'stderr' ? '! ' : '') + l.text).join('\n');
  if (text) $('logs').append((state.logLine ? '\n' : '') + text);
  state.logLine = entry.next ?? state.logLine + entry.lines.length;
  if ($('follow').checked) $('logs').scrollTop = $('logs').scrollHeight;
}

// ---- the loop ----------------------------------------------------------------------

function live(ok, why) {
  $('live').textContent = ok ? 'live' : 'disconnected';
  $('live').className = 'badge ' + (ok ? 'ok' : 'down');
  if (!ok && why) notice(why);
  if (ok) notice('');
}

async function every(ms, job) {
  for (;;) {
    try { await job(); live(true); } catch (error) { live(false, error.message); }
    if (!state.session) return;
    await new Promise((r) => setTimeout(r, ms));
  }
}

async function main() {
  $('log-allocation').addEventListener('change', (e) => follow(e.target.value));
  try {
    await login();
  } catch (error) {
    live(false, error.message);
    return;
  }
  every(2000, node);
  every(2000, deployments);
  every(10000, capabilities);
  every(1000, logs);
}

main();
