// The examples of docs/policy.md: each is a file under examples/policies/, shown verbatim in the
// page (with the package import path), and run here against bundles built by the real opa.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentLimits } from '../../../examples/policies/agent-limits.js';
import { startTegCore } from '../../../examples/policies/teg-core.js';
import type { DecisionLogEntry } from '../../../src/policy/index.js';
import { compileWithCapabilities, rateTiers, repoRoot, serviceGraph } from './helpers.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tk-policy-docs-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function exampleAsDocumented(file: string): string {
  return readFileSync(join(repoRoot, 'examples', 'policies', file), 'utf8').replace(
    "'../../src/policy/index.js'",
    "'@tachikoma/identity/policy'",
  );
}

function get(port: number, path: string, caller: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { 'x-caller': caller } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('docs/policy.md examples', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'policy.md'), 'utf8');

  it('shows the example files verbatim', () => {
    expect(doc).toContain(exampleAsDocumented('agent-limits.ts'));
    expect(doc).toContain(exampleAsDocumented('teg-core.ts'));
  });

  it('agent-limits.ts runs: an unknown agent gets 100, then 1000 after its score is raised', async () => {
    const file = join(dir, 'rate.tar.gz');
    writeFileSync(
      file,
      await compileWithCapabilities(
        rateTiers.files,
        ['tachikoma/rate_limit/limit', 'tachikoma/rate_limit/tier'],
        {
          data: rateTiers.data,
        },
      ),
    );
    expect(await agentLimits(file, 'newcomer')).toEqual([100, 1000]);
    expect(await agentLimits(file, 'dave_at_example_dot_com')).toEqual([500, 1000]);
  });

  it('teg-core.ts runs: allowed callers are served, others get 403 with the reason', async () => {
    const file = join(dir, 'graph.tar.gz');
    writeFileSync(
      file,
      await compileWithCapabilities(serviceGraph.files, ['tachikoma/service_graph/decision'], {
        data: serviceGraph.data,
        revision: 'docs-1',
      }),
    );
    const log: DecisionLogEntry[] = [];
    const { server, engine } = await startTegCore(
      file,
      (req: IncomingMessage) => req.headers['x-caller'] as string | undefined,
      (e) => log.push(e),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      expect(
        await get(port, '/v1?token=s3cret', 'spiffe://tachikoma.internal/service/registry-backend'),
      ).toEqual({
        status: 200,
        body: 'teg-core says hello\n',
      });
      const denied = await get(port, '/v1', 'spiffe://tachikoma.internal/service/audit-logger');
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body).reason).toBe('audit-logger may not call teg-core');
      expect(log).toHaveLength(2);
      expect(log[0]?.revision).toBe('docs-1');
      expect(JSON.stringify(log)).not.toContain('s3cret');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(engine.closed).toBe(true);
  });
});
