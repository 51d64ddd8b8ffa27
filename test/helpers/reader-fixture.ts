import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import argon2 from 'argon2';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { newKey, newSecureId, wrapKey } from '../../src/crypto/key-schedule.js';
import type { Method } from '../../src/reader/api.js';
import { startReader, type LinkRow, type ReaderDeps } from '../../src/reader/server.js';
import { LogSmsDriver, type SmsDriver } from '../../src/secure/sms.js';
import { BlobStore } from '../../src/store/blobs.js';
import { openDb, type Db } from '../../src/store/db.js';
import { GroupCommitter } from '../../src/store/group-commit.js';
import { EventLog, type EventRecord } from '../../src/store/events.js';
import { storeView } from './store-view.js';
import { createSecureReader } from '../../src/secure/index.js';
import { secureRepositories } from '../../src/store/secure-repositories.js';
import { merge, tempDir, type Teardown } from './relay.js';

/**
 * A reader on a loopback port over a real SQLite file in a temporary
 * directory, with a manual clock, a recording mailer, the log SMS driver and
 * captured logs. Links are inserted with SQL, as the secure-delivery job
 * would leave them.
 */

export interface MailerCall {
  kind: 'code' | 'forgot';
  linkId: string;
  code?: string;
  expiresAt?: number;
  sender?: string;
}

export interface LinkFixture {
  linkId: string;
  secureId: string;
  queueId: string;
  address: string;
  kLink: Buffer;
  contentKey: Buffer;
  bodyBlob: string;
  attachmentBlob: string;
}

export interface LinkOptions {
  method?: Method;
  address?: string;
  phone?: string;
  language?: 'nl' | 'en';
  /** Another link of the same secure message (a second recipient). */
  sameMessageAs?: LinkFixture;
  expiresIn?: number;
}

export class ReaderFixture {
  readonly root: string;
  readonly dataDir: string;
  readonly assetsDir: string;
  readonly db: Db;
  readonly clock = new ManualClock();
  readonly secret = crypto.randomBytes(32);
  readonly blobs: BlobStore;
  readonly eventLog: EventLog;
  readonly committer: GroupCommitter;
  readonly mail: MailerCall[] = [];
  /** argon2id hashes per directory target (address or @domain). */
  readonly directory = new Map<string, string>();
  readonly logLines: string[] = [];
  readonly log;
  sms: SmsDriver;
  /** When set, the mailer rejects. */
  mailerFails = false;
  config;
  url = '';
  #close: (() => Promise<void>) | undefined;

  constructor(t: Teardown, overrides: ConfigInput = {}) {
    this.root = tempDir(t, 'zegel-reader-');
    this.dataDir = path.join(this.root, 'data');
    this.assetsDir = path.join(this.root, 'assets');
    fs.mkdirSync(this.assetsDir, { recursive: true });
    fs.writeFileSync(path.join(this.assetsDir, 'index.html'), '<!doctype html><title>Zegel</title><noscript>JavaScript</noscript><script src="/assets/reader.js"></script>');
    fs.writeFileSync(path.join(this.assetsDir, 'reader.js'), 'console.log("reader")');
    this.config = parseConfig(
      merge({ reader: { listen: '127.0.0.1:0' }, data: { dir: this.dataDir }, organisation: { name: 'Zorggroep Noord' } }, overrides as Record<string, unknown>),
    );
    this.db = openDb(this.dataDir);
    this.committer = new GroupCommitter(this.db);
    this.eventLog = new EventLog(this.db, this.clock);
    this.blobs = new BlobStore(this.dataDir);
    this.log = pino({ level: 'debug' }, { write: (line: string) => void this.logLines.push(line) });
    this.sms = new LogSmsDriver(this.log);
    t.teardown(async () => {
      await this.stop();
      await this.committer.close();
      this.db.close();
    });
  }

  deps(): ReaderDeps {
    return {
      config: this.config,
      secure: createSecureReader({ store: this.committer, events: this.eventLog, repos: secureRepositories(this.db), clock: this.clock }),
      clock: this.clock,
      log: this.log,
      secret: this.secret,
      blobs: this.blobs,
      mailer: {
        sendCode: async (link: LinkRow, code: string, expiresAt: number) => {
          if (this.mailerFails) throw new Error(`smtp down while sending ${code}`);
          this.mail.push({ kind: 'code', linkId: link.id, code, expiresAt });
        },
        notifyForgot: async (link: LinkRow, sender: string) => {
          if (this.mailerFails) throw new Error('smtp down');
          this.mail.push({ kind: 'forgot', linkId: link.id, sender });
        },
      },
      sms: this.sms,
      accessCodes: async (address: string) => {
        const lower = address.toLowerCase();
        return [this.directory.get(lower), this.directory.get(lower.slice(lower.indexOf('@')))].filter((h): h is string => h !== undefined);
      },
      assetsDir: this.assetsDir,
    };
  }

  async start(): Promise<string> {
    const reader = await startReader(this.deps());
    this.url = reader.url;
    this.#close = () => reader.close();
    return this.url;
  }

  async stop(): Promise<void> {
    const close = this.#close;
    this.#close = undefined;
    if (close) await close();
  }

