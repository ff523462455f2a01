#pragma once
// Typed exceptions. Library code throws; only the driver (pipeline/main.cpp) prints and
// decides between a clean exit and aborting the MPI job. The type gives the exit code; the kind
// of error (docs/architecture.md, "Errors") is decided where it is caught: an error every rank
// reaches is printed once by rank 0 and every rank exits cleanly; an error of one rank alone
// aborts the job with that rank's message, since the others may wait for it in a collective.
#include <stdexcept>
#include <string>

namespace dsir {

// A runtime failure (bad data, I/O), often one rank's alone. Exit code 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input data: the message names the file and the line, frame or dataset. Exit code 1.
class InputError : public Error {
 public:
  using Error::Error;
};

// Usage or configuration error: a key's value, a file a key names. Exit code 2.
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
