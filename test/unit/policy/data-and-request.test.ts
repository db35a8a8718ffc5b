// Data layering (application writes over bundle data) and request parsing for the middleware.
import { describe, expect, it } from 'vitest';
import { isIdentityError } from '../../../src/errors/index.js';
import { cloneJson, DataLayers, parseDataPath } from '../../../src/policy/data.js';
import {
  type AuthorizationOptions,
  authorizeRequest,
  type PolicyEvaluator,
  parseRequestTarget,
  refusalFor,
} from '../../../src/policy/middleware.js';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('data paths', () => {
  it('accepts strings and arrays, refuses empty segments', () => {
    expect(parseDataPath('agents/a1')).toEqual(['agents', 'a1']);
    expect(parseDataPath('/agents')).toEqual(['agents']);
    expect(parseDataPath('')).toEqual([]);
    expect(parseDataPath(['a/b', 'c'])).toEqual(['a/b', 'c']);
    expect(
      isIdentityError(
        thrown(() => parseDataPath('a//b')),
        'policy-data-invalid-path',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => parseDataPath(['a', ''])),
        'policy-data-invalid-path',
      ),
    ).toBe(true);
  });

  it('refuses values that are not JSON', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(
      isIdentityError(
        thrown(() => cloneJson(cyclic, 'x')),
        'policy-data-invalid',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => cloneJson(10n, 'x')),
        'policy-data-invalid',
      ),
    ).toBe(true);
    expect(
      isIdentityError(
        thrown(() => cloneJson(() => 1, 'x')),
        'policy-data-invalid',
      ),
    ).toBe(true);
  });
});

describe('DataLayers', () => {
  it('layers writes over the base and replays them on a new base', () => {
    const layers = new DataLayers();
    const base = { agents: { a1: { score: 1 } }, td: 'x' };
    layers.commitBase(base, layers.preview(base));
    layers.previewPatch(['agents', 'a2'], { score: 2 }).commit();
    layers.previewPatch(['agents', 'a1', 'score'], 10).commit();
    expect(layers.current).toEqual({ agents: { a1: { score: 10 }, a2: { score: 2 } }, td: 'x' });
    expect(base).toEqual({ agents: { a1: { score: 1 } }, td: 'x' }); // copy on write
    const next = { agents: { a3: { score: 3 } } };
    layers.commitBase(next, layers.preview(next));
    expect(layers.current).toEqual({ agents: { a1: { score: 10 }, a2: { score: 2 }, a3: { score: 3 } } });
  });

  it('a later write to a parent path supersedes earlier writes below it', () => {
    const layers = new DataLayers();
    layers.previewPatch(['a', 'b'], 1).commit();
    layers.previewPatch(['a'], { c: 2 }).commit();
    layers.commitBase({}, layers.preview({}));
    expect(layers.current).toEqual({ a: { c: 2 } });
  });

  it('removes values and resets to the base', () => {
    const layers = new DataLayers();
    const base = { a: 1, b: 2 };
    layers.commitBase(base, layers.preview(base));
    layers.previewPatch(['a'], undefined).commit();
    expect(layers.current).toEqual({ b: 2 });
    layers.previewReset().commit();
    expect(layers.current).toEqual({ a: 1, b: 2 });
  });

  it('refuses to write below a non-object, without committing', () => {
    const layers = new DataLayers();
    const base = { a: [1, 2] };
    layers.commitBase(base, layers.preview(base));
    expect(
      isIdentityError(
        thrown(() => layers.previewPatch(['a', 'x'], 1)),
        'policy-data-invalid-path',
      ),
    ).toBe(true);
    expect(layers.current).toEqual({ a: [1, 2] });
  });

  it('keeps __proto__ keys as data', () => {
    const layers = new DataLayers();
    layers.previewPatch(['__proto__', 'polluted'], true).commit();
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(JSON.stringify(layers.current)).toBe('{"__proto__":{"polluted":true}}');
  });
});

