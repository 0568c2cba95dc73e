// The consultation page: waiting room, the call (WebRTC, signaling over the companion's realtime
// relay, TURN from /v1/consultations/{id}/ice-servers) and the chat beside it. No framework;
// supabase-js (UMD) is the realtime client, pointed at the companion that serves this page.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.hash.slice(1));
const query = new URLSearchParams(location.search);
const base = location.origin;

// Everything the browser test reads (window.careplane) lives here.
const state = { status: '', events: [], errors: [], messages: new Map(), pc: null, me: null, role: null };
window.careplane = state;

function notice(text) { $('notice').textContent = text; }
function fail(context, e) {
  const text = `${context}: ${e && e.message ? e.message : e}`;
  state.errors.push(text);
  notice(text);
  console.error(text);
}

function claims(token) {
  const part = token.split('.')[1] || '';
  return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/')));
}

async function api(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${state.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok || json.success === false) {
    const err = new Error(json.error ? `${json.error.code}: ${json.error.message}` : `HTTP ${res.status}`);
    err.code = json.error && json.error.code;
    throw err;
  }
  return json.data;
}

function setStatus(status) {
  if (!status || status === state.status) return;
  state.status = status;
  $('status').textContent = status.replace('_', ' ');
  $('status').dataset.status = status;
  $('admit').hidden = !(state.role === 'clinician' && status === 'waiting');
  $('hangup').disabled = status !== 'in_progress';
  if (status === 'waiting' || status === 'in_progress') joinCallTopic();
  if (status === 'ended') endCall('The consultation has ended.');
  if (status === 'in_progress') maybeCall();
}

// ---- signaling: broadcasts `signal` on consultation:<id> ({from, kind, sdp | candidate}) ----
let callChannel = null;
let peerHere = false;
let pendingCandidates = [];
let localStream = null;

function signal(kind, data = {}) {
  return callChannel.send({ type: 'broadcast', event: 'signal', payload: { from: state.me, kind, ...data } });
}

async function iceConfig() {
  const { ice_servers } = await api('POST', `/v1/consultations/${state.consultation}/ice-servers`);
  const relay = $('relay').checked;
  return { iceServers: ice_servers, iceTransportPolicy: relay ? 'relay' : 'all' };
}

async function peer() {
  if (state.pc) return state.pc;
  const pc = new RTCPeerConnection(await iceConfig());
  state.pc = pc;
  for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
  pc.onicecandidate = (e) => { if (e.candidate) signal('candidate', { candidate: e.candidate.toJSON() }); };
  pc.ontrack = (e) => { $('remote').srcObject = e.streams[0]; };
  pc.oniceconnectionstatechange = () => { state.iceState = pc.iceConnectionState; notice(`connection: ${pc.iceConnectionState}`); };
  return pc;
}

// The clinician offers once the patient is admitted and the patient's page is on the topic.
async function maybeCall() {
  if (state.role !== 'clinician' || state.status !== 'in_progress' || !peerHere || state.pc) return;
  try {
    const pc = await peer();
    await pc.setLocalDescription(await pc.createOffer());
    await signal('offer', { sdp: pc.localDescription.sdp });
  } catch (e) { fail('offer', e); }
}

async function onSignal({ payload: m }) {
  if (!m || m.from === state.me) return;
  try {
    if (m.kind === 'hello' || m.kind === 'here') {
      peerHere = true;
      if (m.kind === 'hello') await signal('here');
      await maybeCall();
    } else if (m.kind === 'offer' && state.role === 'patient') {
      const pc = await peer();
      await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      for (const c of pendingCandidates.splice(0)) await pc.addIceCandidate(c);
      await pc.setLocalDescription(await pc.createAnswer());
      await signal('answer', { sdp: pc.localDescription.sdp });
    } else if (m.kind === 'answer' && state.pc) {
      await state.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      for (const c of pendingCandidates.splice(0)) await state.pc.addIceCandidate(c);
    } else if (m.kind === 'candidate') {
      if (state.pc && state.pc.remoteDescription) await state.pc.addIceCandidate(m.candidate);
      else pendingCandidates.push(m.candidate);
    }
  } catch (e) { fail(`signal ${m.kind}`, e); }
}

function joinCallTopic() {
  if (callChannel) return;
  callChannel = state.client.channel(`consultation:${state.consultation}`, { config: { private: true, broadcast: { ack: true } } })
    .on('broadcast', { event: 'signal' }, onSignal)
    .on('broadcast', { event: 'consultation:updated' }, ({ payload }) => { state.events.push(payload); setStatus(payload.status); })
    .subscribe((status, err) => {
      state.callTopic = status;
      if (status === 'SUBSCRIBED') signal('hello');
      if (err) console.warn('consultation topic:', err.message);
    });
}

