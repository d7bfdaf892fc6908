// Glob patterns, as in the Rust policy: `*` matches any run of characters (including
// none), `?` exactly one character (code point), everything else itself; the whole
// text must match. A pattern is split at its stars into chunks: the first must match
// at the start, the last at the end, the others in order, each at its leftmost place
// (which is optimal for star-separated chunks), so matching is linear per chunk and
// never backtracks. Chunks without `?` use native string search.

/** A compiled glob pattern. */
export class Glob {
  constructor(pattern) {
    this.chunks = pattern.split('*').map(compileChunk);
    /** Whether the pattern starts with `*`. */
    this.leadingStar = pattern.startsWith('*');
  }

  /** Whether the whole of `text` matches. */
  matches(text) {
    const chunks = this.chunks;
    if (chunks.length === 1) return chunks[0].whole(text);
    let pos = chunks[0].prefix(text);
    for (let i = 1; pos >= 0 && i < chunks.length - 1; i++) pos = chunks[i].find(text, pos);
    return pos >= 0 && chunks[chunks.length - 1].suffix(text, pos);
  }
}

/** Globs by pattern (compiled once per instance). */
const compiled = new Map();

/** The compiled glob for `pattern` (compiled once per instance). */
export function glob(pattern) {
  let g = compiled.get(pattern);
  if (!g) {
    g = new Glob(pattern);
    compiled.set(pattern, g);
  }
  return g;
}

function compileChunk(chunk) {
  return chunk.includes('?') ? new WildChunk(chunk) : new LiteralChunk(chunk);
}

/** A chunk of literal characters. Each method answers where the match ends, or -1. */
class LiteralChunk {
  constructor(text) {
    this.text = text;
  }

  whole(text) {
    return text === this.text;
  }

  prefix(text) {
    return text.startsWith(this.text) ? this.text.length : -1;
  }

  find(text, from) {
    const at = text.indexOf(this.text, from);
    return at < 0 ? -1 : at + this.text.length;
  }

  suffix(text, from) {
    return text.length - this.text.length >= from && text.endsWith(this.text);
  }
}

/** A chunk with `?` (one code point), matched with a regex without repetition. */
class WildChunk {
  constructor(chunk) {
    const source = chunk.replace(/[\\^$.*+?()[\]{}|/]/g, (c) => (c === '?' ? '[^]' : `\\${c}`));
    this.wholeRe = new RegExp(`^(?:${source})$`, 'u');
    this.prefixRe = new RegExp(`^(?:${source})`, 'u');
    this.findRe = new RegExp(source, 'gu');
    this.suffixRe = new RegExp(`(?:${source})$`, 'gu');
  }

  whole(text) {
    return this.wholeRe.test(text);
  }

  prefix(text) {
    const m = this.prefixRe.exec(text);
    return m ? m[0].length : -1;
  }

  find(text, from) {
    this.findRe.lastIndex = from;
    const m = this.findRe.exec(text);
    return m ? m.index + m[0].length : -1;
  }

  suffix(text, from) {
    this.suffixRe.lastIndex = from;
    return this.suffixRe.exec(text) !== null;
  }
}

/** Texts up to this length are matched against a set with one combined regex; longer
 * ones glob by glob (the regex backtracks through the text once per glob). */
const COMBINED_MAX_LENGTH = 1024;

/** A list of globs matched together: "does any of them match?". The globs whose stars
 * are only at the ends (all the built-in ones) also form one anchored regex, which
 * cannot backtrack more than once through the text per glob; a set costs one native
 * call on short texts instead of a call per glob. */
export class GlobSet {
  constructor(patterns) {
    this.globs = patterns.map(glob);
    this.leading = this.globs.filter((g) => g.leadingStar);
    this.all = new CombinedGlobs(patterns);
    this.allLeading = new CombinedGlobs(patterns.filter((pattern) => pattern.startsWith('*')));
  }

  /** Whether any glob matches the whole of `text`. */
  matches(text) {
    return this.all.matches(text, this.globs);
  }

  /** Whether any glob starting with `*` matches the whole of `text`. */
  matchesLeadingStar(text) {
    return this.allLeading.matches(text, this.leading);
  }
}

/** One regex for the globs with stars only at their ends, the others kept apart. */
class CombinedGlobs {
  constructor(patterns) {
    const simple = patterns.filter((pattern) => !pattern.replace(/^\*+|\*+$/g, '').includes('*'));
    this.others = patterns.filter((pattern) => !simple.includes(pattern)).map(glob);
    const wild = simple.some((pattern) => pattern.includes('?'));
    const alternatives = simple.map((pattern) => pattern.replace(/[\\^$.*+?()[\]{}|/]/g,
      (c) => ({ '*': '[^]*', '?': '[^]' }[c] ?? `\\${c}`)));
    this.regex = simple.length ? new RegExp(`^(?:${alternatives.join('|')})$`, wild ? 'u' : '') : undefined;
  }

  /** Whether a glob matches `text`; `globs` are all of them, compiled one by one. */
  matches(text, globs) {
    if (text.length > COMBINED_MAX_LENGTH) return globs.some((g) => g.matches(text));
    return (this.regex !== undefined && this.regex.test(text)) || this.others.some((g) => g.matches(text));
  }
}
