import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Splitter } from 'mailsplit';

/** One MIME leaf as the streaming parser saw it. */
export interface PartInfo {
  contentType: string;
  filename: string | undefined;
  disposition: string | false;
  /** Encoded body bytes. */
  size: number;
}

export interface MessageOutline {
  /** The root header fields, unfolded, as `name: value` pairs (names lower case). */
  headers: Array<[string, string]>;
  parts: PartInfo[];
}

interface SplitNode {
  type: 'node' | 'data' | 'body';
  value?: Buffer;
  root?: boolean;
  contentType?: string;
  filename?: string | false;
  disposition?: string | false;
  multipart?: string | false;
  headers?: { getList(): Array<{ key: string; line: string }> };
}

/**
 * Walks a spooled message with mailsplit, a streaming MIME splitter: headers
 * of every node and body bytes in chunks, never a whole part in memory. The
 * classifier hooks in here; for now it yields the outline the pipeline needs.
 */
export async function outlineMessage(source: Readable): Promise<MessageOutline> {
  const outline: MessageOutline = { headers: [], parts: [] };
  let current: PartInfo | undefined;
  const sink = new Writable({
    objectMode: true,
    write(node: SplitNode, _encoding, callback) {
      if (node.type === 'node') {
        if (node.root && !outline.headers.length && node.headers) {
          for (const { key, line } of node.headers.getList()) {
            outline.headers.push([key, line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ').trim()]);
          }
        }
        current = undefined;
        if (!node.multipart) {
          current = { contentType: node.contentType ?? 'text/plain', filename: node.filename || undefined, disposition: node.disposition ?? false, size: 0 };
          outline.parts.push(current);
        }
      } else if (node.type === 'body' && current && node.value) {
        current.size += node.value.length;
      }
      callback();
    },
  });
  await pipeline(source, new Splitter({ maxHeadSize: 1024 * 1024 }), sink);
  return outline;
}
