import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Structured logs. Log lines carry ids, addresses, sizes and SMTP replies,
 * never message content (subjects, bodies, attachment names) or secrets.
 * The redact list is a second line of defence for fields that must never appear.
 */
export function createLogger(level: string = 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { name: 'zegel' },
    redact: { paths: ['password', '*.password', 'passwordHash', '*.passwordHash', 'secret', '*.secret', 'key', '*.key'], censor: '[redacted]' },
  };
  return destination ? pino(options, destination) : pino(options, pino.destination({ dest: 2, sync: false }));
}
