#!/usr/bin/env python3
# Generates worker/engine/clip/unicode_tables.cc: the Unicode data the CLIP tokenizer
# needs (letter/number/space classes, lower-casing, NFC) from Python's unicodedata.
"""Write worker/engine/clip/unicode_tables.cc from Python's unicodedata.

The tokenizer has to classify characters like Oniguruma's \\p{L}, \\p{N} and \\s,
lower-case like Rust's char::to_lowercase and compose like NFC, without ICU.
The tables are compact sorted ranges searched by binary search.

Hugging Face tokenizers takes its NFC from unicode-normalization-alignments,
whose data is Unicode 9.0: marks and decompositions added later are left as
they are (its U+08D1 stays unordered, say). So the NFC tables keep only code
points that Unicode 9.0 had, which needs the age of each code point: Python
has no accessor for it, so DerivedAge.txt is read (Debian's unicode-data
package installs it under /usr/share/unicode). Classes and lower-casing follow
Python's own Unicode version.

    python3 scripts/gen_unicode_tables.py            # rewrites the file
    python3 scripts/gen_unicode_tables.py --check    # exits 1 if it is stale
"""

import argparse
import os
import sys
import unicodedata

MAX_CP = 0x110000
SURROGATES = range(0xD800, 0xE000)
HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
NFC_UNICODE_VERSION = (9, 0)
DEFAULT_DERIVED_AGE = "/usr/share/unicode/DerivedAge.txt"

# PropList.txt's White_Space, which is what Oniguruma's \s and Rust's
# char::is_whitespace use. unicodedata has no accessor for it, and str.isspace
# differs (it adds U+001C..U+001F), so the list is spelled out; it has not
# changed since Unicode 6.3.
WHITE_SPACE = [(0x0009, 0x000D), (0x0020, 0x0020), (0x0085, 0x0085), (0x00A0, 0x00A0),
               (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F),
               (0x205F, 0x205F), (0x3000, 0x3000)]


def code_points():
    for cp in range(MAX_CP):
        if cp not in SURROGATES:
            yield cp


def ranges_where(pred):
    """Sorted inclusive (lo, hi) ranges of code points for which pred holds."""
    out = []
    for cp in code_points():
        if pred(cp):
            if out and out[-1][1] == cp - 1:
                out[-1][1] = cp
            else:
                out.append([cp, cp])
    return [tuple(r) for r in out]


def category_ranges(major):
    """Ranges of a major general category: "L" for \\p{L}, "N" for \\p{N}."""
    return ranges_where(lambda cp: unicodedata.category(chr(cp))[0] == major)


def word_ranges():
    # Rust regex's \w (used by tokenizers for single_word added tokens) is
    # Alphabetic | M | Nd | Pc | Join_Control; L | Nl | M | Nd | Pc plus the
    # two joiners is the closest that unicodedata can express.
    def pred(cp):
        cat = unicodedata.category(chr(cp))
        return (cat[0] in ("L", "M") or cat in ("Nd", "Nl", "Pc")
                or cp in (0x200C, 0x200D))
    return ranges_where(pred)


def read_ages(path):
    """Code point -> (major, minor) of the Unicode version that assigned it."""
    ages = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cps, version = [x.strip() for x in line.split(";")]
            lo, _, hi = cps.partition("..")
            major, minor = version.split(".")[:2]
            for cp in range(int(lo, 16), int(hi or lo, 16) + 1):
                ages[cp] = (int(major), int(minor))
    return ages


def ccc_ranges(in_nfc_version):
    out = []
    for cp in code_points():
        ccc = unicodedata.combining(chr(cp)) if in_nfc_version(cp) else 0
        if ccc == 0:
            continue
        if out and out[-1][1] == cp - 1 and out[-1][2] == ccc:
            out[-1][1] = cp
        else:
            out.append([cp, cp, ccc])
    return [tuple(r) for r in out]


def lower_tables():
    # Per code point, as Rust's char::to_lowercase (no final-sigma context),
    # which is what chr(cp).lower() gives for a lone character.
    single, multi = [], []
    for cp in code_points():
        low = chr(cp).lower()
        if low == chr(cp):
            continue
        if len(low) == 1:
            single.append((cp, ord(low)))
        else:
            assert len(low) <= 3, hex(cp)
            multi.append((cp, [ord(c) for c in low]))
    return single, multi


