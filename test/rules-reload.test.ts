import fs from 'node:fs';
import { storeView } from './helpers/store-view.js';
import path from 'node:path';
import t from 'tap';
import nodemailer from 'nodemailer';
import { shippedRulesDir } from '../src/classify/rules/load.js';
import { startRelay, tempDir, waitFor } from './helpers/relay.js';
import { startSink } from './helpers/sink.js';
import { BLOCK_RULE } from './helpers/rules.js';

/** A copy of the shipped rules that the test may edit. */
function rulesCopy(t: Parameters<typeof tempDir>[0]): string {
  const dir = path.join(tempDir(t), 'rules');
  fs.cpSync(shippedRulesDir(), dir, { recursive: true });
  return dir;
}

async function send(port: number, to: string[], subject: string, body: string): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await transport.sendMail({ envelope: { from: 'jan@org.test', to }, raw: `From: jan@org.test\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\n${body}\r\n` });
    return /queued as (\S+)$/.exec(info.response)![1]!;
  } finally {
    transport.close();
  }
}

t.test('a changed rule file is picked up; a broken one is refused and the previous set stays active', async (t) => {
  const rules = rulesCopy(t);
  const sink = await startSink(t);
  const internal = await startSink(t);
  const { relay, port, logs } = await startRelay(t, {
    organisation: { domains: ['org.test'] },
    rules: { dir: rules },
    delivery: { target: sink.url, internalTarget: internal.url },
  });
  const reloads: Array<{ ok: boolean; problems: string[] }> = [];
  relay.classifier!.onReload((outcome) => reloads.push(outcome));

  // before: the word means nothing
  await send(port, ['klant@example.com'], 'planning', 'Over projectzwaan later meer.');
  await waitFor(() => sink.messages.length === 1, 10_000, 'the first message delivered');

  // an organisation adds a blocking rule: reloaded without a restart
  fs.writeFileSync(path.join(rules, 'organisatie.yaml'), BLOCK_RULE);
  await waitFor(() => reloads.some((r) => r.ok), 10_000, 'a successful reload');
  t.ok(relay.classifier!.rules.rules.some((r) => r.id === 'project-zwaan'), 'the new rule is active');
  t.match(logs(), /"msg":"rules reloaded"/);

  const blocked = await send(port, ['klant@example.com', 'collega@org.test'], 'planning', 'Over projectzwaan later meer.');
  await waitFor(() => internal.messages.length === 1, 10_000, 'the DSN to the sender');
  await relay.backend.queue.idle();
  t.equal(sink.messages.length, 1, 'the blocked message reached nobody, internal recipients included');
  const dsn = internal.messages[0]!;
  t.equal(dsn.from, '', 'the DSN comes from <>');
  t.same(dsn.to, ['jan@org.test']);
  const text = dsn.raw.toString('latin1');
  t.match(text, /Het geheime project Zwaan mag de organisatie niet verlaten/, 'the DSN names the rule in Dutch');
  t.match(text, /The secret project Zwaan must not leave the organisation/, 'and in English');
  t.match(text, /Status: 5\.7\.1/);
  t.match(text, /Final-Recipient: rfc822; collega@org\.test/, 'internal recipients are stopped too');
  t.same(storeView(relay.sqlite).getRecipients(blocked).map((r) => [r.decision, r.state]), [['block', 'bounced'], ['block', 'bounced']]);
  t.equal(storeView(relay.sqlite).getMessage(blocked)?.spool, false, 'the spool file of the blocked message is gone');

  // a broken edit is refused: the previous set (with the block rule) stays active
  const before = reloads.length;
  fs.writeFileSync(path.join(rules, 'organisatie.yaml'), `${BLOCK_RULE}  - id: kapot\n    detector: { kind: regex, pattern: '(a)\\1' }\n`);
  await waitFor(() => reloads.length > before && reloads.slice(before).some((r) => !r.ok), 10_000, 'a refused reload');
  const refused = reloads.slice(before).find((r) => !r.ok)!;
  t.ok(refused.problems.some((p) => p.includes('organisatie.yaml:')), `problems name the file and line: ${refused.problems.join('; ')}`);
  t.match(logs(), /"msg":"rule set refused; the previous rules stay active"/);
  t.ok(relay.classifier!.rules.rules.some((r) => r.id === 'project-zwaan'), 'the previous rules are still active');
  await send(port, ['klant@example.com'], 'planning', 'Weer over projectzwaan.');
  await waitFor(() => internal.messages.length === 2, 10_000, 'a second DSN');
  t.equal(sink.messages.length, 1, 'still blocked under the previous set');
  const types = (relay.sqlite.db.prepare("SELECT type, detail FROM events WHERE message_id IS NULL AND type LIKE 'rules-%' ORDER BY seq").all() as Array<{ type: string; detail: string }>);
  t.ok(types.some((e) => e.type === 'rules-reloaded' && JSON.parse(e.detail).rules.includes('project-zwaan')), 'the reload is on the audit trail with the rules now active');
  t.ok(types.some((e) => e.type === 'rules-refused'), 'so is the refused set');
});

t.test('a broken rule set at start-up stops the relay with the problems named', async (t) => {
  const rules = rulesCopy(t);
  fs.writeFileSync(path.join(rules, 'organisatie.yaml'), 'rules:\n  - id: x\n    detector: { kind: nope }\n');
  await t.rejects(startRelay(t, { rules: { dir: rules } }), { code: 'ZEGEL_RULES_INVALID', message: /organisatie\.yaml:\d+/ });
});
