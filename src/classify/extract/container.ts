import type { ExtractEvent } from '../types.js';
import { textEvent, textEvents } from './events.js';
import { extractFile } from './file.js';
import { checkDepth, childPlace, type ExtractContext, type Place } from './limits.js';
import { isOdf, odfText } from './odf.js';
import { ooxmlKind, ooxmlText } from './ooxml.js';
import { ZipArchive } from './zip.js';

/**
 * A ZIP container: an OOXML or ODF document (read as one document, its
 * parts are not locations of their own) or an archive (every entry a file
 * of its own at `attachment:<archive>/<entry path>`, its name scanned as
 * `filename:<archive>/<entry path>`).
 */
export async function* extractZip(buf: Buffer, place: Place, ctx: ExtractContext): AsyncGenerator<ExtractEvent> {
  const location = `attachment:${place.path}`;
  const archive = await ZipArchive.open(buf, place, ctx);
  try {
    const kind = ooxmlKind(archive);
    if (kind) {
      yield* textEvents(ooxmlText(archive, kind, place, ctx), location, 'attachment');
      return;
    }
    if (isOdf(archive)) {
      yield* textEvents(odfText(archive, place, ctx), location, 'attachment');
      return;
    }
    checkDepth(place, ctx);
    for (const entry of archive.entries) {
      if (entry.directory) continue;
      place.deadline.check();
      const child = childPlace(place, entry.name);
      yield textEvent(`filename:${child.path}`, 'filename', entry.name);
      const name = entry.name.slice(entry.name.lastIndexOf('/') + 1);
      yield* extractFile({ name, bytes: archive.read(entry, child.path, child, ctx) }, child, ctx);
    }
  } finally {
    archive.close();
  }
}
