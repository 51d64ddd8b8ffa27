import crypto from 'node:crypto';
import t from 'tap';
import { OriginSigner } from '../src/crypto/origin.js';
import { relaxedBodyHash } from '../src/crypto/relaxed-body.js';
import { ZegelError } from '../src/errors.js';
import { feed } from './helpers/transform.js';
import { HeaderGuard, splitFields, type HeaderFacts } from '../src/smtp/header-guard.js';

const secret = crypto.randomBytes(32);
const signer = new OriginSigner(secret);
const RECEIVED = 'Received: from probe.test ([127.0.0.1])\r\n\tby relay.test (Zegel) with ESMTP id Q1;\r\n\tMon, 23 Nov 2026 13:05:09 +0000\r\n';

interface Run {
  out: Buffer;
  error: unknown;
  facts: HeaderFacts;
}

/** Runs `chunks` through a fresh HeaderGuard, one write per chunk. */
async function guard(chunks: Array<string | Buffer>, options: { maxHeaderBytes?: number; signer?: OriginSigner; recipients?: string[] } = {}): Promise<Run> {
  const g = new HeaderGuard({ signer: options.signer ?? signer, recipients: options.recipients ?? RCPTS, received: RECEIVED, maxHeaderBytes: options.maxHeaderBytes ?? 1024 * 1024 });
  return { ...(await feed(g, chunks)), facts: g.facts };
}

/** Splits a string into chunks of `size` bytes. */
const chunked = (text: string, size: number): Buffer[] => {
  const data = Buffer.from(text, 'latin1');
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
};

const ID = '<m1.abc@org.test>';
const RCPTS = ['Klant@Example.com', 'b@example.net'];

/** The X-Zegel-Origin value the relay would make for this body (the bytes after the blank line). */
async function mark(body: string, options: { id?: string; recipients?: string[]; signer?: OriginSigner } = {}): Promise<string> {
  return (options.signer ?? signer).sign({ messageId: options.id ?? ID, recipients: options.recipients ?? RCPTS }, await relaxedBodyHash(Buffer.from(body, 'latin1')));
}

t.test('splitFields keeps the bytes of each field, folded lines included', async (t) => {
  const block = Buffer.from('Subject: a\r\n b\r\n\tc\r\nX-Zegel-Foo: 1\r\nTo: x@y.test\r\nnocolon\r\n', 'latin1');
  const fields = splitFields(block);
  t.same(
    fields.map((f) => [f.name, f.raw.toString('latin1')]),
    [
      ['subject', 'Subject: a\r\n b\r\n\tc\r\n'],
      ['x-zegel-foo', 'X-Zegel-Foo: 1\r\n'],
      ['to', 'To: x@y.test\r\n'],
      ['', 'nocolon\r\n'],
    ],
  );
  t.ok(Buffer.concat(fields.map((f) => f.raw)).equals(block), 'the fields put together are the block');
  t.same(
    splitFields(Buffer.from('A: 1\r\nB: 2', 'latin1')).map((f) => f.raw.toString('latin1')),
    ['A: 1\r\n', 'B: 2'],
    'a last line without CRLF',
  );
  t.same(splitFields(Buffer.alloc(0)), []);
});

t.test('X-Zegel-* fields are removed in any case, also when folded', async (t) => {
  const header = [
    'From: a@org.test\r\n',
    'X-Zegel-Decision: deliver\r\n',
    'To: b@example.com\r\n',
    'x-zegel-origin: v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n',
    'X-ZEGEL-CLASSIFICATION: public;\r\n\treason=none;\r\n  more=yes\r\n',
    'x-ZeGeL-anything:\r\n folded-only-value\r\n',
    'X-Zegel-Spaced : before the colon\r\n',
    `Message-ID: ${ID}\r\n`,
    'X-Zegelish: kept (not X-Zegel-)\r\n',
    'Subject: hi\r\n',
  ];
  const body = '\r\nX-Zegel-Decision: in the body stays\r\n';
  const r = await guard([header.join('') + body]);
  t.equal(r.error, undefined);
  const kept = [header[0], header[2], header[7], header[8], header[9]].join('');
  t.equal(r.out.toString('latin1'), RECEIVED + kept + body);
  t.equal(r.facts.removed, 5);
  t.equal(r.facts.relayOrigin, false);
  t.equal(r.facts.messageId, ID);
});

