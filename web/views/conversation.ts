/**
 * The conversation: the original message, then the recipient's own replies
 * (each decrypted here under K; shown as text only, never as HTML), then the
 * "Beantwoorden" button or the reply form.
 */
import type { ReplyCopy } from '../../src/reader/api.js';
import type { ApiFailure } from '../api.js';
import { h } from '../dom.js';
import { safeFileName } from '../filename.js';
import { formatDateTime, formatSize } from '../format.js';
import { language, t } from '../i18n.js';
import { replyForm, type ReplyFormState } from './reply.js';
import { announce, refresh, type Render } from './shell.js';

export interface ConversationContext {
  /** The original message's view. */
  message: Render;
  /** The original's subject (the reply's "Re: …" is made from it on the server). */
  subject: string;
  /** The reply list and limits; rejects with ApiFailure. */
  load(): Promise<{ maxBytes: number; blockedExtensions: string[]; replies: Array<{ id: string; createdAt: string }> }>;
  /** Fetches and decrypts one reply copy. */
  copy(replyId: string): Promise<ReplyCopy>;
  /** Encrypts the copy and sends the reply; resolves to its id and time. */
  send(reply: { subject: string; text: string; files: File[] }): Promise<{ id: string; createdAt: string; copy: ReplyCopy }>;
}

interface ReplyItem {
  id: string;
  createdAt: string;
  copy?: ReplyCopy;
  failed?: boolean;
}

export function conversationView(ctx: ConversationContext): Render {
  let replies: ReplyItem[] = [];
  let limits: { maxBytes: number; blockedExtensions: string[] } | undefined;
  let loadFailed = false;
  let formOpen = false;
  let justSent = false;
  const form: ReplyFormState = { text: '', files: [], sending: false, problem: undefined };

  void ctx.load().then(
    async (res) => {
      limits = { maxBytes: res.maxBytes, blockedExtensions: res.blockedExtensions };
      replies = res.replies.map((r) => ({ id: r.id, createdAt: r.createdAt }));
      refresh();
      for (const item of replies) {
        try {
          item.copy = await ctx.copy(item.id);
        } catch {
          item.failed = true;
        }
      }
      refresh();
    },
    (_err: ApiFailure) => {
      loadFailed = true;
      refresh();
    },
  );

  function replyItem(item: ReplyItem): HTMLElement {
    const when = formatDateTime(item.copy?.date ?? item.createdAt, language());
    const body = item.failed
      ? h('p', { class: 'message error' }, t('conversationDecryptFailed'))
      : item.copy
        ? h('div', { class: 'body text-body reply-body' }, item.copy.text)
        : h('p', { class: 'hint' }, t('loading'));
    const files = item.copy?.attachments.length
      ? h(
          'ul',
          { class: 'attachments reply-attachments' },
          ...item.copy.attachments.map((a) =>
            h('li', { class: 'attachment-item' }, h('span', { class: 'attachment-name' }, safeFileName(a.name, t('attachmentFallbackName'))), ' ', h('span', { class: 'attachment-size' }, formatSize(a.size, language()))),
          ),
        )
      : null;
    return h('li', { class: 'reply-item' }, h('article', { class: 'reply' }, h('h3', { class: 'reply-meta' }, t('conversationYou', { date: when })), body, files));
  }

  function actions(): HTMLElement | null {
    if (loadFailed || !limits) return null;
    if (formOpen) {
      return replyForm({
        state: form,
        maxBytes: limits.maxBytes,
        blockedExtensions: limits.blockedExtensions,
        rerender: (focus) => refresh(focus),
        cancel: () => {
          formOpen = false;
          form.problem = undefined;
          refresh('#reply-open');
        },
        send: async (text, files) => {
          const sent = await ctx.send({ subject: ctx.subject, text, files });
          replies.push({ id: sent.id, createdAt: sent.createdAt, copy: sent.copy });
          formOpen = false;
          justSent = true;
          form.text = '';
          form.files = [];
          form.sending = false;
          form.problem = undefined;
          refresh('#reply-sent');
          announce(t('replySent'));
        },
      });
    }
    const open = h('button', { id: 'reply-open', type: 'button', class: 'button primary' }, t('reply'));
    open.addEventListener('click', () => {
      formOpen = true;
      justSent = false;
      refresh('#reply-text');
    });
    return h('div', { class: 'reply-actions' }, justSent ? h('p', { id: 'reply-sent', class: 'message info', role: 'status', tabindex: -1 }, t('replySent')) : null, open);
  }

  return () => {
    const list = replies.length
      ? h('section', { class: 'replies-section', 'aria-labelledby': 'replies-heading' }, h('h2', { id: 'replies-heading' }, t('conversationHeading')), h('ol', { class: 'replies' }, ...replies.map(replyItem)))
      : null;
    return h('div', { class: 'conversation' }, ctx.message(), list, h('section', { class: 'view reply-section' }, actions()));
  };
}
