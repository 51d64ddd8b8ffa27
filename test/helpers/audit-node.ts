/**
 * One node's audit checkpoint worker, as a process of its own, for tests
 * that kill a node with SIGKILL (test/audit-checkpoint-once-per-cluster.test.ts):
 * its pool, its PgAuditTrail and its PgSessionLeader on the database named
 * by the arguments. Prints `leading` on stdout once this node leads.
 *
 *   node dist/test/helpers/audit-node.js URL PASSWORD_FILE SIGNING_KEY_FILE INTERVAL_MS
 */
import { pino } from 'pino';
import { openPgPool } from '../../src/store/pg/connect.js';
import { pgAuditWorker } from './pg-audit-worker.js';

const [url, passwordFile, signingKeyFile, interval] = process.argv.slice(2);
const log = pino({ level: 'silent' });
const pool = await openPgPool({ url: url!, passwordFile, applicationName: 'zegel-audit-node' });
const { worker, leader } = pgAuditWorker(pool, { signingKeyFile: signingKeyFile!, intervalMs: Number(interval), retentionMs: 365 * 86400e3, log });
worker.start();
const watch = setInterval(() => {
  if (!leader.leading) return;
  process.stdout.write('leading\n');
  clearInterval(watch);
}, 10);
// the parent kills this process; until then the worker's timer (unref'd) needs something to keep it alive
setInterval(() => undefined, 60_000);
