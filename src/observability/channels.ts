import { channel } from 'node:diagnostics_channel';

/**
 * Names of the `node:diagnostics_channel` channels the SDK publishes on. Subscribing costs
 * nothing when nobody listens; messages are plain objects without secrets.
 */
export const channelNames: {
  readonly authAttempt: 'tachikoma:identity:auth:attempt';
  readonly authResult: 'tachikoma:identity:auth:result';
  readonly svidRotated: 'tachikoma:identity:svid:rotated';
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
