// fork() for a test whose child goes on to run walcut code.
#pragma once

#include <sys/types.h>

namespace walcut::testing {

// Ends oneTBB's worker threads, then forks. The child has only the
// forking thread: a lock a worker held at the fork would stay held in
// it, and a child was seen hung in oneTBB's spawn that way. Returns false
// through `finalized` when oneTBB could not end them (the fork happens).
pid_t fork_child(bool* finalized = nullptr);

}  // namespace walcut::testing
