// Live actors page: a table of every actor fed by /inspect/ws, and for the clicked actor its recent
// events and transitions and its current state highlighted in the machine's chart. No dependencies.
const token = new URLSearchParams(location.search).get('token');
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/inspect/ws${token ? `?token=${encodeURIComponent(token)}` : ''}`;

const tbody = document.querySelector('#actors tbody');
const statusEl = document.getElementById('status');
const summaryEl = document.getElementById('summary');
const filterEl = document.getElementById('filter');
const detailEl = document.getElementById('detail');

/** id → { row, tr } */
const actors = new Map();
let charts = {};
let selected = null;
let clockOffset = 0; // server time − browser time
let socket;
let retryMs = 500;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function idOrder(id) {
  if (id === 'supervisor') return -1;
  const n = Number(id.replace(/^\D+/, ''));
  return Number.isFinite(n) ? n : Number.MAX_SAFE_INTEGER;
}

function age(since) {
  const s = Math.max(0, Math.round((Date.now() + clockOffset - since) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function connect() {
  setStatus('connecting', 'connecting…');
  socket = new WebSocket(wsUrl);
  socket.onopen = () => {
    retryMs = 500;
    setStatus('live', 'live');
    if (selected) socket.send(JSON.stringify({ type: 'select', id: selected }));
  };
  socket.onmessage = (e) => handle(JSON.parse(e.data));
  socket.onclose = (e) => {
    setStatus('down', e.code === 1006 && !e.wasClean ? 'disconnected (is the token right?) — retrying' : `disconnected (${e.code}) — retrying`);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 10_000);
  };
}

function setStatus(kind, text) {
  statusEl.className = `status ${kind}`;
  statusEl.textContent = text;
}

function handle(msg) {
  if (typeof msg.now === 'number') clockOffset = msg.now - Date.now();
  switch (msg.type) {
    case 'hello':
      charts = msg.charts;
      for (const { tr } of actors.values()) tr.remove();
      actors.clear();
      for (const row of msg.rows) upsert(row);
      break;
    case 'rows':
      // A catch-up after congestion is the whole table: rows that went while updates were skipped go too.
      if (msg.full) {
        const present = new Set(msg.rows.map((row) => row.id));
        for (const id of [...actors.keys()]) if (!present.has(id)) remove(id);
      }
      for (const row of msg.rows) upsert(row);
      for (const id of msg.removed) remove(id);
      break;
    case 'detail':
      showDetail(msg);
      break;
    case 'error':
      console.warn('inspect:', msg.code, msg.message);
      break;
  }
  summarise();
}

function upsert(row) {
  let entry = actors.get(row.id);
  if (!entry) {
    const tr = el('tr');
    tr.dataset.id = row.id;
    for (const name of ['id', 'name', 'transport', 'state', 'subs', 'mailbox', 'age', 'last']) tr.append(el('td', name));
    tr.addEventListener('click', () => select(row.id));
    entry = { row, tr };
    actors.set(row.id, entry);
    // Ids only grow, so new rows almost always go last; search from the end.
    let before = null;
    for (let node = tbody.lastElementChild; node; node = node.previousElementSibling) {
      if (idOrder(node.dataset.id) > idOrder(row.id)) before = node;
      else break;
    }
    tbody.insertBefore(tr, before);
  }
  entry.row = row;
  const c = entry.tr.children;
  c[0].textContent = row.id;
  c[1].textContent = row.name;
  c[2].textContent = row.machine === 'supervisor' ? '—' : row.transport;
  c[3].textContent = row.state;
  c[3].className = `state s-${row.state}`;
  c[4].textContent = row.machine === 'supervisor' ? '' : row.subscriptionCount > 0 ? `${row.subscriptionCount}: ${row.subscriptions.join(', ')}` : '0';
  c[4].title = row.subscriptions.join('\n');
  c[5].textContent = row.machine === 'supervisor' ? '' : String(row.mailboxDepth);
  c[6].textContent = age(row.since);
  c[7].textContent = row.lastEvent ? `${row.lastEvent.what} · ${age(row.lastEvent.at)} ago` : '';
  entry.tr.classList.toggle('closed', row.status !== 'active');
  entry.tr.classList.toggle('selected', row.id === selected);
  applyFilter(entry);
}

function remove(id) {
  const entry = actors.get(id);
  if (!entry) return;
  entry.tr.remove();
  actors.delete(id);
}

function applyFilter(entry) {
  const q = filterEl.value.trim().toLowerCase();
  const r = entry.row;
  entry.tr.hidden = q !== '' && ![r.id, r.name, r.state, r.addr, r.transport].some((v) => String(v).toLowerCase().includes(q));
}

function summarise() {
  const byState = new Map();
  for (const { row } of actors.values()) {
    if (row.machine === 'supervisor') continue;
    byState.set(row.state, (byState.get(row.state) ?? 0) + 1);
  }
  const parts = [...byState].map(([s, n]) => `${n} ${s}`);
  summaryEl.textContent = `${actors.size} actors${parts.length ? ` · ${parts.join(' · ')}` : ''}`;
}

function select(id) {
  selected = id;
  for (const { tr } of actors.values()) tr.classList.toggle('selected', tr.dataset.id === id);
  detailEl.hidden = false;
  document.getElementById('detail-title').textContent = id;
  socket?.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ type: 'select', id }));
}

function showDetail(msg) {
  if (msg.id !== selected) return;
  const title = document.getElementById('detail-title');
  const meta = document.getElementById('detail-meta');
  const chartEl = document.getElementById('chart');
  const recentEl = document.getElementById('recent');
  if (msg.gone) {
    meta.textContent = 'closed and gone from the table';
    detailEl.classList.add('gone');
    return;
  }
  detailEl.classList.remove('gone');
  const r = msg.row;
  title.textContent = `${r.id} · ${r.name}`;
  meta.textContent = r.machine === 'supervisor' ? `supervisor · ${r.state}` : `${r.transport} ${r.addr} · ${r.state} · parent ${r.parent ?? '—'}`;
  chartEl.replaceChildren();
  const chart = charts[r.machine];
  if (chart) chartEl.append(renderState(chart, activeIds(chart.id, r.value, r.status)));
  recentEl.replaceChildren(
    ...msg.recent
      .slice()
      .reverse()
      .map((h) => {
        const li = el('li', h.kind);
        const when = new Date(h.at).toLocaleTimeString(undefined, { hour12: false }) + `.${String(h.at % 1000).padStart(3, '0')}`;
        li.append(el('time', '', when), ' ');
        if (h.kind === 'transition') li.append(el('b', '', h.text));
        else li.append(el('code', '', h.text), h.source && h.source !== msg.id ? ` from ${h.source}` : '');
        return li;
      }),
  );
}

/** State node ids active in `value`: the machine root, and every state on a path to a leaf. */
function activeIds(machineId, value, status) {
  const ids = new Set([machineId]);
  const walk = (v, prefix) => {
    if (typeof v === 'string') ids.add(`${prefix}.${v}`);
    else if (v && typeof v === 'object')
      for (const [k, inner] of Object.entries(v)) {
        ids.add(`${prefix}.${k}`);
        walk(inner, `${prefix}.${k}`);
      }
  };
  walk(value, machineId);
  if (status !== 'active') ids.add('__done');
  return ids;
}

/** A statechart as nested boxes: parallel regions side by side, each state listing its outgoing transitions. */
function renderState(node, active) {
  const box = el('div', `node t-${node.type}${active.has(node.id) ? ' active' : ''}`);
  box.dataset.stateId = node.id;
  const head = el('div', 'node-head', node.key);
  if (node.type === 'parallel') head.append(el('span', 'tag', 'parallel'));
  if (node.type === 'final') head.append(el('span', 'tag', 'final'));
  box.append(head);
  if (node.transitions.length) {
    const list = el('ul', 'transitions');
    for (const t of node.transitions) {
      const targets = t.targets.map((id) => (id === node.id ? '↻' : id.split('.').at(-1))).join(', ');
      const li = el('li');
      li.append(el('span', 'event', t.event));
      if (t.guard) li.append(el('span', 'guard', `[${t.guard}]`));
      li.append(` → ${targets || '(actions only)'}`);
      list.append(li);
    }
    box.append(list);
  }
  if (node.states.length) {
    const kids = el('div', node.type === 'parallel' ? 'children regions' : 'children');
    for (const child of node.states) kids.append(renderState(child, active));
    box.append(kids);
  }
  return box;
}

filterEl.addEventListener('input', () => {
  for (const entry of actors.values()) applyFilter(entry);
});

// Ages tick in the browser; the server only sends what changed.
setInterval(() => {
  for (const { row, tr } of actors.values()) {
    tr.children[6].textContent = age(row.since);
    tr.children[7].textContent = row.lastEvent ? `${row.lastEvent.what} · ${age(row.lastEvent.at)} ago` : '';
  }
}, 1000);

connect();
