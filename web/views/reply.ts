/**
 * The reply form ("Beantwoorden"): text and attachments for the original
 * sender. The page checks the size and the file types first (for a readable
 * message; the server checks again), encrypts the recipient's own copy under
 * the content key K (the blob format of src/crypto/payload.ts) and uploads
 * copy and attachments in one streamed multipart request.
 */
import type * as OpenPGP from 'openpgp';
import type { ReplyCopy } from '../../src/reader/api.js';
import { ApiFailure } from '../api.js';
import { h } from '../dom.js';
import { safeFileName } from '../filename.js';
import { formatMoment, formatSize } from '../format.js';
import { language, t } from '../i18n.js';

type OpenPGPModule = Pick<typeof OpenPGP, 'createMessage' | 'encrypt' | 'enums'>;

/** As src/crypto/payload.ts: one SEIPDv2 packet, AES-256-GCM, K as the session key. */
export async function encryptBlob(openpgp: OpenPGPModule, contentKey: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: data });
  return openpgp.encrypt({
    message,
    sessionKey: { data: contentKey, algorithm: 'aes256', aeadAlgorithm: 'gcm' },
    format: 'binary',
    config: {
      aeadProtect: true,
      preferredAEADAlgorithm: openpgp.enums.aead.gcm,
      preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
      aeadChunkSizeByte: 14,
    },
  }) as Promise<Uint8Array>;
}

/** Parses a decrypted reply copy; throws when it is not a ReplyCopy v1. */
export function parseReplyCopy(bytes: Uint8Array): ReplyCopy {
  const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  const c = value as Record<string, unknown>;
  if (typeof value !== 'object' || value === null || c.v !== 1) throw new TypeError('not a reply copy');
  if (typeof c.text !== 'string' || typeof c.subject !== 'string' || typeof c.date !== 'string' || !Array.isArray(c.attachments)) {
    throw new TypeError('reply copy malformed');
  }
  for (const a of c.attachments as unknown[]) {
    const x = a as Record<string, unknown>;
    if (typeof a !== 'object' || a === null || typeof x.name !== 'string' || typeof x.size !== 'number') throw new TypeError('reply attachment malformed');
  }
  return value as ReplyCopy;
}

export type ReplyProblem =
  | { kind: 'too-large' }
  | { kind: 'blocked'; name: string }
  | { kind: 'empty' }
  | { kind: 'failed' }
  /** reader.replyLimit: the link's replies in all, or (with `until`) in 24 hours. */
  | { kind: 'limit'; until?: string }
  /** Too many requests in a short time (reader.rateLimit). */
  | { kind: 'busy'; seconds: number };

export interface ReplyFormState {
  text: string;
  files: File[];
  sending: boolean;
  problem: ReplyProblem | undefined;
}

export interface ReplyFormContext {
  state: ReplyFormState;
  maxBytes: number;
  blockedExtensions: readonly string[];
  /** Re-renders the view (state changed); `focus` selects what gets focus. */
  rerender(focus?: string): void;
  /** Encrypts and sends; resolves when the server took it. */
  send(text: string, files: File[]): Promise<void>;
  cancel(): void;
}

function extensionOf(name: string): string {
  const base = name.trim().replace(/[\s.]+$/, '').toLowerCase();
  const dot = base.lastIndexOf('.');
  return dot >= 0 ? base.slice(dot) : '';
}

/** The page's own check before upload (the server checks again). */
export function checkReply(text: string, files: readonly File[], maxBytes: number, blocked: readonly string[]): ReplyProblem | undefined {
  const bad = files.find((f) => blocked.includes(extensionOf(f.name)));
  if (bad) return { kind: 'blocked', name: bad.name };
  const total = new TextEncoder().encode(text).length + files.reduce((sum, f) => sum + f.size, 0);
  if (total > maxBytes) return { kind: 'too-large' };
  if (text.trim() === '' && files.length === 0) return { kind: 'empty' };
  return undefined;
}

/** What the server's refusal means for the form. */
export function problemOf(err: unknown): ReplyProblem {
  if (err instanceof ApiFailure && err.code === 'too-large') return { kind: 'too-large' };
  if (err instanceof ApiFailure && err.code === 'blocked-type') return { kind: 'blocked', name: err.detail?.name ?? '' };
  if (err instanceof ApiFailure && err.code === 'too-many-replies') {
    const after = err.detail?.retryAfter;
    return after === undefined ? { kind: 'limit' } : { kind: 'limit', until: new Date(Date.now() + after * 1000).toISOString() };
  }
  if (err instanceof ApiFailure && err.code === 'rate-limited') return { kind: 'busy', seconds: Math.max(1, Math.ceil(err.detail?.retryAfter ?? 60)) };
  return { kind: 'failed' };
}

