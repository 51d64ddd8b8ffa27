import t from 'tap';
import { directoryContract } from './helpers/directory-contract.js';
import { postgresDriver, sqliteDriver } from './helpers/store-drivers.js';

/**
 * The recipient directory's contract (test/helpers/directory-contract.ts)
 * on both drivers: SQLite, and PostgreSQL (one server for this file, a fresh
 * database per test), two pools standing for two cluster nodes.
 */
directoryContract(t, sqliteDriver);
directoryContract(t, await postgresDriver(t));
