// The official Supabase client (@supabase/supabase-js 2.119.1, pinned in package-lock.json)
// against careplane's realtime relay. Run by tests/tests/realtime_js.rs, which makes a migrated
// throwaway database with the fixture users below and passes everything in the environment;
// this file starts (and SIGKILLs) its own companions from CAREPLANE_COMPANION_BIN.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createClient } from '@supabase/supabase-js';
import ws from 'ws';
import pg from 'pg';

const env = process.env;
const need = (k) => { if (!env[k]) throw new Error(`${k} is not set (run through tests/tests/realtime_js.rs)`); return env[k]; };
const BIN = need('CAREPLANE_COMPANION_BIN');
const DATABASE_URL = need('DATABASE_URL');
const SECRET = need('SUPABASE_JWT_SECRET');
const REDIS_URL = need('REDIS_URL');
const PREFIX = need('REALTIME_REDIS_PREFIX');
const PATIENT = need('FIXTURE_PATIENT');
const OTHER = need('FIXTURE_OTHER');
const OUTSIDER = need('FIXTURE_OUTSIDER');
const DISPATCHER = need('FIXTURE_DISPATCHER');
const CONVERSATION = need('FIXTURE_CONVERSATION');

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function token(sub, role = 'patient', ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, role: 'authenticated', aud: 'authenticated', iat: now, exp: now + ttl,
                   user_role: role, user_roles: [role], email: `${sub}@example.test`, session_id: sub };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

const companions = [];
async function startCompanion(extra = {}) {
  const child = spawn(BIN, ['serve'], {
    env: { PATH: env.PATH, BIND_ADDR: '127.0.0.1:0', RUST_LOG: 'warn', DATABASE_URL, REDIS_URL, SUPABASE_JWT_SECRET: SECRET,
           REALTIME_REDIS_PREFIX: PREFIX, REALTIME_PRESENCE_TTL_MS: '1500', REALTIME_POLL_INTERVAL_MS: '200',
           LEDGER_EXPIRY_INTERVAL_SECONDS: '0', ...extra },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  companions.push(child);
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('companion did not start in 20 s')), 20000);
    child.on('exit', (code) => reject(new Error(`companion exited (${code}) before its banner`)));
    lines.on('line', (line) => {
      const m = line.trim().match(/^listening\s+(\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
  });
  return { child, base };
}
function kill(c, signal = 'SIGKILL') {
  return new Promise((resolve) => { c.child.once('exit', resolve); c.child.kill(signal); });
}

const clients = [];
function client(base, jwt, vsn = '2.0.0') {
  const c = createClient(base, jwt, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: ws, vsn, params: { eventsPerSecond: 100 } },
  });
  clients.push(c);
  return c;
}

const db = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
/** Runs `sql` in one transaction as the user, as PostgREST does. */
async function asUser(sub, role, sql, params = []) {
  const conn = await db.connect();
  try {
    await conn.query('begin');
    await conn.query("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
      [JSON.stringify({ sub, role: 'authenticated', aud: 'authenticated', user_role: role, user_roles: [role] })]);
    const r = await conn.query(sql, params);
    await conn.query('commit');
    return r.rows;
  } catch (e) { await conn.query('rollback'); throw e; } finally { conn.release(); }
}
const emit = (topic, event, payload) =>
  db.query('insert into private.realtime_events (topic, event, payload) values ($1, $2, $3) returning id', [topic, event, payload]);

/** Subscribes and resolves with the status, or rejects on CHANNEL_ERROR / TIMED_OUT. */
function subscribe(channel) {
  return new Promise((resolve, reject) => {
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') resolve(status);
      else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') reject(err ?? new Error(status));
    });
  });
}
/** A queue of what a callback receives, with `next()` waiting for the next item. */
function inbox() {
  const items = []; const waiters = [];
  return {
    items,
    push: (x) => { const w = waiters.shift(); if (w) w(x); else items.push(x); },
    next: (ms = 5000, what = 'a message') => items.length ? Promise.resolve(items.shift())
      : new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
        waiters.push((x) => { clearTimeout(t); resolve(x); });
      }),
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let main;
after(async () => {
  for (const c of clients) await c.removeAllChannels().catch(() => {});
  for (const c of companions) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await db.end();
});

