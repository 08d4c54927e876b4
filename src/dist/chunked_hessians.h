// The Hessians of one forward stage, summed in an order that does not depend on the number of
// processes: the calibration sequences fall into chunks of `chunk` consecutive sequences (<= 0: one
// chunk of all, the single-process order of earlier releases); each chunk's X^T X is accumulated
// sequence after sequence from zero (HessianAccumulator::add), and the chunks' sums are added in
// chunk order (HessianAccumulator::merge). A process owns whole chunks (dist::chunk_range), so the
// fp32 sums, and the output, are the same bytes for 1, 2, 3... processes and the single process.
#pragma once

#include <map>
#include <string>

#include "dist/communicator.h"
#include "quant/gptq.h"

namespace gptq::dist {

class ChunkedHessians {
 public:
  explicit ChunkedHessians(int64_t chunk) : chunk_(chunk) {}
  // The global index of the calibration sequence whose rows the next add() calls carry, and how
  // many consecutive sequences they are (rows of `count` sequences concatenated, all in the chunk
  // of `index`).
  void set_sequence(int64_t index, int64_t count = 1) {
    current_ = chunk_ > 0 ? index / chunk_ : 0;
    count_ = count;
  }
  void add(const std::string& key, const float* rows, int64_t n, int64_t width);
  // Every key's sum over the chunks of every process (a collective: every process calls it, in
  // the same order), folded in chunk order; `moved` (if given) grows by the bytes sent between
  // processes (0 for a single process). Clears this object.
  std::map<std::string, HessianAccumulator> reduce(Communicator& comm, uint64_t* moved = nullptr);

 private:
  int64_t chunk_;
  int64_t current_ = 0;
  int64_t count_ = 1;
  std::map<std::string, std::map<int64_t, HessianAccumulator>> acc_;
};

}  // namespace gptq::dist