function problemText(problem: ReplyProblem, maxBytes: number): string {
  switch (problem.kind) {
    case 'too-large':
      return t('replyTooLarge', { size: formatSize(maxBytes, language()) });
    case 'blocked':
      return t('replyBlocked', { name: safeFileName(problem.name, t('attachmentFallbackName')) });
    case 'empty':
      return t('replyEmpty');
    case 'failed':
      return t('replyFailed');
    case 'limit':
      return problem.until ? t('replyLimitDay', { time: formatMoment(problem.until, language()) }) : t('replyLimitTotal');
    case 'busy':
      return t('replyRateLimited', { seconds: problem.seconds });
  }
}

export function replyForm(ctx: ReplyFormContext): HTMLElement {
  const { state } = ctx;
  const textId = 'reply-text';
  const filesId = 'reply-files';
  const problemId = 'reply-problem';
  const textarea = h('textarea', {
    id: textId,
    class: 'field reply-text',
    rows: 8,
    'aria-describedby': state.problem ? problemId : undefined,
    'aria-invalid': state.problem?.kind === 'empty' ? 'true' : undefined,
  });
  textarea.value = state.text;
  textarea.addEventListener('input', () => {
    state.text = textarea.value;
  });
  const input = h('input', { id: filesId, type: 'file', multiple: true, class: 'reply-files' });
  input.addEventListener('change', () => {
    state.files = [...state.files, ...Array.from(input.files ?? [])];
    state.problem = checkReply(state.text, state.files, ctx.maxBytes, ctx.blockedExtensions);
    if (state.problem?.kind === 'empty') state.problem = undefined;
    ctx.rerender(`#${filesId}`);
  });
  const fileList = h(
    'ul',
    { class: 'attachments reply-file-list' },
    ...state.files.map((f, i) => {
      const name = safeFileName(f.name, t('attachmentFallbackName'));
      const remove = h('button', { id: `reply-remove-${i}`, type: 'button', class: 'button link' }, t('replyRemoveFile', { name }));
      remove.addEventListener('click', () => {
        state.files = state.files.filter((_, j) => j !== i);
        state.problem = undefined;
        ctx.rerender(`#${filesId}`);
      });
      return h('li', { class: 'attachment-item' }, h('span', { class: 'attachment-name' }, name), ' ', h('span', { class: 'attachment-size' }, formatSize(f.size, language())), ' ', remove);
    }),
  );
  const send = h('button', { id: 'reply-send', type: 'submit', class: 'button primary', 'aria-disabled': state.sending ? 'true' : undefined }, state.sending ? t('replySending') : t('replySend'));
  const cancel = h('button', { id: 'reply-cancel', type: 'button', class: 'button secondary' }, t('replyCancel'));
  cancel.addEventListener('click', () => {
    if (!state.sending) ctx.cancel();
  });
  const form = h(
    'form',
    { class: 'check-form reply-form', novalidate: true, 'aria-labelledby': 'reply-heading' },
    h('h2', { id: 'reply-heading', tabindex: -1 }, t('replyHeading')),
    h('label', { for: textId, class: 'label' }, t('replyTextLabel')),
    textarea,
    h('label', { for: filesId, class: 'label' }, t('replyAttachLabel')),
    input,
    h('p', { class: 'hint' }, t('replyLimitHint', { size: formatSize(ctx.maxBytes, language()) })),
    fileList,
    state.problem ? h('p', { id: problemId, class: 'message error', role: 'alert' }, problemText(state.problem, ctx.maxBytes)) : null,
    state.sending ? h('p', { class: 'message info', role: 'status' }, t('replySending')) : null,
    h('div', { class: 'reply-actions' }, send, ' ', cancel),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (state.sending) return;
    state.text = textarea.value;
    const problem = checkReply(state.text, state.files, ctx.maxBytes, ctx.blockedExtensions);
    if (problem) {
      state.problem = problem;
      ctx.rerender(problem.kind === 'empty' ? `#${textId}` : `#${problemId}`);
      return;
    }
    state.problem = undefined;
    state.sending = true;
    ctx.rerender('#reply-send');
    ctx.send(state.text, state.files).then(
      () => undefined,
      (err: unknown) => {
        state.sending = false;
        state.problem = problemOf(err);
        ctx.rerender(`#${problemId}`);
      },
    );
  });
  return form;
}
