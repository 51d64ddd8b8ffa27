import type { Config } from '../config/schema.js';
import type { OriginSigner } from '../crypto/origin.js';
import { ZegelError } from '../errors.js';
import { palette } from './colour.js';
import { checkMailbox, composeMail, type ComposedMail, type MailParty } from './compose.js';
import { DkimSigner } from './dkim.js';
import { formatDateTime, formatTimeSoon, oneLine } from './i18n.js';
import { LANGUAGES, shippedTemplatesDir, Templates, type Language, type MailKind } from './templates.js';
import { isVerificationMethod, type VerificationMethod } from '../vocabulary.js';

/** The Notifier's slice of the configuration: what it reads and nothing more. */
export type NotifierConfig = Pick<Config, 'notification' | 'organisation'>;

export type { ComposedMail, MailParty } from './compose.js';
export type { Language } from './templates.js';
export { shippedTemplatesDir } from './templates.js';

export type { VerificationMethod };

export interface NotificationInput {
  language: Language;
  /** The one recipient this notification is for. */
  to: string;
  sender: MailParty;
  /** The original subject, already stripped of opt-in tags. */
  subject: string;
  /** Use a neutral subject instead of `subject`. */
  subjectSensitive: boolean;
  /** `<reader.publicUrl>/m/<id>#<key>` */
  link: string;
  method: VerificationMethod;
  /** ms epoch */
  expiresAt: number;
  now: number;
}

export interface CodeMailInput {
  language: Language;
  to: string;
  code: string;
  expiresAt: number;
  now: number;
}

export interface ForgotNoticeInput {
  language: Language;
  /** The original sender. */
  to: string;
  /** The recipient who no longer has the access code. */
  recipient: string;
  /** The original subject; shown in the body only when the caller passes it. */
  subject?: string | undefined;
  now: number;
}

const CHECKS: Record<Language, Record<VerificationMethod, string>> = {
  nl: { none: 'geen extra controle', 'access-code': 'toegangscode', 'email-code': 'eenmalige code per e-mail', 'sms-code': 'eenmalige code per sms' },
  en: { none: 'no extra check', 'access-code': 'access code', 'email-code': 'one-time code by e-mail', 'sms-code': 'one-time code by text message' },
};

export interface ReceiptInput {
  language: Language;
  /** The sender (envelope sender of the original). */
  to: string;
  recipients: Array<{ address: string; method: VerificationMethod }>;
  /** The original subject, stripped of opt-in tags; left out when `subjectSensitive`. */
  subject: string;
  subjectSensitive: boolean;
  /** `<reader.publicUrl>/s/<statusId>#<K_link_s>` */
  link: string;
  expiresAt: number;
  now: number;
}

export interface FirstOpenInput {
  language: Language;
  /** The sender. */
  to: string;
  recipient: string;
  openedAt: number;
  now: number;
}

export interface NotifierDeps {
  config: NotifierConfig;
  signer: OriginSigner;
  /** For Message-IDs (and the no-reply fallback when no address is configured). */
  hostname: string;
  /** Defaults to the package's templates/. */
  templatesDir?: string;
}

/**
 * The mails the relay writes to people about secure messages: the
 * notification with the link (one per recipient), the one-time code mail and
 * the "code forgotten" notice to the sender. Templates and the DKIM key are
 * read once, here; a missing template or an unusable key fails construction.
 */
export class Notifier {
  readonly #config: NotifierConfig;
  readonly #signer: OriginSigner;
  readonly #hostname: string;
  readonly #templates: Templates;
  readonly #dkim: DkimSigner | undefined;
  readonly #noReply: string;

  constructor(deps: NotifierDeps) {
    this.#config = deps.config;
    this.#signer = deps.signer;
    this.#hostname = deps.hostname;
    this.#templates = new Templates(deps.templatesDir ?? shippedTemplatesDir());
    const dkim = deps.config.notification.dkim;
    this.#dkim = dkim ? new DkimSigner(dkim) : undefined;
    this.#noReply = checkMailbox(deps.config.notification.noReplyAddress ?? `no-reply@${deps.hostname}`, 'notification.noReplyAddress');
  }

