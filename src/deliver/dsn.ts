import crypto from 'node:crypto';
import { rfc5322Date } from '../smtp/received.js';
import type { Language } from '../vocabulary.js';

export interface Bounce {
  address: string;
  orcpt?: string | undefined;
  /** The reply that made delivery fail, e.g. `550 5.1.1 user unknown`. */
  reply: string;
  /** Enhanced status code (RFC 3463) for the Status field. */
  status: string;
  remoteMta?: string | undefined;
  /** Why: the next hop refused, the retries ran out, or a rule blocked the message. */
  reason: 'refused' | 'expired' | 'blocked';
  /** For `blocked`: the rule's description, shown to the sender in both languages. */
  explanation?: { nl: string; en: string } | undefined;
}

export interface DsnInput {
  reportingMta: string;
  queueId: string;
  /** The envelope sender the report goes to. */
  to: string;
  arrivalDate: number;
  envId?: string | undefined;
  /** The original header block (CRLF line endings), for the text/rfc822-headers part. */
  originalHeaders: Buffer;
  bounces: Bounce[];
  now: number;
  messageId: string;
  /** X-Zegel-Origin value: ORIGIN_PLACEHOLDER, stamped once the DSN is composed (src/crypto/origin-stamp.ts). */
  origin: string;
  /**
   * `sender` (default): the report to the envelope sender. `postmaster`: the
   * notice to delivery.postmaster that mail the relay made itself could not
   * be delivered (the headers of that mail are attached, never its body).
   */
  audience?: 'sender' | 'postmaster';
}

/** One line of US-ASCII: accents are folded (patiënt → patient), anything else non-ASCII becomes '?'. */
const wrap = (text: string) =>
  text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\r\n]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?');

const WHY = {
  refused: { nl: 'geweigerd door de volgende server', en: 'refused by the next server' },
  expired: { nl: 'bleef onbereikbaar, pogingen opgegeven', en: 'stayed unreachable, retries exhausted' },
  blocked: { nl: 'tegengehouden door het beleid van uw organisatie', en: "stopped by your organisation's policy" },
} as const;

function postmasterPart(input: DsnInput, lines: (lang: Language) => string[]): string {
  return [
    'Dit is een bericht van Zegel, de beveiligde mailrelay van uw organisatie, aan de postmaster.',
    '',
    'Zegel kon een bericht dat het zelf maakte (een foutmelding, ontvangstbevestiging, code,',
    'melding of antwoord) niet afleveren. Het bericht is niet weggegooid. Als ook deze melding',
    'niet aankomt, houdt Zegel het vast tot een beheerder het opnieuw aanbiedt',
    '(zegel queue retry) of verwijdert (zegel queue delete --force); zegel queue list toont het.',
    '',
    ...lines('nl'),
    '',
    'Hieronder staan alleen de kopregels van dat bericht, niet de inhoud.',
    'Controleer delivery.internalTarget en de instellingen van die server (bijvoorbeeld HELO-eisen).',
    '',
    '---',
    '',
    'This is a message from Zegel, the secure mail relay of your organisation, to the postmaster.',
    '',
    'Zegel could not deliver a message it made itself (a delivery report, receipt, code,',
    'notice or reply). The message was not discarded. If this notice does not arrive either,',
    'Zegel holds the message until an admin retries it (zegel queue retry) or deletes it',
    '(zegel queue delete --force); zegel queue list shows it.',
    '',
    ...lines('en'),
    '',
    'Only the header block of that message is attached below, never its content.',
    'Check delivery.internalTarget and the settings of that server (for example HELO requirements).',
    '',
  ].join('\r\n');
}

/**
 * What a TLS refusal means, for a sender who does not read SMTP replies
 * (src/deliver/smtp-pool.ts and mx-transport.ts write these replies).
 */
