// How the layers of a block are quantized, given Optimum's sequential groups and the four
// linear-group stages of the block forward (nn/block_forward.h).
//
// Optimum quantizes sequential group i after a forward pass in which groups < i are already
// quantized and groups >= i are still float. A run of consecutive groups that each sit in one
// stage, with non-decreasing stages (the default: one layer per group in registration order),
// is served by a single pass: stage s runs for all sequences, the groups of stage s are solved,
// then stage s+1 runs with them quantized. Any other group (members in several stages, e.g.
// true_sequential=false) gets a pass of its own, after which the carried state is stale and the
// next pass restarts from the block input. The result equals the group-by-group definition.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace gptq {

struct PlannedGroup {
  std::vector<std::string> layers;  // local names, registration order
  std::vector<int> stages;          // stage of each layer
};

struct QuantPass {
  std::vector<PlannedGroup> groups;
  bool single_stage_groups = true;  // every group in one stage, stages non-decreasing
  int first_stage = 0, last_stage = 0;
};

// `groups`: sequential groups (already restricted to layers that are quantized in this block,
// empty groups dropped); `stage_of`: stage index of a local layer name.
template <typename StageOf>
std::vector<QuantPass> plan_passes(const std::vector<std::vector<std::string>>& groups, StageOf stage_of) {
  std::vector<QuantPass> passes;
  for (const auto& g : groups) {
    PlannedGroup pg;
    pg.layers = g;
    int lo = 1 << 30, hi = -1;
    for (const auto& l : g) {
      const int s = stage_of(l);
      pg.stages.push_back(s);
      lo = std::min(lo, s);
      hi = std::max(hi, s);
    }
    const bool single = lo == hi;
    if (single && !passes.empty() && passes.back().single_stage_groups && passes.back().last_stage <= lo) {
      passes.back().groups.push_back(pg);
      passes.back().last_stage = lo;
      continue;
    }
    QuantPass p;
    p.groups.push_back(pg);
    p.single_stage_groups = single;
    p.first_stage = lo;
    p.last_stage = hi;
    passes.push_back(std::move(p));
  }
  return passes;
}

}  // namespace gptq
