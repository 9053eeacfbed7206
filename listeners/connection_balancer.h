// ConnectionBalancer: counts one listener's connections across the workers
// (for max_connections) and spreads them evenly over the workers (listener
// key "connection_balance": "exact", the default).
//
// With SO_REUSEPORT alone the kernel hashes each new connection to a worker:
// fine for thousands of short connections, lopsided for the few long-lived
// ones gRPC clients keep (4 connections land 3 + 1 half the time on 2
// workers, and the calls on the crowded worker wait longer). Here the worker
// that accepted a connection asks the balancer which worker owns the fewest
// and, if that is another one, passes the connection to it (as a bare file
// descriptor, through that worker's dispatcher).
//
// Shared by every worker's GrpcListener of one configured listener; owned by
// the Gateway, which outlives the workers. Thread-safe (a mutex: taken once
// per accepted and per closed connection, never per call).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sluice {

class GrpcListener;

class ConnectionBalancer {
 public:
  // Before the workers run: registers one worker's listener; returns its index.
  size_t add(GrpcListener& listener);
  // The listener that owns a connection the listener at `accepting` just
  // accepted: with `balance`, the one owning the fewest (`accepting` on a
  // tie), otherwise `accepting` itself. Counted as that listener's from now
  // on. nullptr, and nothing counted, when the listener already holds
  // `max_connections` across all workers.
  GrpcListener* pick(size_t accepting, bool balance, uint32_t max_connections);
  // A connection counted by pick() is gone (closed, refused, or not taken over).
  void release(size_t index);
  // Connections counted for the listener at `index`.
  uint32_t owned(size_t index) const;

 private:
  mutable std::mutex mutex_;
  std::vector<GrpcListener*> listeners_;
  std::vector<uint32_t> owned_;
  uint32_t total_ = 0;
};

}  // namespace sluice
