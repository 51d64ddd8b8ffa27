import fsp from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { RateLimits } from '../rate-limit.js';

/**
 * The page shell and its assets, read from the reader bundle (`assetsDir`,
 * built by web/). Files are read per request, so a rebuilt bundle
 * is served without a restart; a missing file answers 404 text. The page
 * routes have no params schema on purpose: /m/<id> and /s/<id> answer the
 * same bytes for every id, well-formed or not (the page asks the API, which
 * checks the id).
 */

export interface PagesPluginOptions {
  /** The built page bundle (dist/reader). */
  assetsDir: string;
  limits: RateLimits;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
};

/** Each segment starts with a letter or digit: no `..`, no hidden files, no separators of another kind. */
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

async function sendFile(reply: FastifyReply, file: string): Promise<FastifyReply> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch {
    return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n');
  }
  return reply.type(TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream').send(bytes);
}

export const pageRoutes: FastifyPluginAsync<PagesPluginOptions> = async (app, { assetsDir, limits }) => {
  const root = path.resolve(assetsDir);

  // the same bytes for every id, known or not: the page asks the API
  app.get('/m/:linkId', { onRequest: limits.hook('pages', 'linkId') }, async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return sendFile(reply, path.join(root, 'index.html'));
  });

  // the sender's status page: also the same bytes for every id
  app.get('/s/:statusId', { onRequest: limits.hook('pages', 'statusId') }, async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return sendFile(reply, path.join(root, 'status.html'));
  });

  app.get('/assets/*', { onRequest: limits.hook('pages') }, async (request, reply) => {
    const rest = (request.params as { '*'?: string })['*'] ?? '';
    const segments = rest.split('/');
    if (!rest || !segments.every((s) => SEGMENT.test(s))) return reply.code(404).type('text/plain; charset=utf-8').send('Not found\n');
    reply.header('cache-control', 'no-cache');
    return sendFile(reply, path.join(root, ...segments));
  });
};
