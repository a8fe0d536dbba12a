// relayport's channel convention for a Socket.IO 4.x server.
//
//   import { attachRealtime } from "relayport-socketio-adapter";
//   const realtime = attachRealtime(io, { secret: process.env.REALTIME_SECRET });
//   realtime.publish("news", "headline", { text: "hi" });   // from the backend
//   http.createServer((req, res) => realtime.httpHandler(req, res) || app(req, res));
//
// Socket.IO has no channels on the wire; this adapter maps relayport channels to rooms through
// events with acknowledgements (names configurable, see DEFAULT_EVENTS). Private and presence
// channels need the same HMAC-SHA256 signature as relayport's other providers:
//   private:  hex(hmac(secret, `${socket.id}:${channel}`))
//   presence: hex(hmac(secret, `${socket.id}:${channel}:${channel_data}`)),
//             channel_data = '{"user_id":…,"user_info":…}' (the member id comes from there).
// No build step, no dependency besides the socket.io server the application already runs.

import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

/** The event names of the convention; override any of them with `options.events`. */
export const DEFAULT_EVENTS = Object.freeze({
  subscribe: "rp:subscribe",
  unsubscribe: "rp:unsubscribe",
  publish: "rp:publish",
  message: "rp:message",
  presence: "rp:presence",
  presenceEnter: "rp:presence:enter",
  presenceUpdate: "rp:presence:update",
  presenceLeave: "rp:presence:leave",
  presenceMembers: "rp:presence:members",
});

/** The path of the HTTP publish endpoint relayport's `SocketIoPublisher` calls. */
export const DEFAULT_PUBLISH_PATH = "/relayport/publish";

/** How far (seconds) a publish request's timestamp may be from this server's clock. */
export const MAX_CLOCK_SKEW_S = 300;

const MAX_CHANNEL_LEN = 200;
const MAX_EVENT_LEN = 200;
const MAX_BODY = 1024 * 1024;

/** The HMAC-SHA256 of `message` with `secret`, as lowercase hex. */
export function sign(secret, message) {
  return createHmac("sha256", secret).update(message).digest("hex");
}

