#!/usr/bin/env python3
"""Regenerates the seed corpus in fuzz/corpus/<target>/ from the repository's own recorded
vectors (<crate>/tests/vectors/*.json) and the protocol examples in relayport-selfhosted/PROTOCOL.md.

Run from anywhere: `python3 fuzz/seed_corpus.py`. Each seed file is named by the SHA-1 of its
bytes (libFuzzer's convention), so re-running only adds what is new. Keep the corpus small:
this script caps each target at MAX_SEEDS files.
"""
import hashlib
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
MAX_SEEDS = 60


def load(name):
    crate = "relayport-" + name.split("-")[0].split(".")[0]
    with open(os.path.join(ROOT, crate, "tests", "vectors", name), encoding="utf-8") as f:
        return json.load(f)


def frames(tree, direction, key):
    """Every `key` of an object whose `dir` is `direction`, in document order."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            if v.get("dir") == direction and isinstance(v.get(key), str):
                out.append(v[key])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(tree)
    return out


def write(target, seeds):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    seen = set()
    kept = 0
    for seed in seeds:
        data = seed if isinstance(seed, bytes) else seed.encode("utf-8")
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        with open(os.path.join(folder, digest), "wb") as f:
            f.write(data)
        kept += 1
        if kept >= MAX_SEEDS:
            break
    print(f"{target}: {kept} seeds")


def protocol_blocks(tag):
    with open(os.path.join(ROOT, "relayport-selfhosted", "PROTOCOL.md"), encoding="utf-8") as f:
        doc = f.read()
    return [b.strip() for b in re.findall(r"```json " + tag + r"\n(.*?)```", doc, re.S)]


def main():
    pusher = [
        '{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\\"user_id\\":7,\\"user_info\\":{\\"name\\":\\"Ada\\"}}"}',
        '{"event":"pusher:error","data":{"code":4009,"message":"Connection not authorized"}}',
        '{"event":"secret","channel":"private-encrypted-a","data":"{\\"nonce\\":\\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\",\\"ciphertext\\":\\"AAAA\\"}"}',
        '{"event":"client-x","channel":"presence-a","data":{"a":1},"user_id":"u1"}',
    ]
    pusher += [w["raw_body"] for w in load("pusher.json")["webhooks"] if "raw_body" in w][:4]
    for name in ["pusher-js-transcript.json", "pusher-sockudo-live.json", "pusher-soketi-live.json"]:
        pusher += frames(load(name), "server->client", "raw")
    write("pusher_frame", pusher)

    ably = load("ably.json")
    seeds = frames(ably, "s2c", "raw")
    cross = ably.get("fixtureCrossCheck", {})
    for fixture in ["messages-encoding.json", "presence-messages-encoding.json"]:
        for item in cross.get(fixture, [])[:10]:
            m = {k: v for k, v in item.get("input", {}).items() if k in ("data", "encoding")}
            if fixture.startswith("presence"):
                seeds.append(json.dumps({"action": 14, "channel": "room", "presence": [dict(m, action=2, clientId="c")]}))
            else:
                seeds.append(json.dumps({"action": 15, "channel": "room", "messages": [dict(m, name="e", serial="1700000000000-3@a:2")]}))
    write("ably_protocol", seeds)

    supabase = load("supabase.json")
    write("supabase_text", frames(supabase, "server->client", "text"))
    binary = frames(supabase, "server->client", "hex") + frames(supabase, "client->server", "hex")
    binary += [
        "00010d0531726f6f6d3a6c6f6262797265706c7901",  # kind 0
        "0101010d026f6b",  # kind 1, truncated on purpose
        "020d05726f6f6d3a6c6f6262796576656e74ff00",  # kind 2
    ]
    write("supabase_binary", [bytes.fromhex(h) for h in binary])

    server = protocol_blocks("client")
    server += [
        "room~5f3a9c0e1d2b4a68~41|private:room:1~e~7",
        "public:public:x~e~1|room~e~2",
        '{"user_id":"u1","user_info":{"name":"Ada"}}',
        '{"type":"subscribe","ref":"x","channel":"public:private:secret"}',
        '{"type":"subscribe","channel":"agent.#.#.status"}',
    ]
    write("selfhosted_server", server)

    client = protocol_blocks("server")
    message = [b for b in client if '"type": "message"' in b]
    if message:
        body = json.loads(message[0])
        del body["type"]
        client.append("id: room~e~43\nevent: message\ndata: " + json.dumps(body) + "\n\n")
    client.append(': keep-alive\r\n\r\nevent: subscribed\r\ndata: {"type":"subscribed","channel":"room"}\r\n\r\n')
    write("selfhosted_client", client)

    names = ["room", "public:feed", "private:user:123", "presence:room:456", "agent.*.status",
             "agent.#", "public:private:x", "public:public:x", "private-room-1", "presence-lobby",
             "#server-to-user-1", "private-encrypted-a", "ns:room", "a" * 164, "private:" + "a" * 165,
             "a.*x", "private:a.*", "naïve", "", "public:"]
    write("channel_parse", names)

    pairs = ["a.*.c\na.b.c", "a.#.c\na.c", "a.#.c\na.b.b.d", "#\nanything.at.all", "#\nprivate:x",
             "a.*\na.#", "a.b\na.b", "agent.*.status\nagent.7.status", "*.*\na:b", "#.#.x\ny.x"]
    write("channel_matches", pairs)


if __name__ == "__main__":
    main()
