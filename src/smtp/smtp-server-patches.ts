import { SMTPConnection } from 'smtp-server/lib/smtp-connection';

/**
 * Two adjustments to smtp-server's connection class, installed once. They
 * lean on smtp-server internals (send, init, _setListeners, connectionReady),
 * so the major version is pinned and every SMTP test exercises them: an
 * upgrade that breaks them fails the suite, not production.
 *
 * 1. Enhanced status codes. smtp-server picks the RFC 3463 code from the basic
 *    code of an error reply, so a policy refusal would read `550 5.1.1` ("bad
 *    mailbox") where `550 5.7.1` ("not authorised") is meant. Our errors
 *    (SmtpReplyError) carry their own code at the start of the text; it is used
 *    instead of a second one being added.
 *
 * 2. No greeting delay. smtp-server waits 100 ms before the 220 greeting to
 *    catch clients that talk too early, a spam defence for servers open to the
 *    Internet. Zegel only serves the organisation's own mail servers (allow
 *    list or SMTP AUTH), and the delay caps a relay that gets one message per
 *    connection at concurrency / 0.1 s. Early talkers are still refused: the
 *    listeners that answer "You talk too soon" stay in place until the
 *    greeting is sent.
 */
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3}) /;
const PATCHED = Symbol.for('zegel.smtpServerPatches');

type Send = (code: number, data: unknown, context?: unknown) => unknown;
interface ConnectionInternals {
  send: Send;
  init: () => void;
  _setListeners(callback: () => void): void;
  connectionReady(): void;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  [PATCHED]?: boolean;
}

export function installSmtpServerPatches(): void {
  const proto = (SMTPConnection as unknown as { prototype: ConnectionInternals }).prototype;
  if (proto[PATCHED]) return;
  const send = proto.send;
  proto.send = function (this: ConnectionInternals, code: number, data: unknown, context?: unknown) {
    if (typeof data === 'string' && ENHANCED.test(data) && data[0] === String(code)[0]) {
      return send.call(this, code, data, false);
    }
    return send.call(this, code, data, context);
  };
  proto.init = function (this: ConnectionInternals) {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
        return;
      }
      this.connectionReady();
    });
  };
  proto[PATCHED] = true;
}