/** Constant-time check of a hex signature; malformed input is simply not valid. */
export function verify(secret, message, signatureHex) {
  if (typeof signatureHex !== "string" || !/^[0-9a-f]{64}$/i.test(signatureHex)) return false;
  const expected = Buffer.from(sign(secret, message), "hex");
  const given = Buffer.from(signatureHex, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function kindOf(channel) {
  if (channel.startsWith("private:")) return "private";
  if (channel.startsWith("presence:")) return "presence";
  return "public";
}

function validChannel(channel) {
  return (
    typeof channel === "string" &&
    channel.length > 0 &&
    channel.length <= MAX_CHANNEL_LEN &&
    !/[\s*]/.test(channel) &&
    !channel.endsWith(":")
  );
}

function validEvent(event) {
  return typeof event === "string" && event.length > 0 && event.length <= MAX_EVENT_LEN;
}

function refuse(code, message) {
  return { ok: false, error: { code, message } };
}

// The room of a channel: prefixed, so that an application's own rooms never collide.
const room = (channel) => `rp:${channel}`;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

// The data of an HTTP-published message: JSON as is; `encoding: "base64"` with a base64
// string becomes a Buffer (relayed as a binary attachment). Throws a refusal otherwise.
function decodeData(m) {
  if (m.encoding === undefined || m.encoding === null || m.encoding === "") return m.data ?? null;
  if (m.encoding !== "base64") throw refuse("bad_request", `unknown encoding ${m.encoding}`);
  if (typeof m.data !== "string" || !BASE64.test(m.data)) {
    throw refuse("bad_request", "a base64 payload must be a base64 string");
  }
  return Buffer.from(m.data, "base64");
}

/**
 * Attaches the convention to a Socket.IO server (its main namespace, or `options.namespace`)
 * or to one namespace (`io.of("/chat")`).
 *
 * options:
 *  - secret (required): the app secret signatures are made with (relayport's REALTIME_SECRET).
 *  - namespace: the namespace to serve when `target` is the server (default "/").
 *  - events: overrides of DEFAULT_EVENTS (e.g. { subscribe: "chat:join" }).
 *  - publishPath: the HTTP publish endpoint's path (default DEFAULT_PUBLISH_PATH).
 *  - clientPublish(socket, channel, event): whether a client may publish (default: subscribed
 *    sockets may publish on the channels they joined).
 *
 * Returns { publish, members, httpHandler, events, namespace }.
 */
export function attachRealtime(target, options = {}) {
  const secret = options.secret;
  if (typeof secret !== "string" || secret.length === 0) {
    throw new TypeError("attachRealtime: options.secret is required");
  }
  const nsp = typeof target.of === "function" ? target.of(options.namespace ?? "/") : target;
  const events = { ...DEFAULT_EVENTS, ...(options.events ?? {}) };
  const publishPath = options.publishPath ?? DEFAULT_PUBLISH_PATH;
  const clientPublish =
    options.clientPublish ?? ((socket, channel) => socket.rooms.has(room(channel)));
  // The stream's epoch: positions are comparable only within one run of this process.
  const epoch = randomUUID();
  const sequences = new Map(); // channel -> last sequence
  // channel -> Map(userId -> { data, sockets: Set(socketId) })
  const presence = new Map();

  const position = (channel) => ({ epoch, sequence: sequences.get(channel) ?? 0 });

  // Sends a message to the channel's room; `skipSender` leaves out the publishing socket (a
  // client that asked for no echo). A Buffer `data` travels as a binary attachment.
  function broadcast(channel, event, data, sender, skipSender = false) {
    const sequence = (sequences.get(channel) ?? 0) + 1;
    sequences.set(channel, sequence);
    const message = {
      channel,
      event,
      data,
      id: `${epoch}:${sequence}`,
      position: { epoch, sequence },
      timestamp: Date.now(),
    };
    if (sender) message.sender = sender;
    const to = nsp.to(room(channel));
    (skipSender && sender ? to.except(sender) : to).emit(events.message, message);
  }

  function membersOf(channel) {
    const table = presence.get(channel);
    if (!table) return [];
    return [...table.entries()].map(([id, m]) => ({ id, data: m.data }));
  }

  function presenceEvent(channel, action, id, data) {
    nsp.to(room(channel)).emit(events.presence, { channel, action, member: { id, data } });
  }

  // This socket's state (kept in socket.data so that connection state recovery restores it).
  function state(socket) {
    socket.data ??= {};
    socket.data.relayport ??= { users: {}, entered: {} };
    return socket.data.relayport;
  }

  function enter(socket, channel, data) {
    const userId = state(socket).users[channel];
    let table = presence.get(channel);
    if (!table) presence.set(channel, (table = new Map()));
    const member = table.get(userId);
    state(socket).entered[channel] = true;
    if (!member) {
      table.set(userId, { data, sockets: new Set([socket.id]) });
      presenceEvent(channel, "join", userId, data);
    } else {
      member.sockets.add(socket.id);
      if (JSON.stringify(member.data) !== JSON.stringify(data)) {
        member.data = data;
        presenceEvent(channel, "update", userId, data);
      }
    }
  }

  function leave(socket, channel) {
    const st = state(socket);
    if (!st.entered[channel]) return;
    delete st.entered[channel];
    const userId = st.users[channel];
    const table = presence.get(channel);
    const member = table?.get(userId);
    if (!member) return;
    member.sockets.delete(socket.id);
    if (member.sockets.size === 0) {
      table.delete(userId);
      if (table.size === 0) presence.delete(channel);
      presenceEvent(channel, "leave", userId, member.data);
    }
  }

  // Checks a subscribe request; returns the presence user id (or null) or throws a refusal.
  function authorize(socket, body) {
    const { channel } = body;
    const kind = kindOf(channel);
    if (kind === "public") return null;
    if (typeof body.auth !== "string") {
      throw refuse("unauthorized", `${channel} needs a signature (auth) and none was given`);
    }
    if (kind === "private") {
      if (!verify(secret, `${socket.id}:${channel}`, body.auth)) {
        throw refuse("forbidden", `invalid signature for ${channel}`);
      }
      return null;
    }
    if (typeof body.channel_data !== "string") {
      throw refuse("unauthorized", `${channel} needs channel_data`);
    }
    if (!verify(secret, `${socket.id}:${channel}:${body.channel_data}`, body.auth)) {
      throw refuse("forbidden", `invalid signature for ${channel}`);
    }
    let parsed;
    try {
      parsed = JSON.parse(body.channel_data);
    } catch {
      throw refuse("bad_request", "channel_data is not JSON");
    }
    if (typeof parsed?.user_id !== "string" || parsed.user_id.length === 0) {
      throw refuse("bad_request", "channel_data has no user_id");
    }
    return parsed.user_id;
  }

  // Wraps a handler: the last argument must be an ack function; bad input gets a refusal.
  function handle(fn) {
    return (...args) => {
      const ack = args.length > 0 && typeof args[args.length - 1] === "function" ? args.pop() : null;
      const body = args[0];
      let answer;
      try {
        if (body === null || typeof body !== "object" || !validChannel(body.channel)) {
          throw refuse("bad_request", "expected an object with a valid `channel`");
        }
        answer = fn(body) ?? { ok: true };
      } catch (e) {
        answer = e && e.ok === false ? e : refuse("internal", String(e?.message ?? e));
      }
      if (ack) ack(answer);
    };
  }

  nsp.on("connection", (socket) => {
    const st = state(socket);
    // A recovered session got its rooms and socket.data back; presence is entered again by
    // the client's resubscribe (relayport's core resubscribes even a resumed session).
    st.entered = {};

    socket.on(
      events.subscribe,
      handle((body) => {
        const userId = authorize(socket, body);
        if (userId !== null) st.users[body.channel] = userId;
        socket.join(room(body.channel));
        const answer = { ok: true, position: position(body.channel) };
        if (kindOf(body.channel) === "presence") answer.members = membersOf(body.channel);
        return answer;
      }),
    );

    socket.on(
      events.unsubscribe,
      handle(({ channel }) => {
        leave(socket, channel);
        delete st.users[channel];
        socket.leave(room(channel));
      }),
    );

    socket.on(
      events.publish,
      handle(({ channel, event, data, echo }) => {
        if (!validEvent(event)) throw refuse("bad_request", "expected a string `event`");
        if (echo !== undefined && typeof echo !== "boolean") {
          throw refuse("bad_request", "`echo` must be a boolean");
        }
        if (!clientPublish(socket, channel, event)) {
          throw refuse("forbidden", `publishing on ${channel} needs a subscription to it`);
        }
        // `data` may be a Buffer (a binary attachment): it is relayed as one.
        broadcast(channel, event, data ?? null, socket.id, echo === false);
      }),
    );

    const presenceCall = (update) =>
      handle(({ channel, data }) => {
        if (kindOf(channel) !== "presence" || st.users[channel] === undefined) {
          throw refuse("forbidden", `${channel}: subscribe to the presence channel first`);
        }
        if (update && !st.entered[channel]) {
          throw refuse("bad_request", `${channel}: not entered`);
        }
        enter(socket, channel, data ?? null);
      });
    socket.on(events.presenceEnter, presenceCall(false));
    socket.on(events.presenceUpdate, presenceCall(true));
    socket.on(
      events.presenceLeave,
      handle(({ channel }) => leave(socket, channel)),
    );
    socket.on(
      events.presenceMembers,
      handle(({ channel }) => {
        if (!socket.rooms.has(room(channel))) {
          throw refuse("forbidden", `${channel}: subscribe first`);
        }
        return { ok: true, members: membersOf(channel) };
      }),
    );

    socket.on("disconnect", () => {
      for (const channel of Object.keys(st.entered)) leave(socket, channel);
    });
  });

  /** Publishes from the backend: every subscriber of `channel` gets `event` with `data` (a
   * Buffer travels as bytes). */
  function publish(channel, event, data) {
    if (!validChannel(channel)) throw new TypeError(`invalid channel ${channel}`);
    if (!validEvent(event)) throw new TypeError(`invalid event ${event}`);
    broadcast(channel, event, data ?? null, undefined);
  }

  /**
   * The HTTP publish endpoint: `POST publishPath` with a JSON body `{channel, event, data}` or
   * `{messages: [...]}` (bytes as `data` = base64 text with `encoding: "base64"`), headers `x-relayport-timestamp` (Unix seconds) and
   * `x-relayport-signature` = hex(hmac(secret, `${timestamp}.${body}`)). Returns true when it
   * handled the request (so `httpHandler(req, res) || app(req, res)` chains), false otherwise;
   * as express middleware, `next()` is called for other paths.
   */
  function httpHandler(req, res, next) {
    const path = (req.url ?? "").split("?")[0];
    if (path !== publishPath) {
      if (typeof next === "function") next();
      return false;
    }
    const reply = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "POST") {
      reply(405, refuse("method_not_allowed", "POST only"));
      return true;
    }
    const chunks = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) return reply(413, refuse("too_large", `the body exceeds ${MAX_BODY} bytes`));
      const raw = Buffer.concat(chunks).toString("utf8");
      const timestamp = req.headers["x-relayport-timestamp"];
      const signature = req.headers["x-relayport-signature"];
      const ts = Number(timestamp);
      if (!Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > MAX_CLOCK_SKEW_S) {
        return reply(401, refuse("unauthorized", "missing or stale x-relayport-timestamp"));
      }
      if (!verify(secret, `${timestamp}.${raw}`, signature)) {
        return reply(401, refuse("unauthorized", "invalid x-relayport-signature"));
      }
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return reply(400, refuse("bad_request", "the body is not JSON"));
      }
      const messages = Array.isArray(body?.messages) ? body.messages : [body];
      const payloads = [];
      for (const m of messages) {
        if (!m || !validChannel(m.channel) || !validEvent(m.event)) {
          return reply(400, refuse("bad_request", "each message needs a valid channel and event"));
        }
        try {
          payloads.push(decodeData(m));
        } catch (e) {
          return reply(400, e);
        }
      }
      messages.forEach((m, i) => broadcast(m.channel, m.event, payloads[i], undefined));
      reply(200, { ok: true });
    });
    return true;
  }

  return { publish, members: membersOf, httpHandler, events, namespace: nsp };
}
