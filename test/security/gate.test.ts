// Pure gates: the token bucket, connection admission and the origin policy, driven without sockets.
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/engine/bucket.js';
import { LoopStalls } from '../../src/engine/stalls.js';
import { Admission } from '../../src/actors/admission.js';
import { OriginPolicy } from '../../src/http/origin.js';

describe('TokenBucket (token bucket)', () => {
  it('allows a burst, refuses beyond it, refills at the rate, and flags flooding after the strikes', () => {
    let now = 0;
    const r = new TokenBucket({ rate: 10, burst: 5, strikes: 3, windowMs: 10_000 }, () => now);
    expect(Array.from({ length: 5 }, () => r.take())).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(r.take()).toBe('limited');
    now += 100; // one token back at 10/s
    expect(r.take()).toBe('ok');
    expect(r.take()).toBe('limited');
    expect(r.take()).toBe('flooding'); // third refusal in the window
  });

  it('forgets refusals after the window, so a client that slows down is never closed', () => {
    let now = 0;
    const r = new TokenBucket({ rate: 1, burst: 1, strikes: 3, windowMs: 1000 }, () => now);
    r.take();
    expect(r.take()).toBe('limited');
    expect(r.take()).toBe('limited');
    now += 1500;
    expect(r.take()).toBe('ok');
    expect(r.take()).toBe('limited'); // new window: strike 1
    expect(r.take()).toBe('limited');
  });

  it("the broker's stalls are credited: a backlog an honest client sent during one passes, a flood still does not", () => {
    let now = 0;
    const stalls = new LoopStalls({ periodMs: 20, slackMs: 50, now: () => now }).start({ timer: false });
    stalls.hold(); // the connections' (openConnection holds it for each)
    const limits = { rate: 20, burst: 10, strikes: 5, windowMs: 10_000 };
    const honest = new TokenBucket(limits, () => now, stalls);
    const flooder = new TokenBucket(limits, () => now, stalls);
    const plain = new TokenBucket(limits, () => now); // no stall clock: as before the fix
    for (; now < 1000; now += 20) stalls.beat(); // an ordinary second: the timer on time
    now += 2000; // the loop is blocked for 2 s; meanwhile the honest client sends 10/s (half the rate)
    // The loop resumes: sockets are read before the timer runs, and 20 frames are there at once.
    const backlog = (b: TokenBucket, n: number) => Array.from({ length: n }, () => b.take());
    expect(backlog(honest, 20).filter((v) => v !== 'ok')).toEqual([]);
    expect(backlog(plain, 20).filter((v) => v !== 'ok').length).toBe(10); // charged for the stall: 10 refused
    // 3x the rate during the stall: ~40 stalled tokens + the burst cover 50 of its 60; the rest is refused.
    expect(backlog(flooder, 60)).toContain('flooding');
    stalls.beat();
    // The credit is for the stall's backlog only: once it expired, the ordinary rate applies.
    for (const end = now + 2500; now < end; now += 20) stalls.beat();
    expect(backlog(honest, 10).every((v) => v === 'ok')).toBe(true);
    expect(backlog(honest, 3)).toEqual(['limited', 'limited', 'limited']);
    // A stall's credit never pays a debt: a client charged for costly replies stays refused until it refills.
    const charged = new TokenBucket(limits, () => now, stalls);
    charged.charge(30); // down to -10 (one burst of debt)
    now += 400; // a short stall: 8 tokens of refill (-2), 330 ms beyond period and slack (6.6 of credit)
    expect(backlog(charged, 3)).toEqual(['limited', 'limited', 'limited']);
  });

  it('LoopStalls: lateness beyond period and slack is a stall, counted once, a stall in progress included', () => {
    let now = 0;
    const stalls = new LoopStalls({ periodMs: 20, slackMs: 50, now: () => now });
    now = 5000;
    expect(stalls.blockedMs()).toBe(0); // not started: nothing measured
    stalls.start({ timer: false });
    stalls.hold();
    now += 60; // late, but within the slack: a busy loop, not a stall
    stalls.beat();
    expect(stalls.blockedMs()).toBe(0);
    now += 1070; // blocked: 1,000 ms beyond period and slack
    expect(stalls.blockedMs()).toBe(1000); // seen before the timer runs again
    stalls.beat();
    expect(stalls.blockedMs()).toBe(1000); // and counted once when it does
    now += 20;
    stalls.beat();
    expect(stalls.blockedMs()).toBe(1000);
    stalls.stop();
  });

  it('LoopStalls: the fine timer runs only while connections hold it; a stall across a change of period is still counted', () => {
    let now = 0;
    const stalls = new LoopStalls({ periodMs: 20, idlePeriodMs: 1000, slackMs: 50, now: () => now }).start();
    try {
      expect(stalls.timerMs).toBe(1000); // nobody to credit or ping: the coarse timer (the delay metrics) only
      now += 1030; // on time for the coarse period: 1,000 + 30, within the slack
      stalls.beat();
      expect(stalls.blockedMs()).toBe(0);
      now += 1500; // blocked, with no connection: 1,500 − 1,000 − 50 = 450 ms
      stalls.hold(); // a connection arrives after it: the stall is counted before the bucket reads its mark
      expect(stalls.timerMs).toBe(20);
      expect(stalls.blockedMs()).toBe(450);
      stalls.hold();
      now += 20 + 50 + 300; // a stall of 300 ms beyond the fine period and slack, still in progress…
      stalls.release(); // …when one of two connections ends: the other still holds the fine timer
      expect(stalls.timerMs).toBe(20);
      expect(stalls.blockedMs()).toBe(750);
      stalls.beat(); // the timer runs: that stall ended
      now += 20 + 50 + 200; // blocked again, in progress when the last connection ends
      stalls.release();
      expect(stalls.timerMs).toBe(1000);
      expect(stalls.blockedMs()).toBe(950); // counted at the fine period it was measured by
      stalls.release(); // one release too many changes nothing
      expect(stalls.holders).toBe(0);
      expect(stalls.delays.count).toBe(2); // the two timer beats above (changes of period are no beats)
    } finally {
      stalls.stop();
    }
    expect(stalls.timerMs).toBeUndefined();
  });

  it('rate 0 turns limiting off', () => {
    const r = new TokenBucket({ rate: 0, burst: 1, strikes: 1, windowMs: 1000 }, () => 0);
    expect(new Set(Array.from({ length: 10_000 }, () => r.take()))).toEqual(new Set(['ok']));
  });
});

