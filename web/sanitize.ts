/**
 * The sender's HTML, made inert for the sandboxed iframe: DOMPurify with the
 * HTML profile only (no SVG/MathML), no forms, no scripts, no embedded
 * documents or media, no remote resources (every src, srcset, background,
 * poster and CSS url() that is not an inline data: image or cid: reference is
 * removed), links opened in a new tab without opener or referrer. The frame's
 * own CSP (`default-src 'none'; img-src data:; style-src 'unsafe-inline'` plus
 * the page's own frame stylesheet) and sandbox (no scripts, no same-origin, no
 * forms) are the second line.
 *
 * A srcdoc frame also inherits the page's CSP (`style-src 'self'`), so the
 * sender's own inline CSS does not apply; /assets/reader-frame.css gives the
 * body a readable, phone-sized layout instead.
 */
import DOMPurify from 'dompurify';

const FORBID_TAGS = [
  'form', 'input', 'button', 'select', 'option', 'optgroup', 'textarea', 'datalist', 'output', 'fieldset', 'legend',
  'script', 'noscript', 'template', 'slot',
  'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'portal',
  'audio', 'video', 'source', 'track', 'picture',
  'base', 'link', 'meta', 'title', 'dialog',
  'svg', 'math',
];
const FORBID_ATTR = [
  'srcset', 'imagesrcset', 'action', 'formaction', 'ping', 'poster', 'background', 'lowsrc', 'dynsrc',
  'usemap', 'longdesc', 'manifest', 'autofocus', 'tabindex', 'accesskey', 'target', 'rel', 'referrerpolicy', 'loading',
];
const URL_ATTRS = ['src', 'href', 'xlink:href', 'data', 'cite', 'codebase'];

function isInlineImage(value: string): boolean {
  const v = value.trim().toLowerCase();
  return /^data:image\/(png|gif|jpe?g|webp|bmp)[;,]/.test(v) || v.startsWith('cid:');
}

/** CSS with every url()/image-set()/@import that is not an inline image removed; null when it cannot be checked. */
export function cleanCss(css: string): string | null {
  // escapes can spell url( in ways a pattern cannot see: drop such CSS whole
  if (css.includes('\\')) return null;
  return css
    .replace(/@import[^;]*;?/gi, '')
    .replace(/(?:-webkit-)?image-set\([^)]*\)/gi, 'none')
    .replace(/url\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (whole, _q: string, target: string) => (target.trim().toLowerCase().startsWith('data:image/') ? whole : 'none'))
    .replace(/url\(/gi, 'none(');
}

let purifier: ReturnType<typeof DOMPurify> | null = null;
/** Set by the hooks while one sanitize() runs: a remote resource was removed. */
let blocked = false;

function instance(): ReturnType<typeof DOMPurify> {
  if (purifier) return purifier;
  const p = DOMPurify(window);
  p.addHook('afterSanitizeAttributes', (node) => {
    const el = node as Element;
    if (!el.getAttribute) return;
    for (const name of URL_ATTRS) {
      const value = el.getAttribute(name);
      if (value === null) continue;
      const isLink = name === 'href' && (el.localName === 'a' || el.localName === 'area');
      if (isLink) continue;
      if (!isInlineImage(value)) {
        el.removeAttribute(name);
        if (name === 'src' && value.trim() !== '') blocked = true;
      }
    }
    if (el.localName === 'a' || el.localName === 'area') {
      const href = el.getAttribute('href');
      if (href !== null && /^\s*(https?:|mailto:|tel:)/i.test(href)) {
        el.setAttribute('target', '_blank');
        el.setAttribute('rel', 'noopener noreferrer');
      } else if (href !== null && !href.trim().startsWith('#')) {
        el.removeAttribute('href');
      }
    }
    const style = el.getAttribute('style');
    if (style !== null) {
      const clean = cleanCss(style);
      if (clean !== style) blocked = true;
      if (clean === null) el.removeAttribute('style');
      else el.setAttribute('style', clean);
    }
  });
  p.addHook('uponSanitizeElement', (node, data) => {
    if (data.tagName === 'style') {
      const css = node.textContent ?? '';
      const clean = cleanCss(css);
      if (clean !== css) blocked = true;
      if (clean === null) node.textContent = '';
      else node.textContent = clean;
    }
  });
  purifier = p;
  return p;
}

export interface Sanitized {
  /** A fragment for the frame's <body>. */
  html: string;
  /** Whether remote images or CSS resources were removed (the page says so). */
  blockedRemote: boolean;
}

export function sanitizeHtml(html: string): Sanitized {
  blocked = false;
  const clean = instance().sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS,
    FORBID_ATTR,
    // what a removed control says ("Verstuur") means nothing without it
    ADD_FORBID_CONTENTS: ['button', 'select', 'option', 'optgroup', 'textarea', 'datalist', 'output'],
    FORCE_BODY: true,
    ALLOW_DATA_ATTR: false,
    ALLOW_UNKNOWN_PROTOCOLS: false,
    SANITIZE_NAMED_PROPS: true,
  }) as string;
  return { html: clean, blockedRemote: blocked };
}

export const FRAME_STYLESHEET = '/assets/reader-frame.css';

/** The frame's CSP: nothing but inline images, inline styles and the page's frame stylesheet. */
export function frameCsp(origin: string): string {
  const sheet = /^https?:\/\/[A-Za-z0-9.:[\]-]+$/.test(origin) ? ` ${origin}${FRAME_STYLESHEET}` : '';
  return `default-src 'none'; img-src data:; style-src 'unsafe-inline'${sheet}`;
}

/** The whole srcdoc document for the sandboxed frame (`origin`: the page's, for the frame stylesheet). */
export function frameDocument(sanitizedBody: string, lang: string, origin: string): string {
  return (
    `<!doctype html><html lang="${lang === 'en' ? 'en' : 'nl'}"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${frameCsp(origin)}">` +
    `<meta name="referrer" content="no-referrer">` +
    `<link rel="stylesheet" href="${FRAME_STYLESHEET}"></head><body>${sanitizedBody}</body></html>`
  );
}
