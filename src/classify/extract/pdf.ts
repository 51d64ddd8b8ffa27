import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TextItem } from 'pdfjs-dist/types/src/display/api.js';
import { ExtractError, corrupt, type Place } from './limits.js';

/**
 * PDF text with pdfjs-dist (Mozilla's PDF.js, legacy build for Node). The
 * parser runs in-process ("fake worker"); no fonts are loaded or rendered,
 * eval is off, and the only files it may read are the character maps and
 * standard font metrics shipped inside the package (needed to map glyphs of
 * some fonts to text). Nothing is fetched over a network.
 *
 * - A PDF that needs a password to open → `encrypted` (a PDF encrypted with
 *   only an owner password opens without one and is read).
 * - A file pdfjs cannot parse → `corrupt`.
 * - Every page is read in order under the attachment's clock; a page that
 *   takes too long is abandoned (`limit:timeout`).
 * - Scanned pages are images: they yield no text (images are not read).
 */

type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');

let loaded: Promise<{ pdfjs: PdfJs; cMapUrl: string; standardFontDataUrl: string }> | undefined;

/** pdfjs is large: load it on the first PDF, not when the relay starts. */
function load(): Promise<{ pdfjs: PdfJs; cMapUrl: string; standardFontDataUrl: string }> {
  loaded ??= (async () => {
    const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
    const root = dirname(createRequire(import.meta.url).resolve('pdfjs-dist/package.json'));
    return { pdfjs, cMapUrl: `${join(root, 'cmaps')}/`, standardFontDataUrl: `${join(root, 'standard_fonts')}/` };
  })();
  return loaded;
}

/** Joins a page's text items: a line end where pdfjs or the layout says so, a blank where items are apart. */
export function joinItems(items: readonly TextItem[]): string {
  let out = '';
  let prev: TextItem | undefined;
  for (const item of items) {
    if (prev && !prev.hasEOL && out && item.str && !/\s$/.test(out) && !/^\s/.test(item.str)) {
      const px = Number(prev.transform[4]) || 0;
      const py = Number(prev.transform[5]) || 0;
      const x = Number(item.transform[4]) || 0;
      const y = Number(item.transform[5]) || 0;
      const size = Math.max(1, Math.abs(prev.height) || Math.abs(Number(prev.transform[3])) || 1);
      if (Math.abs(y - py) > size * 0.5) out += '\n';
      else if (Math.abs(x - (px + prev.width)) > size * 0.15) out += ' ';
    }
    out += item.str;
    if (item.hasEOL) out += '\n';
    prev = item;
  }
  return out;
}

/** The text of every page, one string per page. `buf` is not used afterwards (pdfjs gets its own copy). */
export async function* pdfText(buf: Buffer, place: Place): AsyncGenerator<string> {
  const { pdfjs, cMapUrl, standardFontDataUrl } = await place.deadline.race(load());
  place.deadline.check();
  const task = pdfjs.getDocument({
    data: new Uint8Array(buf),
    cMapUrl,
    cMapPacked: true,
    standardFontDataUrl,
    useWorkerFetch: false,
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    useWasm: false,
    enableXfa: false,
    stopAtErrors: false,
    verbosity: 0,
  });
  const cancel = (): void => void task.destroy().catch(() => undefined);
  try {
    let doc: Awaited<typeof task.promise>;
    try {
      doc = await place.deadline.race(task.promise, cancel);
    } catch (err) {
      if (err instanceof ExtractError) throw err;
      if ((err as { name?: unknown } | null)?.name === 'PasswordException') throw new ExtractError('encrypted', false, undefined, { cause: err });
      throw corrupt(err);
    }
    for (let n = 1; n <= doc.numPages; n++) {
      let text: string;
      try {
        const page = await place.deadline.race(doc.getPage(n), cancel);
        const content = await place.deadline.race(page.getTextContent(), cancel);
        page.cleanup();
        text = joinItems(content.items.filter((i): i is TextItem => 'str' in i));
      } catch (err) {
        if (err instanceof ExtractError) throw err;
        throw corrupt(err);
      }
      if (text) yield `${text}\n`;
    }
  } finally {
    cancel();
  }
}
