/**
 * Content-Transfer-Encoding decoders that work piece by piece, synchronously,
 * so the MIME walker can pull a part's bytes without a stream in between.
 * Both are lenient: mail in the wild breaks the rules, and a part that cannot
 * be decoded strictly is still better scanned than skipped.
 */
export interface TransferDecoder {
  write(input: Buffer): Buffer;
  end(): Buffer;
}

const EMPTY = Buffer.alloc(0);

class Identity implements TransferDecoder {
  write(input: Buffer): Buffer {
    return input;
  }
  end(): Buffer {
    return EMPTY;
  }
}

/** Base64: ignores every byte outside the alphabet; keeps an incomplete quantum for the next piece. */
export class Base64Decoder implements TransferDecoder {
  private carry = '';

  write(input: Buffer): Buffer {
    const clean = this.carry + input.toString('latin1').replace(/[^A-Za-z0-9+/]/g, '');
    const whole = clean.length - (clean.length % 4);
    this.carry = clean.slice(whole);
    return whole ? Buffer.from(clean.slice(0, whole), 'base64') : EMPTY;
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = '';
    // One leftover character carries no full byte.
    return rest.length > 1 ? Buffer.from(rest, 'base64') : EMPTY;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Quoted-printable: `=XX` escapes, soft line breaks (`=` at a line end, with
 * or without CR, trailing blanks tolerated); a stray `=` stays as it is. An
 * `=` too close to the end of a piece waits for the next one.
 */
export class QuotedPrintableDecoder implements TransferDecoder {
  private carry: Buffer = EMPTY;

  write(input: Buffer): Buffer {
    return this.decode(this.carry.length ? Buffer.concat([this.carry, input]) : input, false);
  }

  end(): Buffer {
    const rest = this.carry;
    this.carry = EMPTY;
    return rest.length ? this.decode(rest, true) : EMPTY;
  }

  private decode(buf: Buffer, final: boolean): Buffer {
    const out = Buffer.allocUnsafe(buf.length);
    let o = 0;
    let i = 0;
    this.carry = EMPTY;
    while (i < buf.length) {
      const c = buf[i] as number;
      if (c !== 0x3d) {
        out[o++] = c;
        i++;
        continue;
      }
      // Look past blanks for a line end: `=` + blanks + (CR)LF is a soft break.
      let j = i + 1;
      while (j < buf.length && (buf[j] === 0x20 || buf[j] === 0x09)) j++;
      if (j >= buf.length - 1 && !final) {
        // Not enough bytes to tell an escape from a soft break yet.
        if (j >= buf.length || buf[j] === 0x0d || hexValue(buf[j] as number) >= 0) {
          this.carry = Buffer.from(buf.subarray(i));
          break;
        }
      }
      if (buf[j] === 0x0a) {
        i = j + 1;
        continue;
      }
      if (buf[j] === 0x0d && buf[j + 1] === 0x0a) {
        i = j + 2;
        continue;
      }
      if (j >= buf.length) {
        // `=` (and blanks) at the very end of the part: a soft break.
        i = j;
        continue;
      }
      const hi = hexValue(buf[i + 1] ?? -1);
      const lo = hexValue(buf[i + 2] ?? -1);
      if (hi >= 0 && lo >= 0) {
        out[o++] = (hi << 4) | lo;
        i += 3;
      } else {
        out[o++] = c;
        i++;
      }
    }
    return out.subarray(0, o);
  }
}

export function transferDecoder(encoding: string | false | undefined): TransferDecoder {
  switch ((encoding || '').toLowerCase().trim()) {
    case 'base64':
      return new Base64Decoder();
    case 'quoted-printable':
      return new QuotedPrintableDecoder();
    default:
      return new Identity();
  }
}
