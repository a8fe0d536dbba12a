// The adapter's scenarios driven by the official socket.io-client (so the adapter is proven by
// an official client, not only by relayport's): `node --test test/` in adapter/.
// Each test starts its own socket.io server with the adapter on a free loopback port.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { attachRealtime } from "../index.mjs";

const SECRET = "adapter-test-secret";
const hmac = (message, secret = SECRET) =>
  createHmac("sha256", secret).update(message).digest("hex");

let httpServer;
let ioServer;
let url;
let realtime;
const sockets = [];

before(async () => {
  const adapters = [];
  httpServer = http.createServer((req, res) => {
    for (const a of adapters) if (a.httpHandler(req, res)) return;
    res.writeHead(404);
    res.end();
  });
  ioServer = new Server(httpServer, {
    connectionStateRecovery: { maxDisconnectionDuration: 60_000 },
  });
  realtime = attachRealtime(ioServer, { secret: SECRET });
  adapters.push(realtime);
  // An app's own event names on another namespace.
  adapters.push(
    attachRealtime(ioServer, {
      secret: SECRET,
      namespace: "/custom",
      events: { subscribe: "chat:join", message: "chat:message" },
      publishPath: "/custom/publish",
    }),
  );
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${httpServer.address().port}`;
});

after(async () => {
  for (const s of sockets) s.disconnect();
  ioServer.close();
});

async function client(namespace = "/") {
  const socket = connect(url + namespace, { transports: ["websocket"], reconnection: false });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  return socket;
}

const call = (socket, event, body) => socket.timeout(5000).emitWithAck(event, body);

function nextEvent(socket, event, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within 5 s`)), 5000);
    const listener = (...args) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(args);
    };
    socket.on(event, listener);
  });
}

async function httpPublish(body, { secret = SECRET, path = "/relayport/publish" } = {}) {
  const raw = JSON.stringify(body);
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const response = await fetch(url + path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-relayport-timestamp": timestamp,
      "x-relayport-signature": hmac(`${timestamp}.${raw}`, secret),
    },
    body: raw,
  });
  return response.status;
}

test("subscribe, then backend and HTTP publishes arrive with positions", async () => {
  const s = await client();
  const ack = await call(s, "rp:subscribe", { channel: "news" });
  assert.equal(ack.ok, true);
  assert.equal(ack.position.sequence, 0);
  const first = nextEvent(s, "rp:message");
  realtime.publish("news", "headline", { text: "hi" });
  const [message, offset] = await first;
  assert.deepEqual(
    [message.channel, message.event, message.data, message.position.sequence],
    ["news", "headline", { text: "hi" }, 1],
  );
  assert.equal(typeof offset, "string", "connection state recovery appends the offset");
  const second = nextEvent(s, "rp:message");
  assert.equal(await httpPublish({ channel: "news", event: "e", data: 2 }), 200);
  assert.equal((await second)[0].data, 2);
  assert.equal(await httpPublish({ channel: "news", event: "e", data: 3 }, { secret: "wrong" }), 401);
  assert.equal(await httpPublish({ channel: "", event: "e" }), 400);
});

test("private channels: refused without and with a bad signature, accepted when signed", async () => {
  const s = await client();
  const none = await call(s, "rp:subscribe", { channel: "private:vault" });
  assert.deepEqual([none.ok, none.error.code], [false, "unauthorized"]);
  const forged = await call(s, "rp:subscribe", {
    channel: "private:vault",
    auth: hmac(`${s.id}:private:vault`, "not-the-secret"),
  });
  assert.deepEqual([forged.ok, forged.error.code], [false, "forbidden"]);
  const other = await call(s, "rp:subscribe", {
    channel: "private:vault",
    auth: hmac(`someone-else:private:vault`),
  });
  assert.equal(other.ok, false, "a signature for another socket id");
  const signed = await call(s, "rp:subscribe", {
    channel: "private:vault",
    auth: hmac(`${s.id}:private:vault`),
  });
  assert.equal(signed.ok, true);
  const got = nextEvent(s, "rp:message");
  const published = await call(s, "rp:publish", { channel: "private:vault", event: "e", data: 42 });
  assert.equal(published.ok, true);
  assert.equal((await got)[0].data, 42);
  const stranger = await client();
  const refused = await call(stranger, "rp:publish", { channel: "private:vault", event: "e" });
  assert.deepEqual([refused.ok, refused.error.code], [false, "forbidden"]);
});

