/**
 * The classifier's contracts. Extraction turns a message into text chunks and
 * unscannable parts; detectors find hits in text; the rules engine turns hits
 * into findings and one decision. Each part is tested on its own and the
 * relay, `zegel scan` and the audit trail all use the same engine
 * (DESIGN.md, "Contracts → zegel scan").
 */

/** What a rule asks for; the strictest over all findings wins (block > encrypt > advise). */
export type Action = 'encrypt' | 'advise' | 'block';

/** What happens to the message: advise findings leave it at `deliver`. */
export type Decision = 'deliver' | 'encrypt' | 'block';

/**
 * Where text came from: `subject`, `body`, `filename:<name>` (an attachment's
 * name), or `attachment:<path>` with nested parts joined by `/`
 * (`attachment:archief.zip/map/overdracht.docx`, `attachment:bericht.eml/verslag.pdf`).
 */
export type Location = string;

/** Which rule scopes a chunk of text belongs to (rules say where they look). */
export type Scope = 'subject' | 'body' | 'filename' | 'attachment';

/**
 * A piece of decoded text (Unicode, from any charset or format). A long text
 * arrives as several chunks with the same location, in order; the engine keeps
 * an overlap between them so that no hit is lost at a chunk border.
 */
export interface TextChunk {
  location: Location;
  scope: Scope;
  text: string;
}

/** Why a part could not be read; the shipped policy encrypts then (fail closed). */
export type UnscannableReason =
  | 'encrypted'
  | 'corrupt'
  /** A document or archive format Zegel recognises but cannot open (7z, RAR, gzip, legacy .doc/.xls/.ppt, winmail.dat). */
  | 'unsupported'
  | 'limit:depth'
  | 'limit:entries'
  | 'limit:totalBytes'
  | 'limit:ratio'
  | 'limit:timeout';

export interface UnscannablePart {
  location: Location;
  reason: UnscannableReason;
}

/** What extraction yields, in message order. */
export type ExtractEvent = { type: 'text'; chunk: TextChunk } | { type: 'unscannable'; part: UnscannablePart };

/** Limits against archive bombs and slow files (config `classify.limits`). */
export interface ExtractLimits {
  /** Nesting depth of archives and forwarded messages below the message itself. */
  depth: number;
  /** Entries per archive. */
  entries: number;
  /** Uncompressed bytes over the whole message. */
  totalBytes: number;
  /** Largest uncompressed/compressed ratio of one entry. */
  ratio: number;
  /** Milliseconds per attachment. */
  timeout: number;
}

/** One detector hit inside one text. Offsets are UTF-16 indexes into that text. */
export interface Hit {
  start: number;
  end: number;
  /** Redacted for display: BSN `******782`, IBAN `NL…5127`, a word-list term as listed. */
  excerpt: string;
  /** Identity for counting distinct terms (the listed term for word lists, the digits for a BSN). */
  key: string;
}

export interface Detector {
  /** Longest text a single hit can span (the engine's overlap between chunks). */
  readonly maxMatchLength: number;
  find(text: string): Hit[];
}

/** One explained finding, as `zegel scan --json` prints it. */
export interface Finding {
  rule: string;
  action: Action;
  location: Location;
  excerpt: string;
}

export interface ClassifyResult {
  decision: Decision;
  /** True only when an `encrypt` finding (not an opt-in tag) lies in the subject. */
  subjectSensitive: boolean;
  matches: Finding[];
}
