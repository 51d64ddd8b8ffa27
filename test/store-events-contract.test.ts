import t from 'tap';
import { eventsContract } from './helpers/events-contract.js';
import { postgresDriver, sqliteDriver } from './helpers/store-drivers.js';

/**
 * The audit trail's contract (test/helpers/events-contract.ts) on both
 * drivers: SQLite, and PostgreSQL (one server for this file, a fresh
 * database per test) where three pools append as three cluster nodes.
 */
eventsContract(t, sqliteDriver);
eventsContract(t, await postgresDriver(t));