describe('Admission', () => {
  it('refuses over the total with 503 and over the per-IP bound with 429; release is idempotent', () => {
    const a = new Admission({ maxConnections: 3, maxConnectionsPerIp: 2 });
    const r1 = a.admit('1.1.1.1');
    const r2 = a.admit('1.1.1.1');
    expect(typeof r1).toBe('function');
    expect(a.admit('1.1.1.1')).toMatchObject({ status: 429 });
    const r3 = a.admit('2.2.2.2');
    expect(a.admit('3.3.3.3')).toMatchObject({ status: 503 });
    (r1 as () => void)();
    (r1 as () => void)();
    expect(a.size).toBe(2);
    expect(a.connectionsFrom('1.1.1.1')).toBe(1);
    expect(typeof a.admit('1.1.1.1')).toBe('function');
    for (const r of [r2, r3]) (r as () => void)();
  });
});

describe('OriginPolicy', () => {
  const policy = (allowedOrigins?: string, publicHost?: string, host = '127.0.0.1') => {
    const p = new OriginPolicy({ allowedOrigins, publicHost });
    p.listeningOn(host, 8080);
    return p;
  };

  it('default: no Origin allowed; the broker itself (bound address, loopback names, its port) allowed; others refused', () => {
    const p = policy();
    expect(p.allows(undefined)).toBe(true);
    for (const o of ['http://127.0.0.1:8080', 'http://localhost:8080', 'https://LOCALHOST:8080', 'http://[::1]:8080']) expect(p.allows(o), o).toBe(true);
    for (const o of ['http://evil.example', 'http://evil.example:8080', 'http://127.0.0.1:9999', 'http://127.0.0.1', 'null', 'file://x', 'garbage']) expect(p.allows(o), o).toBe(false);
    expect(policy(undefined, undefined, '10.1.2.3').allows('http://10.1.2.3:8080')).toBe(true);
    expect(policy(undefined, undefined, '::1').allows('http://[::1]:8080')).toBe(true);
  });

  it('--public-host: names with a port match that port, bare names any port', () => {
    const p = policy(undefined, 'chat.example.com, Edge.example.com:8443');
    expect(p.allows('https://chat.example.com')).toBe(true);
    expect(p.allows('http://chat.example.com:8080')).toBe(true);
    expect(p.allows('https://edge.example.com:8443')).toBe(true);
    expect(p.allows('https://edge.example.com')).toBe(false);
    expect(p.allows('https://chat.example.com.evil.example')).toBe(false);
    expect(() => new OriginPolicy({ allowedOrigins: undefined, publicHost: 'http://x/' })).toThrow(/--public-host/);
    expect(() => new OriginPolicy({ allowedOrigins: undefined, publicHost: 'x:99999' })).toThrow(/--public-host/);
  });

  it('--allowed-origins entries are origins: a bare name (it could never match, and would lock out the broker\'s own page) is refused at start', () => {
    for (const bad of ['app.example.com', 'localhost:3000', 'ftp://x.example']) {
      expect(() => new OriginPolicy({ allowedOrigins: `https://ok.example, ${bad}`, publicHost: undefined }), bad).toThrow(/--allowed-origins takes origins/);
    }
    expect(() => new OriginPolicy({ allowedOrigins: '*', publicHost: undefined })).not.toThrow();
  });

  it('a list allows exactly its origins (plus --public-host); * allows any', () => {
    const p = policy('https://app.example.com, http://localhost:3000', 'chat.example.com');
    expect(p.allows('https://app.example.com')).toBe(true);
    expect(p.allows('https://app.example.com:443')).toBe(true);
    expect(p.allows('http://localhost:3000')).toBe(true);
    expect(p.allows('https://chat.example.com')).toBe(true);
    expect(p.allows('http://127.0.0.1:8080')).toBe(false); // a list replaces the broker's own addresses
    expect(policy('*').allows('http://anything')).toBe(true);
  });
});

describe('security settings', () => {
  it('flags and env vars reach the config; exclusive auth modes and a bad JWKS file fail clearly', async () => {
    const { parseConfig, validateConfig, ConfigError } = await import('../../src/config.js');
    const { TokenVerifier } = await import('../../src/auth/verifier.js');
    const c = parseConfig(['--rate', '5', '--rate-burst', '7', '--max-connections-per-ip', '3', '--allowed-origins', '*'], {
      SWITCHBOARD_AUTH_SECRET: 's3cret',
      SWITCHBOARD_RATE_STRIKES: '9',
    });
    expect(c).toMatchObject({ rate: 5, rateBurst: 7, rateStrikes: 9, maxConnectionsPerIp: 3, allowedOrigins: '*', authSecret: 's3cret' });
    expect(() => validateConfig({ ...c, authJwks: '/x.json' })).toThrow(ConfigError);
    expect(() => TokenVerifier.fromSettings({ authJwks: '/nonexistent/jwks.json' })).toThrow(/--auth-jwks/);
    expect(() => parseConfig(['--rate', '-1'])).toThrow(ConfigError);
  });
});
