// CLIP BPE tokenizer: file loading, added-token splitting, normalization, CLIP's
// pre-tokenization regex, byte-level mapping, BPE merges with a cache, padding.
#include "worker/engine/clip/clip_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "io/error.h"
#include "io/log/log.h"
#include "worker/engine/clip/unicode_tables.h"

namespace diffsearch::engine {
namespace {

using Json = nlohmann::json;

// What the tokenizers library calls an AddedToken: text matched before the
// BPE model sees it and given its own id (CLIP's special tokens, and "!" where
// it is the pad token, as in SD2.x).
struct AddedToken {
  std::u32string content;  // normalized content for `normalized` tokens
  std::int64_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = true;
};

// A piece of the prompt: either an added token (id >= 0) or text still to split.
struct Segment {
  std::u32string text;
  std::int64_t id = -1;
};

// tokenizers caps its BPE cache at this many words and then stops inserting.
constexpr std::size_t kCacheCapacity = 10000;
constexpr const char* kEndOfWord = "</w>";

// ---------------------------------------------------------------- UTF-8

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string to_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(cp, out);
  return out;
}

// Decodes one code point at `pos`; returns its length, or 0 if the bytes there
// are not well-formed UTF-8 (overlong forms and surrogates included).
std::size_t decode_utf8_at(const std::string& text, std::size_t pos, char32_t& cp) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char b0 = byte(pos);
  std::size_t length;
  char32_t min;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    cp = b0 & 0x1F, length = 2, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    cp = b0 & 0x0F, length = 3, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    cp = b0 & 0x07, length = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (pos + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
  return length;
}

std::u32string from_utf8(const std::string& text, const std::string& what) {
  std::u32string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    char32_t cp;
    std::size_t length = decode_utf8_at(text, pos, cp);
    if (length == 0) {
      std::ostringstream message;
      message << what << " is not valid UTF-8 (byte 0x" << std::hex
              << static_cast<int>(static_cast<unsigned char>(text[pos])) << std::dec
              << " at offset " << pos << "); pass UTF-8 text";
      throw InputError(message.str());
    }
    out.push_back(cp);
    pos += length;
  }
  return out;
}

// Like Rust's String::from_utf8_lossy: decoding BPE tokens can cut a
// multi-byte character, which becomes U+FFFD as in transformers.
std::string sanitize_utf8(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t pos = 0; pos < bytes.size();) {
    char32_t cp;
    std::size_t length = decode_utf8_at(bytes, pos, cp);
    if (length == 0) {
      append_utf8(0xFFFD, out);
      ++pos;
    } else {
      out.append(bytes, pos, length);
      pos += length;
    }
  }
  return out;
}

// ---------------------------------------------------------------- byte level

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// others for U+0100 onwards, so that every byte is a visible vocab character.
std::array<char32_t, 256> byte_to_char_table() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

// ---------------------------------------------------------------- files

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool file_exists(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error);
}

std::string read_file(const std::string& path, const std::string& fix) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": file not found or not readable; " + fix);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Json parse_json(const std::string& path, const std::string& fix) {
  std::string text = read_file(path, fix);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw InputError(path + ": not valid JSON (" + e.what() + "); " + fix);
  }
}

}  // namespace

// ---------------------------------------------------------------- Impl

struct ClipTokenizer::Impl {
  std::string dir;
  std::unordered_map<std::string, std::int64_t> vocab;
  std::vector<std::string> id_to_token;
  // (left id, right id) -> (rank, merged id), as tokenizers' BPE keeps them.
  std::unordered_map<std::uint64_t, std::pair<std::int32_t, std::int64_t>> merges;
  std::array<char32_t, 256> byte_to_char{};
  std::unordered_map<char32_t, unsigned char> char_to_byte;
  std::array<std::int64_t, 256> byte_id{};      // id of the byte's character
  std::array<std::int64_t, 256> byte_eow_id{};  // id of the byte's character + "</w>"
  std::vector<AddedToken> raw_tokens;           // matched before normalization
  std::vector<AddedToken> normalized_tokens;    // matched after it
  std::unordered_map<std::int64_t, bool> added_special;  // id -> special, for decode
  std::int64_t bos = 0, eos = 0, pad = 0, unk = 0;
  std::size_t max_length = 77;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<std::int64_t>> cache;

