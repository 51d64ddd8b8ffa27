import fs from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import type { Test } from 'tap';
import { ManualClock } from '../../src/clock.js';
import type { SecureContent } from '../../src/crypto/content.js';
import { unwrapKey } from '../../src/crypto/key-schedule.js';
import { decryptBytes } from '../../src/crypto/payload.js';
import { freePort } from './child-relay.js';
import { startRelay, waitFor, type TestRelay } from './relay.js';
import { startSink, type TestSink } from './sink.js';

/** Helpers for the revoke, expiry and messages-CLI tests: a relay with a sink, secure messages sent over SMTP, their links. */

export interface SecureSetup {
  relay: TestRelay;
  sink: TestSink;
  clock: ManualClock;
}

export async function setupSecure(t: Test, extra: Record<string, unknown> = {}, options: { dataDir?: string; clock?: ManualClock } = {}): Promise<SecureSetup> {
  const sink = await startSink(t);
  const port = await freePort();
  const clock = options.clock ?? new ManualClock(Date.now());
  const relay = await startRelay(
    t,
    {
      organisation: { name: 'Voorbeeldzorg', domains: ['zorg.test'] },
      delivery: { target: sink.url },
      reader: { listen: `127.0.0.1:${port}`, publicUrl: `http://127.0.0.1:${port}` },
      ...extra,
    },
    { clock, ...(options.dataDir ? { dataDir: options.dataDir } : {}) },
  );
  return { relay, sink, clock };
}

export interface SentLink {
  address: string;
  linkId: string;
  fragment: string;
}

export interface Sent {
  queueId: string;
  secureId: string;
  links: SentLink[];
}

/** Sends a sensitive message (a BSN) from jan@zorg.test to `to` and resolves once every notification reached the sink. */
export async function sendSecure(s: SecureSetup, to: string[], options: { subject?: string; from?: string } = {}): Promise<Sent> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: s.relay.port, secure: false, ignoreTLS: true });
  const from = options.from ?? 'jan@zorg.test';
  let queueId: string;
  try {
    const info = await transport.sendMail({
      envelope: { from, to },
      from: `Jan de Vries <${from}>`,
      to: to.join(', '),
      subject: options.subject ?? 'Dossier',
      text: 'Het BSN is 123456782.',
      attachments: [{ filename: 'verslag.txt', content: Buffer.from('Verslag van het consult.\n') }],
    });
    queueId = /queued as (\S+)/.exec(info.response)![1]!;
  } finally {
    transport.close();
  }
  const links: SentLink[] = [];
  for (const address of to) {
    const link = await waitFor(async () => {
      for (const m of s.sink.messages) {
        if (!m.to.includes(address)) continue;
        const line = ((await simpleParser(m.raw)).text ?? '').split(/\r?\n/).map((l) => l.trim()).find((l) => /\/m\/[A-Za-z0-9_-]{22}#/.test(l));
        const match = line ? /\/m\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$/.exec(line) : null;
        if (match && !links.some((l) => l.linkId === match[1])) return { address, linkId: match[1]!, fragment: match[2]! };
      }
      return undefined;
    }, 20_000, `the notification to ${address}`);
    links.push(link);
  }
  await s.relay.relay.backend.queue.idle();
  const row = s.relay.relay.sqlite.db.prepare('SELECT id FROM secure_messages WHERE queue_id = ?').get(queueId) as { id: string };
  return { queueId, secureId: row.id, links };
}

/** Opens the message the way a browser would: the stored wrap and K_srv plus the link's fragment. */
export async function decryptWithLink(s: SecureSetup, sent: Sent, link: SentLink): Promise<SecureContent> {
  const db = s.relay.relay.sqlite.db;
  const row = db.prepare('SELECT wrap, k_srv FROM secure_links WHERE id = ?').get(link.linkId) as { wrap: Buffer | null; k_srv: Buffer | null };
  const message = db.prepare('SELECT body_blob FROM secure_messages WHERE id = ?').get(sent.secureId) as { body_blob: string | null };
  if (!row.wrap || !row.k_srv || !message.body_blob) throw new Error('no wrap, K_srv or body left');
  const key = unwrapKey(row.wrap, Buffer.from(link.fragment, 'base64url'), row.k_srv, sent.secureId, link.linkId);
  const blob = fs.readFileSync(path.join(s.relay.dataDir, 'blobs', sent.secureId, `${message.body_blob}.pgp`));
  return JSON.parse(Buffer.from(await decryptBytes(key, blob)).toString('utf8')) as SecureContent;
}