export function tlsExplanation(reply: string): { nl: string; en: string } | undefined {
  if (/^\d{3} 4\.7\.5 MTA-STS/.test(reply)) {
    return {
      nl: 'Het domein van de ontvanger eist (MTA-STS) dat post alleen naar de servers gaat die het zelf noemt; geen daarvan kon worden gebruikt.',
      en: "The recipient's domain requires (MTA-STS) that mail only goes to the servers it names; none of them could be used.",
    };
  }
  if (/^\d{3} 4\.7\.5 /.test(reply)) {
    return {
      nl: 'De ontvangende server kon niet aantonen dat hij de juiste server is (zijn certificaat werd niet aanvaard); Zegel verstuurt deze post alleen over een gecontroleerde verbinding.',
      en: 'The receiving server could not prove it is the right server (its certificate was not accepted); Zegel only sends this mail over a verified connection.',
    };
  }
  if (/^\d{3} 4\.7\.4 /.test(reply)) {
    return {
      nl: 'De ontvangende server bood geen versleutelde verbinding aan; Zegel verstuurt deze post niet onversleuteld.',
      en: 'The receiving server offered no encrypted connection; Zegel does not send this mail unencrypted.',
    };
  }
  return undefined;
}

function humanPart(input: DsnInput): string {
  const lines = (lang: Language) =>
    input.bounces.flatMap((b) => {
      const tls = b.explanation ? undefined : tlsExplanation(b.reply);
      return [
        `  <${wrap(b.address)}> (${WHY[b.reason][lang]}):`,
        `    ${wrap(b.explanation ? b.explanation[lang] : b.reply)}`,
        ...(tls ? [`    ${wrap(tls[lang])}`] : []),
      ];
    });
  if (input.audience === 'postmaster') return postmasterPart(input, lines);
  return [
    'Dit is een bericht van Zegel, de beveiligde mailrelay van uw organisatie.',
    '',
    'Uw bericht kon niet worden afgeleverd bij de volgende ontvanger(s):',
    '',
    ...lines('nl'),
    '',
    'Controleer het adres en stuur het bericht zo nodig opnieuw.',
    '',
    '---',
    '',
    'This is a message from Zegel, the secure mail relay of your organisation.',
    '',
    'Your message could not be delivered to the following recipient(s):',
    '',
    ...lines('en'),
    '',
    'Please check the address and send the message again if needed.',
    '',
  ].join('\r\n');
}

function statusPart(input: DsnInput): string {
  const head = [`Reporting-MTA: dns; ${wrap(input.reportingMta)}`, `X-Zegel-Queue-ID: ${input.queueId}`];
  if (input.envId) head.push(`Original-Envelope-Id: ${wrap(input.envId)}`);
  head.push(`Arrival-Date: ${rfc5322Date(input.arrivalDate)}`);
  const blocks = input.bounces.map((b) => {
    const lines = [`Final-Recipient: rfc822; ${wrap(b.address)}`];
    if (b.orcpt) lines.push(`Original-Recipient: ${wrap(b.orcpt)}`);
    lines.push('Action: failed', `Status: ${b.status}`);
    if (b.remoteMta) lines.push(`Remote-MTA: dns; ${wrap(b.remoteMta)}`);
    if (/^\d{3}/.test(b.reply)) lines.push(`Diagnostic-Code: smtp; ${wrap(b.reply)}`);
    else lines.push(`Diagnostic-Code: X-Zegel; ${wrap(b.reply)}`);
    lines.push(`Last-Attempt-Date: ${rfc5322Date(input.now)}`);
    return lines.join('\r\n');
  });
  return [head.join('\r\n'), ...blocks].join('\r\n\r\n') + '\r\n';
}

/**
 * A delivery status notification (RFC 3464): multipart/report with a
 * human-readable part in Dutch and English, the machine-readable
 * message/delivery-status part, and the original header block.
 */
export function composeDsn(input: DsnInput): Buffer {
  const boundary = `zegel-dsn-${crypto.randomBytes(12).toString('hex')}`;
  const headers = input.originalHeaders;
  const eightBit = headers.some((byte) => byte > 0x7e);
  const top = [
    `From: Mail Delivery System <MAILER-DAEMON@${wrap(input.reportingMta)}>`,
    `To: <${wrap(input.to)}>`,
    input.audience === 'postmaster'
      ? 'Subject: Zegel: eigen bericht niet afgeleverd / Undeliverable relay mail (postmaster notice)'
      : 'Subject: Niet afgeleverd / Undelivered Mail Returned to Sender',
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: ${input.messageId}`,
    'Auto-Submitted: auto-replied',
    `X-Zegel-Origin: ${input.origin}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Description: Notification',
    '',
    humanPart(input),
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    'Content-Description: Delivery report',
    '',
    statusPart(input),
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    'Content-Description: Undelivered message headers',
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(top, 'latin1'), headers, Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')]);
}