  void load_vocab(const std::string& path);
  void load_merges(const std::string& path);
  void load_config(const std::string& config_path, const std::string& map_path);

  std::u32string normalize(const std::u32string& text) const;
  std::vector<Segment> split_added(const std::vector<Segment>& in,
                                   const std::vector<AddedToken>& tokens) const;
  void bpe(const std::string& word, std::vector<std::int64_t>& out) const;
  void encode_piece(const std::u32string& piece, std::vector<std::int64_t>& out) const;
  void encode_text(const std::u32string& text, std::vector<std::int64_t>& out) const;
  std::vector<std::int64_t> tokenize(const std::string& text) const;
};

namespace {

const std::string kVocabFix =
    "a CLIP tokenizer folder holds vocab.json (token -> id), merges.txt and "
    "tokenizer_config.json as save_pretrained writes them; copy them from the original model";

std::uint64_t pair_key(std::int64_t a, std::int64_t b) {
  return (static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint64_t>(b);
}

}  // namespace

void ClipTokenizer::Impl::load_vocab(const std::string& path) {
  Json json = parse_json(path, kVocabFix);
  if (!json.is_object() || json.empty()) {
    throw InputError(path + ": expected a JSON object mapping tokens to ids, found " +
                     std::string(json.type_name()) + "; " + kVocabFix);
  }
  std::int64_t max_id = -1;
  vocab.reserve(json.size());
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
        it.value().get<std::int64_t>() > std::numeric_limits<std::int32_t>::max()) {
      throw InputError(path + ": token \"" + it.key() +
                       "\" should map to a non-negative integer id, found " + it.value().dump() +
                       "; " + kVocabFix);
    }
    std::int64_t id = it.value().get<std::int64_t>();
    vocab.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  // Ids index the text encoder's embedding table, so they are dense.
  if (static_cast<std::size_t>(max_id) >= 2 * vocab.size() + 1024) {
    throw InputError(path + ": ids go up to " + std::to_string(max_id) + " for " +
                     std::to_string(vocab.size()) + " tokens; ids should run from 0 without "
                     "large gaps; " + kVocabFix);
  }
  id_to_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  for (const auto& entry : vocab) id_to_token[static_cast<std::size_t>(entry.second)] = entry.first;
}

void ClipTokenizer::Impl::load_merges(const std::string& path) {
  std::string text = read_file(path, kVocabFix);
  std::istringstream lines(text);
  std::string line;
  std::int32_t rank = 0;
  std::size_t line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // The first line is a "#version: 0.2" header; blank lines carry nothing.
    if (line.rfind("#version", 0) == 0 || line.empty()) continue;
    std::size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      throw InputError(path + ": line " + std::to_string(line_number) +
                       " should hold two tokens separated by one space, found \"" + line +
                       "\"; " + kVocabFix);
    }
    std::string left = line.substr(0, space);
    std::string right = line.substr(space + 1);
    for (const std::string* part : {&left, &right}) {
      if (vocab.find(*part) == vocab.end()) {
        throw InputError(path + ": line " + std::to_string(line_number) + ": token \"" + *part +
                         "\" is not in vocab.json; vocab.json and merges.txt must come from "
                         "the same tokenizer");
      }
    }
    auto merged = vocab.find(left + right);
    if (merged == vocab.end()) {
      throw InputError(path + ": line " + std::to_string(line_number) + ": merged token \"" +
                       left + right +
                       "\" is not in vocab.json; vocab.json and merges.txt must come from the "
                       "same tokenizer");
    }
    // A repeated pair keeps its last rank, as tokenizers' map does.
    merges[pair_key(vocab.at(left), vocab.at(right))] = {rank, merged->second};
    ++rank;
  }
  if (rank == 0) throw InputError(path + ": holds no merges; " + kVocabFix);
}

namespace {

// A special-token field of tokenizer_config.json: a string, or an AddedToken
// object with "content" and flags. Special tokens are not normalized unless
// the object says so (tokenizers' default for special tokens).
bool parse_added_token(const Json& value, const std::string& path, const std::string& field,
                       bool named_special, AddedToken& token, std::string& content) {
  if (value.is_null()) return false;
  if (value.is_string()) {
    content = value.get<std::string>();
    token.special = true;
    token.normalized = false;
    return true;
  }
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    content = value["content"].get<std::string>();
    auto flag = [&](const char* key, bool fallback) {
      return value.contains(key) && value[key].is_boolean() ? value[key].get<bool>() : fallback;
    };
    token.special = flag("special", named_special);
    token.normalized = flag("normalized", !flag("special", false));
    token.single_word = flag("single_word", false);
    token.lstrip = flag("lstrip", false);
    token.rstrip = flag("rstrip", false);
    if (named_special) token.special = true;
    return true;
  }
  throw InputError(path + ": field \"" + field +
                   "\" should be a string or an object with \"content\", found " + value.dump() +
                   "; fix the file or copy it from the original model");
}

}  // namespace

