/**
 * `npm run demo`: the Tachikoma agent example, narrated.
 *
 * Without `SPIFFE_ENDPOINT_SOCKET` it starts the embedded dev Workload API server (no SPIRE
 * needed) with the four identities; with it, it runs against that SPIRE agent (create the entries
 * listed in docs/agent-auth-flow.md). Every step checks what it shows and prints ✓ or ✗; the
 * exit code is 0 only when every step passed. It stops by itself within a minute in any case.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { EventEmitter } from 'eventemitter3';
import { DevWorkloadServer } from '../../src/dev/index.js';
import { type AuthResultEvent, channelNames } from '../../src/observability/index.js';
import { parseJwtSvidInsecure } from '../../src/svid/index.js';
import type { X509SvidRotation } from '../../src/workload/index.js';
import { type ExampleApp, presentsCurrentSvids, startExample } from './app.js';
import { requestJson } from './https-json.js';
import { exampleIds, OTHER_AGENT_EMAIL, requiredIdentities } from './identities.js';
import { POLICY_BUILDS } from './policies.js';

const TRUST_DOMAIN = 'tachikoma.internal';
const WATCHDOG_MS = 60_000;

let passed = 0;
let failed = 0;
let skipped = 0;
const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

class Skip extends Error {}

/** Runs one step: prints `✓ title` and its detail lines, `✗ title: why`, or `– title: why`. */
async function step(title: string, fn: () => Promise<string[] | undefined>): Promise<void> {
  try {
    const lines = (await fn()) ?? [];
    passed++;
    out(`  ✓ ${title}`);
    for (const l of lines) out(`      ${l}`);
  } catch (err) {
    if (err instanceof Skip) {
      skipped++;
      out(`  – ${title}: skipped, ${err.message}`);
      return;
    }
    failed++;
    out(`  ✗ ${title}: ${(err as Error)?.message ?? String(err)}`);
  }
}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

function section(n: number, title: string): void {
  out();
  out(`${n}. ${title}`);
}

