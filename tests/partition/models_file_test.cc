// Tests of the --models file: names and aliases to folders, relative folders
// resolved against the file's own folder, and errors that name the file.
#include "partition/models_file.h"

#include <gtest/gtest.h>

#include "io/error.h"

namespace diffsearch::partition {
namespace {

using nlohmann::json;

std::string message_of(const json& j, const std::string& path = "/runs/models.json") {
  try {
    models_from_json(j, path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelsFile, AliasesAndRelativeFolders) {
  const auto models = models_from_json(
      json{{"SD1.5", "sd15"}, {"stable-diffusion-2-1", "/models/sd21"}, {"_note", 3}}, "/runs/models.json");
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models.at(Model::SD15), "/runs/sd15");
  EXPECT_EQ(models.at(Model::SD21), "/models/sd21");
  EXPECT_EQ(models_from_json(json{{"sdxl", "x"}}, "models.json").at(Model::SDXL), "x");
}

TEST(ModelsFile, BadInputNamesTheFileAndTheKey) {
  EXPECT_NE(message_of(json::array()).find("/runs/models.json: expected a JSON object"), std::string::npos);
  EXPECT_NE(message_of(json{{"SD3", "a"}}).find("unknown model \"SD3\""), std::string::npos);
  EXPECT_NE(message_of(json{{"SDXL", 1}}).find("\"SDXL\" must be a folder path"), std::string::npos);
  EXPECT_THROW(read_models_file("/nonexistent/models.json"), InputError);
}

}  // namespace
}  // namespace diffsearch::partition
