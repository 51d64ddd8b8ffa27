import type { MessageRecord, RecipientRecord } from '../store/messages.js';
import type { MessageOutline } from './walk.js';

export interface DecisionContext {
  message: MessageRecord;
  recipient: RecipientRecord;
  outline: MessageOutline;
}

/**
 * What happens to one external recipient's copy. The relay spine knows one
 * outcome, `deliver`; the classifier adds `encrypt` and `block`, each with the
 * path that carries it out.
 */
export interface RecipientDecision {
  decision: 'deliver';
  /** Why, for the event record: a rule id or a short phrase, never content. */
  reason: string;
}

export type DecideFn = (context: DecisionContext) => Promise<RecipientDecision>;

/** The decision before any classifier is plugged in. */
export const deliverAll: DecideFn = async () => ({ decision: 'deliver', reason: 'no-classifier' });
