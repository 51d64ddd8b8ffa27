/** Pages without a form: loading, unknown link, revoked, expired, locked, errors. */
import { h } from '../dom.js';
import { language, t, type MessageKey } from '../i18n.js';
import { formatMoment } from '../format.js';
import { heading, setOrganisation, show, type Render } from './shell.js';

export function loadingView(key: MessageKey = 'loading'): Render {
  return () => h('section', { class: 'view view-loading', 'aria-busy': 'true' }, h('div', { class: 'spinner', 'aria-hidden': 'true' }), heading(t(key)));
}

function page(kind: string, titleKey: MessageKey, textKey: MessageKey, retry?: () => void): Render {
  return () =>
    h(
      'section',
      { class: `view view-status view-${kind}` },
      heading(t(titleKey)),
      h('p', {}, t(textKey)),
      retry ? retryButton(retry) : null,
    );
}

function retryButton(retry: () => void): HTMLButtonElement {
  const b = h('button', { type: 'button', class: 'button primary' }, t('tryAgain'));
  b.addEventListener('click', retry);
  return b;
}

/** The one page for a missing or malformed fragment, an unknown link and a failed unwrap alike. */
export const unknownView = (): Render => page('unknown', 'unknownTitle', 'unknownText');
export const revokedView = (): Render => page('revoked', 'revokedTitle', 'revokedText');
export const expiredView = (): Render => page('expired', 'expiredTitle', 'expiredText');
export const errorView = (retry: () => void): Render => page('error', 'errorTitle', 'errorText', retry);
export const decryptErrorView = (): Render => page('decrypt-error', 'decryptErrorTitle', 'decryptErrorText');

export function lockedView(lockedUntil: string | undefined, retry: () => void): Render {
  return () =>
    h(
      'section',
      { class: 'view view-status view-locked' },
      heading(t('lockedTitle')),
      h('p', {}, lockedUntil ? t('lockedText', { time: formatMoment(lockedUntil, language()) }) : t('lockedTextNoTime')),
      retryButton(retry),
    );
}

/** Too many requests in a short time (429 rate-limited): how long to wait, and a retry. */
export function rateLimitedView(retryAfter: number | undefined, retry: () => void): Render {
  const seconds = Math.max(1, Math.ceil(retryAfter ?? 60));
  return () =>
    h(
      'section',
      { class: 'view view-status view-rate-limited' },
      heading(t('rateLimitedTitle')),
      h('p', {}, t('rateLimitedText', { seconds })),
      retryButton(retry),
    );
}

/**
 * Shows the one page for an unknown link, a missing or malformed fragment and
 * a fragment that does not unwrap (reader and status page alike): without the
 * organisation's branding, which only a known link would show.
 */
export function showUnknown(): void {
  setOrganisation({ name: '' });
  show(unknownView());
}
