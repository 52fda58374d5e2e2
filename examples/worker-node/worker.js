#!/usr/bin/env node
// A bot's worker on shardtop's event bus, in Node.js: a durable pull
// consumer on the stream that handles MESSAGE_CREATE events and
// acknowledges each one after handling it, and that sends a presence update
// back to the gateway through shard 0's command subject. The same worker as
// examples/worker in Go; the wire contract is in bus/doc.go.
//
//   node worker.js --bus-url nats://127.0.0.1:4222 [--consumer NAME]
//
// It counts MESSAGE_CREATE events and prints a line per 1000. The consumer
// is durable: started again, the worker goes on after the last event it
// acknowledged. SIGINT or SIGTERM stops it (exit 0).

import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { connect, credsAuthenticator, errors } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";

// BUS_TOKEN_ENV holds the NATS token, as for `shardtop tail`.
const BUS_TOKEN_ENV = "SHARDTOP_BUS_TOKEN";

// COMMAND_TIMEOUT_MS bounds the wait for the answer to a command.
const COMMAND_TIMEOUT_MS = 5000;

// presence is a gateway presence update (op 3) as Discord defines it.
export const presence = {
  op: 3,
  d: {
    since: null,
    activities: [{ name: "events from the bus", type: 0 }],
    status: "online",
    afk: false,
  },
};

// parseOptions reads the command line; token is $SHARDTOP_BUS_TOKEN.
export function parseOptions(args, token) {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "bus-url": { type: "string", default: "nats://127.0.0.1:4222" },
      creds: { type: "string" },
      prefix: { type: "string", default: "shardtop" },
      stream: { type: "string", default: "SHARDTOP" },
      consumer: { type: "string", default: "worker" },
      every: { type: "string", default: "1000" },
    },
  });
  if (positionals.length > 0) {
    throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const every = Number(values.every);
  if (!Number.isInteger(every) || every < 1) {
    throw new Error(`--every must be a whole number, at least 1, got ${JSON.stringify(values.every)}`);
  }
  return {
    url: values["bus-url"],
    creds: values.creds,
    token: token || undefined,
    prefix: values.prefix,
    stream: values.stream,
    durable: values.consumer,
    every,
  };
}

// run is the worker: once it consumes, it calls onStarted with a function
// that stops it; it resolves with the count of MESSAGE_CREATE once stopped.
export async function run(opts, out = process.stdout, onStarted = () => {}) {
  const say = (line) => out.write(line + "\n");
  let nc;
  try {
    nc = await connect({
      servers: opts.url.split(","),
      name: "shardtop example worker (node)",
      maxReconnectAttempts: -1,
      token: opts.token,
      authenticator: opts.creds ? credsAuthenticator(readFileSync(opts.creds)) : undefined,
    });
  } catch (err) {
    throw new Error(`connect to ${opts.url}: ${err.message}`, { cause: err });
  }
  try {
    // Durable: the server remembers what this consumer acknowledged. It
    // gets every MESSAGE_CREATE of every shard, and the markers of lost
    // events, which no worker should miss.
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(opts.stream, {
      durable_name: opts.durable,
      filter_subjects: [`${opts.prefix}.ev.MESSAGE_CREATE.*`, `${opts.prefix}.ev.SHARDTOP_LOST.*`],
      ack_policy: AckPolicy.Explicit,
      ack_wait: 30_000_000_000, // 30 s in nanoseconds: then an event not acknowledged is delivered again
    });
    say(`consuming stream ${opts.stream} as ${opts.durable}`);

    await updatePresence(nc, opts.prefix, say);

    const consumer = await jetstream(nc).consumers.get(opts.stream, opts.durable);
    const messages = await consumer.consume();
    // close() lets the events already pulled through the loop, handled and
    // acknowledged, rather than delivered again.
    onStarted(() => messages.close());
    const w = { count: 0, every: opts.every, say };
    for await (const m of messages) {
      handle(w, m);
    }
    // Acknowledgements are sent without waiting: make sure they reached
    // the server before closing.
    await nc.flush();
    say(`stopped: ${w.count} MESSAGE_CREATE`);
    return w.count;
  } finally {
    await nc.close();
  }
}

// updatePresence sends the presence update to shard 0 by request-reply and
// prints the reply: {"ok":true}, or why not. A worker goes on without it.
async function updatePresence(nc, prefix, say) {
  const subject = `${prefix}.cmd.0`;
  try {
    const reply = await nc.request(subject, JSON.stringify(presence), { timeout: COMMAND_TIMEOUT_MS });
    say(`presence update on shard 0: ${reply.string()}`);
  } catch (err) {
    if (err instanceof errors.RequestError && err.isNoResponders()) {
      say(`presence update: no one answers on ${subject} (is shardtop running with the bus on?)`);
    } else {
      say(`presence update: ${err.message}`);
    }
  }
}

// handle handles one event and then acknowledges it.
function handle(w, m) {
  const h = (key) => m.headers?.get(key) ?? "";
  if (h("Shardtop-Event") === "SHARDTOP_LOST") {
    w.say(`lost ${h("Shardtop-Lost")} events of shard ${h("Shardtop-Shard")} ` +
      `(seq ${h("Shardtop-Lost-From")} to ${h("Shardtop-Lost-To")}): shardtop could not replay them`);
    m.ack();
    return;
  }
  try {
    m.json(); // a real bot would act on the message (its content, author, channel) here
  } catch (err) {
    // Delivering it again would fail the same way: terminate it.
    w.say(`shard ${h("Shardtop-Shard")} seq ${h("Shardtop-Seq")}: not a message (${err.message}); dropped`);
    m.term();
    return;
  }
  w.count++;
  if (w.count % w.every === 0) {
    w.say(`MESSAGE_CREATE: ${w.count} (last: shard ${h("Shardtop-Shard")}, seq ${h("Shardtop-Seq")})`);
  }
  m.ack();
}

// main runs the worker from the command line until SIGINT or SIGTERM.
async function main() {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), process.env[BUS_TOKEN_ENV]);
  } catch (err) {
    console.error(`worker: ${err.message}`);
    process.exit(2);
  }
  let stop = null;
  let stopping = false;
  const onSignal = () => {
    stopping = true;
    stop?.();
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await run(opts, process.stdout, (s) => {
      stop = s;
      if (stopping) s();
    });
  } catch (err) {
    console.error(`worker: ${err.message}`);
    process.exit(1);
  }
}

// Run as a program (node worker.js), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