function endCall(text) {
  if (state.pc) state.pc.close();
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  $('mute').disabled = true;
  $('hangup').disabled = true;
  $('admit').hidden = true;
  if (callChannel) { state.client.removeChannel(callChannel); callChannel = null; }
  notice(text);
}

// ---- chat: history from the endpoint, news from message:new on conversation:<id> ----
let typingTimer = null;
let lastTypingSent = 0;

function render() {
  const list = $('messages');
  list.replaceChildren(...[...state.messages.values()]
    .sort((a, b) => a.created_at.localeCompare(b.created_at))
    .map((m) => {
      const li = document.createElement('li');
      li.textContent = m.body;
      li.dataset.id = m.id;
      if (m.sender_id === state.me) li.className = 'mine';
      return li;
    }));
  list.scrollTop = list.scrollHeight;
}

async function loadMessages() {
  const latest = await api('GET', `/v1/conversations/${state.conversation}/messages?limit=50`);
  for (const m of latest) state.messages.set(m.id, m);
  render();
}

function joinChat() {
  state.client.channel(`conversation:${state.conversation}`, { config: { private: true } })
    .on('broadcast', { event: 'message:new' }, () => loadMessages().catch((e) => fail('messages', e)))
    .on('broadcast', { event: 'typing' }, ({ payload }) => {
      if (!payload || payload.from === state.me) return;
      $('typing').textContent = 'typing…';
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => { $('typing').textContent = ''; }, 3000);
    })
    .subscribe((status) => { state.chatTopic = status; });
  state.chat = state.client.getChannels().find((c) => c.topic === `realtime:conversation:${state.conversation}`);
}

// ---- start ----
async function start() {
  state.token = $('token').value.trim();
  state.consultation = $('consultation').value.trim();
  state.role = $('role').value;
  state.me = claims(state.token).sub;
  state.client = supabase.createClient(base, state.token, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { params: { eventsPerSecond: 40 } },
  });
  $('setup').hidden = true;
  $('room').hidden = false;
  localStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  $('local').srcObject = localStream;
  $('mute').disabled = false;

  // Moves reach both participants on their user topic too: the clinician learns here that the
  // patient entered the waiting room (the call's topic opens only then).
  state.client.channel(`user:${state.me}`, { config: { private: true } })
    .on('broadcast', { event: 'consultation:updated' }, ({ payload }) => {
      if (payload.consultation_id === state.consultation) { state.events.push(payload); setStatus(payload.status); }
    })
    .subscribe();
  let c = await api('GET', `/v1/consultations/${state.consultation}`);
  state.conversation = c.conversation_id;
  if (state.conversation) { joinChat(); await loadMessages(); }
  if (state.role === 'patient' && c.status === 'scheduled') c = await api('POST', `/v1/consultations/${state.consultation}/join`);
  setStatus(c.status);
  if (c.status === 'scheduled') notice('Waiting for the patient to enter the waiting room.');
  if (c.status === 'waiting') notice(state.role === 'patient' ? 'In the waiting room: your clinician will admit you.' : 'The patient is waiting.');
}

$('setup').addEventListener('submit', (e) => { e.preventDefault(); start().catch((err) => fail('start', err)); });
$('admit').addEventListener('click', async () => {
  try {
    setStatus((await api('POST', `/v1/consultations/${state.consultation}/admit`)).status);
  } catch (e) { fail('admit', e); }
});
$('mute').addEventListener('click', () => {
  const audio = localStream.getAudioTracks();
  const muted = audio.some((t) => t.enabled);
  audio.forEach((t) => { t.enabled = !muted; });
  state.muted = muted;
  $('mute').textContent = muted ? 'Unmute' : 'Mute';
});
$('hangup').addEventListener('click', async () => {
  try { setStatus((await api('POST', `/v1/consultations/${state.consultation}/end`)).status); } catch (e) { fail('hang up', e); }
});
$('compose').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = $('body').value;
  if (!body.trim()) return;
  try {
    const m = await api('POST', `/v1/conversations/${state.conversation}/messages`, { body });
    state.messages.set(m.id, m);
    $('body').value = '';
    render();
  } catch (err) { fail('send', err); }
});
$('body').addEventListener('input', () => {
  if (!state.chat || Date.now() - lastTypingSent < 1000) return;
  lastTypingSent = Date.now();
  state.chat.send({ type: 'broadcast', event: 'typing', payload: { from: state.me } });
});

for (const [key, id] of [['token', 'token'], ['consultation', 'consultation'], ['role', 'role']]) {
  if (params.get(key)) $(id).value = params.get(key);
}
$('relay').checked = query.get('relay') === '1' || params.get('relay') === '1';
if (params.get('autostart') === '1') start().catch((err) => fail('start', err));
