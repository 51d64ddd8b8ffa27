/**
 * Mail templates from `templates/`, loaded and parsed once.
 *
 * Why mustache: the templates are edited by people who are not developers
 * (an organisation's own wording), and mustache is logic-less — a template can
 * show values and sections, nothing else, so it cannot run code or reach into
 * the relay. `{{value}}` is HTML-escaped by default (a sender's display name
 * such as `<script>` stays text); the plain-text and subject templates are
 * rendered with escaping turned off because they are not HTML (and the
 * values that reach headers are folded to one line). It is small,
 * has no dependencies and is already a dependency of the package.
 *
 * Layout of the directory, for every kind K and language L (nl, en):
 *   K.L.subject.txt   the Subject (one line; newlines are folded to spaces)
 *   K.L.html          the HTML body, rendered inside layout.html
 *   K.L.txt           the plain-text body, rendered inside layout.txt
 *   footer.L.html, footer.L.txt   the shared footer (organisation, help text)
 *   layout.html, layout.txt       the shells, with {{> body}} and {{> footer}}
 */
import fs from 'node:fs';
import { packageDir } from '../package-dir.js';
import path from 'node:path';
import Mustache from 'mustache';
import { ZegelError } from '../errors.js';
import { LANGUAGES, type Language } from '../vocabulary.js';

export { LANGUAGES, type Language };

export const KINDS = ['notification', 'code-mail', 'forgot-notice', 'receipt', 'first-open'] as const;
export type MailKind = (typeof KINDS)[number];

interface LanguageSet {
  subject: string;
  html: string;
  text: string;
  footerHtml: string;
  footerText: string;
}

export interface RenderedMail {
  subject: string;
  html: string;
  text: string;
}

/** The `templates/` shipped with the package, found from this module's own place (src/ or dist/src/). */
export function shippedTemplatesDir(): string {
  const dir = packageDir('templates');
  if (!dir) throw new ZegelError('ZEGEL_TEMPLATE_INVALID', 'cannot find the shipped templates/ directory next to package.json');
  return dir;
}

const noEscape = (value: unknown) => String(value);

/**
 * HTML escaping for text and double-quoted attribute values. Mustache's own
 * escaper also encodes `/`, `=` and backticks, which turns the visible link
 * into `https:&#x2F;&#x2F;…` in the raw HTML; these five are all that is needed.
 */
const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);

export class Templates {
  readonly dir: string;
  readonly #layoutHtml: string;
  readonly #layoutText: string;
  readonly #sets: Map<string, LanguageSet>;

  /** Reads and parses every template; throws ZEGEL_TEMPLATE_INVALID naming each missing or unparsable file. */
  constructor(dir: string) {
    this.dir = dir;
    const problems: string[] = [];
    const read = (name: string): string => {
      const file = path.join(dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (err) {
        problems.push(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message}`);
        return '';
      }
      try {
        Mustache.parse(text); // parsed once here; mustache caches the parse by template text
      } catch (err) {
        problems.push(`${file}: ${(err as Error).message}`);
      }
      return text;
    };
    this.#layoutHtml = read('layout.html');
    this.#layoutText = read('layout.txt');
    this.#sets = new Map();
    for (const lang of LANGUAGES) {
      const footerHtml = read(`footer.${lang}.html`);
      const footerText = read(`footer.${lang}.txt`);
      for (const kind of KINDS) {
        this.#sets.set(`${kind}.${lang}`, {
          subject: read(`${kind}.${lang}.subject.txt`),
          html: read(`${kind}.${lang}.html`),
          text: read(`${kind}.${lang}.txt`),
          footerHtml,
          footerText,
        });
      }
    }
    if (problems.length) throw new ZegelError('ZEGEL_TEMPLATE_INVALID', `mail templates in ${dir} are unusable:\n  ${problems.join('\n  ')}`);
  }

  render(kind: MailKind, lang: Language, view: object): RenderedMail {
    const set = this.#sets.get(`${kind}.${lang}`);
    if (!set) throw new ZegelError('ZEGEL_NOTIFY_INPUT', `no templates for ${kind} in language ${JSON.stringify(lang)}`);
    const subject = Mustache.render(set.subject, view, {}, { escape: noEscape })
      .replace(/\s+/g, ' ')
      .trim();
    const html = Mustache.render(this.#layoutHtml, { ...view, subject }, { body: set.html, footer: set.footerHtml }, { escape: escapeHtml });
    const text = Mustache.render(this.#layoutText, view, { body: set.text, footer: set.footerText }, { escape: noEscape });
    return { subject, html, text: tidyText(text) };
  }
}

/** Trailing spaces off, at most one blank line in a row, lines wrapped at 76 columns, one final newline. */
function tidyText(text: string): string {
  return (
    text
      .replace(/\r\n?/g, '\n')
      .replace(/[ \t]+$/gm, '')
      .replace(/\n{3,}/g, '\n\n')
      .trim()
      .split('\n')
      .map((line) => wrap(line, 76))
      .join('\n') + '\n'
  );
}

/** Breaks at spaces only: a word longer than the width (a link) keeps a line of its own, whole. */
export function wrap(line: string, width: number): string {
  if (line.length <= width) return line;
  const out: string[] = [];
  let current = '';
  for (const word of line.split(/ +/)) {
    if (current && current.length + 1 + word.length > width) {
      out.push(current);
      current = word;
    } else current = current ? `${current} ${word}` : word;
  }
  if (current) out.push(current);
  return out.join('\n');
}
