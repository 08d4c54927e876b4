#include "dist/communicator.h"

#include "util/error.h"

namespace gptq::dist {

namespace {
LocalCommunicator local;
Communicator* current = &local;
}  // namespace

Communicator& world() {
  return *current;
}
void set_world(Communicator* c) {
  current = c ? c : &local;
}

Range chunk_range(int64_t n, int64_t chunk, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    fail_code(ExitCode::kInternal, "chunk_range: rank {} of {} processes", rank, size);
  const int64_t c = chunk > 0 ? chunk : std::max<int64_t>(n, 1);
  const int64_t chunks = (n + c - 1) / c;
  const int64_t c0 = (chunks * rank + size - 1) / size,
                c1 = (chunks * (rank + 1) + size - 1) / size;
  return {std::min(n, c0 * c), std::min(n, c1 * c)};
}

void Reader::need(uint64_t n) const {
  if (n > b_.size() - pos_)
    fail_code(ExitCode::kInternal,
              "distributed message truncated: {} bytes wanted at offset {} of {}", n, pos_,
              b_.size());
}

}  // namespace gptq::dist