void ClipTokenizer::Impl::load_config(const std::string& config_path, const std::string& map_path) {
  Json config = parse_json(config_path, kVocabFix);
  if (!config.is_object()) {
    throw InputError(config_path + ": expected a JSON object, found " +
                     std::string(config.type_name()) + "; " + kVocabFix);
  }
  Json special_map = Json::object();
  if (file_exists(map_path)) {
    special_map = parse_json(map_path, kVocabFix);
    if (!special_map.is_object()) special_map = Json::object();
  }

  std::vector<std::pair<AddedToken, std::string>> tokens;  // in the order transformers adds them
  auto add = [&](const AddedToken& token, const std::string& content) {
    for (const auto& existing : tokens) {
      if (existing.second == content) return;
    }
    tokens.emplace_back(token, content);
  };

  // added_tokens_decoder first: its flags win over those of the named fields.
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    std::vector<std::pair<std::int64_t, const Json*>> entries;
    for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
      std::int64_t id;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
        throw InputError(config_path + ": added_tokens_decoder key \"" + it.key() +
                         "\" should be an integer id; fix the file or copy it from the original model");
      }
      entries.emplace_back(id, &it.value());
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& entry : entries) {
      AddedToken token;
      std::string content;
      if (!parse_added_token(*entry.second, config_path, "added_tokens_decoder", false, token, content)) continue;
      auto found = vocab.find(content);
      token.id = found != vocab.end() ? found->second : entry.first;
      add(token, content);
    }
  }

  // The named special tokens, with CLIPTokenizer's defaults when absent.
  struct Named {
    const char* field;
    const char* fallback;
    std::int64_t* id;
  };
  const Named named[] = {{"bos_token", "<|startoftext|>", &bos},
                         {"eos_token", "<|endoftext|>", &eos},
                         {"unk_token", "<|endoftext|>", &unk},
                         {"pad_token", "<|endoftext|>", &pad}};
  for (const Named& n : named) {
    const Json* value = nullptr;
    std::string from = config_path;
    if (config.contains(n.field)) {
      value = &config[n.field];
    } else if (special_map.contains(n.field)) {
      value = &special_map[n.field];
      from = map_path;
    }
    AddedToken token;
    std::string content = n.fallback;
    if (value != nullptr && !parse_added_token(*value, from, n.field, true, token, content)) {
      throw InputError(from + ": field \"" + n.field +
                       "\" is null; CLIP needs it (for example \"<|endoftext|>\"); set it or copy "
                       "the file from the original model");
    }
    auto found = vocab.find(content);
    bool known = false;
    for (const auto& existing : tokens) known = known || existing.second == content;
    if (found == vocab.end() && !known) {
      throw InputError(from + ": field \"" + std::string(n.field) + "\" is \"" + content +
                       "\", which is not in vocab.json; a CLIP tokenizer's special tokens are in its "
                       "vocabulary, so vocab.json and the config must come from the same model");
    }
    if (found != vocab.end()) {
      token.id = found->second;
    } else {
      for (const auto& existing : tokens) {
        if (existing.second == content) token.id = existing.first.id;
      }
    }
    *n.id = token.id;
    add(token, content);
  }

  // Extra special tokens (older configs call them additional_special_tokens).
  for (const char* field : {"additional_special_tokens", "extra_special_tokens"}) {
    const Json* list = config.contains(field) ? &config[field]
                       : special_map.contains(field) ? &special_map[field] : nullptr;
    if (list == nullptr || !list->is_array()) continue;
    for (const Json& value : *list) {
      AddedToken token;
      std::string content;
      if (!parse_added_token(value, config_path, field, true, token, content)) continue;
      auto found = vocab.find(content);
      if (found == vocab.end()) {
        throw InputError(config_path + ": " + field + " entry \"" + content +
                         "\" is not in vocab.json; remove it or use the model's own tokenizer files");
      }
      token.id = found->second;
      add(token, content);
    }
  }

  for (auto& entry : tokens) {
    AddedToken& token = entry.first;
    if (entry.second.empty()) continue;
    std::u32string content = from_utf8(entry.second, config_path + ": token \"" + entry.second + "\"");
    added_special[token.id] = token.special;
    if (token.normalized) {
      token.content = normalize(content);
      normalized_tokens.push_back(token);
    } else {
      token.content = content;
      raw_tokens.push_back(token);
    }
  }

  if (config.contains("model_max_length")) {
    const Json& value = config["model_max_length"];
    // transformers writes 1e30 for "no limit"; CLIP's context is 77 then.
    if (value.is_number() && value.get<double>() >= 2 && value.get<double>() <= 1e6 &&
        value.get<double>() == static_cast<double>(static_cast<std::int64_t>(value.get<double>()))) {
      max_length = static_cast<std::size_t>(value.get<double>());
    } else if (value.is_number() && value.get<double>() > 1e6) {
      log::warn(config_path + ": model_max_length is " + value.dump() +
                " (no limit); using CLIP's 77 tokens");
    } else {
      throw InputError(config_path + ": model_max_length should be an integer of at least 2 "
                       "(77 for CLIP), found " + value.dump() +
                       "; fix the file or copy it from the original model");
    }
  } else {
    log::warn(config_path + ": no model_max_length; using CLIP's 77 tokens");
  }
}

