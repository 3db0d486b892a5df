// What a broker process loads at start: only what its settings use. Without a cluster, authentication, MQTT or
// --inspect it never imports ioredis, jose, mqtt-packet or the Stately Inspector's library (together they were about
// 0.2 s of the 0.5 s of CPU a broker process took to start, measured 6 December); with those settings on it imports
// them and serves them. The packages a process imports are read through a Node resolver hook
// (test/helpers/record-imports.mjs), in the CLI run from its sources under tsx: the tests' CLI bundle
// (test/helpers/cli.ts) has its dependencies bundled in, so nothing in it is imported by name.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { freePort } from './helpers/ports.js';

const ROOT = new URL('..', import.meta.url).pathname;
const LAZY = ['ioredis', 'jose', 'mqtt-packet', '@statelyai/inspect', 'fast-check'];

/** Starts `serve` with `args`, waits until it listens (and for MQTT, until that listens too), stops it: the packages it imported. */
function packagesOfServe(args: string[], ready: RegExp): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', './test/helpers/record-imports.mjs', 'src/cli.ts', 'serve', '--port', '0', '--tcp-port', '0', '--log-level', 'info', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`serve did not get ready:\n${out}`))), 15_000);
    const read = (c: string) => {
      out += c;
      if (ready.test(out)) child.kill('SIGTERM');
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', read);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      resolve([...out.matchAll(/^import-package (\S+)$/gm)].map((m) => m[1]!));
    });
  });
}

describe('serve loads what its settings use', () => {
  it('a plain broker imports none of the cluster, token, MQTT, inspector and checker packages', async () => {
    const packages = await packagesOfServe([], /"msg":"switchboard listening"/);
    // The hook works: what every broker runs on is seen.
    expect(packages).toEqual(expect.arrayContaining(['xstate', 'ws', 'pino', 'prom-client']));
    expect(packages.filter((p) => LAZY.includes(p))).toEqual([]);
  });

  it('with --auth-secret and --mqtt-port it imports jose and mqtt-packet, and listens for MQTT', async () => {
    const mqttPort = await freePort();
    const packages = await packagesOfServe(['--auth-secret', 'a-secret-of-the-test', '--mqtt-port', String(mqttPort)], /"msg":"mqtt listening"/);
    expect(packages).toEqual(expect.arrayContaining(['jose', 'mqtt-packet']));
    expect(packages).not.toContain('ioredis');
  });
});
