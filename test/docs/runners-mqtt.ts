// The runner of docs/mqtt.md's blocks: mosquitto_sub and mosquitto_pub against a broker with --mqtt-port, next to
// a WebSocket client; what the docs show each of them print or receive is what they do.
import { spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { TestClient } from '../helpers/client.js';
import { broker, cleanup, linesOf, type Runner } from './context.js';
import { Service, sh } from './shell.js';

const haveMosquitto = spawnSync('mosquitto_pub', ['--help']).error === undefined;

export const MQTT_RUNNERS: Record<string, Runner> = {
  'mqtt-mosquitto': {
    // [subscriber transcript, publishers (shell commands and WebSocket frames), what a WebSocket subscriber's data is].
    async run([subBlock, pubBlock, wsBlock], ctx) {
      if (!haveMosquitto) return ctx.skip('mosquitto-clients are missing (apt-get install -y mosquitto-clients)');
      const b = await broker({ mqttPort: 0 });
      const local = (command: string) => command.replace(/-p 1883\b/g, `-p ${b.mqttPort}`);
      const [subCommand, ...printed] = linesOf(subBlock!);
      expect(subCommand).toMatch(/^\$ mosquitto_sub /);
      const web = await TestClient.connect(`${b.url}/plant/%2B/temp`);
      cleanup.push(() => web.close());
      const sub = new Service(local(subCommand!.slice(2)), process.env);
      cleanup.push(() => sub.stop());
      // Subscribed once `who` of its filter lists it.
      await sub.until(async () => (await web.request({ op: 'who', topic: 'plant/+/temp' })).clients.some((c: { transport: string }) => c.transport === 'mqtt'), 'mosquitto_sub subscribed');
      for (const line of linesOf(pubBlock!)) {
        if (line.startsWith('$ ')) {
          const r = await sh(local(line.slice(2)), process.env);
          expect(r.code, `${line}: ${r.stderr}`).toBe(0);
        } else {
          expect(line).toMatch(/^> /);
          web.send(JSON.parse(line.slice(2)));
        }
      }
      await sub.until(() => sub.stdout.split('\n').filter(Boolean).length >= printed.length, 'mosquitto_sub printed every message');
      expect(sub.stdout.split('\n').filter(Boolean)).toEqual(printed);
      const data: string[] = [];
      for (let i = 0; i < linesOf(wsBlock!).length; i++) data.push(JSON.stringify((await web.next((f) => f.op === 'msg')).data));
      expect(data).toEqual(linesOf(wsBlock!));
    },
  },
};