t.test('X-Zegel-Origin', async (t) => {
  const BODY = 'body\r\n';
  const message = (origin: string, id = ID, body = BODY) => `From: a@org.test\r\nMessage-ID: ${id}\r\nX-Zegel-Origin: ${origin}\r\nSubject: s\r\n\r\n${body}`;

  t.test('made by this relay for this Message-ID, these recipients and this body: kept, relay origin', async (t) => {
    const input = message(await mark(BODY));
    const r = await guard([input]);
    t.equal(r.out.toString('latin1'), RECEIVED + input);
    t.equal(r.facts.relayOrigin, true);
    t.equal(r.facts.removed, 0);
  });

  t.test('recipients in another order and case, the field before Message-ID, folded, another case: still verifies', async (t) => {
    const [v, token] = (await mark(BODY)).split(' ');
    const input = `x-zegel-ORIGIN: ${v}\r\n ${token}\r\nMessage-ID:\r\n ${ID}\r\n\r\n${BODY}`;
    const r = await guard([input], { recipients: ['B@EXAMPLE.NET', 'klant@example.com', 'klant@example.com'] });
    t.equal(r.facts.relayOrigin, true);
    t.equal(r.out.toString('latin1'), RECEIVED + input);
  });

  t.test('the body changed on the way (a disclaimer, new content): kept, but no relay origin', async (t) => {
    const origin = await mark(BODY);
    for (const body of [`${BODY}--\r\nDisclaimer: this e-mail is confidential.\r\n`, 'BSN 111222333 [veilig]\r\n', '', 'body']) {
      const input = message(origin, ID, body);
      const r = await guard([input]);
      t.equal(r.facts.relayOrigin, body === 'body', JSON.stringify(body));
      t.equal(r.out.toString('latin1'), RECEIVED + input, 'the mail passes unchanged');
    }
  });

  t.test('relaxed canonicalisation: whitespace at line ends, runs of spaces and trailing empty lines do not count', async (t) => {
    const origin = await mark('Dear  Jan,\r\n\r\nthe link:\thttps://x.test/m/1\r\n');
    const r = await guard([message(origin, ID, 'Dear Jan,   \r\n\r\nthe link: https://x.test/m/1\r\n\r\n\r\n')]);
    t.equal(r.facts.relayOrigin, true);
    const changed = await guard([message(origin, ID, 'DearJan,\r\n\r\nthe link: https://x.test/m/1\r\n')]);
    t.equal(changed.facts.relayOrigin, false, 'removing whitespace inside a line does count');
  });

  t.test('the body hashed across any chunking', async (t) => {
    const body = `Dear Jan,\r\n\r\n${'a line with  spaces \t\r\n'.repeat(300)}\r\n\r\n`;
    const input = message(await mark(body), ID, body);
    const wrong: number[] = [];
    for (const size of [1, 2, 3, 7, 64, 4096]) {
      const r = await guard(chunked(input, size));
      if (!r.facts.relayOrigin || r.out.toString('latin1') !== RECEIVED + input) wrong.push(size);
    }
    t.same(wrong, []);
  });

  t.test('made for other recipients: removed', async (t) => {
    for (const recipients of [['klant@example.com'], [...RCPTS, 'c@example.org'], ['ander@example.net', 'b@example.net']]) {
      const r = await guard([message(await mark(BODY))], { recipients });
      t.equal(r.facts.relayOrigin, false, recipients.join(','));
      t.equal(r.facts.removed, 1);
      t.notMatch(r.out.toString('latin1'), /x-zegel/i);
    }
  });

  t.test('made for another Message-ID: removed', async (t) => {
    const r = await guard([message(await mark(BODY, { id: '<other@org.test>' }))]);
    t.equal(r.facts.relayOrigin, false);
    t.equal(r.facts.removed, 1);
    t.notMatch(r.out.toString('latin1'), /x-zegel/i);
  });

  t.test('made with another secret: removed', async (t) => {
    const r = await guard([message(await mark(BODY, { signer: new OriginSigner(crypto.randomBytes(32)) }))]);
    t.equal(r.facts.relayOrigin, false);
    t.equal(r.facts.removed, 1);
    t.notMatch(r.out.toString('latin1'), /x-zegel/i);
  });

  t.test('v1 (a MAC over the Message-ID only) is refused', async (t) => {
    const v1 = `v1 ${crypto.createHmac('sha256', secret).update(`zegel-origin/v1\n${ID}`).digest('base64url')}`;
    const r = await guard([message(v1)]);
    t.equal(r.facts.relayOrigin, false);
    t.equal(r.facts.removed, 1);
    t.notMatch(r.out.toString('latin1'), /x-zegel/i);
  });

  t.test('forged or malformed values: removed', async (t) => {
    const good = await mark(BODY);
    const token = good.slice(3);
    const [bh, mac] = token.split('.') as [string, string];
    const otherBh = (await relaxedBodyHash(Buffer.from('other\r\n'))).toString('base64url');
    for (const value of ['v2 ' + 'A'.repeat(43) + '.' + 'A'.repeat(43), `v1 ${mac}`, `v3 ${token}`, token, `v2 ${bh}`, `v2 ${mac}`, `v2 ${otherBh}.${mac}`, `v2 ${mac}.${bh}`, `v2 ${token}x`, `v2 ${token.slice(0, 86)}`, `v2 ${bh} ${mac}`, '']) {
      const r = await guard([message(value)]);
      t.equal(r.facts.relayOrigin, false, JSON.stringify(value));
      t.notMatch(r.out.toString('latin1'), /x-zegel/i, JSON.stringify(value));
    }
  });

  t.test('no Message-ID: removed', async (t) => {
    const r = await guard([`From: a@org.test\r\nX-Zegel-Origin: ${await mark('b', { id: '' })}\r\n\r\nb`]);
    t.equal(r.facts.relayOrigin, false);
    t.equal(r.facts.messageId, undefined);
    t.notMatch(r.out.toString('latin1'), /x-zegel/i);
  });

  t.test('a valid origin does not let other X-Zegel-* fields through; a second copy is removed', async (t) => {
    const origin = await mark('b');
    const r = await guard([`Message-ID: ${ID}\r\nX-Zegel-Origin: ${origin}\r\nX-Zegel-Decision: deliver\r\nX-Zegel-Origin: ${origin}\r\n\r\nb`]);
    t.equal(r.facts.relayOrigin, true);
    t.equal(r.facts.removed, 2);
    t.equal(r.out.toString('latin1'), `${RECEIVED}Message-ID: ${ID}\r\nX-Zegel-Origin: ${origin}\r\n\r\nb`);
  });

  t.test('the first Message-ID counts', async (t) => {
    const r = await guard([`Message-ID: ${ID}\r\nMessage-ID: <second@org.test>\r\nX-Zegel-Origin: ${await mark('b', { id: '<second@org.test>' })}\r\n\r\nb`]);
    t.equal(r.facts.messageId, ID);
    t.equal(r.facts.relayOrigin, false);
  });

  t.test('a header-only message is a mail with an empty body', async (t) => {
    const origin = await mark('');
    const r = await guard([`Message-ID: ${ID}\r\nX-Zegel-Origin: ${origin}\r\n`]);
    t.equal(r.facts.relayOrigin, true);
    const blank = await guard([`Message-ID: ${ID}\r\nX-Zegel-Origin: ${origin}\r\n\r\n\r\n`]);
    t.equal(blank.facts.relayOrigin, true, 'empty lines only: also empty in relaxed canonicalisation');
  });
});

