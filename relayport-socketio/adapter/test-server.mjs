// The loopback test server relayport's tests start: a real socket.io 4.x server with the
// adapter on "/" and "/chat", connection state recovery on, and a few raw test events.
//
//   PORT=0 SECRET=s3cret node test-server.mjs      # prints "listening <port>" when ready
//   env: RECOVERY=0, PING_INTERVAL / PING_TIMEOUT (ms), TRANSPORTS=polling
//
// Raw events (outside the convention, for the raw emit/on tests):
//   "echo"  (...args, ack)  acks with the same arguments (binary included)
//   "push"  (event, ...args) the server emits `event` with `args` to this socket
//   "whoami" (ack)           acks { nsp, id, auth } (auth without pid/offset)
//   "drop"                   the server closes this socket's transport (recoverable)
//   "ask" (q, ack)           the server emits "question" q with an ack to this client and
//                            acks the caller with { answer } (the client's ack arguments)
//   "watch-heartbeats"       the server emits "heartbeat" (a count) on each pong it receives
// Namespace "/guarded" admits only handshakes with auth { token: "letmein" }.

import http from "node:http";
import { Server } from "socket.io";
import { attachRealtime } from "./index.mjs";

const port = Number(process.env.PORT ?? 0);
const secret = process.env.SECRET ?? "s3cret";
const recovery = process.env.RECOVERY !== "0";
// TRANSPORTS=polling refuses the WebSocket upgrade (HTTP 400), as a proxy without WebSockets.
const transports = (process.env.TRANSPORTS ?? "polling,websocket").split(",");

const adapters = [];
const httpServer = http.createServer((req, res) => {
  for (const a of adapters) if (a.httpHandler(req, res)) return;
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, {
  transports,
  pingInterval: Number(process.env.PING_INTERVAL ?? 25000),
  pingTimeout: Number(process.env.PING_TIMEOUT ?? 20000),
  connectionStateRecovery: recovery
    ? { maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true }
    : undefined,
});

function rawEvents(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
      if (ack) ack(...args);
    });
    socket.on("push", (event, ...args) => socket.emit(event, ...args));
    socket.on("whoami", (ack) => {
      const { pid, offset, ...auth } = socket.handshake.auth ?? {};
      if (typeof ack === "function") ack({ nsp: nsp.name, id: socket.id, auth, recovered: socket.recovered });
    });
    socket.on("drop", () => socket.conn.close());
    // The server asks the client (an event with an ack) and acks the caller with the answer.
    socket.on("ask", async (question, ack) => {
      try {
        const answer = await socket.timeout(5000).emitWithAck("question", question);
        ack({ answer });
      } catch (e) {
        ack({ error: String(e) });
      }
    });
    // Every pong the engine receives from this client, reported back as a "heartbeat" event.
    socket.on("watch-heartbeats", () => {
      let n = 0;
      socket.conn.on("heartbeat", () => socket.emit("heartbeat", ++n));
    });
  });
}

for (const name of ["/", "/chat"]) {
  adapters.push(attachRealtime(io, { secret, namespace: name }));
  rawEvents(io.of(name));
}
const guarded = io.of("/guarded");
guarded.use((socket, next) => {
  if (socket.handshake.auth?.token === "letmein") return next();
  const err = new Error("not authorized");
  err.data = { reason: "bad token" };
  next(err);
});
rawEvents(guarded);

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