for (const vsn of ['2.0.0', '1.0.0']) {
  test(`vsn ${vsn}: a dispatcher receives emergency:new as a broadcast after raise_emergency commits`, async () => {
    main ??= await startCompanion();
    const c = client(main.base, token(DISPATCHER, 'dispatcher'), vsn);
    const got = inbox();
    const ch = c.channel('dispatch', { config: { private: true } }).on('broadcast', { event: 'emergency:new' }, got.push);
    await subscribe(ch);
    const [row] = await asUser(PATIENT, 'patient', 'select id from public.raise_emergency(6.45, 3.39, $1)', ['chest pain']);
    const msg = await got.next(5000, 'emergency:new');
    assert.equal(msg.event, 'emergency:new');
    assert.equal(msg.payload.id, row.id);
    assert.match(String(msg.meta.id), /^\d+$/);
    await c.removeChannel(ch);
  });

  test(`vsn ${vsn}: client broadcast with ack reaches the others, not the sender (self: false)`, async () => {
    main ??= await startCompanion();
    const a = client(main.base, token(PATIENT), vsn);
    const b = client(main.base, token(OTHER), vsn);
    const atA = inbox(); const atB = inbox();
    const cfg = { config: { private: true, broadcast: { ack: true, self: false } } };
    const chA = a.channel(`conversation:${CONVERSATION}`, cfg).on('broadcast', { event: 'typing' }, atA.push);
    const chB = b.channel(`conversation:${CONVERSATION}`, cfg).on('broadcast', { event: 'typing' }, atB.push);
    await subscribe(chA); await subscribe(chB);
    const status = await chA.send({ type: 'broadcast', event: 'typing', payload: { who: 'a' } });
    assert.equal(status, 'ok');
    const got = await atB.next(3000, 'typing at b');
    assert.deepEqual(got.payload, { who: 'a' });
    await sleep(300);
    assert.equal(atA.items.length, 0, 'self: false — the sender does not get its own broadcast');
    await a.removeChannel(chA); await b.removeChannel(chB);
  });
}

test('a filtered postgres_changes INSERT on messages arrives with the binding id the join reply gave', async () => {
  main ??= await startCompanion();
  const c = client(main.base, token(PATIENT));
  const got = inbox();
  const ch = c.channel(`user:${PATIENT}`, { config: { private: true } }).on('postgres_changes',
    { event: 'INSERT', schema: 'public', table: 'messages', filter: `conversation_id=eq.${CONVERSATION}` }, got.push);
  await subscribe(ch);
  await asUser(OTHER, 'patient', 'insert into public.messages (conversation_id, body) values ($1, $2)', [CONVERSATION, 'hello there']);
  const change = await got.next(5000, 'messages INSERT');
  assert.equal(change.eventType, 'INSERT');
  assert.equal(change.table, 'messages');
  assert.equal(change.new.body, 'hello there');
  assert.equal(change.new.conversation_id, CONVERSATION);
  await c.removeChannel(ch);
});

test("a join on another user's topic is refused", async () => {
  main ??= await startCompanion();
  const c = client(main.base, token(OUTSIDER));
  const ch = c.channel(`user:${PATIENT}`, { config: { private: true } });
  await assert.rejects(subscribe(ch), /Unauthorized/);
  const conv = c.channel(`conversation:${CONVERSATION}`, { config: { private: true } });
  await assert.rejects(subscribe(conv), /Unauthorized/);
  await c.removeAllChannels();
});

