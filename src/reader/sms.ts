/**
 * Transitional: the SMS drivers moved to src/secure/sms.ts (they are not
 * HTTP). src/relay.ts still imports them from here; delete this file when it
 * imports src/secure/sms.js.
 */
export * from '../secure/sms.js';