function ago(d: Date): string {
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

function field(body: unknown, ...path: string[]): unknown {
  let v: unknown = body;
  for (const p of path)
    v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
  return v;
}

/** Waits for `event` on `emitter` until `done(...)` says enough, with a deadline. */
function until<T>(
  emitter: EventEmitter,
  event: string,
  done: (arg: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`${what} did not happen within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const on = (arg: T): void => {
      if (!done(arg)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve();
    };
    emitter.on(event, on);
  });
}

async function main(): Promise<number> {
  const t0 = performance.now();
  const external = process.env['SPIFFE_ENDPOINT_SOCKET'];
  const audit: AuthResultEvent[] = [];
  const onAudit = (m: unknown): void => {
    audit.push(m as AuthResultEvent);
  };
  subscribe(channelNames.authResult, onAudit);

  out('Tachikoma agent demo: @tachikoma/identity end to end');
  out('  agent ──mTLS──▶ registry-backend ──mTLS + agent JWT-SVID──▶ teg-core ──▶ Rego policies (wasm)');

  let dev: DevWorkloadServer | undefined;
  let app: ExampleApp | undefined;
  try {
    section(1, 'Workload API');
    let expiredToken: { token: string; exp: number } | undefined;
    await step(
      external ? `SPIRE agent at ${external}` : 'embedded dev Workload API server (no SPIRE needed)',
      async () => {
        if (!external) {
          const ids = exampleIds(TRUST_DOMAIN);
          dev = await DevWorkloadServer.start({
            trustDomain: TRUST_DOMAIN,
            identities: requiredIdentities(ids),
            x509SvidTtlMs: 10 * 60_000,
            x509Rotation: false, // rotated on demand in step 5
          });
          // A JWT-SVID that lives one second, for the refusals of step 6.
          const token = await dev.mintJwtSvid(ids.agent.toString(), ids.tegCore.toString(), { ttlMs: 1000 });
          expiredToken = { token, exp: parseJwtSvidInsecure(token).expiresAt.getTime() };
        }
        app = await startExample({
          ...(dev ? { address: dev.address } : {}),
          // One host, one clock: a tight tolerance lets the expired token of step 6 expire quickly.
          clockToleranceSec: 1,
        });
        return [
          `address ${dev?.address ?? external}`,
          `trust domain ${app.ids.trustDomain.name}`,
          dev ? 'dev server: not for production (it attests nobody)' : 'attested by SPIRE',
        ];
      },
    );
    if (app === undefined) return 1;
    const a: ExampleApp = app;
    const { ids } = a;

    section(2, 'Identities (X509-SVIDs from the Workload API, one per service)');
    for (const [name, source] of [
      ['registry-backend', a.sources.registry],
      ['teg-core', a.sources.tegCore],
      ['agent (alice@example.com)', a.sources.agent],
      ['federation-hub', a.sources.outsider],
    ] as const) {
      await step(name, async () => {
        const svid = source.getX509Svid();
        return [
          `${svid.spiffeId}  serial ${svid.leaf.serialNumber.slice(0, 12)}…  expires in ${ago(svid.expiresAt)}`,
        ];
      });
    }
    await step('policies loaded in process (OPA wasm, prebuilt by `opa build`)', async () =>
      [a.engines.serviceGraph, a.engines.agentSelfAccess, a.engines.rateTiers].map((e) => {
        const d = e.describe();
        return `${d.name.padEnd(18)} revision ${d.revision}  entrypoints ${d.entrypoints.length}`;
      }),
    );
    check(POLICY_BUILDS.length === 3, 'three policies');

    section(3, 'The agent asks the registry for a TEG token (token bridge, POST /api/v1/teg/token)');
    await step('token issued for the agent, audience teg-core', async () => {
      const r = await a.agent.requestToken();
      check(r.status === 200, `expected 200, got ${r.status} ${JSON.stringify(r.body)}`);
      const body = r.body as { token: string; expires_in: number; token_type: string };
      check(body.token_type === 'Bearer' && body.expires_in > 0, `unexpected body ${JSON.stringify(body)}`);
      const svid = parseJwtSvidInsecure(body.token);
      check(svid.spiffeId.equals(ids.agent), `sub is ${svid.spiffeId}`);
      check(svid.audience.includes(ids.tegCore.toString()), `aud is ${svid.audience.join(', ')}`);
      return [
        `{ token_type: "${body.token_type}", expires_in: ${body.expires_in}, token: "${body.token.slice(0, 16)}…" }`,
        `sub ${svid.spiffeId}`,
        `aud ${svid.audience.join(', ')}`,
      ];
    });

    section(4, 'The agent reads and updates its own record through the registry');
    await step(
      'GET /api/v1/agents/me → registry fetches the agent’s JWT-SVID → teg-core allows',
      async () => {
        const r = await a.agent.getRecord('me');
        check(r.status === 200, `expected 200, got ${r.status} ${JSON.stringify(r.body)}`);
        const t = field(r.body, 'teg_core');
        check(field(t, 'caller', 'service') === ids.registry.toString(), 'teg-core saw another mTLS caller');
        check(field(t, 'caller', 'agent') === ids.agent.toString(), 'teg-core saw another agent');
        return [
          `teg-core: mTLS caller ${field(t, 'caller', 'service')}`,
          `          on behalf of ${field(t, 'caller', 'agent')} (JWT-SVID)`,
          `          rate tier ${field(t, 'rate', 'tier')} (${field(t, 'rate', 'limit')} requests per minute)`,
        ];
      },
    );
    await step('PUT /api/v1/agents/me → 200 (agents may update their own record)', async () => {
      const r = await a.agent.putRecord('me', { display_name: 'Alice' });
      check(r.status === 200, `expected 200, got ${r.status} ${JSON.stringify(r.body)}`);
      return [`profile ${JSON.stringify(field(r.body, 'teg_core', 'record', 'profile'))}`];
    });

    section(5, 'Live SVID rotation under load');
    await step('every X509-SVID replaced while calls are in flight: zero failed calls', async () => {
      const rotatedIds = new Set<string>();
      const before = {
        registry: a.sources.registry.getX509Svid().leaf.serialNumber,
        agent: a.sources.agent.getX509Svid().leaf.serialNumber,
      };
      let calls = 0;
      let failures = 0;
      let afterRotation = 0;
      let rotated = false;
      let stop = false;
      const errors: string[] = [];
      const worker = async (): Promise<void> => {
        while (!stop) {
          try {
            const r = await a.agent.getRecord('me');
            calls++;
            if (rotated) afterRotation++;
            if (r.status !== 200) {
              failures++;
              errors.push(`${r.status} ${JSON.stringify(r.body).slice(0, 120)}`);
            }
          } catch (err) {
            calls++;
            failures++;
            errors.push((err as Error).message);
          }
        }
      };
      const wanted = [ids.registry, ids.tegCore, ids.agent].map(String);
      const rotation = until<X509SvidRotation>(
        a.sources.registry,
        'rotated',
        (r) => {
          rotatedIds.add(r.spiffeId);
          return wanted.every((w) => rotatedIds.has(w));
        },
        dev ? 10_000 : 12_000,
        'a rotation of registry-backend, teg-core and the agent',
      );
      const workers = Array.from({ length: 4 }, () => worker());
      try {
        if (dev) {
          while (calls < 8) await new Promise((r) => setImmediate(r));
          dev.rotateX509Svids();
        }
        try {
          await rotation;
        } catch (err) {
          if (!dev)
            throw new Skip(
              `${(err as Error).message} (entries with -x509SVIDTTL 30 rotate about every 10 s)`,
            );
          throw err;
        }
        rotated = true;
        const deadline = Date.now() + 10_000;
        while ((afterRotation < 12 || !presentsCurrentSvids(a)) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        stop = true;
        await Promise.all(workers);
      }
      check(failures === 0, `${failures} of ${calls} calls failed: ${errors.slice(0, 3).join('; ')}`);
      check(presentsCurrentSvids(a), 'the services did not present their new SVIDs on new connections');
      const after = a.sources.registry.getX509Svid().leaf.serialNumber;
      return [
        `rotated ${[...rotatedIds].length} identities; registry-backend serial ${before.registry.slice(0, 8)}… → ${after.slice(0, 8)}…`,
        `agent serial ${before.agent.slice(0, 8)}… → ${a.sources.agent.getX509Svid().leaf.serialNumber.slice(0, 8)}…`,
        `${calls} calls, ${afterRotation} after the rotation, 0 failed`,
        'teg-core and the registry now see the new certificates on new connections',
      ];
    });

    section(6, 'Refusals (each one with its reason)');
    const tegPath = `/agents/${ids.agent.segments()[1]}`;
    await step('expired JWT-SVID → 401 invalid_token', async () => {
      if (expiredToken === undefined)
        throw new Skip('needs a token signer: the dev server mints a short-lived one');
      const wait = expiredToken.exp + 1000 + 250 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const r = await a.registry.callTegCore(tegPath, expiredToken.token);
      const challenge = String(r.headers['www-authenticate']);
      check(r.status === 401, `expected 401, got ${r.status}`);
      check(challenge.includes('error="invalid_token"') && challenge.includes('jwtsvid-expired'), challenge);
      return [`WWW-Authenticate: ${challenge}`];
    });
    await step('JWT-SVID for another audience → 401 invalid_token', async () => {
      const wrong = await a.jwt.fetchJwtSvid({
        audience: ids.registry.toString(),
        subject: ids.agent.toString(),
      });
      const r = await a.registry.callTegCore(tegPath, wrong.token);
      const challenge = String(r.headers['www-authenticate']);
      check(r.status === 401 && challenge.includes('jwtsvid-audience-mismatch'), `${r.status} ${challenge}`);
      return [`WWW-Authenticate: ${challenge}`];
    });
    await step('federation-hub calls teg-core (valid agent token) → 403 from the service graph', async () => {
      const token = (await a.registry.bridge.issue(ids.agent, ids.tegCore)).token;
      const r = await requestJson(a.outsiderClient, `${a.tegCore.url}${tegPath}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      check(r.status === 403, `expected 403, got ${r.status} ${JSON.stringify(r.body)}`);
      check(field(r.body, 'reason') === 'federation-hub may not call teg-core', JSON.stringify(r.body));
      return [`403 ${JSON.stringify(r.body)}`];
    });
    await step(`the agent reads ${OTHER_AGENT_EMAIL}'s record → 403 from agent self-access`, async () => {
      const r = await a.agent.getRecord(ids.otherAgent.segments()[1]!);
      check(r.status === 403, `expected 403, got ${r.status} ${JSON.stringify(r.body)}`);
      const reason = field(r.body, 'teg_core', 'reason');
      check(reason === 'an agent may only access its own record, agents/<its id>', JSON.stringify(r.body));
      return [`403 via registry: ${JSON.stringify(field(r.body, 'teg_core'))}`];
    });

    section(7, 'Identity health (GET /health/identity)');
    await step('healthy', async () => {
      const res = await fetch(`${a.opsUrl}/health/identity`, { signal: AbortSignal.timeout(5000) });
      const report = (await res.json()) as {
        status: string;
        checks: Record<string, { status: string; detail: string }>;
        svid_expiry: string;
        last_rotation: string | null;
      };
      check(res.status === 200 && report.status === 'healthy', `${res.status} ${JSON.stringify(report)}`);
      return [
        ...Object.entries(report.checks).map(([k, v]) => `${k.padEnd(15)} ${v.status}  ${v.detail}`),
        `svid_expiry ${report.svid_expiry}, last_rotation ${report.last_rotation ?? 'none'}`,
      ];
    });

    section(8, 'Audit events (auth_result on node:diagnostics_channel, logger and metrics)');
    await step('every authentication and policy decision was audited', async () => {
      const count = (mech: string, result: string): number =>
        audit.filter((e) => e.mechanism === mech && e.result === result).length;
      const jwtRefusals = expiredToken === undefined ? 1 : 2;
      check(
        count('jwt-svid', 'failure') >= jwtRefusals && count('policy', 'failure') >= 2,
        'missing refusal events',
      );
      const lastRefusal = [...audit].reverse().find((e) => e.result === 'failure');
      return [
        ...['mtls', 'jwt-svid', 'policy'].map(
          (m) => `${m.padEnd(9)} ${count(m, 'success')} success, ${count(m, 'failure')} failure`,
        ),
        `last refusal: ${JSON.stringify({ ...lastRefusal, durationMs: Number(lastRefusal?.durationMs.toFixed(2)) })}`,
      ];
    });

    section(9, 'Metrics (GET /metrics, Prometheus text from OpenTelemetry)');
    await step('identity_* metrics', async () => {
      const res = await fetch(`${a.opsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      const lines = text
        .split('\n')
        .filter((l) => l.startsWith('identity_') && !l.includes('_bucket{'))
        .map((l) => l.replace(/ (\d+\.\d{3})\d+$/, ' $1'));
      const value = (prefix: string): number =>
        lines.filter((l) => l.startsWith(prefix)).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
      check(
        value('identity_auth_attempts_total{service="teg-core",result="success"}') > 0,
        'no successes counted',
      );
      check(
        value('identity_auth_attempts_total{service="teg-core",result="failure"}') >= (dev ? 2 : 1),
        'refusals not counted',
      );
      check(value('identity_policy_evaluation_duration_seconds_count') > 0, 'no policy evaluations counted');
      check(
        lines.some((l) => l.startsWith('identity_svid_expiry_seconds')),
        'no SVID expiry gauge',
      );
      if (dev) check(value('identity_svid_rotations_total') >= 4, 'rotations not counted');
      return lines;
    });
  } finally {
    unsubscribe(channelNames.authResult, onAudit);
    await (app as ExampleApp | undefined)?.close();
    await (dev as DevWorkloadServer | undefined)?.close();
  }
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  out();
  out(
    `${failed === 0 ? '✓' : '✗'} done in ${seconds} s: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`,
  );
  return failed === 0 ? 0 : 1;
}

const watchdog = setTimeout(() => {
  out(`✗ the demo did not finish within ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    out(`✗ ${(err as Error)?.stack ?? String(err)}`);
    process.exitCode = 1;
  },
);
