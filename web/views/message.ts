/** The decrypted message: headers, body (text, or sanitised HTML in a sandboxed frame), attachments. */
import type { SecureContent } from '../../src/crypto/content.js';
import { h } from '../dom.js';
import { safeFileName } from '../filename.js';
import { formatDateTime, formatSize } from '../format.js';
import { language, t } from '../i18n.js';
import { frameDocument, sanitizeHtml } from '../sanitize.js';
import { announce, heading, type Render } from './shell.js';

export interface MessageContext {
  content: SecureContent;
  /** Fetches and decrypts one attachment blob; rejects on any failure, never yields partial data. */
  attachment(blobId: string): Promise<Uint8Array>;
}

type Download = { status: 'idle' | 'busy' | 'done' | 'failed' };

function metaRow(label: string, value: string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function saveBytes(bytes: Uint8Array, fileName: string): void {
  const blob = new Blob([new Uint8Array(bytes)], { type: 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: fileName, class: 'visually-hidden' });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function messageView(ctx: MessageContext): Render {
  const c = ctx.content;
  const downloads = new Map<number, Download>();
  // sanitise once; the frame document only changes with the language attribute
  const sanitized = c.html !== undefined && c.html.trim() !== '' ? sanitizeHtml(c.html) : null;

  function body(): HTMLElement {
    if (sanitized !== null) {
      const note = sanitized.blockedRemote ? h('p', { class: 'hint' }, t('blockedImagesNote')) : null;
      const frame = h('iframe', {
        class: 'html-body',
        title: t('htmlFrameTitle'),
        sandbox: 'allow-popups allow-popups-to-escape-sandbox',
        referrerpolicy: 'no-referrer',
        loading: 'eager',
      });
      frame.srcdoc = frameDocument(sanitized.html, language(), location.origin);
      return h('div', { class: 'body' }, note, frame);
    }
    if (c.text !== undefined && c.text !== '') return h('div', { class: 'body text-body' }, c.text);
    return h('div', { class: 'body' }, h('p', { class: 'hint' }, t('emptyBody')));
  }

  function attachmentItem(a: SecureContent['attachments'][number], index: number, rerender: () => void): HTMLElement {
    const state = downloads.get(index) ?? { status: 'idle' };
    const fileName = safeFileName(a.name, t('attachmentFallbackName'));
    const size = formatSize(a.size, language());
    const statusId = `attachment-status-${index}`;
    const button = h(
      'button',
      {
        id: `attachment-${index}`,
        type: 'button',
        class: 'attachment',
        'aria-describedby': state.status !== 'idle' ? statusId : undefined,
        'aria-disabled': state.status === 'busy' ? 'true' : undefined,
      },
      h('span', { class: 'attachment-icon', 'aria-hidden': 'true' }),
      h('span', { class: 'attachment-text' }, h('span', { class: 'attachment-name' }, fileName), h('span', { class: 'attachment-size' }, `${size} · ${t('download')}`)),
    );
    button.addEventListener('click', () => {
      if (state.status === 'busy') return;
      downloads.set(index, { status: 'busy' });
      rerender();
      announce(t('downloading'));
      ctx.attachment(a.blob).then(
        (bytes) => {
          saveBytes(bytes, fileName);
          downloads.set(index, { status: 'done' });
          rerender();
          announce(t('downloadDone', { name: fileName }));
        },
        () => {
          downloads.set(index, { status: 'failed' });
          rerender();
        },
      );
    });
    let status: HTMLElement | null = null;
    if (state.status === 'busy') status = h('p', { id: statusId, class: 'hint', role: 'status' }, t('downloading'));
    if (state.status === 'done') status = h('p', { id: statusId, class: 'hint', role: 'status' }, t('downloadDone', { name: fileName }));
    if (state.status === 'failed') status = h('p', { id: statusId, class: 'message error', role: 'alert' }, t('downloadFailed'));
    return h('li', { class: 'attachment-item' }, button, status);
  }

  return () => {
    const list = h('ul', { class: 'attachments' });
    const renderList = (): void => {
      const active = document.activeElement;
      const focusedId = active instanceof HTMLElement && list.contains(active) ? active.id : null;
      list.replaceChildren(...c.attachments.map((a, i) => attachmentItem(a, i, renderList)));
      if (focusedId) document.getElementById(focusedId)?.focus();
    };
    renderList();
    const meta = h(
      'dl',
      { class: 'meta' },
      ...metaRow(t('from'), c.from),
      ...metaRow(t('date'), formatDateTime(c.date, language())),
      ...(c.to.length > 0 ? metaRow(t('to'), c.to.join(', ')) : []),
      ...(c.cc.length > 0 ? metaRow(t('cc'), c.cc.join(', ')) : []),
    );
    return h(
      'article',
      { class: 'view view-message' },
      heading(c.subject.trim() !== '' ? c.subject : t('noSubject')),
      meta,
      body(),
      c.attachments.length > 0 ? h('section', { class: 'attachments-section', 'aria-labelledby': 'attachments-heading' }, h('h2', { id: 'attachments-heading' }, `${t('attachments')} (${c.attachments.length})`), list) : null,
    );
  };
}
