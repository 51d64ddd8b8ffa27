/**
 * Transitional: the status link's key schedule moved to
 * src/secure/status-keys.ts (it is not HTTP). src/pipeline/secure-job.ts
 * still imports it from here; delete this file when it imports
 * src/secure/status-keys.js.
 */
export * from '../secure/status-keys.js';
