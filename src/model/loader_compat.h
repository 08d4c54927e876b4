// What the major GPTQ loaders can take (README "Which loaders read what"): layer shapes they
// refuse, how they read the checkpoint formats. Used for warnings (gptq quantize, gptq inspect); a
// `--target LOADER` option can turn a LoaderIssue of that loader into a refusal.
//
// Sources (public code): auto-gptq 0.7.1 QuantLinear (qweight [K/32*b, N], qzeros [G, N/32*b],
// torch path reshape(-1, group_size, N)); exllama/exllamav2 (K % 32, K % group_size); vLLM gptq.py
// ("The input size is not aligned with the quantized weight shape": K % group_size, N % pack
// factor) and gptq_gemm (v1 zeros + 1, v2 since PR #26092); GPTQModel (gptq default, v1 -> v2
// conversion by a packed add of 0x11..1 per word, gptq_v2 read since 0.9.0).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptq {

struct LoaderIssue {
  std::string loader;     // stable id: "auto-gptq", "exllama", "vllm"
  std::string condition;  // the shape fact, e.g. "in_features 192 is not a multiple of 32"
  std::string effect;     // what that loader does with it
};

// Shapes of one quantized layer that a major loader cannot take (empty: every loader takes it):
// in_features % group_size != 0 (group_size > 0), in/out features not multiples of 32.
std::vector<LoaderIssue> loader_shape_issues(int64_t in_features, int64_t out_features, int bits,
                                             int group_size);

// One line per condition: "<condition>: auto-gptq <effect>; vllm <effect>".
std::string describe_loader_issues(const std::vector<LoaderIssue>& issues);

// The readers of a gptq_v2 checkpoint, and those that silently read it as v1.
std::string gptq_v2_readers_note();

// How v1 readers decode a stored zero point of 0 (the all-ones field), and the way out.
std::string v1_zero_point_0_note();

// Number of zero points equal to 0 in zeros [G, N] (one per output row and group).
int64_t count_zero_points_0(const std::vector<float>& zeros);

}  // namespace gptq
