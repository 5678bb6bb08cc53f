// Which batch size fits the device: a unit asks for a batch (the search's
// --batch-size, 8 by default), and when the GPU cannot hold it the evaluator
// halves it until it fits, remembering the size per shape so later units of
// the same model and resolution start there instead of failing again.
#pragma once

#include <map>
#include <string>

namespace diffsearch::worker {

class BatchFit {
 public:
  // The batch to try first for a shape (`key`: model, dtype, device, size):
  // the request, or less when a larger one already ran out of memory.
  int first_batch(const std::string& key, int requested) const;
  // After running out of memory at `batch`: the next, smaller batch to try
  // (remembered for the shape), or 0 when even one image does not fit.
  int after_out_of_memory(const std::string& key, int batch);

 private:
  std::map<std::string, int> largest_;  // the largest batch not known to fail
};

}  // namespace diffsearch::worker
