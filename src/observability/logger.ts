import { debuglog } from 'node:util';

/** Fields attached to a log line. Never put keys, tokens or PEMs here. */
export type LogFields = object;

/** One log method: pino-style `(fields, message)` or just `(message)`. */
export interface LogMethod {
  (fields: LogFields, message?: string): void;
  (message: string): void;
}

/**
 * The logger the SDK writes to: the shape pino and Fastify's logger already have, so either can
 * be passed as is. The SDK never installs a global logger.
 */
export interface Logger {
  /** Detail for diagnosing (e.g. `auth_attempt`). */
  debug: LogMethod;
  /** Normal operation (e.g. a successful `auth_result`). */
  info: LogMethod;
  /** Something refused or degraded (e.g. a failed `auth_result`). */
  warn: LogMethod;
  /** Something broken. */
  error: LogMethod;
  /** Optional: a logger whose lines carry `bindings`. */
  child?: ((bindings: LogFields) => Logger) | undefined;
}

const noop = (): void => {};

/** A logger that drops everything: the SDK's default. */
export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * A logger that writes to stderr only when `NODE_DEBUG=tachikoma` (Node's `util.debuglog`), for
 * diagnosing the SDK without wiring a logger.
 */
export function createDebugLogger(section = 'tachikoma'): Logger {
  const log = debuglog(section);
  const at =
    (level: string): LogMethod =>
    (a: LogFields | string, b?: string): void => {
      if (typeof a === 'string') log('%s %s', level, a);
      else log('%s %s %j', level, b ?? '', a);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