test("presence: join, update and leave between two clients", async () => {
  const room = "presence:lobby";
  const join = async (userId, info) => {
    const s = await client();
    const channel_data = JSON.stringify({ user_id: userId, user_info: info });
    const ack = await call(s, "rp:subscribe", {
      channel: room,
      auth: hmac(`${s.id}:${room}:${channel_data}`),
      channel_data,
    });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    return [s, ack];
  };
  const [alice] = await join("alice", {});
  assert.equal((await call(alice, "rp:presence:enter", { channel: room, data: { n: "A" } })).ok, true);
  const [bob, bobAck] = await join("bob", {});
  assert.deepEqual(bobAck.members, [{ id: "alice", data: { n: "A" } }]);
  const joined = nextEvent(alice, "rp:presence", (e) => e.action === "join" && e.member.id === "bob");
  await call(bob, "rp:presence:enter", { channel: room, data: { n: "B" } });
  assert.deepEqual((await joined)[0].member, { id: "bob", data: { n: "B" } });
  const members = await call(bob, "rp:presence:members", { channel: room });
  assert.deepEqual(members.members.map((m) => m.id).sort(), ["alice", "bob"]);
  const updated = nextEvent(alice, "rp:presence", (e) => e.action === "update");
  await call(bob, "rp:presence:update", { channel: room, data: { n: "B", typing: true } });
  assert.deepEqual((await updated)[0].member.data, { n: "B", typing: true });
  const left = nextEvent(alice, "rp:presence", (e) => e.action === "leave" && e.member.id === "bob");
  bob.disconnect();
  await left;
  // A presence channel needs channel_data signed with the rest.
  const carol = await client();
  const bad = await call(carol, "rp:subscribe", {
    channel: room,
    auth: hmac(`${carol.id}:${room}`),
    channel_data: JSON.stringify({ user_id: "carol" }),
  });
  assert.deepEqual([bad.ok, bad.error.code], [false, "forbidden"]);
});

test("event names are configurable per namespace", async () => {
  const s = await client("/custom");
  const ack = await call(s, "chat:join", { channel: "room" });
  assert.equal(ack.ok, true);
  const got = nextEvent(s, "chat:message");
  assert.equal(await httpPublish({ channel: "room", event: "said", data: "hey" }, { path: "/custom/publish" }), 200);
  assert.equal((await got)[0].data, "hey");
});

test("malformed requests get a refusal, never a crash", async () => {
  const s = await client();
  for (const body of [null, 42, "x", {}, { channel: "" }, { channel: "a b" }, { channel: "x".repeat(300) }]) {
    const ack = await call(s, "rp:subscribe", body);
    assert.deepEqual([ack.ok, ack.error.code], [false, "bad_request"], JSON.stringify(body));
  }
  const noEvent = await call(s, "rp:publish", { channel: "news" });
  assert.equal(noEvent.ok, false);
  // Still connected and served.
  assert.equal((await call(s, "rp:subscribe", { channel: "news" })).ok, true);
});

test("a Buffer published by a client or over HTTP reaches subscribers as a Buffer", async () => {
  const [alice, bob] = [await client(), await client()];
  for (const s of [alice, bob]) assert.equal((await call(s, "rp:subscribe", { channel: "files" })).ok, true);
  const bytes = Buffer.from([0x00, 0xff, 0x00, 0x7f]);
  const got = nextEvent(bob, "rp:message");
  assert.equal((await call(alice, "rp:publish", { channel: "files", event: "f", data: bytes })).ok, true);
  const [message] = await got;
  assert.ok(Buffer.isBuffer(message.data), `data arrived as ${JSON.stringify(message.data)}`);
  assert.deepEqual([...message.data], [0x00, 0xff, 0x00, 0x7f]);
  assert.equal(message.sender, alice.id);
  const empty = nextEvent(bob, "rp:message");
  assert.equal((await call(alice, "rp:publish", { channel: "files", event: "f", data: Buffer.alloc(0) })).ok, true);
  const [none] = await empty;
  assert.ok(Buffer.isBuffer(none.data) && none.data.length === 0, JSON.stringify(none.data));
  // Over HTTP: base64 with `encoding` becomes a Buffer; JSON stays JSON; bad base64 is refused.
  const viaHttp = nextEvent(bob, "rp:message", (m) => m.event === "http");
  assert.equal(await httpPublish({ channel: "files", event: "http", data: "AP8A", encoding: "base64" }), 200);
  const [fromHttp] = await viaHttp;
  assert.ok(Buffer.isBuffer(fromHttp.data));
  assert.deepEqual([...fromHttp.data], [0x00, 0xff, 0x00]);
  assert.equal(await httpPublish({ channel: "files", event: "http", data: "not base64!", encoding: "base64" }), 400);
  assert.equal(await httpPublish({ channel: "files", event: "http", data: 1, encoding: "base64" }), 400);
  assert.equal(await httpPublish({ channel: "files", event: "http", data: "AA==", encoding: "utf-7" }), 400);
});

test("echo: false leaves the publisher out; by default it gets its own message", async () => {
  const [alice, bob] = [await client(), await client()];
  for (const s of [alice, bob]) assert.equal((await call(s, "rp:subscribe", { channel: "talk" })).ok, true);
  const seen = [];
  alice.on("rp:message", (m) => seen.push(m.event));
  const bobGets = nextEvent(bob, "rp:message", (m) => m.event === "quiet");
  assert.equal((await call(alice, "rp:publish", { channel: "talk", event: "quiet", data: 1, echo: false })).ok, true);
  await bobGets;
  // Her next publish, echo on, comes back to her after anything the first could have sent.
  const loud = nextEvent(alice, "rp:message", (m) => m.event === "loud");
  assert.equal((await call(alice, "rp:publish", { channel: "talk", event: "loud", data: 2 })).ok, true);
  await loud;
  assert.deepEqual(seen, ["loud"]);
  const bad = await call(alice, "rp:publish", { channel: "talk", event: "x", echo: "no" });
  assert.deepEqual([bad.ok, bad.error.code], [false, "bad_request"]);
});