t.test('Received fields are counted as hops; the given Received field comes first', async (t) => {
  const input = 'Received: from a by b; x\r\nreceived: from c\r\n\tby d; y\r\nRECEIVED : z\r\nSubject: s\r\nX-Received: not a hop\r\n\r\nReceived: in the body\r\n';
  const r = await guard([input]);
  t.equal(r.facts.hops, 3);
  t.equal(r.out.toString('latin1'), RECEIVED + input);
  t.ok(r.out.toString('latin1').startsWith(RECEIVED));
  t.equal((await guard(['Subject: s\r\n\r\nb'])).facts.hops, 0);
});

t.test('the body passes untouched, also binary and with header-like lines', async (t) => {
  const header = `Subject: s\r\nMessage-ID: ${ID}\r\n`;
  const body = Buffer.concat([Buffer.from('\r\nX-Zegel-Origin: v1 x\r\n\r\n\r\n', 'latin1'), crypto.randomBytes(100_000), Buffer.from('\r\nend\r\n')]);
  const input = Buffer.concat([Buffer.from(header, 'latin1'), body]);
  for (const size of [1, 7, 4096, 65536, input.length]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size));
    const r = await guard(chunks);
    t.ok(r.out.equals(Buffer.concat([Buffer.from(RECEIVED + header, 'latin1'), body])), `chunks of ${size}`);
  }
});

t.test('a message without a header (starts with the blank line)', async (t) => {
  const r = await guard(['\r\nX-Zegel-Origin: v1 body\r\n']);
  t.equal(r.out.toString('latin1'), RECEIVED + '\r\nX-Zegel-Origin: v1 body\r\n');
  t.equal(r.facts.removed, 0);
  const split = await guard(['\r', '\nbody']);
  t.equal(split.out.toString('latin1'), RECEIVED + '\r\nbody');
});

