// One thing a worker measures: a setting of a planned space (or a baseline
// alone) on a range of the search's prompt list. Strategies make them; the
// scheduler hands them out; the protocol carries them to workers.
#pragma once

#include <cstdint>
#include <string>

#include "partition/plan.h"

namespace diffsearch::coordinator {

struct WorkItem {
  std::size_t space = partition::kNoSpace;  // kNoSpace: the baseline alone (basic tasks)
  uint64_t index = 0;                       // the setting's index in its space
  std::size_t baseline = 0;
  std::string unit_key;  // "<space key>/<setting key>", as results files name it
  int prompt_begin = 0;  // measures prompts [prompt_begin, prompt_end)
  int prompt_end = 0;

  // Names the item among a file's rows: the unit and its prompt range.
  std::string work_key() const { return work_key_of(unit_key, prompt_begin, prompt_end); }
  static std::string work_key_of(const std::string& unit_key, int64_t begin, int64_t end) {
    return unit_key + "#" + std::to_string(begin) + ":" + std::to_string(end);
  }
};

// The item that measures `index` of `space` (kNoSpace: the baseline alone) on
// prompts [begin, end).
WorkItem make_work_item(const partition::Plan& plan, std::size_t space, uint64_t index, std::size_t baseline,
                        int begin, int end);

}  // namespace diffsearch::coordinator
