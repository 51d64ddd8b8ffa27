import t from 'tap';
import { storeView } from './helpers/store-view.js';
import nodemailer from 'nodemailer';
import { startRelay, stripFirstReceived, waitFor } from './helpers/relay.js';
import { startSink, type Received } from './helpers/sink.js';

/**
 * X-Zegel-Origin vouches for one mail the relay made, once: the exact body,
 * the Message-ID and the envelope recipients it was made for. Everything here
 * goes through a real relay over SMTP with the shipped rules and a sink as its
 * next hop; the relay-made mails are notifications as the next hop received
 * them. A copied Message-ID + X-Zegel-Origin pair on new content, the same mail
 * a second time, to other recipients or with a disclaimer added is classified
 * as usual; the unchanged mail looping back once passes unclassified.
 */

const SENDER = 'jan@org.test';
const KLANT = ['klant1@example.com', 'klant2@example.com', 'klant3@example.com'];
const OTHER = 'ander@example.net';
const BSN = '111222333';

async function send(port: number, raw: Buffer, to: string[]): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: SENDER, to }, raw });
    const match = /^250 2\.6\.0 Ok: queued as (\S+)$/.exec(info.response);
    if (!match) throw new Error(`not accepted: ${info.response}`);
    return match[1]!;
  } finally {
    transport.close();
  }
}

const lines = (...l: string[]) => Buffer.from(l.map((x) => `${x}\r\n`).join(''), 'latin1');

/** A header field as it stands in the raw mail (folded lines included, with its CRLF). */
function rawField(raw: Buffer, name: string): string {
  const text = raw.toString('latin1');
  const head = text.slice(0, text.indexOf('\r\n\r\n') + 2);
  const match = new RegExp(`^${name}:[^\\r\\n]*\\r\\n(?:[ \\t][^\\r\\n]*\\r\\n)*`, 'im').exec(head);
  if (!match) throw new Error(`no ${name} field`);
  return match[0];
}

