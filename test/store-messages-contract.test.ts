import t from 'tap';
import { messagesContract } from './helpers/messages-contract.js';
import { postgresDriver, sqliteDriver } from './helpers/store-drivers.js';

/**
 * The message repository's contract (test/helpers/messages-contract.ts) on
 * both drivers: SQLite, and PostgreSQL (one server for this file, a fresh
 * database per test), two pools standing for two cluster nodes.
 */
messagesContract(t, sqliteDriver);
messagesContract(t, await postgresDriver(t));
