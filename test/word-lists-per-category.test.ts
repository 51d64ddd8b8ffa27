import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseWordList } from '../src/classify/detectors/index.js';
import { classify } from '../src/classify/engine.js';
import { prefixTermProblem, termKey } from '../src/classify/normalise.js';
import { loadRules, shippedRulesDir } from '../src/classify/rules/load.js';
import type { ExtractEvent } from '../src/classify/types.js';

/*
 * The shipped word lists per GDPR category (rules/lists/*.txt, issue 16) and
 * the rules that use them (rules/default.yaml): every list is well formed and
 * says where its terms come from and what it leaves out; every rule has the
 * threshold of its kind; and through the real engine with the shipped rules,
 * each category's words encrypt, prefix terms reach Dutch compounds, accents
 * do not matter, and the classic false-positive traps stay below encrypt.
 */

const rulesDir = shippedRulesDir();
const listsDir = path.join(rulesDir, 'lists');
const listNames = fs
  .readdirSync(listsDir)
  .filter((f) => f.endsWith('.txt'))
  .map((f) => f.slice(0, -4))
  .sort();
const read = (name: string): string => fs.readFileSync(path.join(listsDir, `${name}.txt`), 'utf8');
const ruleSet = loadRules(rulesDir);
const ruleDoc = fs.readFileSync(path.join(rulesDir, 'default.yaml'), 'utf8');