// NFC, every run of white space to one space, then lower case: the
// normalizer sequence that transformers 5 gives CLIPTokenizer.
std::u32string ClipTokenizer::Impl::normalize(const std::u32string& text) const {
  std::u32string composed = unicode::nfc(text);
  std::u32string out;
  out.reserve(composed.size());
  bool in_space = false;
  for (char32_t cp : composed) {
    if (unicode::is_white_space(cp)) {
      if (!in_space) out.push_back(U' ');
      in_space = true;
      continue;
    }
    in_space = false;
    unicode::append_lower(cp, out);
  }
  return out;
}

// Splits the text segments of `in` on `tokens`, leftmost-longest and without
// overlaps, honouring single_word, lstrip and rstrip as tokenizers does.
std::vector<Segment> ClipTokenizer::Impl::split_added(const std::vector<Segment>& in,
                                                      const std::vector<AddedToken>& tokens) const {
  if (tokens.empty()) return in;
  std::vector<Segment> out;
  for (const Segment& segment : in) {
    if (segment.id >= 0) {
      out.push_back(segment);
      continue;
    }
    const std::u32string& s = segment.text;
    std::size_t emitted = 0;  // end of what is already in `out`
    std::size_t pos = 0;
    while (pos < s.size()) {
      const AddedToken* best = nullptr;
      for (const AddedToken& token : tokens) {
        if (token.content.empty() || token.content.size() > s.size() - pos) continue;
        if (best != nullptr && token.content.size() <= best->content.size()) continue;
        if (s.compare(pos, token.content.size(), token.content) == 0) best = &token;
      }
      if (best == nullptr) {
        ++pos;
        continue;
      }
      std::size_t start = pos;
      std::size_t stop = pos + best->content.size();
      pos = stop;  // the search goes on after this match even if it is discarded
      if (best->single_word) {
        bool start_ok = start == 0 || !unicode::is_word(s[start - 1]);
        bool stop_ok = stop == s.size() || !unicode::is_word(s[stop]);
        if (!start_ok || !stop_ok) continue;
      }
      if (best->lstrip) {
        while (start > emitted && unicode::is_white_space(s[start - 1])) --start;
      }
      if (best->rstrip) {
        while (stop < s.size() && unicode::is_white_space(s[stop])) ++stop;
        pos = stop;
      }
      if (start > emitted) out.push_back({s.substr(emitted, start - emitted), -1});
      out.push_back({s.substr(start, stop - start), best->id});
      emitted = stop;
    }
    if (emitted < s.size() || s.empty()) out.push_back({s.substr(emitted), -1});
  }
  return out;
}

