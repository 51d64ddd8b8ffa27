import type { Readable } from 'node:stream';
import type { Decision, Finding } from '../classify/types.js';
import type { MessageRecord } from '../store/messages.js';

/** What the classifier says about one message; the process job applies it per recipient. */
export interface Verdict {
  decision: Decision;
  /** An encrypt finding lies in the subject: notifications get a neutral subject. */
  subjectSensitive: boolean;
  /** Every finding, redacted (rule, action, location, excerpt). */
  matches: Finding[];
  /** For `block`: the rule that stopped the message, with its description for the sender's DSN. */
  blockedBy?: { rule: string; description: { nl: string; en: string } } | undefined;
}

export interface ClassifyContext {
  message: MessageRecord;
  /** Opens the spooled message (streamed, or from memory when small). */
  open: () => Readable;
}

export type ClassifyMessage = (context: ClassifyContext) => Promise<Verdict>;

/** No classifier: everything is delivered (tests of the relay spine use this). */
export const deliverAll: ClassifyMessage = async () => ({ decision: 'deliver', subjectSensitive: false, matches: [] });
