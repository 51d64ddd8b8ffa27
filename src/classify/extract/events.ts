import type { ExtractEvent, Location, Scope, UnscannableReason } from '../types.js';
import { rechunk } from './text.js';

export function textEvent(location: Location, scope: Scope, text: string): ExtractEvent {
  return { type: 'text', chunk: { location, scope, text } };
}

export function unscannableEvent(location: Location, reason: UnscannableReason): ExtractEvent {
  return { type: 'unscannable', part: { location, reason } };
}

/** Text strings as chunk events of bounded size (see `CHUNK_CHARS`), all with one location. */
export async function* textEvents(strings: AsyncIterable<string>, location: Location, scope: Scope): AsyncGenerator<ExtractEvent> {
  for await (const text of rechunk(strings)) yield textEvent(location, scope, text);
}
