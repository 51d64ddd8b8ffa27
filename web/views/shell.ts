/**
 * The page frame every view lives in: the organisation's header with the
 * language switch, the main region the views replace, the footer with the
 * organisation's help text, and a polite live region for announcements.
 */
import type { Language, Organisation } from '../../src/reader/api.js';
import { h } from '../dom.js';
import { language, setLanguage, t } from '../i18n.js';

export type Render = () => HTMLElement;

interface Shell {
  header: HTMLElement;
  brandName: HTMLElement;
  logo: HTMLImageElement | null;
  toggle: HTMLButtonElement;
  main: HTMLElement;
  footer: HTMLElement;
  live: HTMLElement;
}

let shell: Shell | null = null;
let current: Render | null = null;
let organisation: Organisation | null = null;

function hexToRgb(hex: string): [number, number, number] | null {
  const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return null;
  let s = m[1] as string;
  if (s.length === 3) s = s.replace(/./g, (c) => c + c);
  return [0, 2, 4].map((i) => parseInt(s.slice(i, i + 2), 16)) as [number, number, number];
}

function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number): number => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** Sets --brand and a text colour on it (black or white, whichever contrasts more: always ≥ 4.5:1). */
function applyColour(colour: string | undefined): void {
  const rgb = colour ? hexToRgb(colour) : null;
  if (!rgb) return;
  const l = luminance(rgb);
  const onBrand = (1.05) / (l + 0.05) >= (l + 0.05) / 0.05 ? '#ffffff' : '#000000';
  const root = document.documentElement.style;
  root.setProperty('--brand', colour as string);
  root.setProperty('--on-brand', onBrand);
}

function safeLogo(url: string | undefined): string | null {
  if (!url) return null;
  if (/^data:image\/(png|gif|jpe?g|webp);base64,/i.test(url)) return url;
  try {
    const u = new URL(url, location.origin);
    if (u.protocol === 'https:' || u.origin === location.origin) return u.href;
  } catch {
    // not a URL
  }
  return null;
}

function renderChrome(): void {
  if (!shell) return;
  const name = organisation?.name ?? '';
  shell.brandName.textContent = name ? t('secureBy', { organisation: name }) : t('title');
  shell.toggle.textContent = t('switchLanguage');
  shell.toggle.setAttribute('lang', language() === 'nl' ? 'en' : 'nl');
  shell.toggle.setAttribute('aria-label', t('switchLanguageLabel'));
  const help = organisation?.helpText?.[language()] ?? organisation?.helpText?.[language() === 'nl' ? 'en' : 'nl'];
  shell.footer.replaceChildren(
    ...(help ? [h('h2', { class: 'footer-heading' }, t('help')), h('p', { class: 'help' }, help)] : []),
    h('p', { class: 'powered' }, t('poweredBy')),
  );
}

export function initShell(root: HTMLElement, onLanguage: (lang: Language) => void): void {
  const brandName = h('span', { class: 'brand-name' });
  const toggle = h('button', { type: 'button', class: 'lang-toggle' });
  const header = h('header', { class: 'site-header' }, h('div', { class: 'header-inner' }, h('div', { class: 'brand' }, brandName), toggle));
  const main = h('main', { id: 'main', class: 'content' });
  const footer = h('footer', { class: 'site-footer' });
  const live = h('div', { class: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true' });
  root.replaceChildren(header, main, footer, live);
  shell = { header, brandName, logo: null, toggle, main, footer, live };
  toggle.addEventListener('click', () => {
    const next: Language = language() === 'nl' ? 'en' : 'nl';
    onLanguage(next);
    setLanguage(next);
    renderChrome();
    if (current && shell) shell.main.replaceChildren(current());
    announce(next === 'nl' ? 'Nederlands' : 'English');
  });
  renderChrome();
}

export function setOrganisation(org: Organisation): void {
  organisation = org;
  applyColour(org.colour);
  if (shell) {
    const src = safeLogo(org.logoUrl);
    shell.logo?.remove();
    shell.logo = null;
    if (src) {
      const img = h('img', { class: 'logo', src, alt: '', referrerpolicy: 'no-referrer', decoding: 'async' });
      img.addEventListener('error', () => img.remove());
      shell.logo = img;
      shell.brandName.before(img);
    }
  }
  renderChrome();
}

/** Shows a view; moves focus to its heading unless told otherwise (or to the element `focus` selects). */
export function show(render: Render, focus: string | false = 'h1'): void {
  if (!shell) return;
  current = render;
  shell.main.replaceChildren(render());
  if (focus) {
    const target = shell.main.querySelector<HTMLElement>(focus);
    target?.focus();
  }
}

/**
 * Re-renders the current view (its state lives in its closure), then focuses
 * `focus` if given, else the element that had focus (by id), else the heading.
 */
export function refresh(focus?: string): void {
  if (!shell || !current) return;
  const active = document.activeElement;
  const hadFocus = active instanceof HTMLElement && shell.main.contains(active) ? active : null;
  shell.main.replaceChildren(current());
  if (focus) {
    shell.main.querySelector<HTMLElement>(focus)?.focus();
  } else if (hadFocus) {
    const again = hadFocus.id ? document.getElementById(hadFocus.id) : null;
    (again ?? shell.main.querySelector<HTMLElement>('h1'))?.focus();
  }
}

export function announce(text: string): void {
  if (!shell) return;
  shell.live.textContent = '';
  const live = shell.live;
  setTimeout(() => {
    live.textContent = text;
  }, 50);
}

export function heading(text: string): HTMLHeadingElement {
  return h('h1', { tabindex: -1 }, text);
}
