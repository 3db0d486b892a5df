// Switchboard chat page: speaks the WebSocket protocol of PROTOCOL.md on /ws, no build step.
// One room (from the page's meta tag); live who-list from `who` + presence events; reconnects with
// backoff and resumes the room with `since` = the last seq seen.

const room = document.querySelector('meta[name="switchboard-room"]')?.content || 'chat';
const tcpPort = Number(document.querySelector('meta[name="switchboard-tcp-port"]')?.content);
const $ = (id) => document.getElementById(id);
const els = {
  messages: $('messages'),
  composer: $('composer'),
  input: $('message-input'),
  send: $('send'),
  members: $('members'),
  memberCount: $('member-count'),
  meName: $('me-name'),
  meAvatar: $('me-avatar'),
  rename: $('rename'),
  status: $('status'),
  statusText: $('status-text'),
  dialog: $('name-dialog'),
  nameForm: $('name-form'),
  nameInput: $('name-input'),
  nameError: $('name-error'),
  nameTitle: $('name-title'),
  nameHelp: $('name-help'),
  nameSubmit: $('name-submit'),
  nameCancel: $('name-cancel'),
};

const NAME_KEY = 'switchboard.name';
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

const state = {
  ws: null,
  me: null, // {id, name, addr, transport} from hello, kept current on rename
  wantedName: localStorage.getItem(NAME_KEY) || '',
  lastSeq: undefined, // seq of the last room message shown: resume point after a reconnect
  members: new Map(), // id → client info
  pending: new Map(), // request id → {resolve}
  nextId: 1,
  attempt: 0,
  everConnected: false,
  resumed: false, // this connection is a reconnect (our old one may still hold the name)
  reclaimTimer: null,
  reconnectTimer: null,
};

// ---------- rendering ----------

els.room = $('room-name');
els.room.textContent = room;
document.title = `#${room} · Switchboard`;
if (tcpPort > 0) {
  $('tcp-command').textContent = `nc ${location.hostname} ${tcpPort}`;
  $('tcp-hint').hidden = false;
}

// Client ids count up (c7, c8…): stepping by the golden angle gives neighbours far-apart colours.
function hue(id) {
  const n = /^c(\d+)$/.exec(id)?.[1];
  let k = n === undefined ? 0 : Number(n);
  if (n === undefined) for (const ch of id) k = (k * 31 + ch.codePointAt(0)) % 1000;
  return Math.round(230 + k * 137.508) % 360;
}

function paintAvatar(el, client) {
  const label = client.name || '?';
  el.textContent = [...label.replace(/^[\d.:[\]]+/, '') || label][0]?.toUpperCase() ?? '?';
  el.style.setProperty('--h', String(hue(client.id)));
}

