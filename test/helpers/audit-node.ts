/**
 * One node's audit checkpoint worker, as a process of its own, for tests
 * that kill a node with SIGKILL (test/audit-checkpoint-once-per-cluster.test.ts):
 * its pool, its PgAuditTrail and its PgSessionLeader on the database named
 * by the arguments. Prints `leading` on stdout once this node leads.
 *
 *   node dist/test/helpers/audit-node.js URL PASSWORD_FILE SIGNING_KEY_FILE INTERVAL_MS
 */
import { pino } from 'pino';
import { AuditCheckpointWorker } from '../../src/audit/checkpoint-job.js';
import { systemClock } from '../../src/clock.js';
import { PgAuditTrail } from '../../src/store/pg/audit.js';
import { openPgPool } from '../../src/store/pg/connect.js';
import { PgEventLog } from '../../src/store/pg/events.js';
import { PgSessionLeader } from '../../src/store/pg/leader.js';
import { PgTransactor } from '../../src/store/pg/tx.js';

const [url, passwordFile, signingKeyFile, interval] = process.argv.slice(2);
const log = pino({ level: 'silent' });
const pool = await openPgPool({ url: url!, passwordFile, applicationName: 'zegel-audit-node' });
const leader = new PgSessionLeader(pool, { log });
const worker = new AuditCheckpointWorker({
  trail: new PgAuditTrail(pool, new PgTransactor(pool), new PgEventLog(pool, systemClock)),
  leader,
  clock: systemClock,
  log,
  dataDir: '/nonexistent',
  signingKeyFile,
  intervalMs: Number(interval),
  retentionMs: 365 * 86400e3,
});
worker.start();
const watch = setInterval(() => {
  if (!leader.leading) return;
  process.stdout.write('leading\n');
  clearInterval(watch);
}, 10);
// the parent kills this process; until then the worker's timer (unref'd) needs something to keep it alive
setInterval(() => undefined, 60_000);
