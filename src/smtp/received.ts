/** Formats a date as RFC 5322 requires, in UTC: `Mon, 23 Nov 2026 13:05:09 +0000`. */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

export interface ReceivedInfo {
  helo: string | undefined;
  clientHostname: string | undefined;
  clientIp: string;
  hostname: string;
  /** RFC 3848 protocol: ESMTP, ESMTPS, ESMTPA, ESMTPSA (or SMTP for HELO). */
  protocol: string;
  queueId: string;
  /** Named only when the message has exactly one recipient, so BCC stays private. */
  singleRecipient: string | undefined;
  at: number;
}

const clean = (value: string) => value.replace(/[^\x21-\x7e]/g, '').slice(0, 255);

/** The one trace field the relay adds (RFC 5321 section 4.4), with its CRLF. */
export function receivedField(info: ReceivedInfo): string {
  const from = `from ${clean(info.helo || 'unknown')} (${info.clientHostname && info.clientHostname !== `[${info.clientIp}]` ? `${clean(info.clientHostname)} ` : ''}[${info.clientIp}])`;
  const by = `by ${clean(info.hostname)} (Zegel) with ${info.protocol} id ${info.queueId}`;
  const rcpt = info.singleRecipient ? `\r\n\tfor <${clean(info.singleRecipient)}>` : '';
  return `Received: ${from}\r\n\t${by}${rcpt};\r\n\t${rfc5322Date(info.at)}\r\n`;
}