describe('parseRequestTarget', () => {
  it('decodes path segments and collects every query value', () => {
    expect(parseRequestTarget('/agents/alice%40example.com?x=1&x=2&y=%20z+w')).toEqual({
      path: ['agents', 'alice@example.com'],
      query: Object.assign(Object.create(null), { x: ['1', '2'], y: [' z w'] }),
    });
    expect(parseRequestTarget('/').path).toEqual([]);
    expect(parseRequestTarget('/agents/a1/').path).toEqual(['agents', 'a1']);
    expect(parseRequestTarget('http://host:8080/a/b?q=1').path).toEqual(['a', 'b']);
    expect(parseRequestTarget('*').path).toEqual([]);
  });

  it.each([
    ['/agents/../admin'],
    ['/agents/%2e%2e/admin'],
    ['/agents/./a1'],
    ['/agents/a%2Fb'],
    ['/agents//a1'],
    ['/agents/%E0%A4%A'],
    ['agents/a1'],
  ])('refuses the ambiguous or malformed path %s', (url) => {
    expect(
      isIdentityError(
        thrown(() => parseRequestTarget(url)),
        'policy-request-invalid',
      ),
    ).toBe(true);
  });

  it('does not let a query key reach the prototype', () => {
    const { query } = parseRequestTarget('/?__proto__=x&constructor=y');
    expect(Object.getPrototypeOf(query)).toBe(null);
    expect(Object.getOwnPropertyDescriptor(query, '__proto__')?.value).toEqual(['x']);
  });
});

/** A policy evaluator written out by hand: allows `GET /health` and nothing else. */
const evaluator: PolicyEvaluator = {
  evaluate(entrypoint, input) {
    if (entrypoint === 'reason') return { id: 'r', result: 'only health checks' };
    if (entrypoint === 'boom') throw new Error('engine down');
    const i = input as { method: string; path: string[] };
    return { id: 'd1', result: i.method === 'GET' && i.path.join('/') === 'health' };
  },
};

describe('authorizeRequest', () => {
  const opts: AuthorizationOptions<string> = {
    engine: evaluator,
    entrypoint: 'allow',
    getCaller: (req) => req,
  };

  it('allows, denies with the reason entrypoint, and builds the default input', async () => {
    const allow = await authorizeRequest(opts, 'spiffe://td/service/a', 'GET', '/health');
    expect(allow).toMatchObject({ kind: 'allow', decisionId: 'd1' });
    expect((allow as { input: unknown }).input).toEqual({
      caller: 'spiffe://td/service/a',
      target: null,
      method: 'GET',
      path: ['health'],
      query: {},
    });
    const deny = await authorizeRequest({ ...opts, reasonEntrypoint: 'reason' }, 'x', 'POST', '/health');
    expect(deny).toMatchObject({ kind: 'deny', reason: 'only health checks' });
    expect(refusalFor(opts, deny)).toEqual({
      status: 403,
      body: { error: 'forbidden', reason: 'only health checks', decision_id: 'd1' },
    });
    expect(refusalFor({ ...opts, exposeReason: false }, deny)?.body['reason']).toBe('denied by policy');
  });

  it('fails closed on engine errors, with the configured status', async () => {
    const out = await authorizeRequest({ ...opts, entrypoint: 'boom' }, 'x', 'GET', '/health');
    expect(out.kind).toBe('error');
    expect(refusalFor(opts, out)?.status).toBe(500);
    expect(refusalFor({ ...opts, failureStatus: 503 }, out)?.status).toBe(503);
    const builder = await authorizeRequest(
      {
        ...opts,
        buildInput: () => {
          throw new Error('bad builder');
        },
      },
      'x',
      'GET',
      '/health',
    );
    expect(builder.kind).toBe('error');
  });

  it('answers 401 when getCaller throws and 400 for an ambiguous path', async () => {
    const unauth = await authorizeRequest(
      {
        ...opts,
        getCaller: () => {
          throw new Error('bad token');
        },
      },
      'x',
      'GET',
      '/health',
    );
    expect(refusalFor(opts, unauth)?.status).toBe(401);
    const bad = await authorizeRequest(opts, 'x', 'GET', '/a/../health');
    expect(refusalFor(opts, bad)?.status).toBe(400);
  });

  it('treats anything but true or {allow: true} as deny', async () => {
    for (const result of [1, 'true', [true], { allow: 'yes' }, null, undefined]) {
      const e: PolicyEvaluator = { evaluate: () => ({ id: 'x', result }) };
      const out = await authorizeRequest({ ...opts, engine: e }, 'x', 'GET', '/');
      expect(out.kind, JSON.stringify(result)).toBe('deny');
    }
    const ok: PolicyEvaluator = { evaluate: () => ({ id: 'x', result: { allow: true } }) };
    expect((await authorizeRequest({ ...opts, engine: ok }, 'x', 'GET', '/')).kind).toBe('allow');
  });
});
