#include "tests/testing/fork.h"

#include <oneapi/tbb/global_control.h>
#include <unistd.h>

#include <new>

namespace walcut::testing {

pid_t fork_child(bool* finalized) {
  tbb::task_scheduler_handle handle{tbb::attach{}};
  const bool done = tbb::finalize(handle, std::nothrow);
  if (finalized) *finalized = done;
  return ::fork();
}

}  // namespace walcut::testing
