import { collect } from './bytes.js';
import { ExtractError, type ExtractContext, type Place } from './limits.js';
import { XmlText, xmlText } from './xml.js';
import type { ZipArchive } from './zip.js';

/**
 * OpenDocument (ODT, ODS, ODP): the text of `content.xml`. Paragraphs and
 * headings as lines, spreadsheet cells separated by tabs and rows by lines;
 * a numeric cell whose shown text hides its value (`1,23E+08`) gets the
 * value (`office:value`) added. A password-protected document (encryption
 * data in its manifest) is `encrypted`.
 *
 * Not read: styles.xml (page headers and footers), meta.xml, embedded objects.
 */
export function isOdf(archive: ZipArchive): boolean {
  return !!archive.find('content.xml') && (!!archive.find('mimetype') || !!archive.find('META-INF/manifest.xml'));
}

const NUMERIC = new Set(['float', 'percentage', 'currency']);

class OdfText extends XmlText {
  private cell: { value: string | undefined; text: string[] } | undefined;

  open(name: string, attrs: Record<string, string>): void {
    switch (name) {
      case 's': {
        const count = Math.min(100, Math.max(1, Number(attrs['text:c'] ?? 1) || 1));
        this.add(' '.repeat(count));
        break;
      }
      case 'tab':
        this.add('\t');
        break;
      case 'line-break':
        this.add('\n');
        break;
      case 'table-cell': {
        const type = attrs['office:value-type'] ?? '';
        this.cell = { value: NUMERIC.has(type) ? attrs['office:value'] : undefined, text: [] };
        break;
      }
    }
  }

  close(name: string): void {
    switch (name) {
      case 'p':
      case 'h':
        this.add('\n');
        break;
      case 'table-cell': {
        const cell = this.cell;
        this.cell = undefined;
        if (cell?.value && !cell.text.join('').includes(cell.value)) this.emit(` ${cell.value}`);
        this.emit('\t');
        break;
      }
      case 'table-row':
        this.emit('\n');
        break;
    }
  }

  text(text: string): void {
    this.add(text);
  }

  private add(s: string): void {
    this.cell?.text.push(s);
    this.emit(s);
  }
}

export async function* odfText(archive: ZipArchive, place: Place, ctx: ExtractContext): AsyncGenerator<string> {
  const manifest = archive.find('META-INF/manifest.xml');
  if (manifest) {
    const xml = (await collect(archive.read(manifest, place.path, place, ctx))).toString('utf8');
    if (/<manifest:encryption-data\b/.test(xml)) throw new ExtractError('encrypted', false, place.path);
  }
  const content = archive.find('content.xml');
  if (content) yield* xmlText(archive.read(content, place.path, place, ctx), new OdfText(), place);
}
