import nodemailer from 'nodemailer';
import t from 'tap';
import { startRelay, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';

/*
 * Internal recipients always get the original, even when the message's
 * decision is `encrypt`. The "message processed" log line says so per class
 * of recipient, in its fields and in words, rather than leaving an operator
 * with `"decision":"encrypt"` beside a bare count of 0.
 */

t.test('the processed line names internal, delivered and encrypted recipients in words', async (t) => {
  const sink = await startSink(t);
  const relay = await startRelay(t, { organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] }, delivery: { target: sink.url } });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true });
  t.teardown(() => transport.close());
  const send = async (to: string[]) => {
    const info = await transport.sendMail({ envelope: { from: 'jan@zorg.test', to }, from: 'jan@zorg.test', to: to.join(', '), subject: 'Dossier', text: 'Het BSN is 123456782.' });
    return /queued as (\S+)/.exec(info.response)![1]!;
  };
  const processed = (queueId: string) =>
    waitFor(() => relay.logs().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.queueId === queueId && String(l.msg).startsWith('message processed')), 10_000, `the processed line of ${queueId}`);

  // only internal recipients: the decision is encrypt, yet both get the original
  const internalOnly = await processed(await send(['piet@zorg.test', 'anna@zorg.test']));
  t.match(internalOnly, { decision: 'encrypt', recipients: 2, internal: 2, delivered: 2, encrypted: 0 });
  t.equal(internalOnly.msg, 'message processed: decision encrypt: 2 internal recipients get the original, 0 external recipients encrypted');
  t.notOk('encrypt' in internalOnly || 'deliver' in internalOnly, 'no bare "encrypt"/"deliver" counts beside the decision');
  await waitFor(() => sink.messages.length >= 1, 10_000, 'the original at the next hop');
  t.same(sink.messages[0]!.to.sort(), ['anna@zorg.test', 'piet@zorg.test']);

  // one of each
  const mixed = await processed(await send(['piet@zorg.test', 'klant@elders.test']));
  t.match(mixed, { decision: 'encrypt', recipients: 2, internal: 1, delivered: 1, encrypted: 1 });
  t.equal(mixed.msg, 'message processed: decision encrypt: 1 internal recipient gets the original, 1 external recipient encrypted');
});
