// The engine evaluator as the search uses it (in a worker or its child):
// registered with the coordinator, with libtorch's errors given their kind.
#pragma once

namespace diffsearch::cli {

// Registers the engine's factory (coordinator::register_engine_evaluator).
// Its evaluator throws OutOfMemoryError for c10::OutOfMemoryError (CUDA's
// allocator); other libtorch errors are classified by their text
// (io/failure.h: sticky CUDA errors are device faults).
void register_engine_evaluator();

}  // namespace diffsearch::cli
