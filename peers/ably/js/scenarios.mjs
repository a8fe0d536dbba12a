// The official ably npm SDK (pinned in package.json) against relayport-peer-ably.
//
//   node scenarios.mjs <port>
//
// Prints `PASS <name>` or `FAIL <name>: <why>` per scenario and exits non-zero if any failed.
// The peer's test-control API (`/_peer/...`) drops links and inspects members.
import * as Ably from 'ably';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: node scenarios.mjs <port>');
  process.exit(2);
}
const FULL = 'peerapp.full:full-secret-0123456789';
const LIMITED = 'peerapp.limited:limited-secret-0123456789';
const base = `http://127.0.0.1:${port}`;
// An IP endpoint has no fallback hosts (and none are given); tls:false: ws:// and http:// on `port`.
const common = { endpoint: '127.0.0.1', fallbackHosts: [], port, tls: false, useBinaryProtocol: false, logLevel: 0 };

const clients = [];
function realtime(opts) {
  const c = new Ably.Realtime({ ...common, ...opts });
  clients.push(c);
  return c;
}

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function state(conn, wanted, ms = 5000) {
  if (conn.state === wanted) return Promise.resolve(null);
  return within(ms, `connection ${wanted}`, new Promise((resolve) => {
    const on = (change) => {
      if (change.current === wanted) {
        conn.off(on);
        resolve(change);
      }
    };
    conn.on(on);
  }));
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function control(method, path, body) {
  const res = await fetch(`${base}/_peer/${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`control ${method} ${path}: ${res.status}`);
  return res.status === 200 ? res.json() : null;
}

function nextMessages(channel, count, name) {
  const got = [];
  return within(5000, `${count} message(s) on ${channel.name}`, new Promise((resolve) => {
    channel.subscribe(name, (m) => {
      got.push(m);
      if (got.length === count) resolve(got);
    });
  }));
}

const scenarios = {
  async connect_with_key() {
    const c = realtime({ key: FULL, clientId: 'js-a' });
    await state(c.connection, 'connected');
    check(c.connection.id, 'no connection id');
    check(c.auth.clientId === 'js-a', `clientId ${c.auth.clientId}`);
    const conns = await control('GET', 'connections');
    check(conns.some((x) => x.id === c.connection.id && x.clientId === 'js-a'), 'the peer does not hold the connection');
    c.close();
    await state(c.connection, 'closed');
  },

  async attach_publish_subscribe() {
    const a = realtime({ key: FULL, clientId: 'js-a' });
    const b = realtime({ key: FULL, clientId: 'js-b' });
    const ca = a.channels.get('js:chat');
    const cb = b.channels.get('js:chat');
    await ca.attach();
    await cb.attach();
    check(ca.state === 'attached', `state ${ca.state}`);
    const atA = nextMessages(ca, 2, 'note');
    const atB = nextMessages(cb, 2, 'note');
    await ca.publish('note', { n: 1 });
    await cb.publish('note', 'two');
    const [ga, gb] = await Promise.all([atA, atB]);
    for (const got of [ga, gb]) {
      check(JSON.stringify(got.map((m) => m.data)) === JSON.stringify([{ n: 1 }, 'two']), `got ${JSON.stringify(got.map((m) => m.data))}`);
      check(got[0].clientId === 'js-a' && got[1].clientId === 'js-b', 'clientIds not stamped');
      check(got[0].connectionId === a.connection.id, 'connectionId not stamped');
    }
    // Published history over REST.
    const rest = new Ably.Rest({ ...common, key: FULL });
    const page = await rest.channels.get('js:chat').history({ limit: 1 });
    check(page.items.length === 1 && page.items[0].data === 'two', `history ${JSON.stringify(page.items)}`);
    check(page.hasNext(), 'history has no next page');
    const next = await page.next();
    check(next.items.length === 1 && next.items[0].data.n === 1, `page 2 ${JSON.stringify(next.items)}`);
    a.close();
    b.close();
  },

  async presence_enter_leave_sync() {
    const a = realtime({ key: FULL, clientId: 'alice' });
    const b = realtime({ key: FULL, clientId: 'bob' });
    const pa = a.channels.get('js:room');
    await pa.presence.enter({ mood: 'ok' });
    // Bob attaches late: the SYNC brings Alice.
    const pb = b.channels.get('js:room');
    const members = await within(5000, 'presence.get', pb.presence.get());
    check(members.length === 1 && members[0].clientId === 'alice' && members[0].data.mood === 'ok', `bob sees ${JSON.stringify(members)}`);
    const seen = [];
    const bobEvents = within(5000, 'enter and leave of bob', new Promise((resolve) => {
      pa.presence.subscribe((m) => {
        if (m.clientId !== 'bob') return;
        seen.push(m.action);
        if (m.action === 'leave') resolve();
      });
    }));
    await pb.presence.enter('hi');
    const onPeer = await control('GET', 'channels/js%3Aroom/members');
    check(onPeer.length === 2, `the peer holds ${JSON.stringify(onPeer)}`);
    await pb.presence.leave();
    await bobEvents;
    check(seen.join(',') === 'enter,leave', `alice saw ${seen}`);
    const left = await pa.presence.get();
    check(left.length === 1 && left[0].clientId === 'alice', `after leave ${JSON.stringify(left)}`);
    a.close();
    b.close();
  },

  async token_auth_with_token_request() {
    const keyed = new Ably.Rest({ ...common, key: FULL });
    let calls = 0;
    const c = realtime({
      clientId: 'tok-user',
      authCallback: (params, cb) => {
        calls += 1;
        keyed.auth
          .createTokenRequest({ clientId: params.clientId, capability: { 'tok:*': ['*'] } })
          .then((tr) => cb(null, tr), (err) => cb(err, null));
      },
    });
    await state(c.connection, 'connected');
    check(calls === 1, `authCallback called ${calls} times`);
    check(c.auth.clientId === 'tok-user', `clientId ${c.auth.clientId}`);
    const ch = c.channels.get('tok:x');
    await ch.attach();
    const got = nextMessages(ch, 1, 'hello');
    await ch.publish('hello', 'via token');
    check((await got)[0].data === 'via token', 'message not received');
    // The token does not cover other channels.
    const other = c.channels.get('elsewhere');
    const err = await other.attach().then(() => null, (e) => e);
    check(err && err.code === 40160, `attach outside the token: ${err && err.code}`);
    // A forged TokenRequest (wrong mac) is refused by requestToken.
    const forged = new Ably.Rest({
      ...common,
      authCallback: (_p, cb) =>
        keyed.auth.createTokenRequest({}).then((tr) => cb(null, { ...tr, mac: 'AAAA' + tr.mac.slice(4) })),
    });
    const refused = await forged.auth.authorize().then(() => null, (e) => e);
    check(refused && (refused.code === 40101 || refused.cause?.code === 40101 || refused.code === 40170), `forged mac: ${refused && refused.code}`);
    c.close();
  },

  async capability_refusal() {
    const c = realtime({ key: LIMITED, clientId: 'limited' });
    const denied = c.channels.get('forbidden');
    const err = await denied.attach().then(() => null, (e) => e);
    check(err && err.code === 40160, `attach forbidden: ${err && err.code}`);
    check(denied.state === 'failed', `channel state ${denied.state}`);
    const ok = c.channels.get('allowed:x');
    await ok.attach();
    check(ok.state === 'attached', `allowed: ${ok.state}`);
    const ro = c.channels.get('readonly');
    await ro.attach();
    const nack = await ro.publish('x', 'y').then(() => null, (e) => e);
    check(nack && nack.code === 40160, `publish on readonly: ${nack && nack.code}`);
    check(c.connection.state === 'connected', `connection ${c.connection.state}`);
    c.close();
  },

  async resume_after_drop_loses_nothing() {
    const c = realtime({ key: FULL, clientId: 'resumer' });
    const ch = c.channels.get('js:resume');
    await ch.attach();
    const got = nextMessages(ch, 4, 'n');
    await control('POST', 'channels/js%3Aresume/publish', { name: 'n', data: 'before' });
    const id = c.connection.id;
    const resumed = within(5000, 'attached after resume', new Promise((resolve) => {
      ch.on('attached', (change) => resolve(change));
    }));
    await control('POST', `connections/${id}/drop`);
    for (const n of [1, 2, 3]) {
      await control('POST', 'channels/js%3Aresume/publish', { name: 'n', data: `during-${n}` });
    }
    const change = await resumed;
    await state(c.connection, 'connected');
    check(c.connection.id === id, `connection id changed ${id} -> ${c.connection.id}`);
    check(change.resumed === true, 'channel not resumed');
    const data = (await got).map((m) => m.data);
    check(JSON.stringify(data) === JSON.stringify(['before', 'during-1', 'during-2', 'during-3']), `got ${JSON.stringify(data)}`);
    await new Promise((r) => setTimeout(r, 300));
    check(ch.state === 'attached', `channel ${ch.state}`);
    c.close();
  },

  async bad_key_fails() {
    const c = realtime({ key: 'peerapp.full:not-the-secret' });
    const change = await state(c.connection, 'failed');
    check(change.reason && change.reason.code === 40101, `reason ${change.reason && change.reason.code}`);
  },

  async close_leaves_at_once() {
    const a = realtime({ key: FULL, clientId: 'stayer' });
    const b = realtime({ key: FULL, clientId: 'closer' });
    const pa = a.channels.get('js:closing');
    await pa.attach();
    const left = within(3000, 'the leave of closer (well before the 15 s grace)', new Promise((resolve) => {
      pa.presence.subscribe('leave', (m) => m.clientId === 'closer' && resolve(m));
    }));
    await b.channels.get('js:closing').presence.enter();
    b.close();
    await state(b.connection, 'closed');
    await left;
    a.close();
  },

  async token_expiry_renews_and_resumes() {
    const keyed = new Ably.Rest({ ...common, key: FULL });
    let calls = 0;
    const c = realtime({
      clientId: 'renewer',
      authCallback: (params, cb) => {
        calls += 1;
        keyed.auth.createTokenRequest({ clientId: params.clientId }).then((tr) => cb(null, tr), (e) => cb(e, null));
      },
    });
    await state(c.connection, 'connected');
    const id = c.connection.id;
    const disconnected = state(c.connection, 'disconnected');
    await control('POST', 'tokens/expire');
    const change = await disconnected;
    check(change.reason && change.reason.code === 40142, `reason ${change.reason && change.reason.code}`);
    await state(c.connection, 'connected');
    check(calls === 2, `authCallback called ${calls} times`);
    check(c.connection.id === id, 'the connection was not resumed');
    c.close();
  },

  async server_requested_reauth() {
    const keyed = new Ably.Rest({ ...common, key: FULL });
    let calls = 0;
    const c = realtime({
      authCallback: (_p, cb) => {
        calls += 1;
        keyed.auth.createTokenRequest({}).then((tr) => cb(null, tr), (e) => cb(e, null));
      },
    });
    await state(c.connection, 'connected');
    const id = c.connection.id;
    const update = within(5000, 'connection update', new Promise((resolve) => c.connection.once('update', resolve)));
    await control('POST', `connections/${id}/auth`);
    await update;
    check(calls === 2, `authCallback called ${calls} times`);
    check(c.connection.id === id && c.connection.state === 'connected', 'not the same connection');
    c.close();
  },

  async presence_reentry_after_failed_resume() {
    const a = realtime({ key: FULL, clientId: 'reenter' });
    const b = realtime({ key: FULL, clientId: 'observer' });
    const pa = a.channels.get('js:reenter');
    await pa.presence.enter('back');
    const pb = b.channels.get('js:reenter');
    await pb.attach();
    const events = [];
    const back = within(8000, 'leave then enter of reenter', new Promise((resolve) => {
      pb.presence.subscribe((m) => {
        if (m.clientId !== 'reenter') return;
        events.push(m.action);
        if (m.action === 'enter' && events.includes('leave')) resolve(m);
      });
    }));
    const old = a.connection.id;
    await control('POST', `connections/${old}/expire`);
    const entered = await back;
    check(a.connection.id !== old, 'a failed resume keeps the connection id');
    check(entered.connectionId === a.connection.id && entered.data === 'back', `re-entered ${JSON.stringify(entered)}`);
    const members = await control('GET', 'channels/js%3Areenter/members');
    check(members.some((m) => m.clientId === 'reenter' && m.connectionId === a.connection.id), `members ${JSON.stringify(members)}`);
    a.close();
    b.close();
  },
  async echo_messages_false() {
    const quiet = realtime({ key: FULL, clientId: 'quiet', echoMessages: false });
    const other = realtime({ key: FULL, clientId: 'other' });
    const cq = quiet.channels.get('js:echo');
    const co = other.channels.get('js:echo');
    await cq.attach();
    await co.attach();
    const seenByQuiet = [];
    cq.subscribe((m) => seenByQuiet.push(m.data));
    const atOther = nextMessages(co, 2, 'e');
    await cq.publish('e', 'from-quiet');
    await co.publish('e', 'from-other');
    const got = (await atOther).map((m) => m.data);
    check(JSON.stringify(got) === '["from-quiet","from-other"]', `other got ${JSON.stringify(got)}`);
    await within(5000, 'quiet hears the other', new Promise((resolve) => {
      const poll = () => (seenByQuiet.includes('from-other') ? resolve() : setTimeout(poll, 20));
      poll();
    }));
    check(JSON.stringify(seenByQuiet) === '["from-other"]', `quiet got ${JSON.stringify(seenByQuiet)}`);
    quiet.close();
    other.close();
  },
};

let failed = 0;
const only = process.argv[3];
for (const [name, run] of Object.entries(scenarios)) {
  if (only && only !== name) continue;
  try {
    await within(20000, name, run());
    console.log(`PASS ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
  }
  for (const c of clients.splice(0)) {
    try { c.close(); } catch { /* already closed */ }
  }
}
process.exit(failed ? 1 : 0);