test('a refreshed token keeps the channel past the first expiry; an expired one ends it with system + close', async () => {
  main ??= await startCompanion();
  // Refreshed: setAuth pushes access_token to the joined channel before the first token expires.
  const r = client(main.base, token(PATIENT, 'patient', 3));
  const got = inbox();
  const ch = r.channel(`user:${PATIENT}`, { config: { private: true } }).on('broadcast', { event: 'notification:new' }, got.push);
  await subscribe(ch);
  await r.realtime.setAuth(token(PATIENT, 'patient', 3600));
  await sleep(4500);
  await emit(`user:${PATIENT}`, 'notification:new', { n: 1 });
  assert.equal((await got.next(5000, 'event after refresh')).payload.n, 1);
  await r.removeChannel(ch);

  // Not refreshed: the channel gets a system message and closes, and stays closed.
  const e = client(main.base, token(PATIENT, 'patient', 2));
  const system = inbox(); const statuses = inbox();
  const ch2 = e.channel(`user:${PATIENT}`, { config: { private: true } }).on('system', {}, system.push);
  ch2.subscribe((s) => statuses.push(s));
  assert.equal(await statuses.next(5000, 'SUBSCRIBED'), 'SUBSCRIBED');
  const sys = await system.next(6000, 'system message on expiry');
  assert.equal(sys.status, 'error');
  assert.match(sys.message, /expired/i);
  assert.equal(await statuses.next(3000, 'CLOSED'), 'CLOSED');

  // A refresh with a token for someone else is refused: the channel ends.
  const s = client(main.base, token(PATIENT));
  const sys3 = inbox();
  const ch3 = s.channel(`user:${PATIENT}`, { config: { private: true } }).on('system', {}, sys3.push);
  await subscribe(ch3);
  await s.realtime.setAuth(token(OUTSIDER));
  assert.match((await sys3.next(5000, 'system on refused refresh')).message, /Unauthorized/);
});

test('presence is shared by two companion instances, and a killed instance stops counting its clients', async () => {
  main ??= await startCompanion();
  const second = await startCompanion();
  const a = client(main.base, token(PATIENT));
  const b = client(second.base, token(OTHER));
  const chA = a.channel(`conversation:${CONVERSATION}`, { config: { private: true, presence: { key: PATIENT } } });
  const chB = b.channel(`conversation:${CONVERSATION}`, { config: { private: true, presence: { key: OTHER } } });
  const leaves = inbox();
  chA.on('presence', { event: 'leave' }, leaves.push);
  await subscribe(chA); await subscribe(chB);
  assert.equal(await chA.track({ name: 'a' }), 'ok');
  assert.equal(await chB.track({ name: 'b' }), 'ok');
  const until = async (pred, what) => {
    for (let i = 0; i < 50; i++) { if (pred()) return; await sleep(100); }
    assert.fail(`timed out waiting for ${what}`);
  };
  await until(() => chA.presenceState()[OTHER] && chB.presenceState()[PATIENT], 'both presences on both instances');
  assert.equal(chA.presenceState()[OTHER][0].name, 'b');
  await kill(second, 'SIGKILL');
  const left = await leaves.next(8000, 'leave of the killed instance');
  assert.equal(left.key, OTHER);
  assert.equal(chA.presenceState()[OTHER], undefined);
  await a.removeChannel(chA);
});

test('replay after the companion is SIGKILLed and restarted delivers everything missed, in order, with ids', async () => {
  const port = main ? new URL(main.base).port : '0';
  main ??= await startCompanion();
  const c = client(main.base, token(PATIENT));
  const live = inbox();
  const ch = c.channel(`user:${PATIENT}`, { config: { private: true } }).on('broadcast', { event: 'appointment:updated' }, live.push);
  await subscribe(ch);
  await emit(`user:${PATIENT}`, 'appointment:updated', { seq: 0 });
  const first = await live.next(5000, 'the live event');
  const lastSeen = Date.now();
  await kill(main, 'SIGKILL');
  await c.removeAllChannels();
  const missed = [];
  for (let seq = 1; seq <= 5; seq++) missed.push((await emit(`user:${PATIENT}`, 'appointment:updated', { seq })).rows[0].id);
  main = await startCompanion({ BIND_ADDR: `127.0.0.1:${port === '0' ? 0 : port}` });
  const r = client(main.base, token(PATIENT));
  const got = inbox();
  const ch2 = r.channel(`user:${PATIENT}`, { config: { private: true, broadcast: { replay: { since: lastSeen - 1, limit: 25 } } } })
    .on('broadcast', { event: 'appointment:updated' }, got.push);
  await subscribe(ch2);
  const seen = new Set([String(first.meta.id)]);
  const received = [];
  while (received.length < 5) {
    const m = await got.next(5000, `replayed event ${received.length + 1}`);
    if (seen.has(String(m.meta.id))) continue; // the boundary duplicate, dropped by id
    seen.add(String(m.meta.id));
    assert.equal(m.meta.replayed, true);
    received.push(m);
  }
  assert.deepEqual(received.map((m) => m.payload.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(received.map((m) => String(m.meta.id)), missed.map(String));
  await r.removeChannel(ch2);
});
