// The text clean-up transformers' slow CLIPTokenizer applies when ftfy is not installed: its BasicTokenizer with
// lower-casing on, accents kept and no punctuation split. The golden fixtures were produced on that path, so
// this mirrors it rather than ftfy.

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

function isRemovedCharacter(char: string): boolean {
  const codePoint = char.codePointAt(0)!;
  if (codePoint === 0 || codePoint === 0xfffd) return true;
  if (char === '\t' || char === '\n' || char === '\r') return false;
  return CONTROL.test(char);
}

function isWhitespace(char: string): boolean {
  return char === ' ' || char === '\t' || char === '\n' || char === '\r' || SPACE_SEPARATOR.test(char);
}

/** CJK Unified Ideographs blocks that BERT's BasicTokenizer treats as words of their own. */
function isCjkIdeograph(codePoint: number): boolean {
  return (
    (codePoint >= 0x4e00 && codePoint <= 0x9fff) ||
    (codePoint >= 0x3400 && codePoint <= 0x4dbf) ||
    (codePoint >= 0x20000 && codePoint <= 0x2a6df) ||
    (codePoint >= 0x2a700 && codePoint <= 0x2b73f) ||
    (codePoint >= 0x2b740 && codePoint <= 0x2b81f) ||
    (codePoint >= 0x2b820 && codePoint <= 0x2ceaf) ||
    (codePoint >= 0xf900 && codePoint <= 0xfaff) ||
    (codePoint >= 0x2f800 && codePoint <= 0x2fa1f)
  );
}

/**
 * Drops NUL, U+FFFD and control/format characters, turns whitespace into spaces, isolates CJK ideographs,
 * NFC-normalises, lower-cases, and re-joins the whitespace-separated words with single spaces.
 */
export function basicClean(text: string): string {
  let cleaned = '';
  for (const char of text) {
    if (isRemovedCharacter(char)) continue;
    if (isWhitespace(char)) cleaned += ' ';
    else if (isCjkIdeograph(char.codePointAt(0)!)) cleaned += ` ${char} `;
    else cleaned += char;
  }
  return cleaned
    .normalize('NFC')
    .split(/\s+/u)
    .filter((word) => word.length > 0)
    .map((word) => word.toLowerCase())
    .join(' ');
}
