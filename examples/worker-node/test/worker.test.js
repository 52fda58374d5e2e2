// The worker against a real NATS server at $NATS_URL (go test
// ./examples/worker-node starts one and runs these): events published as
// bus/doc.go says shardtop publishes them, and a fake shardtop answering
// commands on shardtop.cmd.0.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";

const url = process.env.NATS_URL;
const skip = url ? false : "NATS_URL is not set: go test ./examples/worker-node runs these against a NATS server";
const workerPath = fileURLToPath(new URL("../worker.js", import.meta.url));
const TIMEOUT_MS = 10_000;

// until re-checks cond, which returns [ok, state], until ok or the deadline:
// a polling interval, not a sleep to synchronise.
async function until(what, cond) {
  const deadline = Date.now() + TIMEOUT_MS;
  let pause = 1;
  for (;;) {
    const [ok, state] = await cond();
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}; last state: ${state}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(2 * pause, 20);
  }
}

// event publishes one event with the contract's subject and headers.
async function event(js, { name, shard, count, seq, session, guild, body, lost }) {
  const h = headers();
  h.set("Shardtop-Shard", `${shard}/${count}`);
  h.set("Shardtop-Seq", String(seq));
  h.set("Shardtop-Session", session);
  h.set("Shardtop-Event", name);
  if (guild) h.set("Shardtop-Guild", guild);
  h.set("Shardtop-Received", new Date().toISOString());
  if (lost) {
    h.set("Shardtop-Lost-From", String(lost.from));
    h.set("Shardtop-Lost-To", String(lost.to));
    h.set("Shardtop-Lost", String(lost.to - lost.from + 1));
  }
  await js.publish(`shardtop.ev.${name}.${shard}`, body ?? "", { headers: h, msgID: `${session}:${seq}` });
}

// publish publishes n MESSAGE_CREATE over 4 shards, sequences from first,
// and a GUILD_CREATE per shard, which the worker does not consume.
async function publish(js, first, n) {
  for (let i = 0; i < n; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(i + 100, n); j++) {
      const seq = first + j;
      const body = JSON.stringify({ id: String(1000 + seq), channel_id: "1", guild_id: "4194304000", content: `message ${seq}` });
      batch.push(event(js, { name: "MESSAGE_CREATE", shard: j % 4, count: 4, seq, session: "s", guild: "4194304000", body }));
    }
    await Promise.all(batch); // order within a shard does not matter to a count
  }
  for (let shard = 0; shard < 4; shard++) {
    await event(js, { name: "GUILD_CREATE", shard, count: 4, seq: first + shard, session: "g", guild: "4194304000", body: "{}" });
  }
}

// startWorker runs worker.js as a process; stop() sends SIGINT and
// resolves with its exit code and output.
function startWorker(durable) {
  const child = spawn(process.execPath, [workerPath, "--bus-url", url, "--consumer", durable], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (b) => (out += b));
  child.stderr.on("data", (b) => (out += b));
  const exited = once(child, "exit");
  return {
    output: () => out,
    async stop() {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
      const [code] = await exited;
      clearTimeout(timer);
      return { code, out };
    },
  };
}

// allAcked waits until the durable consumer has nothing pending, nothing
// unacknowledged and nothing delivered twice.
async function allAcked(jsm, durable) {
  await until("every event acknowledged", async () => {
    try {
      const ci = await jsm.consumers.info("SHARDTOP", durable);
      return [ci.num_pending === 0 && ci.num_ack_pending === 0 && ci.num_redelivered === 0, JSON.stringify(ci)];
    } catch (err) {
      return [false, err.message];
    }
  });
}

test("the worker counts, acknowledges and updates the presence", { skip }, async (t) => {
  const nc = await connect({ servers: url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "SHARDTOP", subjects: ["shardtop.ev.>"], duplicate_window: 600_000_000_000 });
  const js = jetstream(nc);

  const commands = [];
  nc.subscribe("shardtop.cmd.0", {
    callback: (err, msg) => {
      if (err) return;
      commands.push(msg.json());
      msg.respond(JSON.stringify({ ok: true }));
    },
  });
  await nc.flush();

  await publish(js, 1, 2500);
  await event(js, { name: "SHARDTOP_LOST", shard: 2, count: 4, seq: 9000, session: "s", lost: { from: 9000, to: 9006 } });

  const w = startWorker("node-counter");
  await allAcked(jsm, "node-counter");
  const { code, out } = await w.stop();
  assert.equal(code, 0, out);
  for (const want of [
    "consuming stream SHARDTOP as node-counter\n",
    'presence update on shard 0: {"ok":true}\n',
    "lost 7 events of shard 2/4 (seq 9000 to 9006)",
    "stopped: 2500 MESSAGE_CREATE\n",
  ]) {
    assert.ok(out.includes(want), `output does not say ${JSON.stringify(want)}:\n${out}`);
  }
  assert.equal(out.match(/^MESSAGE_CREATE: \d+ /gm)?.join(","), "MESSAGE_CREATE: 1000 ,MESSAGE_CREATE: 2000 ", out);

  assert.equal(commands.length, 1, "the responder got one command");
  const [cmd] = commands;
  assert.equal(cmd.op, 3);
  assert.equal(cmd.d.since, null);
  assert.equal(cmd.d.status, "online");
  assert.equal(cmd.d.afk, false);
  assert.equal(cmd.d.activities.length, 1);
  assert.ok(cmd.d.activities[0].name && Number.isInteger(cmd.d.activities[0].type), JSON.stringify(cmd));

  // Durable: the acknowledged events are not delivered again.
  await publish(js, 5001, 700);
  const again = startWorker("node-counter");
  await allAcked(jsm, "node-counter");
  const second = await again.stop();
  assert.equal(second.code, 0, second.out);
  assert.ok(second.out.includes("stopped: 700 MESSAGE_CREATE\n"), second.out);
});
