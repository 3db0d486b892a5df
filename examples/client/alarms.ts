// Prints every alarm once, across restarts of this program: the subscription's positions are saved after each
// message and passed back at the next start, so what came while it was down is replayed, or it says why not.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { SwitchboardClient, type Position } from '@switchboard/client';

const file = process.argv[2] ?? 'alarms.json';
const saved: Record<string, Position> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};

const client = new SwitchboardClient({ url: process.env.SWITCHBOARD_WS_URL ?? 'ws://127.0.0.1:8080/ws' });
const alarms = await client.subscribe<{ level: string }>('alarm/#', { positions: saved });
if (alarms.recovery?.recovered === false) console.log(`some alarms were missed (${alarms.recovery.reason}): check the panel`);

for await (const m of alarms) {
  console.log(m.topic, m.seq, m.data.level);
  // Written aside, then renamed: a program stopped mid-write leaves the last whole file, never half of one.
  writeFileSync(`${file}.new`, JSON.stringify(alarms.positions));
  renameSync(`${file}.new`, file);
}
