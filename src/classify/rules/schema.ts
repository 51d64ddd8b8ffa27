import { z } from 'zod';

/**
 * The shape of one rule file (`rules/*.yaml`). Rules that span several keys
 * (action or thresholds, threshold order, where opt-in tags look, list names
 * that exist, regexes RE2 compiles, unique ids) are checked in load.ts, which
 * maps every problem to `file:line`.
 *
 * ```yaml
 * rules:
 *   - id: medical-words
 *     description: { nl: Medische termen, en: Medical terms }
 *     detector: { kind: wordlist, list: medical }
 *     scopes: [subject, body, filename, attachment]
 *     thresholds:
 *       - { min: 2, action: encrypt }
 *       - { min: 1, action: advise }
 * ```
 */

const strict = <T extends z.ZodRawShape>(shape: T) => z.object(shape).strict();

export const actionSchema = z.enum(['encrypt', 'advise', 'block']);
export const scopeSchema = z.enum(['subject', 'body', 'filename', 'attachment']);

/** A word list is named, and read from `<rules dir>/lists/<name>.txt`. */
export const listNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'expected a list name such as medical (the file lists/<name>.txt)');

export const detectorSchema = z.discriminatedUnion(
  'kind',
  [
    strict({ kind: z.literal('bsn') }),
    strict({ kind: z.literal('iban') }),
    /** Vital signs and lab values: a keyword with a plausible value after it (detectors/measured.ts). */
    strict({ kind: z.literal('measured-values') }),
    strict({
      kind: z.literal('wordlist'),
      /** A shipped or admin list: lists/<name>.txt. */
      list: listNameSchema.optional(),
      /**
       * Several lists read as one: their terms together, distinct terms
       * counted over all of them (`lists: [medical, youth-care]`: one term of
       * each is two distinct terms). Not together with `list`.
       */
      lists: z.array(listNameSchema).min(2, 'lists needs at least two names (one list: use list)').optional(),
      /** Extra terms written in the rule itself; `nier*` is a prefix term, as in a list (load.ts checks the syntax). */
      terms: z.array(z.string().trim().min(1)).min(1).optional(),
      /**
       * A hit counts only with a cue close by: a term of the list `list` or
       * of `terms`, at most `within` characters from it (`near: { list:
       * political-roles, within: 60 }`: a party's name next to lid,
       * kandidaat or wethouder).
       */
      near: strict({
        list: listNameSchema.optional(),
        terms: z.array(z.string().trim().min(1)).min(1).optional(),
        within: z.number().int().min(1).max(300),
      }).optional(),
    }),
    strict({
      kind: z.literal('regex'),
      /** RE2 syntax (linear time: no backreferences, no lookaround). */
      pattern: z.string().min(1),
      flags: z.string().regex(/^(?!.*(.).*\1)[imsu]*$/, 'expected flags from i, m, s, u, each at most once').optional(),
      checksum: z.enum(['elfproef', 'mod97', 'luhn']).optional(),
      /** A hit counts only with one of these words close by (whole words; `patiënt*` a prefix term). */
      keywords: z.array(z.string().trim().min(1)).min(1).optional(),
      /** How close (characters) a keyword must be; needs `keywords`. */
      proximity: z.number().int().min(1).max(1000).optional(),
    }),
    /** Parts extraction could not read (encrypted, corrupt, limits). */
    strict({ kind: z.literal('unscannable') }),
    /** Sender opt-in tags in the subject (`classify.optInTags`, `[sms:…]`, `[verloopt:…]`). */
    strict({ kind: z.literal('opt-in-tag') }),
  ],
  { error: () => 'expected detector.kind bsn, iban, wordlist, regex, measured-values, unscannable or opt-in-tag' },
);

export const thresholdSchema = strict({
  /** At least this many distinct hits (distinct terms, distinct numbers) in the whole message. */
  min: z.number().int().min(1),
  action: actionSchema,
});

export const ruleSchema = strict({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected an id of lower-case letters, digits and dashes'),
  description: strict({ nl: z.string().trim().min(1), en: z.string().trim().min(1) }),
  detector: detectorSchema,
  /** Where the rule looks: subject, body, filename (attachment names), attachment (attachment content). */
  scopes: z.array(scopeSchema).min(1),
  /** The action at one hit or more; or `thresholds` instead. */
  action: actionSchema.optional(),
  thresholds: z.array(thresholdSchema).min(1).optional(),
});

export const ruleFileSchema = strict({ rules: z.array(ruleSchema) });

export type RuleSource = z.infer<typeof ruleSchema>;
export type DetectorSource = z.infer<typeof detectorSchema>;
export type RuleFile = z.infer<typeof ruleFileSchema>;