/** The list each shipped word-list rule reads, from default.yaml (`list: <name>`), by rule id; and its cue list (`near: { list: <name> }`). */
const listOfRule = new Map<string, string>();
const cueListOfRule = new Map<string, string>();
for (const m of ruleDoc.matchAll(/- id: ([a-z0-9-]+)\n(?:(?!\n {2}- id:)[\s\S])*?kind: wordlist, list: ([a-z0-9_-]+)(?:, near: \{ list: ([a-z0-9_-]+))?/g)) {
  listOfRule.set(m[1]!, m[2]!);
  if (m[3]) cueListOfRule.set(m[1]!, m[3]!);
}
/**
 * Rules with cues (`near:`): a name or term counts only with a cue close by.
 * Their lists are names and cues, which are on purpose the same words as in
 * other lists ("moslim" is advice alone in religion.txt and a statement next
 * to "hij is"), so the one-list-per-term check leaves them out; the medical
 * list serves both medical-words and health-statement.
 */
const NEAR_RULES: Record<string, [string, string]> = {
  'health-statement': ['medical', 'health-cues'],
  'political-affiliation': ['political-parties', 'political-roles'],
  'union-affiliation': ['unions', 'union-roles'],
  'origin-statement': ['origin-groups', 'origin-cues'],
  'religion-statement': ['religion-groups', 'religion-cues'],
  'biometric-enrolment': ['biometric-features', 'biometric-cues'],
};
const nearLists = new Set(Object.entries(NEAR_RULES).flatMap(([id, [list, cues]]) => (id === 'health-statement' ? [cues] : [list, cues])));

/** One term per distinct key across all lists: which list has it. */
const ownerOfKey = new Map<string, string>();

/** Rules whose one term is enough, and rules that need two distinct terms (advice at one). */
const ONE_TERM = ['personal-words', 'health-diagnosis', 'mental-health', 'youth-protection', 'criminal-record', 'origin', 'religion', 'political', 'union-membership', 'sexual-life', 'genetic-biometric', ...Object.keys(NEAR_RULES)];
const TWO_TERMS = ['medical-words', 'youth-care-words', 'criminal-words', 'religion-words'];
const ADVICE_ONLY = ['care-setting', 'identity-document'];

t.test('every list is used by a rule, and every word-list rule reads a list of its own', async (t) => {
  t.same([...new Set([...listOfRule.values(), ...cueListOfRule.values()])].sort(), listNames, 'each lists/*.txt is read by a shipped rule');
  t.same(Object.fromEntries([...cueListOfRule].map(([id, cues]) => [id, [listOfRule.get(id), cues]])), NEAR_RULES, 'the rules with cues and their lists');
  const shared = [...listOfRule].filter(([, list]) => [...listOfRule].filter(([, l]) => l === list).length > 1).map(([id]) => id);
  t.same(shared.sort(), ['health-statement', 'medical-words'], 'no two rules read the same list, but for health-statement reading medical with cues');
  t.same([...listOfRule.keys()].sort(), [...ONE_TERM, ...TWO_TERMS, ...ADVICE_ONLY].sort(), 'the word-list rules of the shipped policy');
});

t.test('thresholds: one term encrypts for explicit categories, two distinct terms for the others', async (t) => {
  const byId = new Map(ruleSet.rules.map((r) => [r.id, r]));
  for (const id of ONE_TERM) t.same(byId.get(id)?.thresholds, [{ min: 1, action: 'encrypt' }], id);
  for (const id of TWO_TERMS) {
    t.same(byId.get(id)?.thresholds, [{ min: 2, action: 'encrypt' }, { min: 1, action: 'advise' }], id);
    t.match(byId.get(id)?.description.nl, /twee of meer verschillende termen/, `${id}: the Dutch description says two terms are needed`);
    t.match(byId.get(id)?.description.en, /two or more distinct terms/, `${id}: the English description says so too`);
  }
  for (const id of ADVICE_ONLY) t.same(byId.get(id)?.thresholds, [{ min: 1, action: 'advise' }], `${id}: advice only`);
  for (const r of ruleSet.rules) t.ok(r.description.nl.trim() && r.description.en.trim(), `${r.id}: described in Dutch and English`);
});

for (const name of listNames) {
  t.test(`${name}.txt: header with rule, sources and exclusions; well-formed, distinct terms`, async (t) => {
    const text = read(name);
    const lines = text.split('\n');
    const header = lines.slice(0, lines.findIndex((l) => !l.startsWith('#'))).join('\n');
    t.ok(header.length > 200, 'the file starts with a comment header');
    const rule = [...listOfRule, ...cueListOfRule].find(([, list]) => list === name)?.[0];
    t.ok(rule && header.includes(`shipped rule \`${rule}\``), `the header names its rule (${rule})`);
    if (name !== 'personal') {
      t.match(header, /^# Sources and selection/m, 'the header names its sources and selection criteria');
      t.match(header, /wdutch/, 'the header says how spelling was checked (the OpenTaal list, Debian package wdutch)');
    }
    t.match(header, /NOT/, 'the header says what does not belong in the list');

    const seen = new Map<string, number>();
    lines.forEach((raw, i) => {
      const term = raw.replace(/#.*/, '').trim();
      if (term === '') return;
      t.equal(prefixTermProblem(term), undefined, `line ${i + 1}: '${term}' is a valid term`);
      const key = termKey(term);
      if (key === '') t.fail(`line ${i + 1}: '${term}' has no letters or digits`);
      if (seen.has(key)) t.fail(`line ${i + 1}: '${term}' repeats line ${seen.get(key)}`);
      seen.set(key, i + 1);
      if (nearLists.has(name)) return;
      const owner = ownerOfKey.get(key);
      if (owner && owner !== name) t.fail(`line ${i + 1}: '${term}' is also in ${owner}.txt (keep a term in one list)`);
      ownerOfKey.set(key, name);
    });
    t.equal(parseWordList(text).length, seen.size, 'every term line counts');
    t.ok(seen.size >= 10, `${seen.size} terms`);
  });
}

/** The decision and the rules that encrypt, for one message of subject and body, through the shipped rules. */
async function scan(body: string, subject = 'Bericht'): Promise<{ decision: string; encrypting: string[]; found: string[] }> {
  async function* events(): AsyncGenerator<ExtractEvent> {
    yield { type: 'text', chunk: { location: 'subject', scope: 'subject', text: subject } };
    yield { type: 'text', chunk: { location: 'body', scope: 'body', text: body } };
  }
  const r = await classify(events(), ruleSet, { optInTags: ['veilig'] });
  return {
    decision: r.decision,
    encrypting: [...new Set(r.matches.filter((m) => m.action === 'encrypt').map((m) => m.rule))],
    found: r.matches.map((m) => `${m.rule}:${m.excerpt}`),
  };
}

t.test('each category encrypts a message that is about it, by its own rule', async (t) => {
  const cases: Array<[string, string]> = [
    ['medical-words', 'De huisarts heeft haar diabetes opnieuw ingesteld; ze gebruikt nu insuline.'],
    ['medical-words', 'De diëtist en de diabetesverpleegkundige bespreken haar bloedsuikerwaarden.'],
    ['health-diagnosis', 'Na de bevalling ligt mevrouw nog op de kraamafdeling.'],
    ['health-diagnosis', 'Ruben is vanochtend geopereerd aan zijn meniscus.'],
    ['health-diagnosis', 'Ik ben vandaag ziek gemeld.'],
    ['health-diagnosis', 'Meneer is hiv-positief en wil dat zijn werkgever dit niet weet.'],
    ['health-diagnosis', 'Bij mevrouw is borstkanker vastgesteld.'],
    ['mental-health', 'Zij is vorig jaar opgenomen na een suïcidepoging.'],
    ['mental-health', 'De rechter heeft een zorgmachtiging afgegeven.'],
    ['youth-protection', 'De kinderrechter heeft de ondertoezichtstelling met een jaar verlengd.'],
    ['youth-protection', 'Er is een machtiging uithuisplaatsing aangevraagd voor Sem.'],
    ['youth-care-words', 'Na de melding bij Veilig Thuis over kindermishandeling is het pleeggezin ingelicht.'],
    ['criminal-record', 'Hij heeft een strafblad en is eerder veroordeeld tot een taakstraf.'],
    ['criminal-words', 'De officier van justitie heeft de verdachte gedagvaard.'],
    ['origin', 'Cliënte is van Eritrese afkomst en spreekt weinig Nederlands.'],
    ['religion-words', 'Hij is moslim en vast tijdens de ramadan.'],
    ['political', 'Zij is partijlid en wil dat niet in haar dossier.'],
    ['union-membership', 'Hij is lid van de FNV; de vakbondsjurist komt mee.'],
    ['sexual-life', 'Hij vertelde dat hij homoseksueel is.'],
    ['genetic-biometric', 'Het erfelijkheidsonderzoek liet een BRCA1-mutatie zien.'],
    // issue 16, second round: person-level phrases
    ['health-diagnosis', 'Mevrouw heeft een decubitus graad 2 op de hiel.'],
    ['health-diagnosis', 'Het gaat om haar broer, die een verstandelijke beperking heeft.'],
    ['health-diagnosis', 'Ik drink niet mee: ik ben sinds twee jaar droog.'],
    ['origin', 'Hij is als vluchteling uit Syrië naar Nederland gekomen.'],
    ['origin', 'Het gezin komt oorspronkelijk uit Afghanistan.'],
    ['genetic-biometric', 'De vingerafdruk van Jan staat nu in het systeem.'],
    ['religion', 'Zij weigeren de behandeling op grond van hun geloof.'],
    ['youth-care-words', 'Wij hebben een zorgmelding gedaan en bespreken dit in het kader van de meldcode.'],
    ['youth-protection', 'Is er al iemand van jeugdzorg bij betrokken?'],
    ['criminal-words', 'Na zijn detentie in de PI: hij heeft zes maanden gekregen.'],
  ];
  for (const [rule, body] of cases) {
    const r = await scan(body);
    t.equal(r.decision, 'encrypt', `${rule}: ${body} (${r.found.join(', ')})`);
    t.ok(r.encrypting.includes(rule), `${rule} is among the encrypting rules (${r.encrypting.join(', ')})`);
  }
});

t.test('prefix terms reach Dutch compounds; a compound with another meaning stays out', async (t) => {
  const hits = async (text: string) => (await scan(text)).found;
  t.same(await hits('een diabetische voet'), ['medical-words:diabet*']);
  t.same(await hits('epileptici'), ['medical-words:epilep*']);
  t.same(await hits('het medicatieschema'), ['medical-words:medicati*']);
  t.same(await hits('de bloedsuikerspiegel'), ['medical-words:bloedsuiker*']);
  t.same(await hits('een schizofrene episode'), ['mental-health:schizofren*']);
  t.same(await hits('medicatie'), ['medical-words:medicatie'], 'a word listed whole is reported as itself, not as the prefix');
  t.same(await hits('Diabetes en diabetici'), ['medical-words:diabet*'], 'one prefix is one distinct term however many words it matched');
  for (const word of ['nierbroodje', 'Van Nierop', 'kankeren', 'homogeen', 'lesboek', 'zelfmoordaanslag', 'psychosociaal', 'hij pleegt', 'hartelijk', 'leveren', 'huidig', 'oogst', 'longlist', 'bloedmooi', 'transport', 'energietransitie']) {
    t.same(await hits(word), [], `${word}: no term`);
  }
});

t.test('case and diacritics do not matter', async (t) => {
  for (const [a, b] of [
    ['suïcidaal', 'SUICIDAAL'],
    ['gezagsbeëindigende maatregel', 'Gezagsbeeindigende-maatregel'],
    ['Koerdische afkomst', 'koerdische  AFKOMST'],
    ['Hiv-positief', 'hiv positief'],
  ] as const) {
    t.same((await scan(b)).encrypting, (await scan(a)).encrypting, `${a} = ${b}`);
    t.equal((await scan(b)).decision, 'encrypt', b);
  }
});

t.test('the classic traps do not encrypt on their own', async (t) => {
  const traps = [
    'De Katholieke basisschool De Regenboog zoekt een conciërge.',
    'Zij studeerde aan de Islamitische Universiteit in Rotterdam.',
    'De aangifte omzetbelasting over het derde kwartaal is ingediend.',
    'Uw zorgverzekering wordt per 1 januari verlengd.',
    'De medische afdeling van de gemeente is verhuisd naar de tweede verdieping.',
    'The keynote was about the stroke of genius behind the new virus scanner.',
    'Als het lukt, kom ik morgen langs. ALS dat niet lukt, bel ik.',
    'Pas op voor verdachte e-mails: meld phishing en fraude bij de servicedesk.',
    'Het proces-verbaal van oplevering en het proces-verbaal van de stembureauzitting zijn ondertekend.',
    'Terbeschikkingstelling van personeel valt onder de NBBU-cao; de proeftijd is twee maanden.',
    'Klantgerichtheid zit in ons DNA. Ontgrendel de laptop met je vingerafdruk.',
    'Wij selecteren ongeacht afkomst, etniciteit, huidskleur, godsdienst, levensovertuiging, politieke gezindheid, seksuele geaardheid of handicap.',
    'Wij verwerken geen bijzondere persoonsgegevens, zoals gezondheidsgegevens, biometrische gegevens, genetische gegevens of strafrechtelijke gegevens.',
    'De fracties van VVD, PvdA, GroenLinks en D66 dienden samen een motie in. Het raadslid van de SP stemde tegen.',
    'De vakbonden FNV en CNV hebben het cao-bod afgewezen; de vakbondsleden stemmen volgende week.',
    'Scholen van protestants-christelijke, rooms-katholieke en islamitische signatuur doen mee.',
    'Rij voorzichtig en kom veilig thuis!',
    'Er is ingebroken: twee laptops gestolen, aangifte gedaan bij de politie.',
    'De Turkse leverancier levert de Chinese onderdelen van Chinese origin.',
    'Staar je niet blind op de cijfers; de verwachtingen waren overspannen.',
    'De energietransitie en de transitie naar duurzame inkoop staan op de agenda.',
    'Vrijdag is de sponsorloop voor het Diabetes Fonds; ook KWF collecteert.',
    'Ik kreeg bijna een hartaanval toen ik de factuur zag.',
    'Dit voorstel is een amputatie van het cultuurbudget.',
    'Twee moeders en twee vaders rijden mee naar de excursie; de klas bezoekt de moskee.',
    'Het Alzheimer Café organiseert een avond over dementie voor mantelzorgers.',
    'De griepprik wordt gegeven door de bedrijfsarts en een verpleegkundige van de arbodienst.',
    'Wachttijden polikliniek dermatologie, cardiologie en orthopedie; de huisartsen in de regio zijn geïnformeerd.',
    'Training Meldcode huiselijk geweld en kindermishandeling door een trainer van Veilig Thuis.',
    'De jaarcijfers van het Openbaar Ministerie: meer strafbeschikkingen en minder verdachten.',
    'Spreekuur van de vakbondsconsulent in de kantine over de nieuwe cao.',
    'Backlog grooming is on Tuesday; the local branch of the bank opens at nine.',
    'Neem een geldig identiteitsbewijs of paspoort mee; each student needs a valid passport.',
    'De cliënt beheert zijn eigen medicatie en bespreekt wijzigingen met zijn behandelaar.',
    'Iedere werknemer kan zijn vakbond inschakelen; niemand wordt afgewezen om zijn afkomst, zijn geloof of zijn geaardheid.',
    'Er is een tolk Arabisch aanwezig bij de informatieavond voor nieuwe inwoners.',
    'De jaarcijfers: 120 ondertoezichtstellingen, 40 uithuisplaatsingen en 300 taakstraffen in de regio.',
    'Vacature: gedragswetenschapper voor de gesloten jeugdhulp; ervaring met jeugdreclassering is een pré.',
    // issue 16, second round: the same words in ordinary mail
    'De meldcode-training van dinsdag gaat over de vijf stappen van de meldcode (Meldcode huiselijk geweld en kindermishandeling).',
    'De levering komt uit China en de onderdelen komen uit Turkije.',
    'Het voorjaar bleef dit jaar droog; de sloot staat sinds twee maanden droog.',
    'Wij zoeken medewerkers voor de zorg aan cliënten met een verstandelijke beperking; decubituspreventie en de decubitusmatras staan op de agenda.',
    'De actiedag voor betere financiering van de jeugdzorg is op 21 januari.',
    'Vluchtelingen uit Oekraïne kunnen zich melden bij het gemeentehuis.',
    'De penitentiaire inrichting houdt een open dag; we hebben drie maanden gekregen om de verbouwing af te ronden.',
    'We hebben twee maanden gekregen om de gebreken te herstellen, anders volgt een geldboete.',
    'Ontgrendel je laptop met je vingerafdruk of met gezichtsherkenning.',
  ];
  for (const text of traps) {
    const r = await scan(text);
    t.not(r.decision, 'encrypt', `${text} (${r.found.join(', ')})`);
  }
});
