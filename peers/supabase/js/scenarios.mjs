// The official @supabase/realtime-js (pinned in package.json) against relayport-peer-supabase.
// Run by peers/supabase/tests/official_sdk.rs:
//   PEER_URL=http://127.0.0.1:<port> PEER_SECRET=<jwt secret> node scenarios.mjs
// The peer must run with `--error-backoff-ms 100` (join errors would otherwise take 5 s).
// Prints one line per scenario and a closing "N passed, N failed"; exits 1 on any failure.
import crypto from 'node:crypto'
import WebSocket from 'ws'
import { RealtimeClient } from '@supabase/realtime-js'

const PEER = process.env.PEER_URL
const SECRET = process.env.PEER_SECRET
if (!PEER || !SECRET) {
  console.error('PEER_URL and PEER_SECRET must be set')
  process.exit(2)
}
const ENDPOINT = PEER.replace(/^http/, 'ws') + '/realtime/v1'

// ---- helpers -------------------------------------------------------------------------------

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
function jwt(claims, secret = SECRET) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  const sig = crypto.createHmac('sha256', secret).update(input).digest('base64url')
  return `${input}.${sig}`
}
const now = () => Math.floor(Date.now() / 1000)
const token = (role, ttlSecs, extra = {}) => jwt({ role, iat: now(), exp: now() + ttlSecs, ...extra })
const ANON = token('anon', 3600)
const SERVICE = token('service_role', 3600)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function client(vsn, opts = {}) {
  return new RealtimeClient(ENDPOINT, {
    transport: WebSocket,
    params: { apikey: ANON },
    vsn,
    timeout: 3000,
    ...opts,
  })
}

/** A promise and its resolver, with a deadline. */
function deferred(label, ms = 4000) {
  let resolve
  const p = new Promise((res, rej) => {
    resolve = res
    setTimeout(() => rej(new Error(`${label}: nothing within ${ms} ms`)), ms)
  })
  p.catch(() => {}) // awaited later (or not at all when an earlier step failed)
  return { p, resolve }
}

/** Subscribes and waits for the first terminal status. */
function subscribe(channel, ms = 4000) {
  const d = deferred(`subscribe ${channel.topic}`, ms)
  channel.subscribe((status, err) => {
    if (status !== 'SUBSCRIBED' && status !== 'CHANNEL_ERROR' && status !== 'TIMED_OUT' && status !== 'CLOSED') return
    d.resolve({ status, err: err ? String(err.message ?? err) : '' })
  })
  return d.p
}

async function subscribed(channel) {
  const r = await subscribe(channel)
  if (r.status !== 'SUBSCRIBED') throw new Error(`${channel.topic}: ${r.status} ${r.err}`)
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg)
}

