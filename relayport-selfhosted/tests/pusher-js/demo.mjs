// Serves examples/web/index.html (with pusher-js's web build and a channel auth endpoint
// signed by the official `pusher` server SDK), opens it in headless Chromium (playwright-core
// with the system's chromium), and checks what a user would see: connected, a message
// published through the Pusher HTTP API, and the presence members (the page's user and a
// second member joining from node with pusher-js). Run by tests/pusher_mode_demo_page.rs.
//
// env: RELAYPORT_PORT, PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET, CHROMIUM
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import Pusher from "pusher";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const PusherClient = require("pusher-js");
const here = path.dirname(fileURLToPath(import.meta.url));
const page_file = path.join(here, "../../../examples/web/index.html");
const pusher_js = path.join(here, "node_modules/pusher-js/dist/web/pusher.min.js");
const port = Number(process.env.RELAYPORT_PORT);
const [appId, key, secret] = [process.env.PUSHER_APP_ID, process.env.PUSHER_KEY, process.env.PUSHER_SECRET];
const server_sdk = new Pusher({ appId, key, secret, host: "127.0.0.1", port: String(port), useTLS: false });

const fail = (why) => { console.error(`demo FAILED: ${why}`); process.exit(1); };
setTimeout(() => fail("timed out after 60 s"), 60_000).unref();

// The tiny route: the page, pusher-js, and the channel auth endpoint.
const web = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/index.html") {
    res.writeHead(200, { "content-type": "text/html" }).end(fs.readFileSync(page_file));
  } else if (url.pathname === "/pusher.min.js") {
    res.writeHead(200, { "content-type": "text/javascript" }).end(fs.readFileSync(pusher_js));
  } else if (url.pathname === "/pusher/auth" && req.method === "POST") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      const socket = form.get("socket_id"), channel = form.get("channel_name");
      const user = form.get("user") || "demo-user";
      const auth = channel.startsWith("presence-")
        ? server_sdk.authorizeChannel(socket, channel, { user_id: user, user_info: { name: user } })
        : server_sdk.authorizeChannel(socket, channel);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(auth));
    });
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((r) => web.listen(0, "127.0.0.1", r));
const web_port = web.address().port;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e}`));
  await page.goto(`http://127.0.0.1:${web_port}/index.html?key=${key}&host=127.0.0.1&port=${port}&user=ada`);
  await page.waitForSelector('body[data-state="connected"][data-news="subscribed"][data-lobby="subscribed"]', { timeout: 20_000 });
  console.log("page connected and subscribed");

  await server_sdk.trigger("news", "headline", { text: "hello from the Pusher HTTP API" });
  await page.waitForSelector("li.message", { timeout: 10_000 });
  const text = await page.textContent("li.message");
  if (text !== "hello from the Pusher HTTP API") fail(`the page shows ${JSON.stringify(text)}`);
  console.log("page received the published message");

  // A second member joins from node with pusher-js; the page lists both.
  const grace = new PusherClient(key, {
    cluster: "local", wsHost: "127.0.0.1", wsPort: port, forceTLS: false, enabledTransports: ["ws"],
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) =>
        cb(null, server_sdk.authorizeChannel(socketId, channelName, { user_id: "grace", user_info: {} })),
    },
  });
  grace.subscribe("presence-lobby");
  await page.waitForFunction(() => [...document.querySelectorAll("li.member")].map((l) => l.textContent).sort().join(",") === "ada,grace", null, { timeout: 10_000 });
  console.log("page sees presence: ada, grace");
  grace.disconnect();
  await page.waitForFunction(() => [...document.querySelectorAll("li.member")].map((l) => l.textContent).join(",") === "ada", null, { timeout: 10_000 });
  console.log("page sees grace leave");
  console.log("demo ok");
} finally {
  await browser.close();
  web.close();
}
process.exit(0);
