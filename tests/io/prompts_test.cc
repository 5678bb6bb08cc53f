// Prompt sets: the compiled-in defaults (and their copy in data/prompts),
// plain text files, COCO captions JSON and the errors for bad files.
#include "io/prompts.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include "io/error.h"

namespace fs = std::filesystem;
using diffsearch::InputError;
using namespace diffsearch::io;

namespace {

const std::string kDefaultFile = std::string(DIFFSEARCH_SOURCE_DIR) + "/data/prompts/default.txt";

class PromptFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("diffsearch_prompts_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }
  // The InputError message of read_prompts(path); fails the test if none.
  static std::string error_of(const std::string& path) {
    try {
      read_prompts(path);
    } catch (const InputError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected InputError for " << path;
    return "";
  }
  static bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  fs::path dir_;
};

TEST(DefaultPrompts, AtLeast64DistinctNonEmptyPrompts) {
  const auto& prompts = default_prompts();
  EXPECT_GE(prompts.size(), 64u);
  std::set<std::string> unique(prompts.begin(), prompts.end());
  EXPECT_EQ(unique.size(), prompts.size());
  for (const auto& p : prompts) {
    EXPECT_FALSE(p.empty());
    EXPECT_EQ(p.find('\n'), std::string::npos) << p;
    EXPECT_NE(p.back(), ' ') << p;
  }
}

// The shipped text file is the compiled list written out. Set
// DIFFSEARCH_UPDATE_PROMPTS=1 to rewrite it after editing io/default_prompts.cc.
TEST(DefaultPrompts, ShippedFileMatchesCompiledList) {
  if (const char* update = std::getenv("DIFFSEARCH_UPDATE_PROMPTS"); update && *update == '1') {
    fs::create_directories(fs::path(kDefaultFile).parent_path());
    std::ofstream out(kDefaultFile, std::ios::binary);
    for (const auto& p : default_prompts()) out << p << '\n';
  }
  EXPECT_EQ(read_prompts(kDefaultFile), default_prompts())
      << kDefaultFile << " differs from io/default_prompts.cc; rerun this test with "
      << "DIFFSEARCH_UPDATE_PROMPTS=1 to rewrite it";
  EXPECT_EQ(prompts_or_default(""), default_prompts());
}

TEST_F(PromptFiles, PlainTextLines) {
  const std::string path =
      write("p.txt", "\xEF\xBB\xBF" "a cat  \r\n\n   \n  a dog on a sofa\t\r\nun café à Paris\nlast line");
  const std::vector<std::string> expected = {"a cat", "  a dog on a sofa", "un café à Paris",
                                             "last line"};
  EXPECT_EQ(read_prompts(path), expected);
  EXPECT_EQ(prompts_or_default(path), expected);
}

TEST_F(PromptFiles, TextStartingWithABraceIsText) {
  const std::string path = write("braces.txt", "{curly} braces in a prompt\nsecond\n");
  EXPECT_EQ(read_prompts(path), (std::vector<std::string>{"{curly} braces in a prompt", "second"}));
}

TEST_F(PromptFiles, CocoFirstCaptionPerImageInImageIdOrder) {
  // Out of order on purpose: image ids and annotation ids both shuffled.
  const std::string path = write("captions_val2017.json", R"({
    "info": {"description": "tiny"},
    "images": [{"id": 30}, {"id": 4}, {"id": 139}],
    "annotations": [
      {"image_id": 139, "id": 900, "caption": "A later caption of image 139."},
      {"image_id": 30, "id": 55, "caption": "Second caption of image 30"},
      {"image_id": 4, "id": 7, "caption": " A person riding a bike.\n"},
      {"image_id": 139, "id": 12, "caption": "A woman stands in the dining area."},
      {"image_id": 30, "id": 31, "caption": "A small vase of flowers."},
      {"image_id": 4, "id": 8, "caption": "not the first"}
    ]
  })");
  EXPECT_EQ(read_prompts(path),
            (std::vector<std::string>{"A person riding a bike.", "A small vase of flowers.",
                                      "A woman stands in the dining area."}));
}

TEST_F(PromptFiles, CocoDetectedByContentWhateverTheName) {
  const std::string path =
      write("captions.dat", R"({"annotations": [{"image_id": 2, "id": 1, "caption": "b"},
                                                   {"image_id": 1, "id": 2, "caption": "a"}]})");
  EXPECT_EQ(read_prompts(path), (std::vector<std::string>{"a", "b"}));
}

