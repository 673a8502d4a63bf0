// Word classes for bounded attention without a POS tagger. The reference tags prompt tokens with NLTK and removes
// (masks) every token whose tag is a closed class: CC, CD, DT, EX, IN, LS, MD, PDT, POS, PRP, PRP$, RP, TO, UH, WDT,
// WP, WRB, with left/right/top/bottom forced to IN. Closed classes are small, so a word list covers them; the open
// classes only need telling nouns from verbs and adjectives, for picking the leading (head) token of a subject and for
// finding a prompt's subjects when no placeholder tokens are present.

export type WordClass =
  /** CC */
  | 'conjunction'
  /** CD */
  | 'number'
  /** DT, PDT */
  | 'determiner'
  /** EX */
  | 'existential'
  /** IN, and left/right/top/bottom */
  | 'preposition'
  /** MD */
  | 'modal'
  /** POS ('s) */
  | 'possessive'
  /** PRP, PRP$ */
  | 'pronoun'
  /** RP */
  | 'particle'
  /** TO */
  | 'to'
  /** UH */
  | 'interjection'
  /** WDT, WP, WRB */
  | 'wh'
  | 'verb'
  | 'adjective'
  | 'noun'
  /** a learned concept token such as <asset0> */
  | 'placeholder'
  | 'punctuation';

/** Classes whose tokens bounded attention hides from every pixel (the reference's NLTK filter tags). */
export const FILTERED_CLASSES: ReadonlySet<WordClass> = new Set<WordClass>([
  'conjunction',
  'number',
  'determiner',
  'existential',
  'preposition',
  'modal',
  'possessive',
  'pronoun',
  'particle',
  'to',
  'interjection',
  'wh',
]);

const CLOSED_CLASSES: [WordClass, string[]][] = [
  ['conjunction', ['and', 'or', 'but', 'nor', 'plus', '&']],
  [
    'number',
    [
      'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve',
      'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty', 'thirty', 'forty',
      'fifty', 'sixty', 'seventy', 'eighty', 'ninety', 'hundred', 'thousand', 'million', 'dozen',
    ],
  ],
  [
    'determiner',
    [
      'a', 'an', 'the', 'this', 'that', 'these', 'those', 'each', 'every', 'some', 'any', 'no', 'another', 'all',
      'both', 'either', 'neither', 'half', 'such',
    ],
  ],
  ['existential', ['there']],
  [
    'preposition',
    [
      'of', 'in', 'on', 'at', 'by', 'with', 'from', 'into', 'onto', 'over', 'under', 'above', 'below', 'beside',
      'besides', 'between', 'behind', 'beneath', 'underneath', 'near', 'across', 'along', 'alongside', 'around',
      'through', 'throughout', 'inside', 'outside', 'within', 'without', 'against', 'among', 'amid', 'toward',
      'towards', 'upon', 'about', 'after', 'before', 'during', 'for', 'like', 'than', 'since', 'until', 'via', 'per',
      'atop', 'beyond', 'past', 'despite', 'except', 'if', 'because', 'while', 'as', 'though', 'although', 'whether',
      'unless', 'left', 'right', 'top', 'bottom',
    ],
  ],
  ['modal', ['can', 'could', 'may', 'might', 'must', 'shall', 'should', 'will', 'would']],
  ["possessive", ["'s", "'"]],
  [
    'pronoun',
    [
      'i', 'me', 'you', 'he', 'him', 'she', 'her', 'it', 'we', 'us', 'they', 'them', 'myself', 'yourself', 'himself',
      'herself', 'itself', 'ourselves', 'themselves', 'my', 'your', 'his', 'its', 'our', 'their', 'mine', 'yours',
      'ours', 'theirs', 'one\'s',
    ],
  ],
  ['particle', ['up', 'off', 'out', 'down', 'away']],
  ['to', ['to']],
  ['interjection', ['oh', 'hey', 'wow', 'please', 'yes', 'hello', 'ah']],
  ['wh', ['which', 'whichever', 'whatever', 'who', 'whom', 'whoever', 'what', 'when', 'where', 'why', 'how', 'whenever', 'wherever']],
];

const VERBS = [
  'is', 'are', 'was', 'were', 'be', 'been', 'am', 'has', 'have', 'had', 'do', 'does', 'did', 'sit', 'sits', 'stand',
  'stands', 'lie', 'lies', 'hold', 'holds', 'wear', 'wears', 'play', 'plays', 'look', 'looks', 'eat', 'eats', 'fly',
  'flies', 'swim', 'swims', 'jump', 'jumps', 'walk', 'walks', 'sleep', 'sleeps', 'ride', 'rides', 'float', 'floats',
  'hang', 'hangs', 'rest', 'rests', 'lean', 'leans', 'made', 'covered', 'filled', 'dressed', 'placed', 'surrounded',
];

