/** The check before a message opens: access code, or a one-time code by e-mail or SMS. */
import type { Method, VerifyResponse } from '../../src/reader/api.js';
import * as api from '../api.js';
import { ApiFailure } from '../api.js';
import { h, uid } from '../dom.js';
import { formatMoment, formatWait } from '../format.js';
import { language, t } from '../i18n.js';
import { announce, heading, refresh, type Render } from './shell.js';

export interface CheckContext {
  linkId: string;
  /** Called with a verified session's keys. */
  verified(response: VerifyResponse): void;
  /** Any failure the form does not handle itself (locked, revoked, unknown, network …). */
  failed(error: unknown): void;
}

type Message = { key: 'error' | 'info'; text: string } | null;

function errorParagraph(id: string, msg: Message): HTMLElement | null {
  if (!msg) return null;
  return msg.key === 'error'
    ? h('p', { id, class: 'message error', role: 'alert' }, msg.text)
    : h('p', { id, class: 'message info', role: 'status' }, msg.text);
}

function wrongCodeText(err: ApiFailure, fallback: string): string {
  const left = err.detail?.attemptsLeft;
  if (typeof left === 'number' && left > 1) return t('codeWrongMany', { n: left });
  if (left === 1) return t('codeWrongOne');
  return fallback;
}

function submitButton(label: string, busy: boolean): HTMLButtonElement {
  return h('button', { id: 'open-message', type: 'submit', class: 'button primary', 'aria-disabled': busy ? 'true' : undefined }, busy ? t('busy') : label);
}

/** Access code (shared, from the sender). Wrong tries never disable it; "Code vergeten?" tells the sender. */
export function accessCodeView(ctx: CheckContext): Render {
  const state = { value: '', reveal: false, busy: false, message: null as Message, forgotDone: false, forgotBusy: false };
  const inputId = uid('access-code');
  const errorId = uid('access-code-error');

  async function submit(): Promise<void> {
    if (state.busy) return;
    const code = state.value.trim();
    if (!code) {
      state.message = { key: 'error', text: t('accessCodeEmpty') };
      refresh(`#${inputId}`);
      return;
    }
    state.busy = true;
    state.message = null;
    refresh();
    try {
      const res = await api.verify(ctx.linkId, code);
      ctx.verified(res);
    } catch (err) {
      state.busy = false;
      if (err instanceof ApiFailure && err.code === 'wrong-code') {
        state.message = { key: 'error', text: wrongCodeText(err, t('accessCodeWrong')) };
        refresh(`#${inputId}`);
      } else {
        ctx.failed(err);
      }
    }
  }

  async function forgot(): Promise<void> {
    if (state.forgotBusy) return;
    state.forgotBusy = true;
    try {
      await api.forgot(ctx.linkId);
      state.forgotDone = true;
      state.forgotBusy = false;
      refresh('#forgot-done');
    } catch (err) {
      state.forgotBusy = false;
      ctx.failed(err);
    }
  }

  return () => {
    const input = h('input', {
      id: inputId,
      name: 'access-code',
      type: state.reveal ? 'text' : 'password',
      class: 'field',
      autocomplete: 'off',
      autocapitalize: 'off',
      spellcheck: 'false',
      enterkeyhint: 'go',
      required: true,
      'aria-invalid': state.message?.key === 'error' ? 'true' : undefined,
      'aria-describedby': state.message ? errorId : undefined,
    });
    input.value = state.value;
    input.addEventListener('input', () => {
      state.value = input.value;
    });
    const revealId = uid('reveal');
    const reveal = h('input', { id: revealId, type: 'checkbox', checked: state.reveal });
    reveal.addEventListener('change', () => {
      state.reveal = reveal.checked;
      input.type = state.reveal ? 'text' : 'password';
    });
    const form = h(
      'form',
      { class: 'check-form', novalidate: true },
      h('label', { for: inputId, class: 'label' }, t('accessCodeLabel')),
      input,
      errorParagraph(errorId, state.message),
      h('div', { class: 'checkbox' }, reveal, h('label', { for: revealId }, t('showAccessCode'))),
      submitButton(t('openMessage'), state.busy),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void submit();
    });
    let forgotPart: HTMLElement;
    if (state.forgotDone) {
      forgotPart = h('p', { id: 'forgot-done', class: 'message info', role: 'status', tabindex: -1 }, t('forgotSent'));
    } else {
      const b = h('button', { id: 'forgot-code', type: 'button', class: 'button secondary' }, state.forgotBusy ? t('busy') : t('forgotCode'));
      b.addEventListener('click', () => void forgot());
      forgotPart = b;
    }
    return h('section', { class: 'view view-check' }, heading(t('checkTitle')), h('p', {}, t('checkIntroAccessCode')), form, h('div', { class: 'secondary-actions' }, forgotPart));
  };
}

