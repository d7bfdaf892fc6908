// {{name}}: an output filter policy (world `output-filter`).
//
// It redacts configured words (case-sensitive) from model responses, complete or
// streamed. Configuration (the `config` of policy.toml):
//
//   {"words": ["CONFIDENTIAL"]}      // the default
//
// Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
// `portcullis test`. JavaScript strings index UTF-16 units; spans and the stream's
// hold-back are counted in UTF-8 bytes (`p.utf8Length` measures).

import * as p from '{{js_sdk}}';

const DEFAULT_WORDS = ['CONFIDENTIAL'];
const REPLACEMENT = '[REDACTED]';

/** The configured words; bad configuration fails the evaluation. */
function redactedWords() {
  const config = p.config();
  if (Object.keys(config).some((key) => key !== 'words')) {
    p.fail('unknown configuration field(s): the only field is words');
  }
  const { words = DEFAULT_WORDS } = config; // the default applies only when absent
  if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) {
    p.fail('words must be a list of strings');
  }
  if (words.includes('')) p.fail(`words[${words.indexOf('')}] is empty`);
  return words;
}

/** Every non-overlapping occurrence, left to right, as {start, end} (UTF-16 offsets),
 * {byteStart, byteEnd} (UTF-8) and the word's index; where several words match at one
 * position the first configured one wins. */
function occurrences(text, words) {
  const found = [];
  const upcoming = words.map((word) => text.indexOf(word)); // next start of each; -1: none
  let bytes = 0; // UTF-8 length of text before `at`
  for (let at = 0; ;) {
    let i = -1;
    words.forEach((word, k) => {
      if (upcoming[k] >= 0 && upcoming[k] < at) upcoming[k] = text.indexOf(word, at); // overtaken
      if (upcoming[k] >= 0 && (i < 0 || upcoming[k] < upcoming[i])) i = k;
    });
    if (i < 0) return found;
    const start = upcoming[i];
    const byteStart = bytes + p.utf8Length(text.slice(at, start));
    at = start + words[i].length;
    bytes = byteStart + p.utf8Length(words[i]);
    found.push({ start, end: at, word: i, byteStart, byteEnd: bytes });
  }
}

/** The finding for one occurrence; `offset` (bytes) shifts its span. */
function redactionFinding({ word, byteStart, byteEnd }, offset = 0) {
  return p.byteFinding('redacted-word', 'medium', `redacted word ${word}`, 0,
    offset + byteStart, offset + byteEnd);
}

/** One streamed response. Text is held back until no word can still be completed by a
 * later chunk; spans count bytes from the start of the whole stream. */
class ResponseStream {
  constructor(context) {
    this.words = redactedWords();
    this.hold = Math.max(0, ...this.words.map((w) => p.utf8Length(w) - 1)); // bytes
    this.pending = ''; // received, not yet released
    this.released = 0; // bytes of the stream released so far
  }

  push(chunk) {
    this.pending += chunk;
    return this.release(false);
  }

  finish() {
    return this.release(true);
  }

  release(everything) {
    const found = occurrences(this.pending, this.words);
    const cut = everything ? this.pending.length : this.safeCut(found);
    const findings = [];
    let text = '';
    let copied = 0;
    for (const occurrence of found) {
      if (occurrence.start >= cut) break;
      text += this.pending.slice(copied, occurrence.start) + REPLACEMENT;
      findings.push(redactionFinding(occurrence, this.released));
      copied = occurrence.end;
    }
    text += this.pending.slice(copied, cut);
    this.released += p.utf8Length(this.pending.slice(0, cut));
    this.pending = this.pending.slice(cut);
    return { tag: 'emit', val: { text, findings } };
  }

  /** All but the hold-back tail (whole characters only), moved back to the start of an
   * occurrence that would straddle it. */
  safeCut(found) {
    const limit = p.utf8Length(this.pending) - this.hold;
    let cut = 0;
    let bytes = 0;
    for (const ch of this.pending) { // iterates whole characters, never half a pair
      bytes += p.utf8Length(ch);
      if (bytes > limit) break;
      cut += ch.length;
    }
    const straddling = found.find(({ start, end }) => start < cut && cut < end);
    return straddling ? straddling.start : cut;
  }
}

export const responseFilter = {
  checkResponse(context, text) {
    const findings = occurrences(text, redactedWords()).map((o) => redactionFinding(o));
    return p.redact(findings, REPLACEMENT);
  },
  ResponseStream,
};