t.test('X-Zegel-Origin vouches for one relay-made mail, once', async (t) => {
  const sink = await startSink(t);
  const { port, relay } = await startRelay(t, { organisation: { domains: ['org.test'] }, delivery: { target: sink.url }, receipts: { sender: false } });
  const store = storeView(relay.sqlite);

  /** Sends, waits until the relay is done with it, and returns its queue id and what reached the next hop since. */
  async function relayed(raw: Buffer, to: string[]): Promise<{ queueId: string; out: Received[] }> {
    const before = sink.messages.length;
    const queueId = await send(port, raw, to);
    await waitFor(() => store.getMessage(queueId)?.state === 'done', 20_000, `${queueId} to be done`);
    await relay.backend.queue.idle();
    return { queueId, out: sink.messages.slice(before) };
  }
  /** The per-recipient decisions as recorded (decision and reason), and whether the message was classified. */
  const decided = (queueId: string) => {
    const events = store.events(queueId);
    return {
      classified: events.some((e) => e.type === 'classified'),
      decisions: events.filter((e) => e.type === 'decided').map((e) => `${e.recipient}:${(e.detail as { decision: string }).decision}:${(e.detail as { reason: string }).reason}`),
    };
  };
  const bsnLeft = () => sink.messages.filter((m) => m.raw.includes(BSN));

  // the original: sensitive, so each recipient gets a notification the relay made (as captured at the next hop)
  const sensitive = lines(`From: <${SENDER}>`, `To: ${KLANT.join(', ')}`, 'Subject: [veilig] dossier', 'Message-ID: <origineel@org.test>', '', `BSN ${BSN}`);
  const first = await relayed(sensitive, KLANT);
  t.equal(first.out.length, 3, 'three notifications');
  const notification = new Map(first.out.map((m) => [m.to[0]!, m.raw]));
  for (const address of KLANT) t.match(rawField(notification.get(address)!, 'X-Zegel-Origin'), /^X-Zegel-Origin:/, `${address}: the notification carries X-Zegel-Origin`);
  t.same(bsnLeft(), [], 'the BSN did not leave in the clear');

  t.test('(a) its Message-ID + X-Zegel-Origin replayed onto new content to the same address: classified and encrypted', async (t) => {
    const n1 = notification.get(KLANT[0]!)!;
    const replay = Buffer.concat([
      lines(`From: <${SENDER}>`, `To: <${KLANT[0]}>`, 'Subject: [veilig] nieuw dossier'),
      Buffer.from(rawField(n1, 'Message-ID') + rawField(n1, 'X-Zegel-Origin'), 'latin1'),
      lines('', `Nieuwe inhoud, BSN ${BSN}`),
    ]);
    const { queueId, out } = await relayed(replay, [KLANT[0]!]);
    t.equal(decided(queueId).classified, true, 'classified');
    t.match(decided(queueId).decisions, [new RegExp(`^${KLANT[0]}:encrypt:rules:`)], 'and encrypted');
    t.equal(out.length, 1, 'one mail reached the next hop');
    t.notOk(out[0]!.raw.includes('Nieuwe inhoud'), 'it is not the new content');
    t.match(out[0]!.raw.toString('latin1'), /#[A-Za-z0-9_-]{43}\r?$/m, 'but a fresh notification with its link');
    t.same(bsnLeft(), [], 'the BSN did not leave in the clear');
  });

  t.test('(b) the unchanged mail looping back once: passes unclassified, byte for byte', async (t) => {
    const n1 = notification.get(KLANT[0]!)!;
    const { queueId, out } = await relayed(n1, [KLANT[0]!]);
    t.same(decided(queueId), { classified: false, decisions: [`${KLANT[0]}:deliver:relay-origin`] });
    t.equal(out.length, 1);
    t.ok(stripFirstReceived(out[0]!.raw).equals(n1), 'delivered as it came, X-Zegel-Origin kept');
  });

  t.test('(c) the same mail a second time: classified', async (t) => {
    const { queueId, out } = await relayed(notification.get(KLANT[0]!)!, [KLANT[0]!]);
    t.equal(decided(queueId).classified, true);
    t.notMatch(decided(queueId).decisions.join(), /relay-origin/);
    t.equal(out.length, 1);
  });

  t.test('(d) the same mail to other recipients: classified, and the mark does not travel on', async (t) => {
    const n2 = notification.get(KLANT[1]!)!;
    for (const to of [[OTHER], [KLANT[1]!, OTHER]]) {
      const { queueId, out } = await relayed(n2, to);
      t.equal(decided(queueId).classified, true, to.join(','));
      t.notMatch(decided(queueId).decisions.join(), /relay-origin/);
      t.equal(out.length, 1);
      t.notMatch(out[0]!.raw.toString('latin1'), /^X-Zegel-Origin:/im, 'a mark for other recipients is removed at ingress');
    }
    // neither attempt used up the mail: to the recipient it was made for it still passes once
    const { queueId } = await relayed(n2, [KLANT[1]!]);
    t.same(decided(queueId), { classified: false, decisions: [`${KLANT[1]}:deliver:relay-origin`] });
  });

  t.test('(e) a disclaimer appended to the body on the way: classified', async (t) => {
    const n3 = notification.get(KLANT[2]!)!;
    const withDisclaimer = Buffer.concat([n3, lines('', '--', 'Dit bericht is uitsluitend bestemd voor de geadresseerde. / This message is intended for the addressee only.')]);
    const { queueId, out } = await relayed(withDisclaimer, [KLANT[2]!]);
    t.equal(decided(queueId).classified, true);
    t.notMatch(decided(queueId).decisions.join(), /relay-origin/);
    t.equal(out.length, 1);
    // and reformatting that relaxed canonicalisation ignores (trailing whitespace, empty lines at the end) still passes once
    const end = n3.indexOf('\r\n\r\n') + 4;
    const body = n3.subarray(end).toString('latin1').replace(/([^\s])\r\n/g, '$1 \t\r\n');
    const reflowed = Buffer.concat([n3.subarray(0, end), Buffer.from(`${body}\r\n\r\n`, 'latin1')]);
    t.notOk(reflowed.equals(n3));
    const again = await relayed(reflowed, [KLANT[2]!]);
    t.same(decided(again.queueId), { classified: false, decisions: [`${KLANT[2]}:deliver:relay-origin`] });
  });
});