  async restart(): Promise<string> {
    await this.stop();
    return this.start();
  }

  async setAccessCode(target: string, code: string): Promise<void> {
    // cheap parameters: tests only
    this.directory.set(target.toLowerCase(), await argon2.hash(code, { type: argon2.argon2id, memoryCost: 4096, timeCost: 2 }));
  }

  /** Inserts a queued message, its secure message with two blobs (body, attachment) and one link. */
  async link(options: LinkOptions = {}): Promise<LinkFixture> {
    const now = this.clock.now();
    const address = options.address ?? 'jan@voorbeeld.nl';
    let base = options.sameMessageAs;
    if (!base) {
      const queueId = `q${crypto.randomBytes(6).toString('hex')}`;
      const secureId = newSecureId();
      const bodyBlob = crypto.randomBytes(9).toString('base64url');
      const attachmentBlob = crypto.randomBytes(9).toString('base64url');
      const bodyBytes = await this.blobs.write(secureId, bodyBlob, Readable.from([Buffer.from(`body-ciphertext-${secureId}`)]));
      const attBytes = await this.blobs.write(secureId, attachmentBlob, Readable.from([Buffer.from(`attachment-ciphertext-${secureId}`)]));
      this.db
        .prepare(`INSERT INTO messages (id, received_at, mail_from, size, origin, state) VALUES (?, ?, 'zorg@noord.nl', 100, 'ingress', 'processed')`)
        .run(queueId, now);
      this.db
        .prepare(`INSERT INTO secure_messages (id, queue_id, sender, created_at, expires_at, state, body_blob, blobs) VALUES (?, ?, 'zorg@noord.nl', ?, ?, 'active', ?, ?)`)
        .run(secureId, queueId, now, now + (options.expiresIn ?? 30 * 86400e3), bodyBlob, JSON.stringify([{ id: bodyBlob, bytes: bodyBytes }, { id: attachmentBlob, bytes: attBytes }]));
      base = { linkId: '', secureId, queueId, address, kLink: Buffer.alloc(0), contentKey: newKey(), bodyBlob, attachmentBlob };
    }
    const linkId = newSecureId();
    const kLink = newKey();
    const kSrv = newKey();
    const wrap = wrapKey(base.contentKey, kLink, kSrv, base.secureId, linkId);
    this.db
      .prepare(
        `INSERT INTO secure_links (id, message_id, recipient_idx, address, method, phone, language, wrap, k_srv, state, created_at)
         VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, 'active', ?)`,
      )
      .run(linkId, base.secureId, address, options.method ?? 'email-code', options.phone ?? null, options.language ?? 'nl', wrap, kSrv, now);
    return { ...base, linkId, kLink, address };
  }

  events(queueId: string): EventRecord[] {
    return storeView(this).events(queueId);
  }

  /** Waits for the group committer so that events written just now can be read. */
  async flush(): Promise<void> {
    await this.committer.transaction(() => undefined);
  }

  logs(): string {
    return this.logLines.join('');
  }

  lastCode(linkId: string): string | undefined {
    return this.mail.filter((m) => m.kind === 'code' && m.linkId === linkId).at(-1)?.code;
  }
}

/** A browser: one cookie jar (zegel_rs, or __Host-zegel_rs for an https publicUrl), the CSRF header on every POST. */
export class Browser {
  cookie: string | undefined;
  cookieName = 'zegel_rs';
  lastSetCookie: string | undefined;
  readonly #fixture: ReaderFixture;

  constructor(fixture: ReaderFixture) {
    this.#fixture = fixture;
  }

  async request(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers; text: string }> {
    const h: Record<string, string> = { ...headers };
    if (method === 'POST' && !('x-zegel-reader' in h)) h['x-zegel-reader'] = '1';
    if (method === 'POST' && body !== undefined) h['content-type'] = 'application/json';
    if (this.cookie && !('cookie' in h)) h.cookie = `${this.cookieName}=${this.cookie}`;
    const res = await fetch(`${this.#fixture.url}${urlPath}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const set = res.headers.get('set-cookie');
    if (set) {
      this.lastSetCookie = set;
      const m = /^((?:__Host-)?zegel_rs)=([^;]*)/.exec(set);
      if (m) {
        this.cookieName = m[1]!;
        this.cookie = m[2];
      }
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, headers: res.headers, text };
  }

  open(linkId: string) {
    return this.request('POST', `/api/links/${linkId}/open`);
  }

  code(linkId: string) {
    return this.request('POST', `/api/links/${linkId}/code`);
  }

  verify(linkId: string, code?: string) {
    return this.request('POST', `/api/links/${linkId}/verify`, code === undefined ? {} : { code });
  }

  forgot(linkId: string) {
    return this.request('POST', `/api/links/${linkId}/forgot`);
  }

  blob(linkId: string, blobId: string) {
    return this.request('GET', `/api/links/${linkId}/blobs/${blobId}`);
  }
}

/** A code that is not `code` (for wrong tries). */
export function otherCode(code: string | undefined): string {
  return code === '000000' ? '111111' : '000000';
}
