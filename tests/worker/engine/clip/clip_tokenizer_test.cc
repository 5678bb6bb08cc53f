// Tests of the CLIP tokenizer against the fixtures' ids (made by transformers 5),
// of its truncation, bad tokenizer folders, and of the Unicode tables under it.
#include "worker/engine/clip/clip_tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "io/error.h"
#include "tests/support/test_support.h"
#include "worker/engine/clip/unicode_tables.h"

namespace diffsearch::engine {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<std::int64_t>;

const std::string kFixtures = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures";

std::string model_dir(const std::string& model) { return kFixtures + "/models/" + model; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  // Python's json writes -Infinity (a scheduler's lambda_min_clipped), which
  // is not JSON; no tokenizer field is affected.
  static const std::regex non_finite(R"((:\s*)-?(Infinity|NaN)\b)");
  return nlohmann::json::parse(std::regex_replace(text.str(), non_finite, "$1null"));
}

// Shared across tests: loading parses 49408 vocab entries and 48894 merges.
const ClipTokenizer& tokenizer(const std::string& dir) {
  static std::map<std::string, ClipTokenizer> cache;
  auto it = cache.find(dir);
  if (it == cache.end()) it = cache.emplace(dir, ClipTokenizer::load(dir)).first;
  return it->second;
}

const ClipTokenizer& sd15() { return tokenizer(model_dir("tiny-sd15") + "/tokenizer"); }
const ClipTokenizer& sd21() { return tokenizer(model_dir("tiny-sd21") + "/tokenizer"); }

// Ids looked up by token text in the fixture's vocab.json, so that expected
// values say which tokens they are.
std::int64_t vocab_id(const std::string& token) {
  static const nlohmann::json vocab = read_json(model_dir("tiny-sd15") + "/tokenizer/vocab.json");
  EXPECT_TRUE(vocab.contains(token)) << token;
  return vocab.value(token, std::int64_t{-1});
}

// Every prompt of every tokenizer in tiny-{sd15,sd21,sdxl}.json, exactly.
class FixtureIds : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureIds, MatchTransformers) {
  const std::string model = GetParam();
  nlohmann::json reference = read_json(kFixtures + "/reference/" + model + ".json");
  ASSERT_TRUE(reference.contains("tokenizer"));
  const std::vector<std::string> folders = {"tokenizer", "tokenizer_2"};
  bool saw_empty = false, saw_non_ascii = false;
  std::size_t compared = 0;
  for (const auto& entry : reference["tokenizer"]) {
    const std::string prompt = entry["prompt"].get<std::string>();
    saw_empty = saw_empty || prompt.empty();
    for (unsigned char c : prompt) saw_non_ascii = saw_non_ascii || c >= 0x80;
    const auto& lists = entry["ids"];
    ASSERT_LE(lists.size(), folders.size());
    for (std::size_t k = 0; k < lists.size(); ++k) {
      const ClipTokenizer& tok = tokenizer(model_dir(model) + "/" + folders[k]);
      ClipTokens tokens = tok.encode(prompt);
      EXPECT_EQ(tokens.ids, lists[k].get<Ids>()) << model << "/" << folders[k] << " prompt \"" << prompt << "\"";
      EXPECT_FALSE(tokens.truncated);
      EXPECT_EQ(tokens.ids[tokens.end_index], tok.eos_id());
      ++compared;
    }
  }
  EXPECT_TRUE(saw_empty) << "the fixture should hold the empty prompt";
  EXPECT_TRUE(saw_non_ascii) << "the fixture should hold a non-ASCII prompt";
  EXPECT_GE(compared, 4u);
}

INSTANTIATE_TEST_SUITE_P(ClipTokenizer, FixtureIds,
                         ::testing::Values("tiny-sd15", "tiny-sd21", "tiny-sdxl"));

TEST(ClipTokenizer, SpecialTokensFromConfig) {
  EXPECT_EQ(sd15().bos_id(), vocab_id("<|startoftext|>"));
  EXPECT_EQ(sd15().eos_id(), vocab_id("<|endoftext|>"));
  EXPECT_EQ(sd15().pad_id(), vocab_id("<|endoftext|>"));
  EXPECT_EQ(sd21().pad_id(), vocab_id("!"));  // SD2.x pads with "!", id 0
  EXPECT_EQ(tokenizer(model_dir("tiny-sdxl") + "/tokenizer").pad_id(), vocab_id("<|endoftext|>"));
  EXPECT_EQ(tokenizer(model_dir("tiny-sdxl") + "/tokenizer_2").pad_id(), vocab_id("!"));
  EXPECT_EQ(sd15().max_length(), 77u);
  EXPECT_EQ(sd15().vocab_size(), 49408u);
}