TEST_F(PromptFiles, MissingFile) {
  const std::string e = error_of((dir_ / "nope.txt").string());
  EXPECT_TRUE(has(e, "nope.txt")) << e;
  EXPECT_TRUE(has(e, "not found")) << e;
  EXPECT_TRUE(has(e, "one prompt a line")) << e;
}

TEST_F(PromptFiles, FolderInsteadOfFile) {
  EXPECT_TRUE(has(error_of(dir_.string()), "folder"));
}

TEST_F(PromptFiles, EmptyAndBlankFiles) {
  for (const std::string text : {"", "\n\n  \n\t\r\n"}) {
    const std::string path = write("empty.txt", text);
    const std::string e = error_of(path);
    EXPECT_TRUE(has(e, path)) << e;
    EXPECT_TRUE(has(e, "no prompts")) << e;
  }
  const std::string e = error_of(write("empty.json", "  \n"));
  EXPECT_TRUE(has(e, "empty")) << e;
}

TEST_F(PromptFiles, GarbageJson) {
  const std::string path = write("captions.json", "{\"annotations\": [1, 2,");
  const std::string e = error_of(path);
  EXPECT_TRUE(has(e, path)) << e;
  EXPECT_TRUE(has(e, "not valid JSON")) << e;
  EXPECT_TRUE(has(e, "captions_val2017.json")) << e;
}

TEST_F(PromptFiles, JsonWithoutAnnotations) {
  for (const std::string text : {R"({"images": [{"id": 1}]})", R"([1, 2, 3])",
                                 R"({"annotations": {"image_id": 1}})"}) {
    const std::string path = write("instances.json", text);
    const std::string e = error_of(path);
    EXPECT_TRUE(has(e, path)) << e;
    EXPECT_TRUE(has(e, "'annotations'")) << e;
  }
}

TEST_F(PromptFiles, AnnotationsOfTheWrongKind) {
  const std::string path =
      write("instances.json", R"({"annotations": [{"image_id": 1, "id": 3, "bbox": [0, 0, 1, 1]}]})");
  const std::string e = error_of(path);
  EXPECT_TRUE(has(e, "annotations[0]")) << e;
  EXPECT_TRUE(has(e, "'caption'")) << e;
  const std::string no_captions =
      write("blank.json", R"({"annotations": [{"image_id": 1, "id": 3, "caption": "  "}]})");
  EXPECT_TRUE(has(error_of(no_captions), "no non-empty caption"));
}

TEST_F(PromptFiles, InvalidUtf8NamesTheLine) {
  const std::string path = write("latin1.txt", "fine\ncaf\xE9 au lait\n");
  const std::string e = error_of(path);
  EXPECT_TRUE(has(e, path + ":2")) << e;
  EXPECT_TRUE(has(e, "UTF-8")) << e;
  // Overlong encodings and surrogates are not UTF-8 either.
  EXPECT_TRUE(has(error_of(write("overlong.txt", "\xC0\xAF\n")), "UTF-8"));
  EXPECT_TRUE(has(error_of(write("surrogate.txt", "\xED\xA0\x80\n")), "UTF-8"));
  EXPECT_TRUE(has(error_of(write("cut.txt", "abc\xE2\x82")), "UTF-8"));
  // Four-byte characters are fine.
  EXPECT_EQ(read_prompts(write("emoji.txt", "a \xF0\x9F\x90\xB1 cat\n")),
            (std::vector<std::string>{"a \xF0\x9F\x90\xB1 cat"}));
}

}  // namespace
