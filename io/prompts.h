// Prompt sets for measurements: the project's own default captions (compiled
// in) and prompt files, plain text or COCO captions JSON.
#pragma once

#include <string>
#include <vector>

namespace diffsearch::io {

// The default prompts: varied captions of our own (people, animals, objects,
// scenes, text in images, art styles), the same as data/prompts/default.txt.
const std::vector<std::string>& default_prompts();

// Reads prompts from `path`:
// - COCO captions JSON (captions_val2017.json; recognised by a .json name or
//   by content that parses as a JSON object): the first caption (lowest
//   annotation id) of each image, in image-id order;
// - otherwise plain text, one prompt a line: blank lines skipped, trailing
//   whitespace (and a CR of CRLF files) trimmed, UTF-8 kept as it is.
// Throws InputError naming the file and the fix when the file is missing,
// unreadable, not UTF-8, holds no prompt, or is JSON without COCO annotations.
std::vector<std::string> read_prompts(const std::string& path);

// read_prompts(path), or default_prompts() when `path` is empty.
std::vector<std::string> prompts_or_default(const std::string& path);

}  // namespace diffsearch::io