function timeOf(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function nearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function append(li) {
  const stick = nearBottom();
  els.messages.append(li);
  // Bounded: the page keeps the last 500 lines.
  while (els.messages.childElementCount > 500) els.messages.firstElementChild.remove();
  if (stick) els.messages.scrollTop = els.messages.scrollHeight;
}

function addMessage(msg) {
  const li = document.createElement('li');
  const from = msg.from ?? { id: 'server', name: 'server' };
  const mine = state.me && from.id === state.me.id;
  li.className = 'message' + (mine ? ' mine' : '') + (msg.from ? '' : ' from-server');
  const prev = els.messages.lastElementChild;
  // Consecutive messages of one sender within two minutes read as one block.
  if (prev?.dataset.from === from.id && msg.ts - Number(prev.dataset.ts) < 120_000) li.classList.add('continued');
  li.dataset.from = from.id;
  li.dataset.ts = String(msg.ts);
  li.dataset.seq = String(msg.seq);

  const avatar = document.createElement('span');
  avatar.className = 'avatar';
  paintAvatar(avatar, from);
  const body = document.createElement('div');
  body.className = 'body';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = from.name;
  name.style.setProperty('--h', String(hue(from.id)));
  const time = document.createElement('time');
  time.dateTime = new Date(msg.ts).toISOString();
  time.textContent = timeOf(msg.ts);
  meta.append(name, time);
  const text = document.createElement(typeof msg.data === 'string' ? 'div' : 'pre');
  text.className = 'text';
  text.textContent = typeof msg.data === 'string' ? msg.data : JSON.stringify(msg.data, null, 2);
  body.append(meta, text);
  li.append(avatar, body);
  append(li);
}

function addNotice(text, kind = 'info') {
  const li = document.createElement('li');
  li.className = `notice ${kind}`;
  li.textContent = text;
  append(li);
}

function renderMembers() {
  const list = [...state.members.values()].sort((a, b) => a.name.localeCompare(b.name));
  els.members.replaceChildren(
    ...list.map((c) => {
      const li = document.createElement('li');
      li.dataset.id = c.id;
      if (state.me && c.id === state.me.id) li.classList.add('me');
      const avatar = document.createElement('span');
      avatar.className = 'avatar small';
      paintAvatar(avatar, c);
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = c.name;
      name.title = c.addr ? `${c.name} · ${c.addr}` : c.name; // addresses only reach admins (protocol 2)
      const badge = document.createElement('span');
      badge.className = `badge ${c.transport}`;
      badge.textContent = c.transport === 'tcp' ? 'tcp' : 'web';
      badge.title = c.transport === 'tcp' ? 'connected with a TCP line client (nc)' : 'connected over WebSocket';
      li.append(avatar, name, badge);
      return li;
    }),
  );
  els.memberCount.textContent = String(list.length);
}

function renderMe() {
  const me = state.me;
  els.meName.textContent = me ? me.name : state.wantedName || '…';
  paintAvatar(els.meAvatar, me ?? { id: 'me', name: state.wantedName || '?' });
}

function setStatus(kind, text) {
  els.status.dataset.state = kind;
  els.statusText.textContent = text;
  const online = kind === 'online';
  els.input.disabled = !online;
  els.send.disabled = !online;
}

// ---------- protocol ----------

function send(frame) {
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

/** Sends `frame` with a fresh id; resolves with the ack or error carrying that id. */
function request(frame) {
  const id = `p${state.nextId++}`;
  return new Promise((resolve) => {
    state.pending.set(id, { resolve });
    send({ ...frame, id });
  });
}

function connect() {
  clearTimeout(state.reconnectTimer);
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (state.wantedName) url.searchParams.set('name', state.wantedName);
  setStatus('connecting', state.everConnected ? 'reconnecting…' : 'connecting…');
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onmessage = (e) => {
    let frame;
    try {
      frame = JSON.parse(e.data);
    } catch {
      return;
    }
    onFrame(frame);
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    for (const p of state.pending.values()) p.resolve({ op: 'error', code: 'closed', message: 'connection closed' });
    state.pending.clear();
    clearTimeout(state.reclaimTimer);
    if (state.everConnected && state.me) addNotice(`Disconnected${e.reason ? ` (${e.reason})` : ''}. Reconnecting…`, 'warn');
    state.me = null;
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
  const wait = Math.round(base * (0.5 + Math.random() / 2)); // jitter: a restarted broker is not stampeded
  state.attempt++;
  const until = Date.now() + wait;
  const tick = () => {
    const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setStatus('offline', `offline · retrying in ${s}s`);
  };
  tick();
  const countdown = setInterval(tick, 1000);
  state.reconnectTimer = setTimeout(() => {
    clearInterval(countdown);
    connect();
  }, wait);
}

async function onHello(hello) {
  const ws = state.ws;
  const first = !state.everConnected;
  state.resumed = !first;
  state.me = hello.client;
  state.attempt = 0;
  state.everConnected = true;
  setStatus('online', 'online');
  renderMe();
  const sub = { op: 'sub', topic: room, presence: true };
  if (state.lastSeq !== undefined) sub.since = state.lastSeq;
  const ack = await request(sub);
  if (state.ws !== ws) return; // dropped meanwhile: the next hello starts over
  if (ack.op === 'error') return addNotice(`Could not join #${room}: ${ack.message}`, 'error');
  if (ack.recovered === false) addNotice('Some messages were missed while you were away.', 'warn');
  // who is paginated (protocol 2): the member list is built from every page, up to a screenful of pages.
  const members = new Map();
  let cursor;
  for (let page = 0; page < 10; page++) {
    const who = await request(cursor === undefined ? { op: 'who', topic: room, limit: 1000 } : { op: 'who', topic: room, limit: 1000, cursor });
    if (state.ws !== ws) return;
    if (who.op !== 'ack') break;
    for (const c of who.clients) members.set(c.id, c);
    state.members = members;
    cursor = who.next;
    if (cursor === undefined) break;
  }
  renderMembers();
  if (first) addNotice(`You joined #${room} as ${state.me.name}.`, 'self');
  else addNotice('Reconnected.', 'self');
  els.input.focus();
}

function onFrame(f) {
  switch (f.op) {
    case 'hello':
      onHello(f);
      return;
    case 'msg':
      if (f.topic !== room) return;
      addMessage(f);
      state.lastSeq = f.seq;
      return;
    case 'event':
      if (f.topic === room) onPresence(f);
      return;
    case 'ack':
    case 'error':
    case 'pong': {
      const p = f.id !== undefined && state.pending.get(f.id);
      if (p) {
        state.pending.delete(f.id);
        p.resolve(f);
      } else if (f.op === 'error') {
        onUnsolicitedError(f);
      }
      return;
    }
    case 'direct':
      addNotice(`${f.from.name} (privately): ${typeof f.data === 'string' ? f.data : JSON.stringify(f.data)}`, 'direct');
      return;
  }
}

function onPresence(e) {
  const c = e.client;
  const isMe = state.me && c.id === state.me.id;
  switch (e.event) {
    case 'join':
      state.members.set(c.id, c);
      if (!isMe) addNotice(`${c.name} joined${c.transport === 'tcp' ? ' from a terminal' : ''}.`, 'join');
      break;
    case 'leave':
      state.members.delete(c.id);
      addNotice(`${c.name} left.`, 'leave');
      break;
    case 'timeout':
      state.members.delete(c.id);
      addNotice(`${c.name} timed out.`, 'leave');
      break;
    case 'rename':
      state.members.set(c.id, c);
      if (isMe) {
        state.me = { ...state.me, name: c.name };
        renderMe();
      }
      addNotice(`${isMe ? 'You are' : `${e.old} is`} now known as ${c.name}.`, 'rename');
      break;
  }
  renderMembers();
}

// The name asked at connect was refused (taken or invalid): we are online under a guest name.
function onUnsolicitedError(f) {
  if (f.code === 'name_taken' && state.wantedName && state.resumed) {
    // After a reconnect our old connection may still hold the name until it times out: reclaim quietly.
    addNotice(`Waiting for your previous connection to let go of “${state.wantedName}”…`, 'warn');
    reclaimName(0);
    return;
  }
  if (f.code === 'name_taken' || f.code === 'bad_name') {
    openNameDialog('rename', f.message);
    return;
  }
  addNotice(`${f.code}: ${f.message}`, 'error');
}

async function reclaimName(tries) {
  if (!state.me || state.me.name === state.wantedName) return;
  const r = await request({ op: 'rename', name: state.wantedName });
  if (r.op === 'ack') return;
  if (r.code !== 'name_taken' || tries >= 20) return addNotice(`Could not get your name back: ${r.message}`, 'error');
  state.reclaimTimer = setTimeout(() => reclaimName(tries + 1), 3000);
}

async function rename(name) {
  const r = await request({ op: 'rename', name });
  if (r.op === 'error') return r.message;
  state.wantedName = name;
  localStorage.setItem(NAME_KEY, name);
  return null;
}

// ---------- name dialog ----------

let dialogMode = 'join';

function openNameDialog(mode, error = '') {
  dialogMode = mode;
  const joining = mode === 'join';
  els.nameTitle.textContent = joining ? `Join #${room}` : 'Pick a name';
  els.nameHelp.textContent = joining
    ? 'Pick a name other people will see. You can change it later.'
    : 'Names are unique in the room; 1 to 64 characters.';
  els.nameSubmit.textContent = joining ? 'Join' : 'Rename';
  els.nameCancel.hidden = joining;
  els.nameInput.value = state.me?.name && !joining ? state.me.name : state.wantedName;
  els.nameError.textContent = error;
  if (!els.dialog.open) els.dialog.showModal();
  els.nameInput.select();
}

els.nameForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = els.nameInput.value.trim();
  if (!name) return;
  if (dialogMode === 'join') {
    state.wantedName = name;
    localStorage.setItem(NAME_KEY, name);
    els.dialog.close();
    renderMe();
    connect();
    return;
  }
  els.nameSubmit.disabled = true;
  const problem = await rename(name);
  els.nameSubmit.disabled = false;
  if (problem) {
    els.nameError.textContent = problem;
    return;
  }
  els.dialog.close();
});

els.nameCancel.addEventListener('click', () => els.dialog.close());
els.dialog.addEventListener('cancel', (e) => {
  if (dialogMode === 'join') e.preventDefault(); // a name is needed to join
});
els.rename.addEventListener('click', () => openNameDialog('rename'));

// ---------- composer ----------

els.composer.addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = els.input.value;
  if (!text.trim()) return;
  els.input.value = '';
  const command = /^\/(name|nick|rename)\s+(.+)$/.exec(text.trim());
  if (command) {
    const problem = await rename(command[2].trim());
    if (problem) addNotice(`Rename failed: ${problem}`, 'error');
    return;
  }
  if (text.trim() === '/who') {
    const r = await request({ op: 'who' });
    if (r.op === 'ack') addNotice(`Connected: ${r.clients.map((c) => `${c.name} (${c.transport})`).join(', ')}${r.next ? ', …' : ''}`, 'info');
    return;
  }
  const ack = await request({ op: 'pub', topic: room, data: text });
  if (ack.op === 'error') addNotice(`Not sent: ${ack.message}`, 'error');
});

// ---------- start ----------

renderMe();
setStatus('offline', 'not connected');
if (state.wantedName) {
  connect();
} else {
  openNameDialog('join');
}