  async notification(input: NotificationInput): Promise<ComposedMail> {
    if (!isVerificationMethod(input.method)) {
      throw new ZegelError('ZEGEL_NOTIFY_INPUT', `unknown verification method ${JSON.stringify(input.method)}`);
    }
    const org = this.#config.organisation.name;
    const sender = { name: oneLine(input.sender.name ?? ''), address: checkMailbox(input.sender.address, 'the sender') };
    const link = checkLink(input.link);
    // From: "Jan de Vries via Voorbeeldzorg" <no-reply@…>, Reply-To the sender; or, with from: sender, the sender itself
    const asSender = this.#config.notification.from === 'sender';
    const from: MailParty = asSender
      ? sender
      : { name: `${sender.name || sender.address.slice(0, sender.address.lastIndexOf('@'))} via ${oneLine(org)}`, address: this.#noReply };
    const replyTo = !asSender && this.#config.notification.replyTo ? sender : undefined;
    const subject = oneLine(input.subject);
    const view = {
      ...this.#common(input.language, true),
      noReplies: !asSender && !replyTo,
      senderName: sender.name,
      senderAddress: sender.address,
      link,
      neutralSubject: input.subjectSensitive || !subject,
      originalSubject: subject,
      expires: formatDateTime(input.expiresAt, input.language),
      methodNone: input.method === 'none',
      methodAccessCode: input.method === 'access-code',
      methodEmailCode: input.method === 'email-code',
      methodSmsCode: input.method === 'sms-code',
    };
    return this.#compose('notification', input.language, view, { to: input.to, from, replyTo, now: input.now });
  }

  async codeMail(input: CodeMailInput): Promise<ComposedMail> {
    if (!/^[\x21-\x7e]{1,32}$/.test(input.code)) throw new ZegelError('ZEGEL_NOTIFY_INPUT', 'the one-time code must be 1 to 32 printable ASCII characters');
    const view = { ...this.#common(input.language, true), noReplies: true, code: input.code, validUntil: formatTimeSoon(input.expiresAt, input.now, input.language) };
    return this.#compose('code-mail', input.language, view, { to: input.to, from: this.#orgFrom(), now: input.now });
  }

  async forgotNotice(input: ForgotNoticeInput): Promise<ComposedMail> {
    const subject = oneLine(input.subject ?? '');
    const view = {
      ...this.#common(input.language, false),
      noReplies: true,
      recipient: checkMailbox(input.recipient, 'the recipient'),
      originalSubject: subject,
    };
    return this.#compose('forgot-notice', input.language, view, { to: input.to, from: this.#orgFrom(), now: input.now });
  }

  /** The sender's receipt: who gets the message, with which check, until when, and the status link. */
  async receipt(input: ReceiptInput): Promise<ComposedMail> {
    const lang = input.language;
    this.#common(lang, false);
    const recipients = input.recipients.map((r) => {
      if (!(r.method in CHECKS[lang])) throw new ZegelError('ZEGEL_NOTIFY_INPUT', `unknown verification method ${JSON.stringify(r.method)}`);
      return { address: checkMailbox(r.address, 'a recipient'), check: CHECKS[lang][r.method] };
    });
    const view = {
      ...this.#common(lang, false),
      noReplies: true,
      recipients,
      originalSubject: input.subjectSensitive ? '' : oneLine(input.subject),
      link: checkLink(input.link),
      expires: formatDateTime(input.expiresAt, lang),
    };
    return this.#compose('receipt', lang, view, { to: input.to, from: this.#orgFrom(), now: input.now });
  }

  /** The optional mail to the sender when a recipient first opens the message. */
  async firstOpen(input: FirstOpenInput): Promise<ComposedMail> {
    const view = {
      ...this.#common(input.language, false),
      noReplies: true,
      recipient: checkMailbox(input.recipient, 'the recipient'),
      openedAt: formatDateTime(input.openedAt, input.language),
    };
    return this.#compose('first-open', input.language, view, { to: input.to, from: this.#orgFrom(), now: input.now });
  }

  /** What every template may use: organisation, colours, logo, help text. */
  #common(language: Language, askSender: boolean) {
    if (!LANGUAGES.includes(language)) throw new ZegelError('ZEGEL_NOTIFY_INPUT', `unsupported language ${JSON.stringify(language)}`);
    const org = this.#config.organisation;
    const colours = palette(org.colour);
    return {
      lang: language,
      organisation: oneLine(org.name),
      logoUrl: safeLogoUrl(org.logoUrl),
      colour: colours.colour,
      onColour: colours.onColour,
      linkColour: colours.link,
      helpText: org.helpText?.[language]?.trim() || undefined,
      askSender,
    };
  }

  #orgFrom(): MailParty {
    return { name: oneLine(this.#config.organisation.name), address: this.#noReply };
  }

  async #compose(
    kind: MailKind,
    language: Language,
    view: object,
    parties: { to: string; from: MailParty; replyTo?: MailParty | undefined; now: number },
  ): Promise<ComposedMail> {
    const rendered = this.#templates.render(kind, language, view);
    return composeMail({
      hostname: this.#hostname,
      envelopeFrom: this.#noReply,
      from: parties.from,
      to: parties.to,
      replyTo: parties.replyTo,
      subject: rendered.subject,
      text: rendered.text,
      html: rendered.html,
      language,
      now: parties.now,
      signer: this.#signer,
      dkim: this.#dkim,
    });
  }
}

function checkLink(link: string): string {
  let url: URL | undefined;
  try {
    url = new URL(link);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || /\s/.test(link)) {
    throw new ZegelError('ZEGEL_NOTIFY_INPUT', 'the message link must be an http(s) URL without spaces');
  }
  return link;
}

/** Only an http(s) logo; anything else is left out (the one remote resource the mails load). */
function safeLogoUrl(value: string | undefined): string | undefined {
  if (!value) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? value : undefined;
  } catch {
    return undefined;
  }
}
