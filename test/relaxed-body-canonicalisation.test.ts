import crypto from 'node:crypto';
import t from 'tap';
import { RelaxedBodyHash, bodyOf, relaxedBodyHash } from '../src/crypto/relaxed-body.js';

/**
 * The body hash X-Zegel-Origin covers is SHA-256 over DKIM's relaxed body
 * canonicalisation (RFC 6376 section 3.4.4), computed by nodemailer's
 * canonicaliser. Checked against the RFC's own example, the empty-body value
 * every DKIM implementation agrees on, and a plain reading of the RFC's rules
 * on random bodies cut into random chunks.
 */

const sha256 = (s: string) => crypto.createHash('sha256').update(Buffer.from(s, 'latin1')).digest();

/** The RFC's rules, read literally, for a body with CRLF line endings. */
function reference(body: string): string {
  const lines = body.split('\r\n');
  const last = lines.pop()!; // after the final CRLF: '' or a last line without one
  if (last !== '') lines.push(last);
  const canonical = lines.map((line) => line.replace(/[ \t]+$/, '').replace(/[ \t]+/g, ' '));
  while (canonical.length && canonical[canonical.length - 1] === '') canonical.pop();
  return canonical.map((line) => `${line}\r\n`).join('');
}

async function hashChunked(body: Buffer, cuts: number[]): Promise<Buffer> {
  const hash = new RelaxedBodyHash();
  let at = 0;
  for (const cut of [...cuts, body.length]) {
    hash.update(body.subarray(at, cut));
    at = cut;
  }
  return hash.digest();
}

t.test('RFC 6376 section 3.4.5: the example body', async (t) => {
  // " C <CRLF> D <SP><HTAB><SP> E <CRLF> <CRLF> <CRLF>" becomes " C <CRLF> D <SP> E <CRLF>"
  const body = ' C \r\nD \t E\r\n\r\n\r\n';
  t.equal(reference(body), ' C\r\nD E\r\n');
  t.same(await relaxedBodyHash(Buffer.from(body, 'latin1')), sha256(' C\r\nD E\r\n'));
});

t.test('the empty body, and one of empty lines only, hash as nothing (RFC 6376 section 3.4.4)', async (t) => {
  const empty = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';
  for (const body of ['', '\r\n', '\r\n\r\n\r\n', ' \t\r\n  \r\n']) {
    t.equal((await relaxedBodyHash(Buffer.from(body, 'latin1'))).toString('base64'), empty, JSON.stringify(body));
  }
});

t.test('a last line without CRLF gets one; bare LF counts as a line end', async (t) => {
  t.same(await relaxedBodyHash(Buffer.from('a  b \t')), sha256('a b\r\n'));
  t.same(await relaxedBodyHash(Buffer.from('a\nb \n\n')), sha256('a\r\nb\r\n'));
  t.same(await relaxedBodyHash(Buffer.from('a\r\n\r\nb\r\n')), sha256('a\r\n\r\nb\r\n'), 'empty lines inside the body stay');
  t.notSame(await relaxedBodyHash(Buffer.from('ab\r\n')), await relaxedBodyHash(Buffer.from('a b\r\n')), 'whitespace inside a line is reduced, not removed');
});

t.test('random bodies in random chunks agree with the RFC read literally', async (t) => {
  const alphabet = ['a', 'b', ' ', '\t', '\r\n', '\r\n', 'é'];
  const wrong: string[] = [];
  for (let n = 0; n < 400; n++) {
    const length = crypto.randomInt(0, 60);
    const body = Array.from({ length }, () => alphabet[crypto.randomInt(alphabet.length)]).join('');
    const bytes = Buffer.from(body, 'latin1');
    const cuts = Array.from({ length: crypto.randomInt(0, 6) }, () => crypto.randomInt(0, bytes.length + 1)).sort((a, b) => a - b);
    if (!(await hashChunked(bytes, cuts)).equals(sha256(reference(body)))) wrong.push(JSON.stringify({ body, cuts }));
  }
  t.same(wrong, []);
});

t.test('bodyOf: what follows the first empty line', async (t) => {
  t.equal(bodyOf(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore')).toString(), 'body\r\n\r\nmore');
  t.equal(bodyOf(Buffer.from('\r\nbody')).toString(), 'body', 'no header at all');
  t.equal(bodyOf(Buffer.from('A: 1\r\nB: 2\r\n')).length, 0, 'header only');
  t.equal(bodyOf(Buffer.from('A: 1\r\n\r\n')).length, 0);
});

t.test('a large body is hashed chunk by chunk', async (t) => {
  const line = 'x'.repeat(1000) + '  \r\n';
  const body = Buffer.from(line.repeat(20_000));
  const hash = new RelaxedBodyHash();
  for (let i = 0; i < body.length; i += 65536) hash.update(body.subarray(i, i + 65536));
  t.same(await hash.digest(), sha256(('x'.repeat(1000) + '\r\n').repeat(20_000)));
  t.throws(() => hash.update(Buffer.from('late')), 'no input after the digest');
});
