/**
 * The sender's status page: `/s/<statusId>#<K_link_s>`.
 *
 * The fragment K_link_s stays in this page (removed from the address bar and
 * history at once, kept in this tab's sessionStorage for a reload): the status token the server
 * checks is derived from it (keys.ts), and only for a resend is the content
 * key K unwrapped here (W_s and K_srv_s from the server) to wrap it for a
 * fresh link: new K_link' and K_srv', W' = wrap(K). The server alone can
 * never mint a link. An unknown id and a wrong fragment show the same
 * "link does not work" page.
 */
import type { Language, StatusRecipient, StatusResponse } from '../../src/reader/api.js';
import { base64urlDecode, base64urlEncode, KEY_BYTES, unwrapContentKey } from '../crypto.js';
import { storageKey, takeFragmentKey } from '../fragment.js';
import { h } from '../dom.js';
import { formatMoment } from '../format.js';
import { browserLanguage, language, setLanguage, t, type MessageKey } from '../i18n.js';
import { announce, heading, initShell, refresh, setOrganisation, show } from '../views/shell.js';
import { errorView, loadingView, rateLimitedView, showUnknown } from '../views/status.js';
import { StatusApi, StatusFailure } from './api.js';
import { parseStatusId, randomBytes, statusToken, wrapContentKey } from './keys.js';

let languageChosen = false;

const CHECK: Record<string, MessageKey> = {
  none: 'statusCheckNone',
  'access-code': 'statusCheckAccessCode',
  'email-code': 'statusCheckEmailCode',
  'sms-code': 'statusCheckSmsCode',
};


function start(): void {
  const root = document.getElementById('app');
  if (!root) return;
  setLanguage(browserLanguage());
  initShell(root, () => {
    languageChosen = true;
  });
  const statusId = parseStatusId(location.pathname);
  // the fragment leaves the address bar and history at once; this tab's sessionStorage keeps it for a reload
  const kLink = takeFragmentKey(statusId ? storageKey('s', statusId) : null);
  if (!statusId || !kLink) return showUnknown();
  void (async () => {
    show(loadingView(), false);
    const token = base64urlEncode(await statusToken(kLink, statusId));
    const page = new StatusPage(new StatusApi(statusId, token), kLink);
    await page.load();
  })();
}

class StatusPage {
  data: StatusResponse | null = null;
  /** The last outcome, shown above the list (role=status). */
  notice: { text: string; error: boolean } | null = null;
  busy = false;

  constructor(
    readonly api: StatusApi,
    readonly kLink: Uint8Array,
  ) {}

  async load(): Promise<void> {
    try {
      this.data = await this.api.overview();
    } catch (err) {
      if (err instanceof StatusFailure && err.code === 'unknown-link') return showUnknown();
      if (err instanceof StatusFailure && err.code === 'rate-limited') return show(rateLimitedView(err.retryAfter, () => void this.load()));
      return show(errorView(() => void this.load()));
    }
    if (!languageChosen && (this.data.language === 'nl' || this.data.language === 'en')) setLanguage(this.data.language as Language);
    setOrganisation(this.data.organisation ?? { name: '' });
    document.title = t('statusTitle');
    show(() => this.render());
  }

  async act(work: () => Promise<string>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    refresh();
    try {
      const text = await work();
      this.notice = { text, error: false };
      this.data = await this.api.overview();
    } catch (err) {
      if (err instanceof StatusFailure && err.code === 'unknown-link') {
        this.busy = false;
        return showUnknown();
      }
      const text = err instanceof StatusFailure && (err.code === 'not-active' || err.status === 410) ? t('statusNotActive') : t('statusActionFailed');
      this.notice = { text, error: true };
    }
    this.busy = false;
    refresh('.status-notice');
    announce(this.notice?.text ?? '');
  }

  revoke(linkId: string | undefined, at: string | undefined): void {
    void this.act(async () => {
      this.data = await this.api.revoke({ ...(linkId ? { linkId } : {}), ...(at ? { at } : {}) });
      return at ? t('statusScheduledDone') : t('statusRevokedDone');
    });
  }

  resend(r: StatusRecipient): void {
    void this.act(async () => {
      const key = await this.api.key();
      const contentKey = await unwrapContentKey(base64urlDecode(key.wrap), this.kLink, base64urlDecode(key.kSrv), key.secureId, key.statusId);
      const newLinkId = base64urlEncode(randomBytes(16));
      const kLink = randomBytes(KEY_BYTES);
      const kSrv = randomBytes(KEY_BYTES);
      const wrap = await wrapContentKey(contentKey, kLink, kSrv, key.secureId, newLinkId);
      contentKey.fill(0);
      await this.api.resend({ linkId: r.linkId, newLinkId, wrap: base64urlEncode(wrap), kSrv: base64urlEncode(kSrv), kLink: base64urlEncode(kLink) });
      kLink.fill(0);
      return t('statusResendDone', { address: r.address });
    });
  }