/** A one-time code by e-mail or SMS: first "Stuur mij een code", then the 6-digit field. */
export function oneTimeCodeView(ctx: CheckContext, method: Extract<Method, 'email-code' | 'sms-code'>, destination?: string): Render {
  const state = {
    phase: 'start' as 'start' | 'sent',
    destination,
    expiresAt: undefined as string | undefined,
    sentOnce: false,
    value: '',
    busy: false,
    sending: false,
    message: null as Message,
  };
  const inputId = uid('code');
  const errorId = uid('code-error');
  const sms = method === 'sms-code';

  async function send(): Promise<void> {
    if (state.sending) return;
    state.sending = true;
    state.message = null;
    refresh();
    try {
      const res = await api.sendCode(ctx.linkId);
      const resent = state.phase === 'sent';
      state.sending = false;
      state.phase = 'sent';
      state.destination = res.destination || state.destination;
      state.expiresAt = res.expiresAt;
      state.sentOnce = true;
      state.value = '';
      if (resent) {
        state.message = { key: 'info', text: t('newCodeSent') };
        announce(t('newCodeSent'));
      }
      refresh(`#${inputId}`);
    } catch (err) {
      state.sending = false;
      if (err instanceof ApiFailure && err.code === 'too-many-codes') {
        const wait = err.detail?.retryAfter;
        state.message = { key: 'error', text: typeof wait === 'number' ? t('tooManyCodes', { wait: formatWait(wait, language()) }) : t('tooManyCodesNoTime') };
        refresh(state.phase === 'sent' ? `#${inputId}` : '#send-code');
      } else {
        ctx.failed(err);
      }
    }
  }

  async function submit(): Promise<void> {
    if (state.busy) return;
    const code = state.value.replace(/[\s-]/g, '');
    if (!/^[0-9]{6}$/.test(code)) {
      state.message = { key: 'error', text: t('codeEmpty') };
      refresh(`#${inputId}`);
      return;
    }
    state.busy = true;
    state.message = null;
    refresh();
    try {
      const res = await api.verify(ctx.linkId, code);
      ctx.verified(res);
    } catch (err) {
      state.busy = false;
      if (err instanceof ApiFailure && err.code === 'wrong-code') {
        state.value = '';
        state.message = { key: 'error', text: wrongCodeText(err, t('codeWrong')) };
        refresh(`#${inputId}`);
      } else if (err instanceof ApiFailure && err.code === 'no-code') {
        state.message = { key: 'error', text: t('noCode') };
        refresh(`#${inputId}`);
      } else {
        ctx.failed(err);
      }
    }
  }

  function startView(): HTMLElement {
    const intro = state.destination
      ? t(sms ? 'checkIntroSmsTo' : 'checkIntroEmailTo', { destination: state.destination })
      : t(sms ? 'checkIntroSms' : 'checkIntroEmail');
    const sendButton = h('button', { id: 'send-code', type: 'button', class: 'button primary', 'aria-disabled': state.sending ? 'true' : undefined }, state.sending ? t('busy') : t('sendCode'));
    sendButton.addEventListener('click', () => void send());
    const have = h('button', { type: 'button', class: 'button link' }, t('haveCode'));
    have.addEventListener('click', () => {
      state.phase = 'sent';
      state.message = null;
      refresh(`#${inputId}`);
    });
    return h(
      'section',
      { class: 'view view-check' },
      heading(t('checkTitle')),
      h('p', {}, intro),
      errorParagraph(errorId, state.message),
      sendButton,
      h('div', { class: 'secondary-actions' }, have),
    );
  }

  function codeView(): HTMLElement {
    const input = h('input', {
      id: inputId,
      name: 'code',
      type: 'text',
      class: 'field code',
      inputmode: 'numeric',
      pattern: '[0-9]*',
      maxlength: 6,
      autocomplete: 'one-time-code',
      enterkeyhint: 'go',
      required: true,
      'aria-invalid': state.message?.key === 'error' ? 'true' : undefined,
      'aria-describedby': state.message ? errorId : undefined,
    });
    input.value = state.value;
    input.addEventListener('input', () => {
      state.value = input.value;
    });
    const form = h(
      'form',
      { class: 'check-form', novalidate: true },
      h('label', { for: inputId, class: 'label' }, t('codeLabel')),
      input,
      errorParagraph(errorId, state.message),
      submitButton(t('openMessage'), state.busy),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void submit();
    });
    const resend = h('button', { id: 'resend-code', type: 'button', class: 'button secondary', 'aria-disabled': state.sending ? 'true' : undefined }, state.sending ? t('busy') : state.sentOnce ? t('resendCode') : t('sendCode'));
    resend.addEventListener('click', () => void send());
    const sentText = state.sentOnce && state.destination ? h('p', { class: 'sent-to' }, t('codeSentTo', { destination: state.destination })) : null;
    const until = state.sentOnce && state.expiresAt ? h('p', { class: 'hint' }, t('codeValidUntil', { time: formatMoment(state.expiresAt, language()) })) : null;
    return h(
      'section',
      { class: 'view view-check' },
      heading(t('checkTitle')),
      sentText,
      until,
      form,
      h('div', { class: 'secondary-actions' }, h('p', { class: 'hint' }, t(sms ? 'noCodeReceivedSms' : 'noCodeReceivedEmail')), resend),
    );
  }

  return () => (state.phase === 'start' ? startView() : codeView());
}
