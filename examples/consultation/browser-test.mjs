// The consultation page in a real browser (run by tests/tests/consultation_browser.rs, which
// makes the database, the consultation, coturn and the companion serving this directory).
// Headless Debian chromium with fake media devices, driven by playwright-core: the patient waits,
// the clinician admits, the two connect through TURN only, chat, and hang up. Prints one line
// `RESULT <json>` with what it measured; any failed expectation exits non-zero.
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('BASE_URL');
const CONSULTATION = env('CONSULTATION');
const SCREENSHOT = env('SCREENSHOT');
const TOKENS = { patient: env('PATIENT_TOKEN'), clinician: env('CLINICIAN_TOKEN'), outsider: env('OUTSIDER_TOKEN') };
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function check(ok, what) {
  if (!ok) throw new Error(`expected: ${what}`);
}

const url = (role) =>
  `${BASE}/examples/consultation/index.html?relay=1#token=${TOKENS[role]}&consultation=${CONSULTATION}&role=${role}&autostart=1`;

/** What getStats() says about the page's peer connection. */
const stats = (page) => page.evaluate(async () => {
  const pc = window.careplane.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let pair = null;
  let framesDecoded = 0;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
  });
  const local = pair && byId.get(pair.localCandidateId);
  const remote = pair && byId.get(pair.remoteCandidateId);
  return {
    iceConnectionState: pc.iceConnectionState,
    connectionState: pc.connectionState,
    iceTransportPolicy: pc.getConfiguration().iceTransportPolicy,
    pairState: pair && pair.state,
    localCandidateType: local && local.candidateType,
    remoteCandidateType: remote && remote.candidateType,
    relayProtocol: local && local.relayProtocol,
    framesDecoded,
  };
});