  /** A datetime-local input and a button that schedules a revocation (one recipient or all). */
  scheduler(linkId: string | undefined, id: string): HTMLElement {
    const input = h('input', { type: 'datetime-local', id, class: 'input' });
    const label = h('label', { for: id }, t('statusRevokeAtLabel'));
    const button = h('button', { type: 'button', class: 'button', disabled: this.busy }, t('statusSchedule'));
    button.addEventListener('click', () => {
      const ms = input.value ? new Date(input.value).getTime() : NaN;
      if (!Number.isFinite(ms) || ms <= Date.now()) {
        this.notice = { text: t('statusBadMoment'), error: true };
        refresh('.status-notice');
        return;
      }
      this.revoke(linkId, new Date(ms).toISOString());
    });
    return h('div', { class: 'field status-schedule' }, label, input, button);
  }

  recipient(r: StatusRecipient, active: boolean): HTMLElement {
    const lang = language();
    const when = (iso: string | undefined) => (iso ? formatMoment(iso, lang) : '');
    const lines: string[] = [
      t('statusCheck', { check: t(CHECK[r.method] ?? 'statusCheckEmailCode') }),
      r.notification === 'delivered' ? t('statusNotifDelivered') : r.notification === 'failed' ? t('statusNotifFailed') : t('statusNotifPending'),
      r.firstOpenedAt ? t('statusOpened', { first: when(r.firstOpenedAt), last: when(r.lastOpenedAt ?? r.firstOpenedAt) }) : t('statusNotOpened'),
      r.downloads ? t('statusDownloads', { n: r.downloads, last: when(r.lastDownloadAt) }) : t('statusNoDownloads'),
      r.replies ? t('statusReplies', { n: r.replies, last: when(r.lastReplyAt) }) : t('statusNoReplies'),
      r.state === 'active' ? t('statusLinkActive') : r.state === 'revoked' ? t('statusLinkRevoked') : t('statusLinkExpired'),
    ];
    if (r.revokeAt) lines.push(t('statusRevokeScheduled', { time: formatMoment(r.revokeAt, lang) }));
    if (r.resent) lines.push(t('statusResentCount', { n: r.resent }));
    const actions: HTMLElement[] = [];
    if (active && r.state === 'active') {
      const revoke = h('button', { type: 'button', class: 'button', disabled: this.busy, 'aria-label': t('statusRevokeNowFor', { address: r.address }) }, t('statusRevokeNow'));
      revoke.addEventListener('click', () => this.revoke(r.linkId, undefined));
      const resend = h('button', { type: 'button', class: 'button', disabled: this.busy, 'aria-label': t('statusResendFor', { address: r.address }) }, t('statusResend'));
      resend.addEventListener('click', () => this.resend(r));
      actions.push(h('div', { class: 'actions' }, resend, revoke), this.scheduler(r.linkId, `at-${r.linkId}`));
    }
    return h(
      'li',
      { class: 'status-recipient', 'data-recipient': r.address },
      h('h3', {}, r.address),
      h('ul', { class: 'status-facts' }, ...lines.map((l) => h('li', {}, l))),
      ...actions,
    );
  }

  render(): HTMLElement {
    const d = this.data!;
    const lang = language();
    const active = d.state === 'active';
    const section = h(
      'section',
      { class: 'view view-sender-status' },
      heading(t('statusTitle')),
      h('p', {}, t('statusIntro', { sent: formatMoment(d.sentAt, lang), expires: formatMoment(d.expiresAt, lang) })),
      d.state === 'revoked' ? h('p', { class: 'status-state' }, t('statusMessageRevoked')) : null,
      d.state === 'expired' || d.state === 'purged' ? h('p', { class: 'status-state' }, t('statusMessageExpired')) : null,
      d.revokeAt ? h('p', {}, t('statusRevokeScheduled', { time: formatMoment(d.revokeAt, lang) })) : null,
      h('p', { class: `status-notice${this.notice?.error ? ' error' : ''}`, role: 'status', tabindex: -1 }, this.notice?.text ?? ''),
      h('h2', {}, t('statusRecipients')),
      h('ul', { class: 'status-recipients' }, ...d.recipients.map((r) => this.recipient(r, active))),
    );
    if (active) {
      const all = h('button', { type: 'button', class: 'button', disabled: this.busy }, t('statusRevokeAll'));
      all.addEventListener('click', () => this.revoke(undefined, undefined));
      section.append(h('h2', {}, t('statusRevokeAll')), h('div', { class: 'actions' }, all), this.scheduler(undefined, 'at-all'));
    }
    const again = h('button', { type: 'button', class: 'button' }, t('statusRefresh'));
    again.addEventListener('click', () => void this.load());
    section.append(h('div', { class: 'actions' }, again));
    return section;
  }
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