t.test('a header-only message (no blank line)', async (t) => {
  const r = await guard([`Subject: s\r\nX-Zegel-Decision: deliver\r\nMessage-ID: ${ID}\r\n`]);
  t.equal(r.error, undefined);
  t.equal(r.out.toString('latin1'), `${RECEIVED}Subject: s\r\nMessage-ID: ${ID}\r\n`);
  t.equal(r.facts.messageId, ID);
  t.equal(r.facts.removed, 1);
  const noEol = await guard(['Subject: s\r\nX-Zegel-A: b']);
  t.equal(noEol.out.toString('latin1'), `${RECEIVED}Subject: s\r\n`);
  const empty = await guard([]);
  t.equal(empty.out.toString('latin1'), RECEIVED, 'an empty message gets the Received field only');
});

t.test('headers split over many chunks', async (t) => {
  const header = [
    'Received: from x by y; z\r\n',
    'From: a@org.test\r\n',
    'X-Zegel-Decision:\r\n deliver\r\n',
    `Message-ID: ${ID}\r\n`,
    `X-Zegel-Origin: ${await mark('body\r\n')}\r\n`,
    'X-Zegel-Other: gone\r\n',
    `Subject: ${'long '.repeat(2000)}\r\n`,
  ];
  const input = header.join('') + '\r\nbody\r\n';
  const expected = RECEIVED + [header[0], header[1], header[3], header[4], header[6]].join('') + '\r\nbody\r\n';
  for (const size of [1, 2, 3, 5, 64, 1000]) {
    const r = await guard(chunked(input, size));
    t.equal(r.error, undefined);
    t.equal(r.out.toString('latin1'), expected, `chunks of ${size}`);
    t.same(r.facts, { hops: 1, messageId: ID, removed: 2, relayOrigin: true }, `facts with chunks of ${size}`);
  }
  // the header end (CRLF CRLF) split at every position across two chunks
  const wrong: number[] = [];
  const end = input.indexOf('\r\n\r\n');
  for (let at = end - 2; at <= end + 5; at++) {
    const r = await guard([input.slice(0, at), input.slice(at)]);
    if (r.out.toString('latin1') !== expected) wrong.push(at);
  }
  t.same(wrong, []);
});

t.test('a header larger than maxHeaderBytes fails with ZEGEL_HEADER_TOO_LONG', async (t) => {
  const max = 4096;
  t.test('well over the limit, arriving in small chunks', async (t) => {
    const r = await guard(chunked(`Subject: ${'x'.repeat(max * 2)}\r\n\r\nbody\r\n`, 512), { maxHeaderBytes: max });
    t.type(r.error, ZegelError);
    t.equal((r.error as ZegelError | undefined)?.code, 'ZEGEL_HEADER_TOO_LONG');
    t.equal(r.out.length, 0, 'nothing passed on');
  });
  t.test('with no end of header at all', async (t) => {
    const r = await guard(chunked(`Subject: ${'x'.repeat(max * 4)}`, 1000), { maxHeaderBytes: max });
    t.equal((r.error as ZegelError | undefined)?.code, 'ZEGEL_HEADER_TOO_LONG');
  });
  t.test('a header-only message over the limit in one chunk', async (t) => {
    const r = await guard([`Subject: ${'x'.repeat(max)}\r\n`], { maxHeaderBytes: max });
    t.equal((r.error as ZegelError | undefined)?.code, 'ZEGEL_HEADER_TOO_LONG');
  });
  t.test('the limit does not depend on how the bytes were chunked', async (t) => {
    // the chunk that holds the end of the header is never checked against the limit
    const big = `Subject: ${'x'.repeat(max * 2)}\r\n\r\nbody\r\n`;
    const oneChunk = await guard([big], { maxHeaderBytes: max });
    t.equal((oneChunk.error as ZegelError | undefined)?.code, 'ZEGEL_HEADER_TOO_LONG', 'header of 2x the limit in one chunk');
    const justOver = `Subject: ${'x'.repeat(max)}\r\n\r\nbody\r\n`;
    const lastChunk = await guard(chunked(justOver, 512), { maxHeaderBytes: max });
    t.equal((lastChunk.error as ZegelError | undefined)?.code, 'ZEGEL_HEADER_TOO_LONG', 'header of limit+11 bytes whose end is in the chunk that passes the limit');
  });
  t.test('a header just under the limit passes', async (t) => {
    const ok = `Subject: ${'x'.repeat(max - 100)}\r\n\r\nbody`;
    for (const size of [512, ok.length]) {
      const r = await guard(chunked(ok, size), { maxHeaderBytes: max });
      t.equal(r.error, undefined);
      t.equal(r.out.toString('latin1'), RECEIVED + ok);
    }
  });
});
