/**
 * Colours for the HTML mails. The organisation colour fills the button; its
 * label is black or white, whichever contrasts more (WCAG 2 relative
 * luminance). Links on the white card use the organisation colour darkened
 * until it reaches 4.5:1 against white.
 */

export const DEFAULT_COLOUR = '#0b5394';
const WHITE = '#ffffff';
const BLACK = '#000000';

export interface Palette {
  /** Button background (the organisation colour). */
  colour: string;
  /** Button label: black or white. */
  onColour: string;
  /** Text links on white, at least 4.5:1. */
  link: string;
}

const HEX = /^#[0-9a-fA-F]{6}$/;

function channels(hex: string): [number, number, number] {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

function luminance(hex: string): number {
  const [r, g, b] = channels(hex).map((c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2 contrast ratio, 1 to 21. */
export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

/** Black or white, whichever is more readable on `background`. */
export function readableOn(background: string): string {
  return contrast(background, WHITE) >= contrast(background, BLACK) ? WHITE : BLACK;
}

function darken(hex: string, factor: number): string {
  return `#${channels(hex)
    .map((c) => Math.round(c * factor).toString(16).padStart(2, '0'))
    .join('')}`;
}

export function palette(configured: string | undefined): Palette {
  const colour = configured && HEX.test(configured) ? configured.toLowerCase() : DEFAULT_COLOUR;
  let link = colour;
  for (let factor = 0.9; contrast(link, WHITE) < 4.5 && factor > 0; factor -= 0.1) link = darken(colour, factor);
  if (contrast(link, WHITE) < 4.5) link = BLACK;
  return { colour, onColour: readableOn(colour), link };
}
