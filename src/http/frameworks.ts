import { IdentityError } from '../errors/index.js';
import type { SpiffeId } from '../spiffeid/index.js';
import { getPeerSpiffeId } from '../tls/verify.js';

declare global {
  // Express's own augmentation point: `req.spiffeId` in handlers after spiffeIdMiddleware().
  namespace Express {
    /** Express request, with the caller's verified SPIFFE ID. */
    interface Request {
      /** Set by `spiffeIdMiddleware()`: the caller's verified SPIFFE ID. */
      spiffeId?: SpiffeId | undefined;
    }
  }
}

/** The parts of an Express request the middleware touches. */
export interface ExpressLikeRequest {
  /** The connection; for https, the TLS socket. */
  socket: object;
  /** Set by {@link spiffeIdMiddleware}: the verified SPIFFE ID of the caller. */
  spiffeId?: SpiffeId | undefined;
}

/** Options of {@link spiffeIdMiddleware}. */
export interface SpiffeIdMiddlewareOptions {
  /**
   * Refuse requests whose connection was not verified by an SDK mTLS server (`next(err)` with
   * `tls-peer-unverified`, status 401). Default `true`.
   */
  required?: boolean | undefined;
}

/**
 * Express 5 middleware that sets `req.spiffeId` to the caller's verified SPIFFE ID. The server
 * must be made by `createMtlsServer` or have `attachMtls` applied.
 *
 * @param opts - whether a verified ID is required (default) or optional.
 *
 * @example
 * ```ts
 * const app = express();
 * app.use(spiffeIdMiddleware());
 * app.get('/', (req, res) => res.send(`hello ${req.spiffeId}`));
 * createMtlsServer(source, authorizeMemberOf('example.org'), app);
 * ```
 */
export function spiffeIdMiddleware(
  opts?: SpiffeIdMiddlewareOptions,
): (req: ExpressLikeRequest, res: unknown, next: (err?: unknown) => void) => void {
  const required = opts?.required !== false;
  return (req, _res, next) => {
    const id = getPeerSpiffeId(req.socket);
    if (id === undefined && required) {
      next(
        Object.assign(
          new IdentityError(
            'tls-peer-unverified',
            'the connection carries no verified SPIFFE ID (is the server made by createMtlsServer/attachMtls?)',
          ),
          { status: 401, statusCode: 401, expose: true },
        ),
      );
      return;
    }
    req.spiffeId = id;
    next();
  };
}

/** The parts of a Fastify instance the plugin touches. */
export interface FastifyLikeInstance {
  /** Declares a request property. */
  decorateRequest(name: string, value: unknown): unknown;
  /** Registers a lifecycle hook. */
  addHook(
    name: 'onRequest',
    hook: (
      request: { raw: { socket: object }; spiffeId?: SpiffeId | null },
      reply: unknown,
      done: (err?: Error) => void,
    ) => void,
  ): unknown;
}

/** Options of {@link fastifySpiffeId}. */
export interface FastifySpiffeIdOptions {
  /** Refuse unverified connections (status 401). Default `true`. */
  required?: boolean | undefined;
}

/** A Fastify plugin function (encapsulation-transparent). */
export type FastifySpiffeIdPlugin = ((
  fastify: FastifyLikeInstance,
  opts: FastifySpiffeIdOptions,
  done: (err?: Error) => void,
) => void) & { readonly [key: symbol]: unknown };

function fastifyPlugin(
  fastify: FastifyLikeInstance,
  opts: FastifySpiffeIdOptions,
  done: (err?: Error) => void,
): void {
  const required = opts?.required !== false;
  fastify.decorateRequest('spiffeId', null);
  fastify.addHook('onRequest', (request, _reply, hookDone) => {
    const id = getPeerSpiffeId(request.raw.socket);
    if (id === undefined && required) {
      hookDone(
        Object.assign(
          new IdentityError('tls-peer-unverified', 'the connection carries no verified SPIFFE ID'),
          {
            statusCode: 401,
          },
        ),
      );
      return;
    }
    request.spiffeId = id ?? null;
    hookDone();
  });
  done();
}

/**
 * Fastify 5 plugin that sets `request.spiffeId` to the caller's verified SPIFFE ID, for every
 * route of the instance it is registered on (it does not create an encapsulation context).
 * Create Fastify with `https: tlsServerOptions(source)` and call
 * `attachMtls(fastify.server, source, authorizer)` before `listen`.
 *
 * @example
 * ```ts
 * const app = Fastify({ https: tlsServerOptions(source) });
 * attachMtls(app.server, source, authorizeMemberOf('example.org'));
 * await app.register(fastifySpiffeId);
 * app.get('/', async (req) => `hello ${req.spiffeId}`);
 * ```
 */
export const fastifySpiffeId: FastifySpiffeIdPlugin = Object.assign(fastifyPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@tachikoma/identity:spiffe-id',
});
