// The official pusher-js client (its node build) and the official `pusher` server SDK
// against relayport-server's Pusher protocol mode. Run by tests/pusher_mode_official_sdk.rs:
//   RP_PORT=… RP_APP_ID=… RP_KEY=… RP_SECRET=… RP_MASTER_KEY=… RP_HOOK_PORT=… node scenario.js
// Prints one line per step and `SCENARIO OK` at the end; exits 1 on the first failure.
'use strict';
const http = require('http');
const WebSocket = require('ws');
const PusherServer = require('pusher');
const PusherClient = require('pusher-js');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing ${k}`);
  return v;
};
const port = Number(env('RP_PORT'));
const appId = env('RP_APP_ID');
const key = env('RP_KEY');
const secret = env('RP_SECRET');
const masterKey = env('RP_MASTER_KEY');
const hookPort = Number(env('RP_HOOK_PORT'));

const server = new PusherServer({
  appId, key, secret, host: '127.0.0.1', port, useTLS: false,
  encryptionMasterKeyBase64: masterKey,
});

function step(name) { console.log(`ok ${name}`); }
function fail(msg) { console.error(`FAIL ${msg}`); process.exit(1); }
function assert(cond, msg) { if (!cond) fail(msg); }
function eq(a, b, msg) {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  if (x !== y) fail(`${msg}: ${x} !== ${y}`);
}
function within(ms, what, promise) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)),
  ]);
}
const WAIT = 10000;

function client(userId) {
  return new PusherClient(key, {
    cluster: 'local', wsHost: '127.0.0.1', wsPort: port, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => {
        const presence = channelName.startsWith('presence-')
          ? { user_id: userId, user_info: { name: userId.toUpperCase() } } : undefined;
        cb(null, server.authorizeChannel(socketId, channelName, presence));
      },
    },
    userAuthentication: {
      customHandler: ({ socketId }, cb) => {
        const watchlist = userId === 'user-a' ? ['user-b'] : [];
        cb(null, server.authenticateUser(socketId, { id: userId, user_info: { name: userId }, watchlist }));
      },
    },
  });
}

const connected = (p) => within(WAIT, 'connected', new Promise((resolve) => {
  if (p.connection.state === 'connected') return resolve();
  p.connection.bind('connected', resolve);
}));
const subscribed = (p, name) => within(WAIT, `subscribed ${name}`, new Promise((resolve, reject) => {
  const ch = p.subscribe(name);
  ch.bind('pusher:subscription_succeeded', (d) => resolve([ch, d]));
  ch.bind('pusher:subscription_error', (e) => reject(new Error(`${name}: ${JSON.stringify(e)}`)));
}));
const next = (ch, event) => within(WAIT, `event ${event}`, new Promise((resolve) => {
  const f = (data, meta) => { ch.unbind(event, f); resolve([data, meta]); };
  ch.bind(event, f);
}));

// Webhooks: collected, each checked with the SDK's own verifier.
const hooks = [];
let hookWaiters = [];
const hookServer = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const hook = server.webhook({ headers: req.headers, rawBody: body });
    if (!hook.isValid()) { res.writeHead(401); res.end(); fail(`invalid webhook ${body}`); }
    for (const e of hook.getEvents()) hooks.push(e);
    res.writeHead(200); res.end('{}');
    hookWaiters = hookWaiters.filter((w) => !w());
  });
});
const hookSeen = (pred, what) => within(WAIT, `webhook ${what}`, new Promise((resolve) => {
  const check = () => { const e = hooks.find(pred); if (e) { resolve(e); return true; } return false; };
  if (!check()) hookWaiters.push(check);
}));

async function main() {
  await new Promise((r) => hookServer.listen(hookPort, '127.0.0.1', r));

  // The raw first frame, with `ws`: protocol 7's connection_established, double-encoded.
  const first = await within(WAIT, 'raw frame', new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${key}?protocol=7&client=js&version=8.6.0&flash=false`);
    ws.on('message', (m) => { ws.close(); resolve(JSON.parse(m.toString())); });
    ws.on('error', reject);
  }));
  eq(first.event, 'pusher:connection_established', 'first frame');
  const est = JSON.parse(first.data);
  assert(/^\d+\.\d+$/.test(est.socket_id) && est.activity_timeout > 0, `connection data ${first.data}`);
  step('raw connection_established');

  const a = client('user-a');
  const b = client('user-b');
  await connected(a);
  await connected(b);
  step('connected');

  // Public channel, REST trigger with info.
  const [feed] = await subscribed(a, 'feed');
  await hookSeen((e) => e.name === 'channel_occupied' && e.channel === 'feed', 'channel_occupied');
  const got = next(feed, 'news');
  const res = await server.trigger('feed', 'news', { n: 1 }, { info: 'subscription_count' });
  const body = await res.json();
  eq(body.channels.feed.subscription_count, 1, 'trigger info');
  eq((await got)[0], { n: 1 }, 'public event');
  step('public + trigger info + channel_occupied webhook');

  // Private channel: client events, not echoed; socket exclusion.
  const [pa] = await subscribed(a, 'private-chat');
  const [pb] = await subscribed(b, 'private-chat');
  let echoed = false;
  pb.bind('client-typing', () => { echoed = true; });
  const typing = next(pa, 'client-typing');
  assert(pb.trigger('client-typing', { t: true }), 'client event sent');
  eq((await typing)[0], { t: true }, 'client event');
  let excluded = false;
  pa.bind('not-for-a', () => { excluded = true; });
  await server.trigger('private-chat', 'not-for-a', {}, { socket_id: a.connection.socket_id });
  const marker = next(pa, 'marker');
  const markerB = next(pb, 'marker');
  await server.trigger('private-chat', 'marker', {});
  await marker;
  await markerB;
  assert(!echoed, 'client event echoed to its sender');
  assert(!excluded, 'socket_id exclusion ignored');
  const clientHook = await hookSeen((e) => e.name === 'client_event', 'client_event');
  eq([clientHook.channel, clientHook.event, clientHook.socket_id], ['private-chat', 'client-typing', b.connection.socket_id], 'client_event webhook');
  step('private + client events + exclusion + client_event webhook');

  // Presence: members, member_added/removed, REST users and channel lists.
  const [la, membersA] = await subscribed(a, 'presence-lobby');
  eq(membersA.count, 1, 'alone first');
  const added = next(la, 'pusher:member_added');
  const [lb, membersB] = await subscribed(b, 'presence-lobby');
  eq(membersB.count, 2, 'two members');
  eq(membersB.get('user-a').info, { name: 'USER-A' }, 'member info');
  eq((await added)[0].id, 'user-b', 'member_added');
  const users = await (await server.get({ path: '/channels/presence-lobby/users' })).json();
  eq(users.users.map((u) => u.id).sort(), ['user-a', 'user-b'], 'REST users');
  const list = await (await server.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
  eq(list.channels['presence-lobby'].user_count, 2, 'REST channels');
  const info = await (await server.get({ path: '/channels/presence-lobby', params: { info: 'user_count' } })).json();
  eq([info.occupied, info.user_count], [true, 2], 'REST channel info');
  await hookSeen((e) => e.name === 'member_added' && e.user_id === 'user-b', 'member_added');
  const removed = next(la, 'pusher:member_removed');
  b.unsubscribe('presence-lobby');
  eq((await removed)[0].id, 'user-b', 'member_removed');
  await hookSeen((e) => e.name === 'member_removed' && e.user_id === 'user-b', 'member_removed');
  void lb;
  step('presence + REST queries + member webhooks');

  // Batch.
  const b1 = next(feed, 'b1');
  const b2 = next(feed, 'b2');
  await server.triggerBatch([{ channel: 'feed', name: 'b1', data: { i: 1 } }, { channel: 'feed', name: 'b2', data: 'plain' }]);
  eq((await b1)[0], { i: 1 }, 'batch 1');
  eq((await b2)[0], 'plain', 'batch 2');
  step('batch');

  // End-to-end encrypted channel: the SDK encrypts, pusher-js decrypts.
  const [vault] = await subscribed(a, 'private-encrypted-vault');
  const secretEvent = next(vault, 'secret');
  await server.trigger('private-encrypted-vault', 'secret', { s: 'top secret' });
  eq((await secretEvent)[0], { s: 'top secret' }, 'decrypted');
  step('encrypted');

  // Sign-in and a server-to-user event, then terminate the user's connections.
  const watched = within(WAIT, 'watchlist offline', new Promise((resolve) => a.user.watchlist.bind('offline', resolve)));
  a.signin();
  await within(WAIT, 'signin', a.user.signinDonePromise);
  eq((await watched).user_ids, ['user-b'], 'watchlist at sign-in');
  eq(a.user.user_data && a.user.user_data.id, 'user-a', 'signed in');
  // pusher-js subscribes to #server-to-user-user-a after the sign-in; wait for it.
  await within(WAIT, 'server-to-user channel', new Promise((resolve) => {
    const poll = () => {
      const ch = a.user.serverToUserChannel;
      if (ch && ch.subscribed) resolve(); else setTimeout(poll, 10);
    };
    poll();
  }));
  const direct = within(WAIT, 'user event', new Promise((resolve) => a.user.bind('direct', resolve)));
  await server.sendToUser('user-a', 'direct', { m: 1 });
  eq(await direct, { m: 1 }, 'server-to-user');
  const gone = within(WAIT, 'terminated', new Promise((resolve) => a.connection.bind('state_change', (s) => {
    if (s.current === 'disconnected') resolve();
  })));
  await server.terminateUserConnections('user-a');
  await gone;
  step('signin + watchlist + sendToUser + terminate');

  b.disconnect();
  hookServer.close();
  console.log('SCENARIO OK');
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
