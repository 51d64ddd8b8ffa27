import type Database from 'better-sqlite3';

/**
 * The audit export for compliance officers: JSON lines, or CSV that opens in
 * a spreadsheet in Dutch locale (semicolons, UTF-8 BOM, CRLF, date-times in
 * Europe/Amsterdam, formula-injection guard).
 */

export interface AuditFilter {
  since?: number | undefined;
  until?: number | undefined;
  /** A queue id, or a secure message id (matched to its queue id). */
  message?: string | undefined;
  recipient?: string | undefined;
  event?: string | undefined;
}

export interface AuditRecord {
  seq: number;
  at: number;
  messageId: string | undefined;
  recipient: string | undefined;
  type: string;
  actor: string | undefined;
  clientIp: string | undefined;
  detail: Record<string, unknown>;
  /** A delivery attempt's TLS facts (`detail.tls`, lifted out): { version, cipher, verified, verifiedBy, mtaSts, policy }. */
  tls: Record<string, unknown> | undefined;
  hash: string | undefined;
}

/** An `events` row as the export reads it (both drivers select these columns). */
export interface AuditRow {
  seq: number;
  at: number;
  message_id: string | null;
  recipient: string | null;
  type: string;
  detail: string;
  hash: string | null;
}

function parseDetail(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : { value };
  } catch {
    return { unparsed: text };
  }
}

function actorOf(type: string, detail: Record<string, unknown>): string | undefined {
  if (typeof detail.actor === 'string') return detail.actor;
  if (type === 'admin-action') return 'admin';
  return undefined;
}

/** One export record from its `events` row: `detail` parsed, actor and client address lifted out. */
export function toAuditRecord(row: AuditRow): AuditRecord {
  const detail = parseDetail(row.detail);
  return {
    seq: row.seq,
    at: row.at,
    messageId: row.message_id ?? undefined,
    recipient: row.recipient ?? undefined,
    type: row.type,
    actor: actorOf(row.type, detail),
    clientIp: typeof detail.clientIp === 'string' ? detail.clientIp : undefined,
    detail,
    tls: detail.tls && typeof detail.tls === 'object' && !Array.isArray(detail.tls) ? (detail.tls as Record<string, unknown>) : undefined,
    hash: row.hash ?? undefined,
  };
}

export function* auditRecords(db: Database.Database, filter: AuditFilter): Generator<AuditRecord> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.since !== undefined) {
    where.push('at >= ?');
    params.push(filter.since);
  }
  if (filter.until !== undefined) {
    where.push('at < ?');
    params.push(filter.until);
  }
  if (filter.message !== undefined) {
    where.push('(message_id = ? OR message_id IN (SELECT queue_id FROM secure_messages WHERE id = ?))');
    params.push(filter.message, filter.message);
  }
  if (filter.recipient !== undefined) {
    where.push('lower(recipient) = ?');
    params.push(filter.recipient.trim().toLowerCase());
  }
  if (filter.event !== undefined) {
    where.push('type = ?');
    params.push(filter.event);
  }
  const sql = `SELECT seq, at, message_id, recipient, type, detail, hash FROM events${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq`;
  for (const row of db.prepare(sql).iterate(...params) as IterableIterator<AuditRow>) yield toAuditRecord(row);
}

/** One JSON line per record; `at` as ISO 8601 UTC. */
export function jsonLine(r: AuditRecord): string {
  return `${JSON.stringify({
    seq: r.seq,
    at: new Date(r.at).toISOString(),
    messageId: r.messageId,
    recipient: r.recipient,
    event: r.type,
    actor: r.actor,
    clientIp: r.clientIp,
    tls: r.tls,
    detail: r.detail,
    hash: r.hash,
  })}\n`;
}

const amsterdam = new Intl.DateTimeFormat('sv-SE', {
  timeZone: 'Europe/Amsterdam',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** `2026-03-29 03:15:00` in Europe/Amsterdam: a date-time a Dutch spreadsheet recognises. */
export function amsterdamTime(at: number): string {
  return amsterdam.format(new Date(at)).replace('T', ' ');
}

/** A CSV cell: a leading = + - @ (or tab/CR) gets a quote so no spreadsheet runs it; quoted when needed. */
export function csvCell(value: string | number | undefined): string {
  if (value === undefined) return '';
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[;"\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_BOM = '\uFEFF';
export const CSV_HEADER = ['seq', 'tijd (Europe/Amsterdam)', 'bericht', 'ontvanger', 'gebeurtenis', 'actor', 'client-ip', 'details', 'hash'];

export function csvLine(cells: Array<string | number | undefined>): string {
  return `${cells.map(csvCell).join(';')}\r\n`;
}

export function csvRecord(r: AuditRecord): string {
  return csvLine([r.seq, amsterdamTime(r.at), r.messageId, r.recipient, r.type, r.actor, r.clientIp, JSON.stringify(r.detail), r.hash]);
}