async function control(path, body) {
  const res = await fetch(PEER + path, body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  assert(res.ok, `${path}: HTTP ${res.status}`)
  return res.json()
}

// ---- scenarios -----------------------------------------------------------------------------

async function broadcastSelfAck(vsn) {
  const a = client(vsn)
  const b = client(vsn)
  try {
    const room = `room-${vsn}`
    const mine = deferred('own broadcast (self)')
    const theirs = deferred('broadcast at b')
    const ca = a.channel(room, { config: { broadcast: { self: true, ack: true } } })
      .on('broadcast', { event: 'hi' }, (m) => mine.resolve(m))
    const cb = b.channel(room).on('broadcast', { event: 'hi' }, (m) => theirs.resolve(m))
    await subscribed(ca)
    await subscribed(cb)
    const ack = await ca.send({ type: 'broadcast', event: 'hi', payload: { n: 1 } })
    assert(ack === 'ok', `ack was ${ack}`)
    const [m1, m2] = await Promise.all([mine.p, theirs.p])
    assert(m1.payload.n === 1 && m2.payload.n === 1, `payloads ${JSON.stringify([m1, m2])}`)
    // Without self, a's own broadcast does not come back.
    const b2 = deferred('b second')
    let echoed = false
    const cNoSelf = b.channel(`${room}-noself`).on('broadcast', { event: 'x' }, () => { echoed = true })
    const cOther = a.channel(`${room}-noself`).on('broadcast', { event: 'x' }, (m) => b2.resolve(m))
    await subscribed(cNoSelf)
    await subscribed(cOther)
    await cNoSelf.send({ type: 'broadcast', event: 'x', payload: { k: 2 } })
    await b2.p
    await sleep(100)
    assert(!echoed, 'a broadcast came back to its sender without self')
  } finally {
    a.disconnect()
    b.disconnect()
  }
}

async function presence(vsn) {
  const a = client(vsn)
  const b = client(vsn)
  try {
    const room = `lobby-${vsn}`
    const ca = a.channel(room, { config: { presence: { key: 'alice' } } })
    const cb = b.channel(room, { config: { presence: { key: 'bob' } } })
    const bothSeen = deferred('a sees alice and bob')
    const bobLeft = deferred('a sees bob leave')
    ca.on('presence', { event: 'sync' }, () => {
      const keys = Object.keys(ca.presenceState()).sort().join(',')
      if (keys === 'alice,bob') bothSeen.resolve()
    })
    ca.on('presence', { event: 'leave' }, ({ key }) => { if (key === 'bob') bobLeft.resolve() })
    cb.on('presence', { event: 'sync' }, () => {})
    await subscribed(ca)
    await subscribed(cb)
    assert((await ca.track({ v: 1 })) === 'ok', 'alice track')
    assert((await cb.track({ v: 2 })) === 'ok', 'bob track')
    await bothSeen.p
    const bobMeta = ca.presenceState().bob[0]
    assert(bobMeta.v === 2 && typeof bobMeta.presence_ref === 'string', JSON.stringify(bobMeta))
    assert((await cb.untrack()) === 'ok', 'bob untrack')
    await bobLeft.p
    const state = await control(`/_peer/presence?channel=${room}`)
    assert(JSON.stringify(Object.keys(state)) === '["alice"]', `peer presence ${JSON.stringify(state)}`)
  } finally {
    a.disconnect()
    b.disconnect()
  }
}

async function privateChannelAuth(vsn) {
  const good = client(vsn)
  const none = client(vsn)
  const forged = client(vsn)
  try {
    const name = `vault-${vsn}`
    await good.setAuth(token('authenticated', 600, { sub: 'u1' }))
    await subscribed(good.channel(name, { config: { private: true } }))
    // No user token: the anon key is used, and the policy refuses role anon.
    const r1 = await subscribe(none.channel(name, { config: { private: true } }))
    assert(r1.status === 'CHANNEL_ERROR' && r1.err.includes('Unauthorized'), `anon: ${r1.status} ${r1.err}`)
    await forged.setAuth(jwt({ role: 'authenticated', exp: now() + 600 }, 'not-the-secret-not-the-secret!!'))
    const r2 = await subscribe(forged.channel(name, { config: { private: true } }))
    assert(r2.status === 'CHANNEL_ERROR' && r2.err.includes('JwtSignatureError'), `forged: ${r2.status} ${r2.err}`)
    // The accepted client is still joined after the refusals on other sockets.
    const ch = good.channel(name, { config: { private: true } })
    assert(ch.state === 'joined', `state ${ch.state}`)
  } finally {
    good.disconnect()
    none.disconnect()
    forged.disconnect()
  }
}

async function setAuthRefreshesBeforeExpiry(vsn) {
  const c = client(vsn)
  try {
    const name = `refresh-${vsn}`
    await c.setAuth(token('authenticated', 2, { sub: 'u1' }))
    const got = deferred('the broadcast after the first token expired', 6000)
    let closed = false
    const ch = c.channel(name, { config: { private: true } })
      .on('broadcast', { event: 'late' }, (m) => got.resolve(m))
      .on('system', {}, (m) => { if (m.status === 'error') closed = true })
    await subscribed(ch)
    await sleep(500)
    await c.setAuth(token('authenticated', 600, { sub: 'u1' }))
    await sleep(2600) // past the first token's exp
    assert(!closed && ch.state === 'joined', `closed=${closed} state=${ch.state}`)
    const res = await fetch(`${PEER}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: ANON, authorization: `Bearer ${SERVICE}` },
      body: JSON.stringify({ messages: [{ topic: name, event: 'late', payload: { ok: true }, private: true }] }),
    })
    assert(res.status === 202, `REST ${res.status}`)
    const m = await got.p
    assert(m.payload.ok === true, JSON.stringify(m))
    const stats = await control('/_peer/stats')
    assert(stats.access_tokens >= 1, `the peer saw no access_token push: ${JSON.stringify(stats)}`)
  } finally {
    c.disconnect()
  }
}

async function tokenExpiryClosesTheChannel(vsn) {
  const c = client(vsn)
  try {
    await c.setAuth(token('authenticated', 2, { sub: 'u1' }))
    const sys = deferred('system "Token has expired"', 6000)
    const closed = deferred('CLOSED', 6000)
    const ch = c.channel(`expiring-${vsn}`, { config: { private: true } })
      .on('system', {}, (m) => { if (String(m.message).includes('Token has expired')) sys.resolve(m) })
    ch.subscribe((status) => { if (status === 'CLOSED') closed.resolve() })
    const m = await sys.p
    assert(m.status === 'error' && m.extension === 'system', JSON.stringify(m))
    await closed.p
    assert(ch.state === 'closed', `state ${ch.state}`)
  } finally {
    c.disconnect()
  }
}

async function postgresChanges(vsn) {
  const c = client(vsn)
  try {
    const got = deferred('the INSERT')
    const sub = deferred('system "Subscribed to PostgreSQL"')
    const ch = c.channel(`db-${vsn}`)
      .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'todos', filter: 'owner=eq.ann' }, (p) => got.resolve(p))
      .on('system', {}, (m) => { if (m.message === 'Subscribed to PostgreSQL') sub.resolve(m) })
    await subscribed(ch)
    await sub.p
    const miss = await control('/_peer/postgres', { schema: 'public', table: 'todos', type: 'INSERT', record: { id: 1, owner: 'bob' } })
    assert(miss.delivered === 0, `a filtered-out row was delivered: ${JSON.stringify(miss)}`)
    const hit = await control('/_peer/postgres', {
      schema: 'public', table: 'todos', type: 'INSERT',
      record: { id: '2', owner: 'ann' }, columns: [{ name: 'id', type: 'int8' }, { name: 'owner', type: 'text' }],
    })
    assert(hit.delivered === 1, JSON.stringify(hit))
    const p = await got.p
    assert(p.eventType === 'INSERT' && p.new.owner === 'ann' && p.new.id === 2 && p.table === 'todos', JSON.stringify(p))
  } finally {
    c.disconnect()
  }
}

async function restBroadcast(vsn) {
  const listener = client(vsn)
  const sender = client(vsn)
  try {
    const name = `rest-${vsn}`
    const viaEvent = deferred('httpSend delivery')
    const viaBatch = deferred('batch delivery')
    const ch = listener.channel(name)
      .on('broadcast', { event: 'one' }, (m) => viaEvent.resolve(m))
      .on('broadcast', { event: 'two' }, (m) => viaBatch.resolve(m))
    await subscribed(ch)
    await sender.setAuth(SERVICE)
    const r = await sender.channel(name).httpSend('one', { x: 1 })
    assert(r.success === true, `httpSend ${JSON.stringify(r)}`)
    assert((await viaEvent.p).payload.x === 1, 'single-event payload')
    const res = await fetch(`${PEER}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: ANON },
      body: JSON.stringify({ messages: [{ topic: name, event: 'two', payload: { y: 2 }, id: 'id-7' }] }),
    })
    assert(res.status === 202, `batch ${res.status}`)
    const m = await viaBatch.p
    assert(m.payload.y === 2 && m.meta?.id === 'id-7', JSON.stringify(m))
    const bad = await fetch(`${PEER}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', apikey: 'not-a-jwt' },
      body: JSON.stringify({ messages: [] }),
    })
    assert(bad.status === 401, `unauthenticated REST got ${bad.status}`)
  } finally {
    listener.disconnect()
    sender.disconnect()
  }
}

async function phxErrorRejoins(vsn) {
  const c = client(vsn)
  try {
    const name = `crashy-${vsn}`
    let joins = 0
    const rejoined = deferred('the rejoin after phx_error', 5000)
    const ch = c.channel(name)
    ch.subscribe((status) => {
      if (status === 'SUBSCRIBED' && ++joins === 2) rejoined.resolve()
    })
    while (joins < 1) await sleep(20)
    const r = await control('/_peer/fail', { channel: name })
    assert(r.errored === 1, JSON.stringify(r))
    await rejoined.p
  } finally {
    c.disconnect()
  }
}

/** vsn 2.0.0 binary broadcasts: an ArrayBuffer payload goes out as kind 3, reaches another
 * vsn 2 client as kind 4 (an ArrayBuffer again), and never reaches a vsn 1 client. */
async function binaryBroadcast() {
  const a = client('2.0.0')
  const b = client('2.0.0')
  const old = client('1.0.0')
  try {
    const room = 'binary-room'
    const got = deferred('the binary broadcast at b')
    const marker = deferred('the marker at the vsn 1 client')
    let oldGotBinary = false
    const ca = a.channel(room, { config: { broadcast: { ack: true } } })
    const cb = b.channel(room).on('broadcast', { event: 'bin' }, (m) => got.resolve(m))
    const co = old.channel(room)
      .on('broadcast', { event: 'bin' }, () => { oldGotBinary = true })
      .on('broadcast', { event: 'marker' }, (m) => marker.resolve(m))
    await subscribed(ca)
    await subscribed(cb)
    await subscribed(co)
    const bytes = new Uint8Array([1, 2, 255]).buffer
    assert((await ca.send({ type: 'broadcast', event: 'bin', payload: bytes })) === 'ok', 'binary ack')
    const m = await got.p
    const received = new Uint8Array(m.payload)
    assert(m.payload instanceof ArrayBuffer && received.join(',') === '1,2,255', `binary payload ${received}`)
    assert((await ca.send({ type: 'broadcast', event: 'marker', payload: { after: 'bin' } })) === 'ok', 'marker ack')
    await marker.p
    assert(!oldGotBinary, 'a binary payload reached a vsn 1.0.0 client')
  } finally {
    a.disconnect()
    b.disconnect()
    old.disconnect()
  }
}

// ---- runner --------------------------------------------------------------------------------

const scenarios = []
for (const vsn of ['1.0.0', '2.0.0']) {
  scenarios.push([`broadcast_self_ack vsn ${vsn}`, () => broadcastSelfAck(vsn)])
  scenarios.push([`presence_track_untrack_sync vsn ${vsn}`, () => presence(vsn)])
  scenarios.push([`private_channel_auth vsn ${vsn}`, () => privateChannelAuth(vsn)])
  scenarios.push([`postgres_changes vsn ${vsn}`, () => postgresChanges(vsn)])
  scenarios.push([`rest_broadcast vsn ${vsn}`, () => restBroadcast(vsn)])
  scenarios.push([`phx_error_rejoins vsn ${vsn}`, () => phxErrorRejoins(vsn)])
}
scenarios.push(['binary_broadcast vsn 2.0.0 (and not to vsn 1.0.0)', binaryBroadcast])
scenarios.push(['set_auth_refreshes_before_expiry vsn 2.0.0', () => setAuthRefreshesBeforeExpiry('2.0.0')])
scenarios.push(['token_expiry_closes_the_channel vsn 1.0.0', () => tokenExpiryClosesTheChannel('1.0.0')])

const only = process.argv[2]
let passed = 0
let failed = 0
for (const [name, run] of scenarios) {
  if (only && !name.includes(only)) continue
  try {
    await run()
    passed++
    console.log(`ok   ${name}`)
  } catch (e) {
    failed++
    console.log(`FAIL ${name}: ${e?.stack ?? e}`)
  }
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 && passed > 0 ? 0 : 1)
