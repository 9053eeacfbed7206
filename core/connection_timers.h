// ConnectionTimers: the idle and keepalive clocks of one connection, shared by
// downstream and upstream HTTP/2 connections.
//
// Owned by the connection, which tells it how many streams are open and when a
// PING came back. Idle: with no stream open for idle_ms, the connection is told
// to close (never while a stream is open). Keepalive: every interval_ms a PING
// goes out; no answer within timeout_ms means the peer is gone. 0 turns either off.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/timer.h"

namespace sluice {

class Dispatcher;

class ConnectionTimers {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    virtual void sendKeepalivePing() = 0;
    // Idle too long, or the peer did not answer a PING: close the connection.
    virtual void onConnectionTimeout(const std::string& reason) = 0;
  };

  ConnectionTimers(Dispatcher& dispatcher, Callbacks& callbacks, uint32_t idle_ms, uint32_t keepalive_interval_ms,
                   uint32_t keepalive_timeout_ms);

  // Starts keepalive, and the idle clock if no stream is open.
  void start(size_t open_streams);
  void onStreamCountChanged(size_t open_streams);
  void onPingAck();
  void stop();

 private:
  void onKeepaliveTimer();

  Callbacks& callbacks_;
  uint32_t idle_ms_;
  uint32_t interval_ms_;
  uint32_t timeout_ms_;
  Timer idle_timer_;
  Timer keepalive_timer_;
  bool ping_outstanding_ = false;
  bool running_ = false;
};

}  // namespace sluice
