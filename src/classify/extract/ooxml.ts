import type { ExtractContext, Place } from './limits.js';
import { XmlText, xmlText } from './xml.js';
import type { ZipArchive, ZipEntry } from './zip.js';

/**
 * Office Open XML (DOCX, XLSX, PPTX): the text of the document's XML parts,
 * read as streams from the ZIP container.
 *
 * - DOCX: body, headers, footers, footnotes, endnotes, comments; tracked
 *   deletions included (they are in the file the recipient gets).
 * - PPTX: slides in order, speaker notes, comments.
 * - XLSX: every sheet in order, one row per line and cells separated by a
 *   tab; shared strings, inline strings, formula string results and numbers
 *   (a BSN typed into a cell is a number; `1.23456782E8` is written out as
 *   `123456782`); cell comments.
 *
 * Not read: embedded objects and images, number formats (a leading zero
 * shown by a cell format is not in the stored number), document properties.
 */
export type OoxmlKind = 'docx' | 'xlsx' | 'pptx';

export function ooxmlKind(archive: ZipArchive): OoxmlKind | undefined {
  if (archive.find('word/document.xml')) return 'docx';
  if (archive.find('xl/workbook.xml')) return 'xlsx';
  if (archive.find('ppt/presentation.xml')) return 'pptx';
  return undefined;
}

/** Text runs of WordprocessingML and DrawingML (`w:t`, `a:t`), with paragraph, cell and break structure. */
export class RunText extends XmlText {
  private inText = 0;
  private skip = 0;

  open(name: string): void {
    if (this.skip || name === 'Fallback') {
      // mc:Fallback repeats the content of mc:Choice for older readers.
      this.skip++;
      return;
    }
    if (name === 't' || name === 'delText') this.inText++;
    else if (name === 'tab') this.emit('\t');
    else if (name === 'br' || name === 'cr') this.emit('\n');
  }

  close(name: string): void {
    if (this.skip) {
      this.skip--;
      return;
    }
    if (name === 't' || name === 'delText') this.inText = Math.max(0, this.inText - 1);
    else if (name === 'p' || name === 'tr' || name === 'comment') this.emit('\n');
    else if (name === 'tc') this.emit('\t');
  }

  text(text: string): void {
    if (this.inText && !this.skip) this.emit(text);
  }
}

/** The shared-string table of a workbook (`xl/sharedStrings.xml`). */
class SharedStrings extends XmlText {
  readonly strings: string[] = [];
  private current: string[] | undefined;
  private inText = 0;
  private phonetic = 0;

  open(name: string): void {
    if (name === 'si') this.current = [];
    else if (name === 'rPh') this.phonetic++;
    else if (name === 't') this.inText++;
  }

  close(name: string): void {
    if (name === 'si') {
      this.strings.push((this.current ?? []).join(''));
      this.current = undefined;
    } else if (name === 'rPh') this.phonetic--;
    else if (name === 't') this.inText--;
  }

  text(text: string): void {
    if (this.inText && !this.phonetic && this.current) this.current.push(text);
  }
}

/** Writes `1.23456782E8` as `123456782`; other numbers as stored. */
export function plainNumber(value: string): string {
  if (!/[eE]/.test(value)) return value;
  const n = Number(value);
  if (!Number.isFinite(n)) return value;
  return Math.abs(n) >= 1e21 || (Math.abs(n) < 1e-6 && n !== 0) ? value : n.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 20 });
}

/** One worksheet: rows as lines, cells separated by tabs. */
class SheetText extends XmlText {
  private type = '';
  private value: string[] = [];
  private inline: string[] = [];
  private inValue = false;
  private inInline = 0;
  private inText = 0;
  private phonetic = 0;
  private cellsInRow = 0;

  constructor(private readonly shared: readonly string[]) {
    super();
  }

  open(name: string, attrs: Record<string, string>): void {
    switch (name) {
      case 'c':
        this.type = attrs.t ?? 'n';
        this.value = [];
        this.inline = [];
        break;
      case 'v':
        this.inValue = true;
        break;
      case 'is':
        this.inInline++;
        break;
      case 'rPh':
        this.phonetic++;
        break;
      case 't':
        this.inText++;
        break;
    }
  }

  close(name: string): void {
    switch (name) {
      case 'v':
        this.inValue = false;
        break;
      case 'is':
        this.inInline--;
        break;
      case 'rPh':
        this.phonetic--;
        break;
      case 't':
        this.inText--;
        break;
      case 'c': {
        const text = this.cellText();
        if (text) {
          if (this.cellsInRow++) this.emit('\t');
          this.emit(text);
        }
        break;
      }
      case 'row':
        this.emit('\n');
        this.cellsInRow = 0;
        break;
    }
  }

  private cellText(): string {
    const raw = this.value.join('').trim();
    switch (this.type) {
      case 's':
        return this.shared[Number(raw)] ?? '';
      case 'inlineStr':
        return this.inline.join('');
      case 'str':
        return raw;
      case 'b':
      case 'e':
        return '';
      default:
        return plainNumber(raw);
    }
  }

  text(text: string): void {
    if (this.inValue) this.value.push(text);
    else if (this.inInline && this.inText && !this.phonetic) this.inline.push(text);
  }
}

/** Entries whose name matches, ordered by the number in their name (`slide2` before `slide10`). */
function numbered(archive: ZipArchive, pattern: RegExp): ZipEntry[] {
  const num = (e: ZipEntry): number => Number(/(\d+)\.xml$/.exec(e.name)?.[1] ?? 0);
  return archive.entries.filter((e) => pattern.test(e.name)).sort((a, b) => num(a) - num(b) || a.name.localeCompare(b.name));
}

async function* partText(archive: ZipArchive, entry: ZipEntry, reader: XmlText, place: Place, ctx: ExtractContext): AsyncGenerator<string> {
  yield* xmlText(archive.read(entry, place.path, place, ctx), reader, place);
  yield '\n';
}

export async function* ooxmlText(archive: ZipArchive, kind: OoxmlKind, place: Place, ctx: ExtractContext): AsyncGenerator<string> {
  if (kind === 'docx') {
    const main = archive.find('word/document.xml');
    if (main) yield* partText(archive, main, new RunText(), place, ctx);
    for (const pattern of [/^word\/header\d*\.xml$/, /^word\/footer\d*\.xml$/, /^word\/(?:footnotes|endnotes|comments)\.xml$/]) {
      for (const entry of numbered(archive, pattern)) yield* partText(archive, entry, new RunText(), place, ctx);
    }
  } else if (kind === 'pptx') {
    for (const pattern of [/^ppt\/slides\/slide\d+\.xml$/, /^ppt\/notesSlides\/notesSlide\d+\.xml$/, /^ppt\/comments\/[^/]+\.xml$/]) {
      for (const entry of numbered(archive, pattern)) yield* partText(archive, entry, new RunText(), place, ctx);
    }
  } else {
    const shared = new SharedStrings();
    const table = archive.find('xl/sharedStrings.xml');
    if (table) {
      // Parsed whole: its size is bounded by the byte budget it was inflated under.
      for await (const _ of xmlText(archive.read(table, place.path, place, ctx), shared, place)) void _;
    }
    for (const entry of numbered(archive, /^xl\/worksheets\/sheet\d+\.xml$/)) {
      yield* partText(archive, entry, new SheetText(shared.strings), place, ctx);
    }
    for (const entry of numbered(archive, /^xl\/comments\d*\.xml$/)) yield* partText(archive, entry, new RunText(), place, ctx);
  }
}
