// Switchboard chat page on the client package, @switchboard/client (its browser bundle, served by the broker at
// /client.js and mapped to the package's name in index.html: no build step, no CDN).
// One room (from the page's meta tag); the who-list is the subscription's presence map; the library reconnects
// with backoff, resumes the room from its position and re-syncs presence; the page shows why it cannot connect.
import { SwitchboardClient } from '@switchboard/client';

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
// ?token= of the page goes on to the WebSocket (and to the diagnosis when a connect fails).
const pageToken = new URLSearchParams(location.search).get('token') ?? undefined;

const state = {
  client: null,
  sub: null,
  me: null, // {id, name, transport} from hello, kept current on rename
  wantedName: localStorage.getItem(NAME_KEY) || '',
  everListed: false,
  lostNotice: false, // "Disconnected…" shown for the current outage
  diagnosis: '', // why the last connect failed, from GET /ws
  reclaimTimer: null,
  countdown: null,
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
  const list = [...(state.sub?.presence.values() ?? [])].sort((a, b) => a.name.localeCompare(b.name));
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
      name.title = `${c.name}${c.state === 'idle' ? ' · idle' : ''}`;
      if (c.state === 'idle') li.classList.add('idle');
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

function showOffline(inMs) {
  clearInterval(state.countdown);
  const until = Date.now() + inMs;
  const tick = () => {
    const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setStatus('offline', `offline${state.diagnosis ? ` (${state.diagnosis})` : ''} · retrying in ${s}s`);
  };
  tick();
  state.countdown = setInterval(tick, 1000);
}

// ---------- the connection (the library) ----------

function connect() {
  const client = new SwitchboardClient({
    url: '/ws',
    name: state.wantedName,
    ...(pageToken && { token: pageToken }),
    backoff: { minMs: 500, maxMs: 10_000, factor: 2 },
    connect: false,
  });
  state.client = client;
  client.on('state', (s) => {
    if (s !== 'reconnecting') clearInterval(state.countdown);
    if (s === 'connecting' || s === 'authorizing') setStatus('connecting', state.me || state.everListed ? 'reconnecting…' : 'connecting…');
    // Behind a proxy that blocks WebSocket the library falls back to Server-Sent Events (docs/sse.md).
    if (s === 'connected') setStatus('online', client.transport === 'sse' ? 'online (event stream)' : 'online');
    if (s === 'closed') setStatus('offline', `disconnected${state.diagnosis ? ` (${state.diagnosis})` : ''}`);
  });
  client.on('connected', (hello) => {
    state.me = hello.client;
    state.diagnosis = '';
    renderMe();
  });
  client.on('disconnected', (c) => {
    clearTimeout(state.reclaimTimer);
    if (state.me && !state.lostNotice) addNotice(`Disconnected${c.reason ? ` (${c.reason})` : ''}. Reconnecting…`, 'warn');
    state.lostNotice = true;
    state.me = null;
  });
  client.on('reconnecting', async ({ inMs, lastClose }) => {
    showOffline(inMs);
    // A refused upgrade looks like any failed connect to a browser: ask the broker why (401, 403, 409, 429, 503).
    if (lastClose && lastClose.code === 1006) {
      const d = await client.diagnose();
      state.diagnosis = d.status === 200 ? '' : d.status === 0 ? 'server unreachable' : `HTTP ${d.status}${d.error ? `: ${d.error}` : ''}`;
      if (client.state === 'reconnecting') showOffline(Math.max(0, inMs - 50));
    }
  });
  client.on('closed', (c) => {
    if (c) addNotice(`Disconnected for good (${c.status ? `HTTP ${c.status}` : c.code}${c.reason ? ` ${c.reason}` : ''}). Reload the page to try again.`, 'error');
  });
  client.on('direct', (d) => addNotice(`${d.from.name} (privately): ${typeof d.data === 'string' ? d.data : JSON.stringify(d.data)}`, 'direct'));
  client.on('error', onUnsolicitedError);

  setStatus('connecting', 'connecting…');
  // Listeners first, then subscribe: nothing the room sends comes before them.
  const sub = client.subscription(room, { presence: true });
  state.sub = sub;
  sub.on('message', addMessage);
  sub.on('presence', onListed); // after each presence sync: the first subscribe, every reconnect
  sub.on('join', (c) => {
    if (state.me && c.id === state.me.id) return renderMembers();
    addNotice(`${c.name} joined${c.transport === 'tcp' ? ' from a terminal' : ''}.`, 'join');
    renderMembers();
  });
  sub.on('leave', (c) => (addNotice(`${c.name} left.`, 'leave'), renderMembers()));
  sub.on('timeout', (c) => (addNotice(`${c.name} timed out.`, 'leave'), renderMembers()));
  sub.on('idle', renderMembers);
  sub.on('active', renderMembers);
  sub.on('rename', ({ member, old }) => {
    const isMe = state.me && member.id === state.me.id;
    if (isMe) {
      state.me = { ...state.me, name: member.name };
      renderMe();
    }
    addNotice(`${isMe ? 'You are' : `${old} is`} now known as ${member.name}.`, 'rename');
    renderMembers();
  });
  sub.on('notRecovered', () => addNotice('Some messages were missed while you were away.', 'warn'));
  sub.subscribe().catch((err) => addNotice(`Could not join #${room}: ${err.message}`, 'error'));
  client.connect().catch(() => {}); // failures show as states and notices
}

// Subscribed and listed (first time, or again after a reconnect).
function onListed() {
  renderMembers();
  if (!state.me) return;
  if (!state.everListed) addNotice(`You joined #${room} as ${state.me.name}.`, 'self');
  else if (state.lostNotice) addNotice('Reconnected.', 'self');
  state.everListed = true;
  state.lostNotice = false;
  els.input.focus();
}

// The name asked at connect was refused (taken or invalid): we are online under a guest name.
function onUnsolicitedError(err) {
  if (err.code === 'name_taken' && state.wantedName && state.everListed) {
    // After a reconnect our old connection may still hold the name until it times out: reclaim quietly.
    addNotice(`Waiting for your previous connection to let go of “${state.wantedName}”…`, 'warn');
    reclaimName(0);
    return;
  }
  if (err.code === 'name_taken' || err.code === 'bad_name') {
    openNameDialog('rename', err.message);
    return;
  }
  addNotice(`${err.code}: ${err.message}`, 'error');
}

async function reclaimName(tries) {
  if (!state.me || state.me.name === state.wantedName) return;
  try {
    await state.client.rename(state.wantedName);
  } catch (err) {
    if (err.code !== 'name_taken' || tries >= 20) return addNotice(`Could not get your name back: ${err.message}`, 'error');
    state.reclaimTimer = setTimeout(() => reclaimName(tries + 1), 3000);
  }
}

async function rename(name) {
  try {
    await state.client.rename(name);
  } catch (err) {
    return err.message;
  }
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
    try {
      const all = await state.client.whoAll();
      addNotice(`Connected: ${all.map((c) => `${c.name} (${c.transport})`).join(', ')}`, 'info');
    } catch (err) {
      addNotice(`who failed: ${err.message}`, 'error');
    }
    return;
  }
  try {
    await state.client.publish(room, text);
  } catch (err) {
    addNotice(`Not sent: ${err.message}`, 'error');
  }
});

// ---------- start ----------

renderMe();
setStatus('offline', 'not connected');
if (state.wantedName) {
  connect();
} else {
  openNameDialog('join');
}
