#pragma once
// Typed exceptions. Library code throws; only the driver (pipeline/main.cpp) prints and
// decides between a clean exit and aborting the MPI job.
#include <stdexcept>
#include <string>

namespace dsir {

// A runtime failure (bad data, I/O). It may be seen by one rank only, so under MPI the driver
// aborts the whole job with a rank-tagged message. Exit code 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input data: the message names the file and the line, frame or dataset. Exit code 1.
class InputError : public Error {
 public:
  using Error::Error;
};

// Usage or configuration error. Every rank parses the same config, so every rank reaches it:
// rank 0 prints, all ranks exit cleanly with code 2.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A failure every rank learnt of together (rank 0 decided and broadcast it, e.g. the infer output
// folder is locked by another job): rank 0 prints, every rank exits cleanly with `code`, no abort.
class CollectiveError : public Error {
 public:
  CollectiveError(const std::string& what, int code) : Error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// A stage stopped on request (SIGUSR1/SIGTERM) after saving its state; every rank agreed to stop
// at the same step. Exit code kExitRequeue tells a Slurm script to requeue the job.
constexpr int kExitRequeue = 75;  // EX_TEMPFAIL
class Interrupted : public Error {
 public:
  using Error::Error;
};

}  // namespace dsir
