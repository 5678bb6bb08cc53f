#include "worker/batch_fit.h"

#include <algorithm>

namespace diffsearch::worker {

int BatchFit::first_batch(const std::string& key, int requested) const {
  auto it = largest_.find(key);
  return it == largest_.end() ? requested : std::min(requested, it->second);
}

int BatchFit::after_out_of_memory(const std::string& key, int batch) {
  if (batch <= 1) return 0;
  const int next = batch / 2;
  auto [it, fresh] = largest_.emplace(key, next);
  if (!fresh) it->second = std::min(it->second, next);
  return next;
}

}  // namespace diffsearch::worker