TEST(ClipTokenizer, EmptyPromptIsStartEndPadding) {
  ClipTokens tokens = sd21().encode("");
  ASSERT_EQ(tokens.ids.size(), 77u);
  EXPECT_EQ(tokens.ids[0], vocab_id("<|startoftext|>"));
  EXPECT_EQ(tokens.ids[1], vocab_id("<|endoftext|>"));
  EXPECT_EQ(tokens.end_index, 1u);
  for (std::size_t i = 2; i < 77; ++i) EXPECT_EQ(tokens.ids[i], vocab_id("!"));
}

TEST(ClipTokenizer, ApostrophesSplitOffContractions) {
  // Each piece of the pattern is a word of its own, with its "</w>".
  EXPECT_EQ(sd15().tokenize("it's"), (Ids{vocab_id("it</w>"), vocab_id("'s</w>")}));
  EXPECT_EQ(sd15().tokenize("IT'S"), sd15().tokenize("it's"));
  EXPECT_EQ(sd15().tokenize("we're"), (Ids{vocab_id("we</w>"), vocab_id("'re</w>")}));
}

TEST(ClipTokenizer, DigitsAreSingleTokens) {
  EXPECT_EQ(sd15().tokenize("4k"), (Ids{vocab_id("4</w>"), vocab_id("k</w>")}));
  EXPECT_EQ(sd15().tokenize("1920"),
            (Ids{vocab_id("1</w>"), vocab_id("9</w>"), vocab_id("2</w>"), vocab_id("0</w>")}));
}

TEST(ClipTokenizer, WhiteSpaceAndCaseDoNotMatter) {
  Ids plain = sd15().tokenize("a photo of a cat");
  EXPECT_EQ(sd15().tokenize("  a   photo\t\tof\n a\u3000cat  "), plain);
  EXPECT_EQ(sd15().tokenize("A PHOTO OF A CAT"), plain);
  EXPECT_EQ(plain, (Ids{vocab_id("a</w>"), vocab_id("photo</w>"), vocab_id("of</w>"),
                        vocab_id("a</w>"), vocab_id("cat</w>")}));
}

TEST(ClipTokenizer, NfcBeforeBpe) {
  // "e" + COMBINING ACUTE ACCENT is composed to "é" first.
  EXPECT_EQ(sd15().tokenize("cafe\xCC\x81"), sd15().tokenize("caf\xC3\xA9"));
}

TEST(ClipTokenizer, PadTokenIsMatchedInTheText) {
  // transformers adds the pad token as a special token, so where it is "!"
  // every "!" of the prompt becomes its own token (the fixtures show it).
  EXPECT_EQ(sd21().tokenize("wow!!"), (Ids{vocab_id("wow</w>"), vocab_id("!"), vocab_id("!")}));
  EXPECT_EQ(sd15().tokenize("wow!!"), (Ids{vocab_id("wow</w>"), vocab_id("!!</w>")}));
}

TEST(ClipTokenizer, SpecialTokenTextIsMatchedVerbatimOnly) {
  EXPECT_EQ(sd15().tokenize("a<|endoftext|>b"),
            (Ids{vocab_id("a</w>"), vocab_id("<|endoftext|>"), vocab_id("b</w>")}));
  // Another letter case is ordinary text, lower-cased and split by BPE.
  Ids other = sd15().tokenize("<|EndOfText|>");
  EXPECT_GT(other.size(), 1u);
  EXPECT_EQ(sd15().decode(other), "<| endoftext |>");
}

