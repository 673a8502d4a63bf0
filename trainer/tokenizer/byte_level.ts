// GPT-2/CLIP byte-level alphabet: every byte maps to one printable character so BPE never sees whitespace or
// control characters. Printable Latin-1 bytes map to themselves; the other 68 bytes map to U+0100 onwards.

function buildByteToCharacter(): string[] {
  const printable = (byte: number) => (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let byte = 0; byte < 256; byte++) {
    table[byte] = String.fromCodePoint(printable(byte) ? byte : 256 + shifted++);
  }
  return table;
}

const BYTE_TO_CHARACTER = buildByteToCharacter();
const CHARACTER_TO_BYTE = new Map(BYTE_TO_CHARACTER.map((char, byte) => [char, byte]));
const utf8Encoder = new TextEncoder();
// Invalid byte sequences become U+FFFD, as Python's bytes.decode(errors="replace").
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

/** UTF-8 bytes of `text`, each shown as its byte-level character. */
export function bytesToUnicode(text: string): string {
  let out = '';
  for (const byte of utf8Encoder.encode(text)) out += BYTE_TO_CHARACTER[byte];
  return out;
}

/** Inverse of bytesToUnicode; characters outside the byte alphabet are an error. */
export function unicodeToBytes(text: string): string {
  const bytes: number[] = [];
  for (const char of text) {
    const byte = CHARACTER_TO_BYTE.get(char);
    if (byte === undefined) throw new Error(`'${char}' is not a byte-level BPE character`);
    bytes.push(byte);
  }
  return utf8Decoder.decode(new Uint8Array(bytes));
}