async function until(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const result = {};
try {
  const pages = {};
  const consoleErrors = [];
  for (const role of ['patient', 'clinician']) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 720 } });
    await context.grantPermissions(['camera', 'microphone'], { origin: BASE });
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`${role}: ${m.text()}`); });
    page.on('pageerror', (e) => consoleErrors.push(`${role}: ${e.message}`));
    pages[role] = page;
  }
  const status = (page) => page.evaluate(() => window.careplane.status);

  // The patient enters the waiting room.
  await pages.patient.goto(url('patient'));
  await until('the patient in the waiting room', async () => (await status(pages.patient)) === 'waiting');
  // The clinician sees the patient waiting and admits them.
  await pages.clinician.goto(url('clinician'));
  await pages.clinician.locator('#admit').waitFor({ state: 'visible', timeout: 30000 });
  await pages.clinician.click('#admit');
  await until('both in the call', async () => (await status(pages.patient)) === 'in_progress' && (await status(pages.clinician)) === 'in_progress');

  // Relay-only ICE connects and video flows both ways.
  for (const role of ['patient', 'clinician']) {
    result[role] = await until(`${role}: ICE connected over a relay pair, video frames decoded`, async () => {
      const s = await stats(pages[role]);
      return s && ['connected', 'completed'].includes(s.iceConnectionState) && s.pairState === 'succeeded' && s.framesDecoded > 5 ? s : null;
    }, 45000);
    check(result[role].iceTransportPolicy === 'relay', `${role}: iceTransportPolicy relay`);
    check(result[role].localCandidateType === 'relay', `${role}: the selected pair's local candidate is a relay candidate`);
  }
  // Let the fake camera's picture reach the screen, then keep a picture of the call.
  await pages.clinician.waitForFunction(() => document.getElementById('remote').videoWidth > 0);
  await pages.clinician.waitForTimeout(1000);
  await pages.clinician.fill('#body', 'Good morning — can you hear me?');
  await pages.clinician.click('#send');
  await pages.patient.locator('#messages li', { hasText: 'Good morning' }).waitFor({ timeout: 15000 });

  // Typing is a client broadcast; the message a stored row announced by message:new.
  await pages.patient.locator('#body').pressSequentially('Yes, clearly', { delay: 20 });
  await pages.clinician.locator('#typing', { hasText: 'typing' }).waitFor({ timeout: 10000 });
  result.typingSeen = true;
  await pages.patient.click('#send');
  await pages.clinician.locator('#messages li', { hasText: 'Yes, clearly' }).waitFor({ timeout: 15000 });
  result.chat = await pages.clinician.evaluate(() => [...document.querySelectorAll('#messages li')].map((li) => li.textContent));
  await pages.clinician.evaluate(() => window.scrollTo(0, 0));
  await pages.clinician.screenshot({ path: SCREENSHOT, fullPage: true });

  // A third user cannot join the call's topic, nor get TURN credentials.
  const outsider = await pages.patient.evaluate(async ({ base, token, consultation }) => {
    const c = supabase.createClient(base, token, { auth: { persistSession: false, autoRefreshToken: false } });
    const joined = await new Promise((resolve) => {
      c.channel(`consultation:${consultation}`, { config: { private: true } })
        .subscribe((s, err) => { if (s !== 'SUBSCRIBED' && !err) return; resolve({ status: s, error: err && err.message }); });
    });
    const turn = await fetch(`${base}/v1/consultations/${consultation}/ice-servers`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    await c.removeAllChannels();
    return { joined, turnStatus: turn.status };
  }, { base: BASE, token: TOKENS.outsider, consultation: CONSULTATION });
  check(outsider.joined.status === 'CHANNEL_ERROR' && /Unauthorized/.test(outsider.joined.error), `the outsider's join is refused: ${JSON.stringify(outsider)}`);
  check(outsider.turnStatus === 404, 'the outsider gets no TURN credentials');
  result.outsider = outsider;

  // A second client of the patient's, on the topic while the call is open, used after the end.
  await pages.patient.evaluate(({ base, token, consultation }) => new Promise((resolve, reject) => {
    const c = supabase.createClient(base, token, { auth: { persistSession: false, autoRefreshToken: false } });
    window.late = { system: [] };
    window.late.channel = c.channel(`consultation:${consultation}`, { config: { private: true, broadcast: { ack: true } } })
      .on('system', {}, (m) => window.late.system.push(m))
      .subscribe((s, err) => { if (s === 'SUBSCRIBED') resolve(); else if (err) reject(err); });
  }), { base: BASE, token: TOKENS.patient, consultation: CONSULTATION });

  // Mute, then hang up (the clinician): the consultation ends on both pages.
  await pages.patient.click('#mute');
  check(await pages.patient.evaluate(() => window.careplane.muted === true && window.careplane.pc.getSenders().some((s) => s.track && s.track.kind === 'audio' && !s.track.enabled)), 'mute disables the audio track');
  await pages.clinician.click('#hangup');
  await until('both pages see the end', async () => (await status(pages.patient)) === 'ended' && (await status(pages.clinician)) === 'ended');

  // The relay re-checks the topic (at most every 2 s): a send after the end is refused and the
  // channel is closed.
  await pages.patient.waitForTimeout(2200);
  result.lateSend = await pages.patient.evaluate(async () => {
    const sent = await window.late.channel.send({ type: 'broadcast', event: 'signal', payload: { kind: 'candidate' } });
    await new Promise((r) => setTimeout(r, 500));
    return { sent, system: window.late.system, state: window.late.channel.state };
  });
  check(result.lateSend.sent === 'error', `a send after the end is refused: ${JSON.stringify(result.lateSend)}`);
  check(result.lateSend.state === 'closed', `the channel is closed after the end: ${JSON.stringify(result.lateSend)}`);
  result.errors = await Promise.all(['patient', 'clinician'].map((r) => pages[r].evaluate(() => window.careplane.errors)));
  check(result.errors.flat().length === 0, `no page errors: ${JSON.stringify(result.errors)}`);
  result.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(`RESULT ${JSON.stringify(result)}`);
