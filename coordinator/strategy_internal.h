// The strategies' constructors, for make_strategy (coordinator/strategy.cc).
#pragma once

#include <memory>

#include "coordinator/strategy.h"

namespace diffsearch::coordinator {

std::unique_ptr<SearchStrategy> make_exhaustive_strategy(const SearchOptions& options, const SearchPlan& plan);
std::unique_ptr<SearchStrategy> make_frontier_strategy(const SearchOptions& options, const SearchPlan& plan);

}  // namespace diffsearch::coordinator