/** POST /api/links/<id>/open as the reader page does; resolves to the status and JSON body. */
export async function openLink(s: SecureSetup, linkId: string, cookie?: string): Promise<{ status: number; body: Record<string, unknown>; cookie: string | undefined }> {
  const res = await fetch(`${s.relay.relay.readerUrl}/api/links/${linkId}/open`, {
    method: 'POST',
    headers: { 'X-Zegel-Reader': '1', ...(cookie ? { cookie } : {}) },
  });
  const setCookie = res.headers.get('set-cookie')?.split(';')[0];
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, cookie: setCookie ?? cookie };
}

/**
 * Passes the e-mail-code check as a recipient would: asks for a code, reads it from the code mail at
 * the sink and verifies it. Resolves to the verified session's cookie (the id rotates at the check).
 */
export async function passEmailCheck(s: SecureSetup, link: SentLink, cookie: string | undefined): Promise<string> {
  const url = `${s.relay.relay.readerUrl}/api/links/${link.linkId}`;
  const before = s.sink.messages.length;
  const sent = await fetch(`${url}/code`, { method: 'POST', headers: { 'X-Zegel-Reader': '1', ...(cookie ? { cookie } : {}) } });
  if (sent.status !== 200) throw new Error(`code request answered ${sent.status}`);
  const preSession = sent.headers.get('set-cookie')?.split(';')[0] ?? cookie;
  const code = await waitFor(async () => {
    for (const m of s.sink.messages.slice(before)) {
      if (!m.to.includes(link.address)) continue;
      const match = /: (\d{6}),/.exec((await simpleParser(m.raw)).text ?? '');
      if (match) return match[1];
    }
    return undefined;
  }, 20_000, `the code mail to ${link.address}`);
  const verified = await fetch(`${url}/verify`, {
    method: 'POST',
    headers: { 'X-Zegel-Reader': '1', 'content-type': 'application/json', ...(preSession ? { cookie: preSession } : {}) },
    body: JSON.stringify({ code }),
  });
  if (verified.status !== 200) throw new Error(`verify answered ${verified.status}`);
  const rotated = verified.headers.get('set-cookie')?.split(';')[0];
  if (!rotated) throw new Error('no session cookie after the check');
  return rotated;
}

/** Files under the message's blob directory (none when it is gone). */
export function blobFiles(s: { relay: { dataDir: string } } | { dataDir: string }, secureId: string): string[] {
  const dataDir = 'relay' in s ? s.relay.dataDir : s.dataDir;
  const dir = path.join(dataDir, 'blobs', secureId);
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

export interface LinkState {
  state: string;
  wrap: Buffer | null;
  k_srv: Buffer | null;
}

export function linkRow(s: SecureSetup, linkId: string): LinkState {
  return s.relay.relay.sqlite.db.prepare('SELECT state, wrap, k_srv FROM secure_links WHERE id = ?').get(linkId) as LinkState;
}

export function messageRow(s: SecureSetup, secureId: string): Record<string, unknown> {
  return s.relay.relay.sqlite.db.prepare('SELECT * FROM secure_messages WHERE id = ?').get(secureId) as Record<string, unknown>;
}

export function eventsOf(s: SecureSetup, queueId: string, type: string): Array<{ recipient: string | null; detail: Record<string, unknown> }> {
  return (s.relay.relay.sqlite.db.prepare('SELECT recipient, detail FROM events WHERE message_id = ? AND type = ? ORDER BY seq').all(queueId, type) as Array<{ recipient: string | null; detail: string }>).map((r) => ({
    recipient: r.recipient,
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  }));
}
