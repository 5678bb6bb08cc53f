// CLIP's byte-level BPE tokenizer, as transformers 5's CLIPTokenizer (its Rust
// tokenizers backend) runs it: prompts to the 77 ids that the text encoders read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace diffsearch::engine {

// One prompt, ready for a text encoder.
struct ClipTokens {
  // Exactly max_length ids: start token, the prompt's tokens, end token, padding.
  std::vector<std::int64_t> ids;
  // Index of the end token in `ids` (where CLIP pools).
  std::size_t end_index = 0;
  // The prompt had more than max_length - 2 tokens; the rest was dropped, as
  // diffusers does (it warns; so should the caller).
  bool truncated = false;
  // The dropped tokens decoded back to text, for that warning.
  std::string dropped_text;
};

class ClipTokenizer {
 public:
  // Reads DIR/vocab.json, DIR/merges.txt and DIR/tokenizer_config.json (and
  // DIR/special_tokens_map.json when present) as save_pretrained writes them.
  // Throws InputError naming the file, what is wrong and the fix.
  static ClipTokenizer load(const std::string& dir);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // Start token, at most max_length() - 2 tokens of `text`, end token, then
  // the pad token up to max_length() ids. Throws InputError if `text` is not UTF-8.
  ClipTokens encode(const std::string& text) const;
  // The tokens of `text` alone: no start/end token, no truncation, no padding.
  std::vector<std::int64_t> tokenize(const std::string& text) const;
  // Text back from ids, as CLIPTokenizer.decode: end-of-word markers become
  // spaces; special tokens are kept unless skip_special.
  std::string decode(const std::vector<std::int64_t>& ids, bool skip_special = false) const;

  std::int64_t bos_id() const;
  std::int64_t eos_id() const;
  std::int64_t pad_id() const;
  std::int64_t unk_id() const;
  // Ids per prompt (tokenizer_config.json's model_max_length, 77 for CLIP).
  std::size_t max_length() const;
  // Entries in vocab.json.
  std::size_t vocab_size() const;
  const std::string& dir() const;

 private:
  struct Impl;
  explicit ClipTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffsearch::engine
