import fs from 'node:fs';

const KEEP_RUNS = 5;

/**
 * Puts a benchmark run's section (starting `### Run of …`) first between the
 * `start` and `end` markers of bench/README.md, keeping the newest five runs.
 * When the markers are missing, they are added at the end under `heading`.
 */
export function writeResults(readme, { start, end, heading }, section) {
  let text = fs.existsSync(readme) ? fs.readFileSync(readme, 'utf8') : '';
  if (!text.includes(start) || !text.includes(end)) {
    text = `${text.trimEnd() || '# Benchmarks'}\n\n${heading}\n\n${start}\n${end}\n`;
  }
  const [head, rest] = text.split(start);
  const [body, tail] = rest.split(end);
  const runs = body
    .split(/\n(?=### Run of )/)
    .map((s) => s.trim())
    .filter((s) => s.startsWith('### Run of '));
  const kept = [section.trim(), ...runs].slice(0, KEEP_RUNS);
  fs.writeFileSync(readme, `${head}${start}\n\n${kept.join('\n\n')}\n\n${end}${tail}`);
}
