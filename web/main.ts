/**
 * The recipient's reader page: `/m/<linkId>#<K_link>`.
 *
 * open → (check) → verify → unwrap K with K_link (fragment) and K_srv →
 * fetch and decrypt the body blob → show the message; attachments are fetched
 * and decrypted on demand. K_link never leaves this page: it is read from
 * location.hash, which is then removed from the address bar and the history
 * entry; the key is kept in memory and in this tab's sessionStorage (so a
 * reload works), never sent or logged (fragment.ts).
 */
import * as openpgp from 'openpgp';
import type { Language, OpenResponse, VerifyResponse } from '../src/reader/api.js';
import * as api from './api.js';
import { ApiFailure } from './api.js';
import { base64urlDecode, parseLinkId, unwrapContentKey } from './crypto.js';
import { storageKey, takeFragmentKey } from './fragment.js';
import { decryptBlob, parseSecureContent } from './decrypt.js';
import { browserLanguage, setLanguage } from './i18n.js';
import { accessCodeView, oneTimeCodeView, type CheckContext } from './views/check.js';
import { messageView } from './views/message.js';
import { conversationView } from './views/conversation.js';
import { encryptBlob, parseReplyCopy } from './views/reply.js';
import type { ReplyCopy } from '../src/reader/api.js';
import { initShell, setOrganisation, show } from './views/shell.js';
import { decryptErrorView, errorView, expiredView, loadingView, lockedView, rateLimitedView, revokedView, showUnknown } from './views/status.js';

let languageChosen = false;


function start(): void {
  const root = document.getElementById('app');
  if (!root) return;
  setLanguage(browserLanguage());
  initShell(root, () => {
    languageChosen = true;
  });
  const linkId = parseLinkId(location.pathname);
  // read before anything else, so the fragment is gone from the address bar at once
  const kLink = takeFragmentKey(linkId ? storageKey('m', linkId) : null);
  if (!linkId || !kLink) {
    // the same page as an unknown link or a failed unwrap: the recipient learns nothing more
    showUnknown();
    return;
  }
  void run(linkId, kLink);
}

/** Any failure outside a form's own handling: one page per kind. */
function fail(linkId: string, kLink: Uint8Array, err: unknown): void {
  const retry = (): void => void run(linkId, kLink);
  if (err instanceof ApiFailure) {
    switch (err.code) {
      case 'unknown-link':
        return showUnknown();
      case 'revoked':
        return show(revokedView());
      case 'expired':
        return show(expiredView());
      case 'locked':
        return show(lockedView(err.detail?.lockedUntil, retry));
      case 'rate-limited':
        return show(rateLimitedView(err.detail?.retryAfter, retry));
      default:
        return show(errorView(retry));
    }
  }
  show(errorView(retry));
}

async function run(linkId: string, kLink: Uint8Array): Promise<void> {
  show(loadingView(), false);
  let opened: OpenResponse;
  try {
    opened = await api.open(linkId);
  } catch (err) {
    return fail(linkId, kLink, err);
  }
  if (!languageChosen && (opened.language === 'nl' || opened.language === 'en')) setLanguage(opened.language as Language);
  setOrganisation(opened.organisation ?? { name: '' });

  const retry = (): void => void run(linkId, kLink);
  const ctx: CheckContext = {
    linkId,
    verified: (res) => void reveal(linkId, kLink, res),
    failed: (err) => fail(linkId, kLink, err),
  };
  switch (opened.state) {
    case 'revoked':
      return show(revokedView());
    case 'expired':
      return show(expiredView());
    case 'locked':
      return show(lockedView(opened.lockedUntil, retry));
    case 'verified':
      return verifyWithoutCode(linkId, kLink);
    case 'pending-check':
      switch (opened.method) {
        case 'none':
          return verifyWithoutCode(linkId, kLink);
        case 'access-code':
          return show(accessCodeView(ctx), 'h1');
        case 'email-code':
        case 'sms-code':
          return show(oneTimeCodeView(ctx, opened.method, opened.destination), 'h1');
      }
  }
  show(errorView(retry));
}

async function verifyWithoutCode(linkId: string, kLink: Uint8Array): Promise<void> {
  try {
    await reveal(linkId, kLink, await api.verify(linkId));
  } catch (err) {
    fail(linkId, kLink, err);
  }
}

async function reveal(linkId: string, kLink: Uint8Array, res: VerifyResponse): Promise<void> {
  show(loadingView('decrypting'));
  let contentKey: Uint8Array;
  try {
    contentKey = await unwrapContentKey(base64urlDecode(res.key.wrap), kLink, base64urlDecode(res.key.kSrv), res.key.secureId, res.key.linkId);
  } catch {
    // a wrong or damaged fragment looks exactly like an unknown link
    return showUnknown();
  }
  let ciphertext: Uint8Array;
  try {
    ciphertext = await api.blob(linkId, res.body);
  } catch (err) {
    return fail(linkId, kLink, err);
  }
  let content;
  try {
    content = parseSecureContent(await decryptBlob(openpgp, contentKey, ciphertext));
  } catch {
    return show(decryptErrorView());
  }
  const message = messageView({
    content,
    attachment: async (blobId) => decryptBlob(openpgp, contentKey, await api.blob(linkId, blobId)),
  });
  show(
    conversationView({
      message,
      subject: content.subject,
      load: () => api.replies(linkId),
      copy: async (replyId) => parseReplyCopy(await decryptBlob(openpgp, contentKey, await api.replyBlob(linkId, replyId))),
      send: async ({ subject, text, files }) => {
        // the recipient's own copy: encrypted here under K, like every blob; the server never sees it in clear
        const copy: ReplyCopy = {
          v: 1,
          subject,
          text,
          date: new Date().toISOString(),
          attachments: files.map((f) => ({ name: f.name, contentType: f.type || 'application/octet-stream', size: f.size })),
        };
        const sealed = await encryptBlob(openpgp, contentKey, new TextEncoder().encode(JSON.stringify(copy)));
        const sent = await api.sendReply(linkId, { subject, text, copy: sealed, attachments: files });
        return { id: sent.reply.id, createdAt: sent.reply.createdAt, copy };
      },
    }),
  );
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
