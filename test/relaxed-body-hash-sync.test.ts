import crypto from 'node:crypto';
import t from 'tap';
import { RelaxedBodyHash, relaxedBodyHash, relaxedBodyHashSync, relaxedCanonical } from '../src/crypto/relaxed-body.js';

/*
 * The relay stamps its own mails' X-Zegel-Origin with a synchronous relaxed
 * body hash (issue 15: nodemailer's streaming canonicaliser cost more in
 * stream set-up than in hashing for a few KB held in memory); ingress checks
 * a returning mail with the streaming one (src/smtp/header-guard.ts). They
 * must agree on every body, or a relay-made mail would be classified again on
 * its way back, and a forged one could slip through a difference. Bodies
 * include what the RFC leaves to implementations: bare CR, bare LF, CR before
 * LF after whitespace, whitespace-only lines, and a body cut anywhere.
 */

async function streamed(body: Buffer, cuts: number[] = []): Promise<Buffer> {
  const hash = new RelaxedBodyHash();
  let at = 0;
  for (const cut of [...cuts, body.length]) {
    hash.update(body.subarray(at, cut));
    at = cut;
  }
  return hash.digest();
}

t.test('hand-picked bodies: the synchronous hash equals the streaming one', async (t) => {
  const bodies = [
    '',
    '\r\n',
    '\n\n\n',
    'a',
    'a \r',
    'a\r',
    '\r',
    '\r\r\n',
    ' \r\n',
    'a \t \r\n b\t\r\n',
    'a\r\n\r\n\r\nb',
    'a\n \n\t\nb \n\n',
    'x\r \r\n',
    '\r\n\r\n \t \r\nend \t',
    'é  ü\r\n\r\n',
  ];
  for (const body of bodies) {
    const bytes = Buffer.from(body, 'latin1');
    t.same(relaxedBodyHashSync(bytes), await streamed(bytes), JSON.stringify(body));
  }
});

t.test('random bodies, the streaming side cut into random chunks: always the same digest', async (t) => {
  const alphabet = ['a', 'b', ' ', ' ', '\t', '\r', '\n', '\r\n', '\r\n', 'é', '\u00a0'];
  const wrong: string[] = [];
  for (let n = 0; n < 3000; n++) {
    const length = crypto.randomInt(0, 120);
    const body = Array.from({ length }, () => alphabet[crypto.randomInt(alphabet.length)]).join('');
    const bytes = Buffer.from(body, 'utf8');
    const cuts = Array.from({ length: crypto.randomInt(0, 6) }, () => crypto.randomInt(0, bytes.length + 1)).sort((a, b) => a - b);
    if (!relaxedBodyHashSync(bytes).equals(await streamed(bytes, cuts))) wrong.push(JSON.stringify({ body, cuts }));
  }
  t.same(wrong, [], 'no body hashes differently');
});

t.test('a body of 2 MB with long lines and trailing blanks', async (t) => {
  const body = Buffer.from(`${'y'.repeat(3000)} \t \r\n\r\n${'z \t'.repeat(400)}\n`.repeat(600));
  t.same(relaxedBodyHashSync(body), await streamed(body, [1, 65536, 65537, 1_000_000]));
  t.same(await relaxedBodyHash(body), relaxedBodyHashSync(body), 'relaxedBodyHash is the synchronous one');
});

t.test('the canonical form itself: spaces reduced, line ends CRLF, trailing empty lines gone', async (t) => {
  t.equal(relaxedCanonical(Buffer.from(' C \r\nD \t E\r\n\r\n\r\n', 'latin1')).toString('latin1'), ' C\r\nD E\r\n', 'RFC 6376 section 3.4.5');
  t.equal(relaxedCanonical(Buffer.from('a\nb')).toString('latin1'), 'a\r\nb\r\n');
  t.equal(relaxedCanonical(Buffer.from('\r\n \r\n')).length, 0);
});