// BPE on one byte-level word: start from single bytes (the last one carries
// "</w>") and apply the lowest-ranked merge first, leftmost on ties, exactly
// as tokenizers' Word::merge_all does with its priority queue.
void ClipTokenizer::Impl::bpe(const std::string& word, std::vector<std::int64_t>& out) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto hit = cache.find(word);
    if (hit != cache.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  struct Symbol {
    std::int64_t id;
    int prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols(word.size());
  for (std::size_t i = 0; i < word.size(); ++i) {
    auto byte = static_cast<unsigned char>(word[i]);
    bool last = i + 1 == word.size();
    symbols[i] = {last ? byte_eow_id[byte] : byte_id[byte], static_cast<int>(i) - 1,
                  last ? -1 : static_cast<int>(i) + 1, true};
  }
  struct Merge {
    std::int32_t rank;
    int pos;
    std::int64_t new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  auto push = [&](int pos) {
    int next = symbols[pos].next;
    if (next < 0) return;
    auto found = merges.find(pair_key(symbols[pos].id, symbols[next].id));
    if (found != merges.end()) queue.push({found->second.first, pos, found->second.second});
  };
  for (std::size_t i = 0; i + 1 < symbols.size(); ++i) push(static_cast<int>(i));
  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Entries whose pair has changed since they were queued are stale.
    auto found = merges.find(pair_key(left.id, right.id));
    if (found == merges.end() || found->second.second != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  std::vector<std::int64_t> ids;
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() < kCacheCapacity) cache.emplace(word, std::move(ids));
}

namespace {

bool is_other(char32_t cp) {
  return !unicode::is_white_space(cp) && !unicode::is_letter(cp) && !unicode::is_number(cp);
}

// The contractions that both CLIP's and GPT-2's patterns try first.
std::size_t contraction_at(const std::u32string& s, std::size_t i) {
  static const std::u32string kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  if (s[i] != U'\'') return 0;
  for (const std::u32string& c : kContractions) {
    if (s.compare(i, c.size(), c) == 0) return c.size();
  }
  return 0;
}

}  // namespace

// ByteLevel's own GPT-2 split of a piece that CLIP's pattern produced. On such
// pieces (no white space) it only splits "<|endoftext|>"-like text that was
// not matched as a special token, e.g. in another letter case.
void ClipTokenizer::Impl::encode_piece(const std::u32string& piece, std::vector<std::int64_t>& out) const {
  for (std::size_t i = 0; i < piece.size();) {
    std::size_t end = i + contraction_at(piece, i);
    if (end == i) {
      end = i + 1;
      char32_t cp = piece[i];
      bool (*same)(char32_t) = unicode::is_letter(cp)   ? unicode::is_letter
                               : unicode::is_number(cp) ? unicode::is_number
                                                        : is_other;
      while (end < piece.size() && same(piece[end])) ++end;
    }
    bpe(to_utf8(piece.substr(i, end - i)), out);
    i = end;
  }
}

// CLIP's pre-tokenization pattern, kept matches only:
//   <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
void ClipTokenizer::Impl::encode_text(const std::u32string& text, std::vector<std::int64_t>& out) const {
  static const std::u32string kStart = U"<|startoftext|>";
  static const std::u32string kEnd = U"<|endoftext|>";
  for (std::size_t i = 0; i < text.size();) {
    char32_t cp = text[i];
    std::size_t end;
    if (unicode::is_white_space(cp)) {
      ++i;
      continue;
    } else if (text.compare(i, kStart.size(), kStart) == 0) {
      end = i + kStart.size();
    } else if (text.compare(i, kEnd.size(), kEnd) == 0) {
      end = i + kEnd.size();
    } else if (std::size_t length = contraction_at(text, i)) {
      end = i + length;
    } else if (unicode::is_letter(cp)) {
      end = i + 1;
      while (end < text.size() && unicode::is_letter(text[end])) ++end;
    } else if (unicode::is_number(cp)) {
      end = i + 1;  // digits one by one: "4k" is "4" then "k"
    } else {
      end = i + 1;
      while (end < text.size() && is_other(text[end])) ++end;
    }
    encode_piece(text.substr(i, end - i), out);
    i = end;
  }
}

std::vector<std::int64_t> ClipTokenizer::Impl::tokenize(const std::string& text) const {
  std::vector<Segment> segments{{from_utf8(text, "the prompt"), -1}};
  // Tokens matched on the raw text, then the rest normalized and matched again.
  segments = split_added(segments, raw_tokens);
  for (Segment& segment : segments) {
    if (segment.id < 0) segment.text = normalize(segment.text);
  }
  segments = split_added(segments, normalized_tokens);
  std::vector<std::int64_t> ids;
  for (const Segment& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      encode_text(segment.text, ids);
    }
  }
  return ids;
}

// ---------------------------------------------------------------- public

ClipTokenizer::ClipTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer ClipTokenizer::load(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    throw InputError(dir + ": tokenizer folder not found; pass a diffusers model folder whose "
                     "tokenizer/ (and tokenizer_2/ for SDXL) holds vocab.json, merges.txt and "
                     "tokenizer_config.json");
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->byte_to_char = byte_to_char_table();
  impl->load_vocab(join_path(dir, "vocab.json"));
  for (int b = 0; b < 256; ++b) {
    impl->char_to_byte[impl->byte_to_char[b]] = static_cast<unsigned char>(b);
  }
  impl->load_merges(join_path(dir, "merges.txt"));
  impl->load_config(join_path(dir, "tokenizer_config.json"), join_path(dir, "special_tokens_map.json"));
  // Single bytes are the BPE alphabet; one missing from the vocabulary maps to
  // the unknown token, as tokenizers does.
  for (int b = 0; b < 256; ++b) {
    std::string single;
    append_utf8(impl->byte_to_char[b], single);
    auto plain = impl->vocab.find(single);
    auto eow = impl->vocab.find(single + kEndOfWord);
    impl->byte_id[b] = plain != impl->vocab.end() ? plain->second : impl->unk;
    impl->byte_eow_id[b] = eow != impl->vocab.end() ? eow->second : impl->unk;
  }
  log::debug(dir + ": CLIP tokenizer with " + std::to_string(impl->vocab.size()) + " tokens, " +
             std::to_string(impl->merges.size()) + " merges, pad id " + std::to_string(impl->pad));
  return ClipTokenizer(std::move(impl));
}

std::vector<std::int64_t> ClipTokenizer::tokenize(const std::string& text) const {
  return impl_->tokenize(text);
}

ClipTokens ClipTokenizer::encode(const std::string& text) const {
  std::vector<std::int64_t> content = impl_->tokenize(text);
  std::size_t room = impl_->max_length - 2;
  ClipTokens result;
  if (content.size() > room) {
    result.truncated = true;
    result.dropped_text = decode(std::vector<std::int64_t>(content.begin() + room, content.end()));
    content.resize(room);
  }
  result.ids.reserve(impl_->max_length);
  result.ids.push_back(impl_->bos);
  result.ids.insert(result.ids.end(), content.begin(), content.end());
  result.end_index = result.ids.size();
  result.ids.push_back(impl_->eos);
  result.ids.resize(impl_->max_length, impl_->pad);
  return result;
}

std::string ClipTokenizer::decode(const std::vector<std::int64_t>& ids, bool skip_special) const {
  std::string joined;
  for (std::int64_t id : ids) {
    auto special = impl_->added_special.find(id);
    if (skip_special && special != impl_->added_special.end() && special->second) continue;
    if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_to_token.size()) continue;
    joined += impl_->id_to_token[static_cast<std::size_t>(id)];
  }
  // Byte-level characters back to bytes; "</w>" (plain ASCII there) to a space.
  std::string bytes;
  std::u32string chars = from_utf8(joined, "vocab.json token");
  std::u32string eow = U"</w>";
  for (std::size_t i = 0; i < chars.size(); ++i) {
    if (chars.compare(i, eow.size(), eow) == 0) {
      bytes.push_back(' ');
      i += eow.size() - 1;
      continue;
    }
    auto byte = impl_->char_to_byte.find(chars[i]);
    if (byte != impl_->char_to_byte.end()) {
      bytes.push_back(static_cast<char>(byte->second));
    } else {
      append_utf8(chars[i], bytes);
    }
  }
  std::string text = sanitize_utf8(bytes);
  std::size_t first = text.find_first_not_of(' ');
  if (first == std::string::npos) return std::string();
  std::size_t last = text.find_last_not_of(' ');
  return text.substr(first, last - first + 1);
}

std::int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
std::int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
std::int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
std::int64_t ClipTokenizer::unk_id() const { return impl_->unk; }
std::size_t ClipTokenizer::max_length() const { return impl_->max_length; }
std::size_t ClipTokenizer::vocab_size() const { return impl_->vocab.size(); }
const std::string& ClipTokenizer::dir() const { return impl_->dir; }

}  // namespace diffsearch::engine
