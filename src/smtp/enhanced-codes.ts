import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

/**
 * smtp-server picks an enhanced status code (RFC 3463) from the basic code of
 * an error reply, so a policy refusal would read `550 5.1.1` ("bad mailbox")
 * where `550 5.7.1` ("not authorised") is meant. Our errors (SmtpReplyError)
 * carry their own code at the start of the text; this makes smtp-server use it
 * instead of adding a second one. Installed once, idempotent.
 */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3}) /;
const PATCHED = Symbol.for('zegel.enhancedCodes');

type Send = (code: number, data: unknown, context?: unknown) => unknown;

export function installEnhancedCodes(): void {
  const proto = (SMTPConnection as unknown as { prototype: { send: Send; [PATCHED]?: boolean } }).prototype;
  if (proto[PATCHED]) return;
  const original = proto.send;
  proto.send = function send(this: unknown, code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && ENHANCED.test(data) && data[0] === String(code)[0]) {
      return original.call(this, code, data, false);
    }
    return original.call(this, code, data, context);
  };
  proto[PATCHED] = true;
}
