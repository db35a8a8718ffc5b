import { channel } from 'node:diagnostics_channel';
import type { AuthAttemptEvent, AuthResultEvent } from './audit.js';

/**
 * Names of the `node:diagnostics_channel` channels the SDK publishes on. Subscribing costs
 * nothing when nobody listens; messages are plain objects without secrets.
 */
export const channelNames: {
  /** `auth_attempt` events ({@link AuthAttemptEvent}). */
  readonly authAttempt: 'tachikoma:identity:auth:attempt';
  /** `auth_result` events ({@link AuthResultEvent}). */
  readonly authResult: 'tachikoma:identity:auth:result';
  /** X509-SVID rotations seen by the Workload API sources. */
  readonly svidRotated: 'tachikoma:identity:svid:rotated';
  /** Every policy engine decision (the decision log entry). */
  readonly policyDecision: 'tachikoma:identity:policy:decision';
} = {
  authAttempt: 'tachikoma:identity:auth:attempt',
  authResult: 'tachikoma:identity:auth:result',
  svidRotated: 'tachikoma:identity:svid:rotated',
  policyDecision: 'tachikoma:identity:policy:decision',
};

/** Publishes `message` on the named channel if anyone subscribes. */
export function publish(name: (typeof channelNames)[keyof typeof channelNames], message: object): void {
  const ch = channel(name);
  if (ch.hasSubscribers) ch.publish(message);
}