TEST(ClipTokenizer, LongPromptIsTruncatedWithTheDroppedText) {
  std::string prompt;
  for (int i = 0; i < 74; ++i) prompt += "cat ";
  // 74 tokens fit (77 less start and end).
  ClipTokens fits = sd15().encode(prompt + "dog");
  EXPECT_FALSE(fits.truncated);
  EXPECT_EQ(fits.ids[75], vocab_id("dog</w>"));
  EXPECT_EQ(fits.ids[76], vocab_id("<|endoftext|>"));

  ClipTokens over = sd21().encode(prompt + "dog riding a horse");
  ASSERT_EQ(over.ids.size(), 77u);
  EXPECT_TRUE(over.truncated);
  EXPECT_EQ(over.ids[75], vocab_id("dog</w>"));
  EXPECT_EQ(over.ids[76], vocab_id("<|endoftext|>"));
  EXPECT_EQ(over.end_index, 76u);
  EXPECT_EQ(over.dropped_text, "riding a horse");
}

TEST(ClipTokenizer, DecodeInvertsTokenize) {
  const std::string text = "a photo of an astronaut riding a horse on mars";
  EXPECT_EQ(sd15().decode(sd15().tokenize(text)), text);
  EXPECT_EQ(sd15().decode(sd15().tokenize("naïve café — 東京 🚀")), "naïve café — 東京 🚀");
  ClipTokens tokens = sd15().encode("a cat");
  EXPECT_EQ(sd15().decode(tokens.ids, /*skip_special=*/true), "a cat");
}

TEST(ClipTokenizer, CachedAndFreshResultsAgree) {
  const std::string prompt = "supercalifragilisticexpialidocious landscape, 8k";
  Ids first = sd15().tokenize(prompt);
  Ids second = sd15().tokenize(prompt);
  EXPECT_EQ(first, second);
  ClipTokenizer fresh = ClipTokenizer::load(model_dir("tiny-sd15") + "/tokenizer");
  EXPECT_EQ(fresh.tokenize(prompt), first);
}

TEST(ClipTokenizer, InvalidUtf8IsAnInputError) {
  EXPECT_THROW(sd15().encode("caf\xE9"), InputError);
}

// ---------------------------------------------------------------- bad folders

class BadTokenizerFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("clip_tokenizer_test");
    for (const char* name : {"vocab.json", "merges.txt", "tokenizer_config.json"}) {
      fs::copy_file(model_dir("tiny-sd15") + "/tokenizer/" + name, dir_ / name);
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& text) {
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    out << text;
  }

  // Loads and returns the InputError message ("" if it loaded).
  std::string load_error() {
    try {
      ClipTokenizer::load(dir_.string());
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(BadTokenizerFolder, CompleteCopyLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(BadTokenizerFolder, MissingFolder) {
  fs::remove_all(dir_);
  std::string message = load_error();
  EXPECT_NE(message.find(dir_.string()), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer folder not found"), std::string::npos) << message;
}

TEST_F(BadTokenizerFolder, MissingVocab) {
  fs::remove(dir_ / "vocab.json");
  std::string message = load_error();
  EXPECT_NE(message.find("vocab.json: file not found"), std::string::npos) << message;
  EXPECT_NE(message.find("copy them from the original model"), std::string::npos) << message;
}

TEST_F(BadTokenizerFolder, MissingMerges) {
  fs::remove(dir_ / "merges.txt");
  EXPECT_NE(load_error().find("merges.txt: file not found"), std::string::npos);
}

TEST_F(BadTokenizerFolder, MissingConfig) {
  fs::remove(dir_ / "tokenizer_config.json");
  EXPECT_NE(load_error().find("tokenizer_config.json: file not found"), std::string::npos);
}

TEST_F(BadTokenizerFolder, GarbageVocab) {
  write("vocab.json", "{\"a\": 1, oops");
  std::string message = load_error();
  EXPECT_NE(message.find("vocab.json: not valid JSON"), std::string::npos) << message;
}

TEST_F(BadTokenizerFolder, VocabNotAnObject) {
  write("vocab.json", "[1, 2, 3]");
  EXPECT_NE(load_error().find("expected a JSON object mapping tokens to ids, found array"),
            std::string::npos);
}

TEST_F(BadTokenizerFolder, GarbageConfig) {
  write("tokenizer_config.json", "not json");
  EXPECT_NE(load_error().find("tokenizer_config.json: not valid JSON"), std::string::npos);
}

TEST_F(BadTokenizerFolder, MergeOutsideVocab) {
  write("merges.txt", "#version: 0.2\ni n\nzzz qqq\n");
  std::string message = load_error();
  EXPECT_NE(message.find("merges.txt: line 3: token \"zzz\" is not in vocab.json"), std::string::npos)
      << message;
}

TEST_F(BadTokenizerFolder, MalformedMergeLine) {
  write("merges.txt", "#version: 0.2\ni n t\n");
  EXPECT_NE(load_error().find("line 2 should hold two tokens"), std::string::npos);
}

TEST_F(BadTokenizerFolder, PadTokenOutsideVocab) {
  nlohmann::json config = read_json((dir_ / "tokenizer_config.json").string());
  config["pad_token"] = "<|pad|>";
  write("tokenizer_config.json", config.dump());
  std::string message = load_error();
  EXPECT_NE(message.find("field \"pad_token\" is \"<|pad|>\", which is not in vocab.json"),
            std::string::npos)
      << message;
}

TEST_F(BadTokenizerFolder, PadTokenAsAddedTokenObject) {
  // Older configs spell special tokens as AddedToken objects.
  nlohmann::json config = read_json((dir_ / "tokenizer_config.json").string());
  config["pad_token"] = {{"__type", "AddedToken"}, {"content", "!"}, {"lstrip", false},
                         {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  write("tokenizer_config.json", config.dump());
  ClipTokenizer tok = ClipTokenizer::load(dir_.string());
  EXPECT_EQ(tok.pad_id(), vocab_id("!"));
  EXPECT_EQ(tok.encode("hi").ids, sd21().encode("hi").ids);
}

// ---------------------------------------------------------------- Unicode

TEST(UnicodeTables, Classes) {
  EXPECT_TRUE(unicode::is_letter(U'a'));
  EXPECT_TRUE(unicode::is_letter(U'東'));
  EXPECT_TRUE(unicode::is_letter(U'ï'));
  EXPECT_FALSE(unicode::is_letter(U'4'));
  EXPECT_FALSE(unicode::is_letter(U'\u0301'));  // a mark, not a letter
  EXPECT_TRUE(unicode::is_number(U'7'));
  EXPECT_TRUE(unicode::is_number(U'½'));
  EXPECT_TRUE(unicode::is_number(U'Ⅻ'));
  EXPECT_FALSE(unicode::is_number(U'x'));
  EXPECT_TRUE(unicode::is_white_space(U'\u3000'));
  EXPECT_TRUE(unicode::is_white_space(U'\u0085'));
  EXPECT_FALSE(unicode::is_white_space(U'\u200B'));  // zero width space is not White_Space
  EXPECT_FALSE(unicode::is_white_space(U'\u001C'));  // Python's isspace says yes, Unicode no
  EXPECT_FALSE(unicode::is_letter(U'🚀'));
}

TEST(UnicodeTables, LowerCase) {
  auto lower = [](const std::u32string& s) {
    std::u32string out;
    for (char32_t c : s) unicode::append_lower(c, out);
    return out;
  };
  EXPECT_EQ(lower(U"ABCxyz"), U"abcxyz");
  EXPECT_EQ(lower(U"ÀÉÎ"), U"àéî");
  EXPECT_EQ(lower(U"ΣΑΣ"), U"σασ");  // no final sigma, as Rust's char::to_lowercase
  EXPECT_EQ(lower(U"\u0130"), U"i\u0307");
  EXPECT_EQ(lower(U"ẞ"), U"ß");
}

TEST(UnicodeTables, Nfc) {
  EXPECT_EQ(unicode::nfc(U"e\u0301"), U"é");
  EXPECT_EQ(unicode::nfc(U"a\u0308\u0301"), U"\u00E4\u0301");  // blocked by the first mark's class
  EXPECT_EQ(unicode::nfc(U"\u1E0B\u0323"), U"\u1E0D\u0307");  // reordered, then composed
  EXPECT_EQ(unicode::nfc(U"\u1100\u1161\u11A8"), U"\uAC01");   // Hangul L V T
  EXPECT_EQ(unicode::nfc(U"\uFA83"), U"\u5ED9");               // singleton decomposition
  EXPECT_EQ(unicode::nfc(U"\u0344"), U"\u0308\u0301");         // excluded from composition
  EXPECT_EQ(unicode::nfc(U"plain ascii"), U"plain ascii");
}

}  // namespace
}  // namespace diffsearch::engine
