import type { Test } from 'tap';
import type { IncomingMessage } from '../../src/store/messages.js';
import { rejection } from './rejection.js';
import type { Driver, StoreFixture } from './store-drivers.js';

/** A delivery attempt's TLS facts as src/deliver/smtp-pool.ts records them. */
const TLS = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', verified: true, verifiedBy: 'system CAs', mtaSts: 'enforce', policy: 'verify' } as const;

/**
 * The message repository's contract (src/store/messages.ts), written once
 * and run against every driver: the rows a message leaves, the events each
 * step records, and the steps a job may run twice recording nothing twice.
 */

function message(id: string, overrides: Partial<IncomingMessage> = {}): IncomingMessage {
  return {
    id,
    receivedAt: Date.UTC(2026, 0, 5, 9, 0, 0),
    mailFrom: 'jan@org.test',
    clientIp: '192.0.2.7',
    helo: 'mail.org.test',
    size: 1234,
    messageId: `<${id}@org.test>`,
    origin: 'ingress',
    recipients: [{ address: 'a@example.nl', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;a@example.nl' }, { address: 'B@Example.net' }, { address: 'c@example.org' }],
    ...overrides,
  };
}

const types = async (s: StoreFixture, id: string): Promise<string[]> => (await s.events.forMessage(id)).map((e) => `${e.type}${e.recipient ? `:${e.recipient}` : ''}`);

export function messagesContract(t: Test, driver: Driver): void {
  t.test(`${driver.name}: a received message, its recipients and its event`, async (t) => {
    const s = await driver.make(t);
    await s.transaction((tx) => s.messages.insertReceived(tx, message('q1', { envId: 'env-1', ret: 'HDRS' })));
    t.same(await s.messages.get('q1'), {
      id: 'q1',
      receivedAt: Date.UTC(2026, 0, 5, 9, 0, 0),
      mailFrom: 'jan@org.test',
      clientIp: '192.0.2.7',
      helo: 'mail.org.test',
      size: 1234,
      messageId: '<q1@org.test>',
      origin: 'ingress',
      envId: 'env-1',
      ret: 'HDRS',
      state: 'queued',
      spool: true,
    });
    t.equal(await s.messages.get('nope'), undefined);
    const rcpts = await s.messages.recipients('q1');
    t.same(
      rcpts.map((r) => [r.idx, r.address, r.notify, r.orcpt, r.decision, r.state, r.attempts, r.updatedAt]),
      [
        [0, 'a@example.nl', ['SUCCESS', 'FAILURE'], 'rfc822;a@example.nl', undefined, 'pending', 0, s.clock.now()],
        [1, 'B@Example.net', undefined, undefined, undefined, 'pending', 0, s.clock.now()],
        [2, 'c@example.org', undefined, undefined, undefined, 'pending', 0, s.clock.now()],
      ],
    );
    const [received] = await s.events.forMessage('q1');
    t.same(received?.detail, { from: 'jan@org.test', recipients: 3, size: 1234, clientIp: '192.0.2.7', origin: 'ingress', messageId: '<q1@org.test>' });
    t.equal(await s.messages.pendingCount('q1'), 3);
    t.same([...(await s.messages.spooledIds())], ['q1']);

    const err = await rejection(s.transaction((tx) => s.messages.insertReceived(tx, message('q1', { recipients: [{ address: 'x@example.nl' }] }))));
    t.ok(err, `the same id twice is refused: ${err.message.split('\n')[0]}`);
    t.equal((await s.messages.recipients('q1')).length, 3, 'and nothing of the second one stays');
    t.same(await types(s, 'q1'), ['received']);
  });

  t.test(`${driver.name}: reads in a transaction see its writes; others see them after the commit`, async (t) => {
    const s = await driver.make(t);
    const other = await s.node();
    await s.transaction(async (tx) => {
      await s.messages.insertReceived(tx, message('q1'));
      t.equal((await s.messages.get('q1', tx))?.state, 'queued', 'the transaction sees its message');
      t.equal((await s.messages.recipients('q1', tx)).length, 3);
      t.equal(await s.messages.pendingCount('q1', tx), 3);
    });
    t.equal((await other.messages.get('q1'))?.state, 'queued', 'another connection sees it once committed');
  });

  t.test(`${driver.name}: decisions are recorded once, however often the step runs`, async (t) => {
    const s = await driver.make(t);
    await s.transaction((tx) => s.messages.insertReceived(tx, message('q1')));
    const decisions = [
      { idx: 0, address: 'a@example.nl', decision: 'deliver' as const, reason: 'no findings' },
      { idx: 1, address: 'B@Example.net', decision: 'encrypt' as const, reason: 'bsn' },
      { idx: 2, address: 'c@example.org', decision: 'block' as const, reason: 'policy' },
    ];
    await s.transaction((tx) => s.messages.recordDecisions(tx, 'q1', decisions));
    await s.transaction((tx) => s.messages.recordDecisions(tx, 'q1', decisions));
    t.equal((await s.messages.get('q1'))?.state, 'processed');
    t.same((await s.messages.recipients('q1')).map((r) => r.decision), ['deliver', 'encrypt', 'block']);
    t.same(await types(s, 'q1'), ['received', 'decided:a@example.nl', 'decided:B@Example.net', 'decided:c@example.org']);
    const decided = (await s.events.forMessage('q1'))[2];
    t.same(decided?.detail, { decision: 'encrypt', reason: 'bsn' });
    await s.transaction((tx) => s.messages.recordDecisions(tx, 'missing', decisions));
    t.same(await types(s, 'missing'), [], 'an unknown message records nothing');
  });

  t.test(`${driver.name}: attempts change pending recipients only, and the last one releases the spool`, async (t) => {
    const s = await driver.make(t);
    await s.transaction((tx) => s.messages.insertReceived(tx, message('q1')));
    s.clock.advance(1000);
    let pending = await s.transaction((tx) =>
      s.messages.recordAttempt(tx, 'q1', [
        { idx: 0, outcome: 'delivered', reply: '250 ok', remoteMta: 'mx.example.nl', tls: TLS },
        { idx: 1, outcome: 'deferred', reply: '451 later' },
      ], { via: 'smarthost' }),
    );
    t.equal(pending, 2);
    let rcpts = await s.messages.recipients('q1');
    t.same(rcpts.map((r) => [r.state, r.attempts, r.lastReply, r.remoteMta, r.updatedAt]), [
      ['delivered', 1, '250 ok', 'mx.example.nl', s.clock.now()],
      ['pending', 1, '451 later', undefined, s.clock.now()],
      ['pending', 0, undefined, undefined, s.clock.now() - 1000],
    ]);
    const delivered = (await s.events.forMessage('q1')).find((e) => e.type === 'delivered');
    t.same(delivered?.detail, { reply: '250 ok', remoteMta: 'mx.example.nl', attempt: 1, via: 'smarthost', tls: TLS }, 'the TLS facts in the event');
    const deferred = (await s.events.forMessage('q1')).find((e) => e.type === 'deferred');
    t.notOk('tls' in (deferred?.detail ?? {}), 'none where the attempt had none');

    // the same attempt again (a job run twice after a crash): the delivered one records nothing
    pending = await s.transaction((tx) => s.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250 ok' }]));
    t.equal(pending, 2);
    t.equal((await s.messages.recipients('q1'))[0]?.attempts, 1);

    pending = await s.transaction((tx) =>
      s.messages.recordAttempt(tx, 'q1', [
        { idx: 1, outcome: 'bounced', reply: '550 no such user' },
        { idx: 2, outcome: 'encrypted', reply: 'stored encrypted' },
      ]),
    );
    t.equal(pending, 0);
    rcpts = await s.messages.recipients('q1');
    t.same(rcpts.map((r) => [r.state, r.attempts]), [['delivered', 1], ['bounced', 2], ['encrypted', 1]]);
    const record = await s.messages.get('q1');
    t.same([record?.state, record?.spool], ['done', false], 'done, spool released');
    t.same([...(await s.messages.spooledIds())], []);
    t.same(await types(s, 'q1'), ['received', 'delivered:a@example.nl', 'deferred:B@Example.net', 'bounced:B@Example.net', 'encrypted:c@example.org', 'spool-removed']);
    await s.transaction((tx) => s.messages.releaseSpool(tx, 'q1'));
    t.equal((await types(s, 'q1')).filter((e) => e === 'spool-removed').length, 1, 'released once');
  });

  t.test(`${driver.name}: two nodes finishing one message at once release its spool once`, async (t) => {
    const s = await driver.make(t);
    const other = await s.node();
    await s.transaction((tx) => s.messages.insertReceived(tx, message('q1', { recipients: [{ address: 'a@example.nl' }, { address: 'b@example.nl' }] })));
    const results = await Promise.all([
      s.transaction((tx) => s.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250 a' }, { idx: 1, outcome: 'delivered', reply: '250 b' }])),
      other.transaction((tx) => other.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250 a' }, { idx: 1, outcome: 'delivered', reply: '250 b' }])),
    ]);
    t.same(results, [0, 0]);
    t.same(await types(s, 'q1'), ['received', 'delivered:a@example.nl', 'delivered:b@example.nl', 'spool-removed'], 'each outcome and the release recorded once');
    t.same((await s.messages.recipients('q1')).map((r) => r.attempts), [1, 1]);
  });

  t.test(`${driver.name}: relay-made mail can be claimed once, by the same recipients`, async (t) => {
    const s = await driver.make(t);
    await s.transaction((tx) => s.messages.insertReceived(tx, message('n1', { origin: 'notification', messageId: ' <n1@relay.test> ', recipients: [{ address: 'Piet@Extern.test' }, { address: 'kees@extern.test' }] })));
    const claim = (queueId: string, recipients: string[], messageId: string | undefined = '<n1@relay.test>') => s.transaction((tx) => s.messages.claimRelayOrigin(tx, queueId, messageId, recipients));
    t.equal(await claim('back1', ['kees@extern.test']), false, 'fewer recipients: not ours');
    t.equal(await claim('back1', ['kees@extern.test', 'piet@extern.test', 'x@extern.test']), false, 'more recipients: not ours');
    t.equal(await claim('back1', ['<n2@relay.test>'], '<n2@relay.test>'), false, 'an unknown Message-ID');
    t.equal(await claim('back1', ['kees@extern.test']), false);
    t.equal(await claim('back1', [' KEES@extern.test', 'piet@extern.test', 'piet@extern.test']), true, 'the same set (case, order, repeats aside)');
    t.equal(await claim('back1', ['kees@extern.test', 'piet@extern.test']), true, 'the same queue id again: still its claim');
    t.equal(await claim('back2', ['kees@extern.test', 'piet@extern.test']), false, 'a second message with it: not the relay’s');
    t.equal(await claim('back3', ['kees@extern.test'], undefined), false, 'no Message-ID');
    // a second record with the same Message-ID is ignored, the first stays
    await s.transaction((tx) => s.messages.insertReceived(tx, message('n2', { origin: 'dsn', messageId: '<n1@relay.test>', recipients: [{ address: 'other@extern.test' }] })));
    t.equal(await claim('back4', ['other@extern.test']), false);
  });

  t.test(`${driver.name}: an admin gives up held mail`, async (t) => {
    const s = await driver.make(t);
    await s.transaction((tx) => s.messages.insertReceived(tx, message('q1')));
    await s.transaction((tx) => s.messages.recordAttempt(tx, 'q1', [{ idx: 0, outcome: 'delivered', reply: '250 ok' }]));
    s.clock.advance(5000);
    t.equal(await s.transaction((tx) => s.messages.giveUp(tx, 'q1', 'deleted by an admin')), true, 'the spool was still needed');
    t.same((await s.messages.recipients('q1')).map((r) => [r.state, r.lastReply]), [
      ['delivered', '250 ok'],
      ['bounced', 'deleted by an admin'],
      ['bounced', 'deleted by an admin'],
    ]);
    t.same([(await s.messages.get('q1'))?.state, await s.messages.pendingCount('q1')], ['done', 0]);
    t.equal(await s.transaction((tx) => s.messages.giveUp(tx, 'q1', 'again')), false, 'a second time: nothing to release');
    t.equal(await s.transaction((tx) => s.messages.giveUp(tx, 'missing', 'x')), false);
    t.same(await types(s, 'q1'), ['received', 'delivered:a@example.nl'], 'no event: the caller records its admin-action');
  });

  t.test(`${driver.name}: a write outside its transaction is refused`, async (t) => {
    const s = await driver.make(t);
    let kept: Parameters<Parameters<StoreFixture['transaction']>[0]>[0] | undefined;
    await s.transaction((tx) => {
      kept = tx;
    });
    const err = await rejection(s.messages.insertReceived(kept!, message('q1')));
    t.match(err, { code: 'ZEGEL_STORE_TX' });
    t.equal(await s.messages.get('q1'), undefined);
  });
}
