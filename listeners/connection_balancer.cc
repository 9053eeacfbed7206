#include "listeners/connection_balancer.h"

namespace sluice {

size_t ConnectionBalancer::add(GrpcListener& listener) {
  std::lock_guard<std::mutex> lock(mutex_);
  listeners_.push_back(&listener);
  owned_.push_back(0);
  return listeners_.size() - 1;
}

GrpcListener* ConnectionBalancer::pick(size_t accepting, bool balance, uint32_t max_connections) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (total_ >= max_connections) return nullptr;
  size_t best = accepting;
  if (balance) {
    for (size_t i = 0; i < owned_.size(); ++i) {
      if (owned_[i] < owned_[best]) best = i;
    }
  }
  ++owned_[best];
  ++total_;
  return listeners_[best];
}

void ConnectionBalancer::release(size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (owned_[index] == 0) return;
  --owned_[index];
  --total_;
}

uint32_t ConnectionBalancer::owned(size_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return owned_[index];
}

}  // namespace sluice