// Nouns that end in -ing, which would otherwise read as present participles (verbs).
const ING_NOUNS = [
  'building', 'painting', 'drawing', 'string', 'wedding', 'ceiling', 'clothing', 'evening',
  'morning', 'swing', 'thing', 'spring', 'pudding', 'dumpling', 'sibling', 'duckling', 'earring', 'icing',
  'frosting', 'stuffing', 'lightning', 'sling', 'bedding', 'railing', 'awning', 'bling', 'sapling', 'seedling',
  'gosling', 'herring', 'viking', 'landing', 'lighting', 'setting', 'rendering', 'carving', 'sculpting',
];

const ADJECTIVES = [
  // colours
  'red', 'orange', 'yellow', 'green', 'blue', 'purple', 'violet', 'pink', 'brown', 'black', 'white', 'gray', 'grey',
  'golden', 'silver', 'beige', 'cyan', 'magenta', 'teal', 'turquoise', 'ginger', 'dark', 'light', 'bright', 'pale',
  'colorful', 'colourful', 'striped', 'spotted', 'transparent',
  // size and shape
  'big', 'small', 'large', 'tiny', 'huge', 'little', 'tall', 'short', 'long', 'giant', 'mini', 'wide', 'narrow',
  'round', 'square', 'flat', 'thick', 'thin', 'fat',
  // material and texture
  'wooden', 'metallic', 'plastic', 'woolen', 'woollen', 'leather', 'furry', 'fluffy', 'shiny', 'soft', 'hard',
  'smooth', 'rough', 'ceramic', 'glossy', 'matte', 'knitted', 'stuffed',
  // other common modifiers in image prompts
  'old', 'new', 'young', 'cute', 'happy', 'sad', 'angry', 'pretty', 'beautiful', 'ugly', 'realistic', 'detailed',
  'highly', 'cinematic', 'vintage', 'modern', 'ancient', 'wet', 'dry', 'hot', 'cold', 'warm', 'empty', 'full',
  'open', 'closed', 'sunny', 'snowy', 'rainy', 'cloudy', 'famous', 'same', 'other', 'similar',
  'different', 'identical', 'front', 'back', 'next', 'middle', 'center', 'centre',
];

// Nouns that frame the picture rather than name a subject ("a photo of ...").
const FRAMING_NOUNS = new Set([
  'photo', 'photograph', 'picture', 'image', 'painting', 'drawing', 'sketch', 'illustration', 'render', 'rendering',
  'portrait', 'closeup', 'close-up', 'shot', 'view', 'scene', 'style', 'watercolor', 'watercolour', 'photography',
]);

const CLASS_OF = new Map<string, WordClass>();
for (const [cls, words] of CLOSED_CLASSES) for (const word of words) CLASS_OF.set(word, cls);
for (const word of VERBS) if (!CLASS_OF.has(word)) CLASS_OF.set(word, 'verb');
for (const word of ADJECTIVES) if (!CLASS_OF.has(word)) CLASS_OF.set(word, 'adjective');
const ING_NOUN_SET = new Set(ING_NOUNS);

/** The class of one lower-case prompt word (punctuation and digits included). */
export function classifyWord(word: string): WordClass {
  const lower = word.toLowerCase();
  if (lower.length === 0) throw new Error('cannot classify an empty word');
  const known = CLASS_OF.get(lower);
  if (known) return known;
  if (/^\p{N}+$/u.test(lower)) return 'number';
  if (!/[\p{L}\p{N}]/u.test(lower)) return 'punctuation';
  if (lower.length > 4 && lower.endsWith('ing') && !ING_NOUN_SET.has(lower)) return 'verb';
  if (/(ful|ous|less)$/.test(lower) && lower.length > 5) return 'adjective';
  return 'noun';
}

export function isFilteredClass(cls: WordClass): boolean {
  return FILTERED_CLASSES.has(cls);
}

/** Nouns and placeholders can head a subject. */
export function isNominal(cls: WordClass): boolean {
  return cls === 'noun' || cls === 'placeholder';
}

export function isFramingNoun(word: string): boolean {
  return FRAMING_NOUNS.has(word.toLowerCase());
}
