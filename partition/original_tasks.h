// The five tasks the original DiffBench code generator (auto_code_gen_v4.py)
// wrote code for, in its order: what `diffsearch codegen` answers when it is
// given no --tasks or --grid.
#pragma once

#include <string>
#include <vector>

#include "partition/task.h"

namespace diffsearch::partition {

// The sentences as that script spelled them.
const std::vector<std::string>& original_task_sentences();
std::vector<Task> original_tasks();

}  // namespace diffsearch::partition
