import { createReadStream, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { extractMessage } from '../src/classify/extract/index.js';
import type { ExtractEvent } from '../src/classify/types.js';
import { LIMITS, textAt, unscannable } from './fixtures/extract/fixtures.js';
import { repoPath } from './helpers/repo-root.js';

/**
 * Every message of the classifier corpus (test/fixtures/corpus) goes through extraction
 * without a throw; each yields its subject, and attachment-bearing messages
 * yield what their label's "why" says is in them.
 */
const dir = repoPath('test', 'fixtures', 'corpus', 'classifier');
const labels = JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8')) as Array<{ file: string; expect: string; why: string }>;
const why = new Map(labels.map((l) => [l.file, l.why]));

async function extractFile(file: string): Promise<ExtractEvent[]> {
  const events: ExtractEvent[] = [];
  for await (const e of extractMessage(createReadStream(join(dir, file)), LIMITS)) events.push(e);
  return events;
}

const attachmentText = (events: ExtractEvent[]): string =>
  events.filter((e) => e.type === 'text' && e.chunk.scope === 'attachment').map((e) => (e.type === 'text' ? e.chunk.text : '')).join('\n');

/** Nine digits, grouped or not, as the BSN detector would see them. */
const NINE_DIGITS = /\b\d{3}[ .-]?\d{3}[ .-]?\d{3}\b|\b\d{4}\.\d{2}\.\d{3}\b/;

const files = readdirSync(dir).filter((f) => f.endsWith('.eml')).sort();

t.test('the corpus is there', async (t) => {
  t.ok(files.length >= 24, `${files.length} messages`);
  t.same(files.filter((f) => !why.has(f)), [], 'every message has a label');
});

for (const file of files) {
  t.test(`${file}: ${why.get(file) ?? ''}`, async (t) => {
    const events = await extractFile(file);
    const reason = why.get(file) ?? '';
    t.ok(events[0]?.type === 'text' && events[0].chunk.location === 'subject', 'a subject chunk first');
    t.ok(textAt(events, 'body').trim().length > 0, 'body text');
    t.notMatch(textAt(events, 'body'), /<\/?[a-z][^>]*>/i, 'no HTML tags in body text');

    const named = events.filter((e) => e.type === 'text' && e.chunk.scope === 'filename');
    if (/attachment|PDF|DOCX|XLSX|CSV|ZIP/i.test(reason)) t.ok(named.length > 0, 'the attachment names are scanned');

    if (/password-protected/.test(reason)) {
      t.ok(
        unscannable(events).some((u) => u.reason === 'encrypted'),
        'an encrypted part is unscannable',
      );
      return;
    }
    t.same(unscannable(events), [], 'nothing unscannable');
    if (/inside a PDF|DOCX|XLSX|CSV attachment/.test(reason)) t.match(attachmentText(events), NINE_DIGITS, 'the number inside the attachment is extracted');
    if (/PDF attachment with harmless text/.test(reason)) t.ok(attachmentText(events).trim().length > 0, 'the PDF text is extracted');
    if (/BSN in subject/.test(reason)) t.match(textAt(events, 'subject'), NINE_DIGITS);
    if (/HTML-only body/.test(reason)) t.match(textAt(events, 'body'), NINE_DIGITS);
    if (/opt-in tag/.test(reason)) t.match(textAt(events, 'subject'), /\[[^\]]+\]/);
  });
}
