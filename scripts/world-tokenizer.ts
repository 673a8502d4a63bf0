// Writes the CLIP-format tokenizer of the world's caption vocabulary (every caption word one token).
//
//   npx tsx scripts/world-tokenizer.ts --out path/to/model/tokenizer [--pad '!'|'<|endoftext|>'] [--headroom 32]
// Prints the vocabulary size and the text encoder's vocab_size (vocabulary plus headroom for placeholder tokens).
import { parseArgs } from 'node:util';
import { writeClipTokenizer } from '../trainer/world/tokenizer_files.ts';
import { worldVocabulary } from '../trainer/world/vocabulary.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    pad: { type: 'string', default: '!' },
    headroom: { type: 'string', default: '32' },
  },
});
if (!values.out) throw new Error('--out DIR is required');
if (values.pad !== '!' && values.pad !== '<|endoftext|>') throw new Error(`--pad must be '!' or '<|endoftext|>', got ${values.pad}`);
const headroom = Number(values.headroom);
const words = worldVocabulary();
const build = writeClipTokenizer(values.out, words, { padToken: values.pad, headroom });
console.log(`wrote ${values.out}: ${words.length} words, vocab.json ${build.vocabSize} entries, text encoder vocab_size ${build.textEncoderVocabSize}`);
