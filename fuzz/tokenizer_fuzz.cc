// The CLIP tokenizer on arbitrary prompt bytes (the fixture's vocabulary):
// either an InputError (text that is not UTF-8) or exactly max_length ids,
// start token first, the end token where end_index says, ids in the
// vocabulary; decoding any ids never fails.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "worker/engine/clip/clip_tokenizer.h"

using namespace diffsearch;

namespace {
std::optional<engine::ClipTokenizer> tokenizer;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  tokenizer = engine::ClipTokenizer::load(DIFFSEARCH_SOURCE_DIR "/tests/data/fixtures/models/tiny-clip/tokenizer");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto& tok = *tokenizer;
  fuzz::expect_clean_refusal([&] {
    const auto tokens = tok.encode(text);
    DIFFSEARCH_ASSERT(tokens.ids.size() == tok.max_length());
    DIFFSEARCH_ASSERT(tokens.ids.front() == tok.bos_id());
    DIFFSEARCH_ASSERT(tokens.end_index > 0 && tokens.end_index < tok.max_length());
    DIFFSEARCH_ASSERT(tokens.ids[tokens.end_index] == tok.eos_id());
    for (auto id : tokens.ids) DIFFSEARCH_ASSERT(id >= 0 && static_cast<std::size_t>(id) < tok.vocab_size());
    const auto all = tok.tokenize(text);
    DIFFSEARCH_ASSERT(tokens.truncated == (all.size() > tok.max_length() - 2));
    (void)tok.decode(tokens.ids, true);
    (void)tok.decode(all);
  });
  // Ids straight from the input, in or out of the vocabulary.
  std::vector<std::int64_t> ids(size / sizeof(std::int64_t));
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * sizeof(std::int64_t));
  for (auto& id : ids) id %= static_cast<std::int64_t>(tok.vocab_size() + 8);
  (void)tok.decode(ids);
  (void)tok.decode(ids, true);
  return 0;
}