def lower_runs(single):
    """Packs (from, to) pairs into runs (lo, hi, stride, delta): from lo to hi
    every stride-th code point maps to itself plus delta (A-Z is one run,
    the alternating upper/lower pairs of Latin Extended-A another)."""
    runs = []
    for cp, low in single:
        delta = low - cp
        if runs:
            lo, hi, stride, d = runs[-1]
            step = cp - hi
            if d == delta and step in (1, 2) and (stride == step or lo == hi):
                runs[-1] = [lo, cp, step, d]
                continue
        runs.append([cp, cp, 1, delta])
    return [tuple(r) for r in runs]


def decomposition_tables(in_nfc_version):
    """Full canonical decompositions (Hangul syllables excluded: algorithmic)."""
    decomp = []
    for cp in code_points():
        if HANGUL_FIRST <= cp <= HANGUL_LAST or not in_nfc_version(cp):
            continue
        nfd = unicodedata.normalize("NFD", chr(cp))
        if nfd != chr(cp):
            decomp.append((cp, [ord(c) for c in nfd]))
    return decomp


def composition_table(in_nfc_version):
    """Primary composites: two-character canonical mappings that NFC keeps."""
    pairs = []
    for cp in code_points():
        if HANGUL_FIRST <= cp <= HANGUL_LAST or not in_nfc_version(cp):
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) != 2:
            continue
        if unicodedata.normalize("NFC", chr(cp)) != chr(cp):
            continue  # a composition exclusion
        pairs.append((parts[0], parts[1], cp))
    pairs.sort()
    return pairs


def fmt_rows(items, per_line, fmt):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(fmt(x) for x in items[i:i + per_line]))
    return "\n".join(lines)


def generate(ages):
    def in_nfc_version(cp):
        return ages.get(cp, (99, 0)) <= NFC_UNICODE_VERSION

    letters = category_ranges("L")
    numbers = category_ranges("N")
    words = word_ranges()
    cccs = ccc_ranges(in_nfc_version)
    lower_single, lower_multi = lower_tables()
    decomp = decomposition_tables(in_nfc_version)
    comps = composition_table(in_nfc_version)

    decomp_flat, decomp_index = [], []
    for cp, seq in decomp:
        decomp_index.append((cp, len(decomp_flat), len(seq)))
        decomp_flat.extend(seq)

    r = lambda x: "{0x%04X, 0x%04X}," % x
    out = []
    out.append("// Unicode %s classes and lower-casing, Unicode %d.%d NFC (as Hugging Face tokenizers)"
               % ((unicodedata.unidata_version,) + NFC_UNICODE_VERSION))
    out.append("// for the CLIP tokenizer. GENERATED by scripts/gen_unicode_tables.py; do not edit.")
    out.append('#include "worker/engine/clip/unicode_tables.h"')
    out.append("")
    out.append("#include <algorithm>")
    out.append("#include <cstddef>")
    out.append("#include <cstdint>")
    out.append("#include <iterator>")
    out.append("#include <utility>")
    out.append("")
    out.append("namespace diffsearch::engine::unicode {")
    out.append("namespace {")
    out.append("")
    out.append("struct Range {")
    out.append("  char32_t lo, hi;")
    out.append("};")
    out.append("struct CccRange {")
    out.append("  char32_t lo, hi;")
    out.append("  std::uint8_t ccc;")
    out.append("};")
    out.append("struct LowerRun {")
    out.append("  char32_t lo, hi;")
    out.append("  std::uint8_t stride;")
    out.append("  std::int32_t delta;")
    out.append("};")
    out.append("struct MultiMapping {")
    out.append("  char32_t from;")
    out.append("  char32_t to[3];")
    out.append("  std::uint8_t length;")
    out.append("};")
    out.append("struct Decomposition {")
    out.append("  char32_t from;")
    out.append("  std::uint16_t offset;")
    out.append("  std::uint8_t length;")
    out.append("};")
    out.append("struct Composition {")
    out.append("  char32_t first, second, composite;")
    out.append("};")
    out.append("")
    out.append("constexpr Range kLetter[] = {")
    out.append(fmt_rows(letters, 4, r))
    out.append("};")
    out.append("constexpr Range kNumber[] = {")
    out.append(fmt_rows(numbers, 4, r))
    out.append("};")
    out.append("constexpr Range kWhiteSpace[] = {")
    out.append(fmt_rows(WHITE_SPACE, 4, r))
    out.append("};")
    out.append("constexpr Range kWord[] = {")
    out.append(fmt_rows(words, 4, r))
    out.append("};")
    out.append("constexpr CccRange kCcc[] = {")
    out.append(fmt_rows(cccs, 3, lambda x: "{0x%04X, 0x%04X, %d}," % x))
    out.append("};")
    out.append("constexpr LowerRun kLower[] = {")
    out.append(fmt_rows(lower_runs(lower_single), 3, lambda x: "{0x%04X, 0x%04X, %d, %d}," % x))
    out.append("};")
    out.append("constexpr MultiMapping kLowerMulti[] = {")
    out.append(fmt_rows(lower_multi, 1, lambda x: "{0x%04X, {%s}, %d}," % (
        x[0], ", ".join("0x%04X" % c for c in (x[1] + [0, 0, 0])[:3]), len(x[1]))))
    out.append("};")
    assert len(decomp_flat) < 65536
    out.append("constexpr char32_t kDecompositionData[] = {")
    out.append(fmt_rows(decomp_flat, 8, lambda x: "0x%04X," % x))
    out.append("};")
    out.append("constexpr Decomposition kDecomposition[] = {")
    out.append(fmt_rows(decomp_index, 4, lambda x: "{0x%04X, %d, %d}," % x))
    out.append("};")
    out.append("constexpr Composition kComposition[] = {")
    out.append(fmt_rows(comps, 3, lambda x: "{0x%04X, 0x%04X, 0x%04X}," % x))
    out.append("};")
    out.append(TAIL.replace("@VERSION@", unicodedata.unidata_version))
    return "\n".join(out) + "\n"


# The lookups and the NFC algorithm (UAX #15: decompose, order, compose).
TAIL = r"""
template <std::size_t N>
bool in_ranges(const Range (&table)[N], char32_t cp) {
  const Range* end = table + N;
  const Range* it = std::upper_bound(table, end, cp,
                                     [](char32_t c, const Range& r) { return c < r.lo; });
  return it != table && cp <= (it - 1)->hi;
}

// Hangul syllables compose and decompose by arithmetic (Unicode 3.12).
constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount;
constexpr char32_t kHangulSCount = kHangulLCount * kHangulNCount;

void append_decomposed(char32_t cp, std::u32string& out) {
  if (cp >= kHangulS && cp < kHangulS + kHangulSCount) {
    char32_t s = cp - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  const Decomposition* end = std::end(kDecomposition);
  const Decomposition* it = std::lower_bound(
      std::begin(kDecomposition), end, cp,
      [](const Decomposition& d, char32_t c) { return d.from < c; });
  if (it != end && it->from == cp) {
    out.append(kDecompositionData + it->offset, it->length);
  } else {
    out.push_back(cp);
  }
}

// Returns 0 when the pair has no primary composite.
char32_t compose_pair(char32_t first, char32_t second) {
  if (first >= kHangulL && first < kHangulL + kHangulLCount && second >= kHangulV &&
      second < kHangulV + kHangulVCount) {
    return kHangulS + ((first - kHangulL) * kHangulVCount + (second - kHangulV)) * kHangulTCount;
  }
  if (first >= kHangulS && first < kHangulS + kHangulSCount &&
      (first - kHangulS) % kHangulTCount == 0 && second > kHangulT &&
      second < kHangulT + kHangulTCount) {
    return first + (second - kHangulT);
  }
  const Composition* end = std::end(kComposition);
  const Composition* it = std::lower_bound(
      std::begin(kComposition), end, std::make_pair(first, second),
      [](const Composition& c, const std::pair<char32_t, char32_t>& key) {
        return c.first != key.first ? c.first < key.first : c.second < key.second;
      });
  if (it != end && it->first == first && it->second == second) return it->composite;
  return 0;
}

}  // namespace

const char* version() { return "@VERSION@"; }

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= U'a' && (cp | 0x20) <= U'z';
  return in_ranges(kLetter, cp);
}

bool is_number(char32_t cp) {
  if (cp < 0x80) return cp >= U'0' && cp <= U'9';
  return in_ranges(kNumber, cp);
}

bool is_white_space(char32_t cp) { return in_ranges(kWhiteSpace, cp); }

bool is_word(char32_t cp) { return in_ranges(kWord, cp); }

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const CccRange* end = std::end(kCcc);
  const CccRange* it = std::upper_bound(std::begin(kCcc), end, cp,
                                        [](char32_t c, const CccRange& r) { return c < r.lo; });
  if (it != std::begin(kCcc) && cp <= (it - 1)->hi) return (it - 1)->ccc;
  return 0;
}

void append_lower(char32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out.push_back(cp >= U'A' && cp <= U'Z' ? cp + 0x20 : cp);
    return;
  }
  const LowerRun* it = std::upper_bound(std::begin(kLower), std::end(kLower), cp,
                                         [](char32_t c, const LowerRun& r) { return c < r.lo; });
  if (it != std::begin(kLower)) {
    const LowerRun& run = *(it - 1);
    if (cp <= run.hi && (cp - run.lo) % run.stride == 0) {
      out.push_back(static_cast<char32_t>(static_cast<std::int32_t>(cp) + run.delta));
      return;
    }
  }
  for (const MultiMapping& m : kLowerMulti) {
    if (m.from == cp) {
      out.append(m.to, m.length);
      return;
    }
  }
  out.push_back(cp);
}

std::u32string nfc(const std::u32string& text) {
  // Below U+0300 nothing decomposes into or composes with anything else that
  // is also below U+0300, so such text is already in NFC.
  bool simple = true;
  for (char32_t cp : text) {
    if (cp >= 0x300) {
      simple = false;
      break;
    }
  }
  if (simple) return text;

  std::u32string decomposed;
  decomposed.reserve(text.size() + 8);
  for (char32_t cp : text) append_decomposed(cp, decomposed);

  // Canonical ordering: stable sort of each run of non-starters by class.
  for (std::size_t i = 0; i < decomposed.size();) {
    if (combining_class(decomposed[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < decomposed.size() && combining_class(decomposed[j]) != 0) ++j;
    std::stable_sort(decomposed.begin() + i, decomposed.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }

  // Canonical composition: each character joins the last starter unless a
  // character between them has class 0 or a class not lower than its own.
  std::u32string out;
  out.reserve(decomposed.size());
  std::size_t starter = std::u32string::npos;
  int last_class = 0;
  for (char32_t cp : decomposed) {
    int cls = combining_class(cp);
    if (starter != std::u32string::npos) {
      bool adjacent = starter + 1 == out.size();
      bool blocked = !adjacent && (last_class == 0 || last_class >= cls);
      if (!blocked) {
        char32_t composite = compose_pair(out[starter], cp);
        if (composite != 0) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cls == 0) starter = out.size();
    last_class = cls;
    out.push_back(cp);
  }
  return out;
}

}  // namespace diffsearch::engine::unicode"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from what would be generated")
    parser.add_argument("--derived-age", default=DEFAULT_DERIVED_AGE,
                        help="the UCD's DerivedAge.txt (default: %(default)s, from Debian's unicode-data)")
    args = parser.parse_args()
    if not os.path.isfile(args.derived_age):
        sys.exit("%s not found: install Debian's unicode-data package or pass --derived-age"
                 % args.derived_age)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.path.join(root, "worker", "engine", "unicode_tables.cc")
    text = generate(read_ages(args.derived_age))
    if args.check:
        with open(target, encoding="utf-8") as f:
            same = f.read() == text
        print("up to date" if same else "stale: rerun scripts/gen_unicode_tables.py")
        return 0 if same else 1
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s (Unicode %s)" % (target, unicodedata.unidata_version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
