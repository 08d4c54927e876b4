#include "model/loader_compat.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace gptq {

namespace {

// in_features % group_size != 0: the last group is shorter, valid GPTQ but not for every loader.
void group_issues(int64_t in, int group_size, std::vector<LoaderIssue>* out) {
  if (group_size <= 0 || in % group_size == 0) return;
  const std::string c =
      fmt::format("in_features {} is not a multiple of group_size {}", in, group_size);
  out->push_back(
      {"auto-gptq", c, "fails in its torch/CPU path (reshape to [-1, group_size, out])"});
  out->push_back({"exllama", c, "needs whole groups"});
  out->push_back(
      {"vllm", c, "refuses it (\"input size is not aligned with the quantized weight shape\")"});
}

// in/out features not multiples of 32: the packed tensors no longer have the sizes AutoGPTQ's
// QuantLinear allocates (floor formulas); vLLM needs whole 32-bit words.
void alignment_issues(int64_t in, int64_t out, int bits, std::vector<LoaderIssue>* issues) {
  if (in % 32 != 0) {
    const std::string c = fmt::format("in_features {} is not a multiple of 32", in);
    issues->push_back(
        {"auto-gptq", c, "refuses the checkpoint (qweight buffer of in_features/32*bits rows)"});
    issues->push_back({"exllama", c, "cannot take it"});
    if ((in * bits) % 32 != 0)
      issues->push_back({"vllm", c, "refuses it (qweight not whole words)"});
  }
  if (out % 32 != 0) {
    const std::string c = fmt::format("out_features {} is not a multiple of 32", out);
    issues->push_back(
        {"auto-gptq", c, "refuses the checkpoint (qzeros buffer of out_features/32*bits columns)"});
    if (out % (32 / std::gcd(32, bits)) != 0)
      issues->push_back({"vllm", c, "refuses it (qzeros not whole words)"});
  }
}

}  // namespace

std::vector<LoaderIssue> loader_shape_issues(int64_t in_features, int64_t out_features, int bits,
                                             int group_size) {
  std::vector<LoaderIssue> issues;
  alignment_issues(in_features, out_features, bits, &issues);
  group_issues(in_features, group_size, &issues);
  return issues;
}

std::string describe_loader_issues(const std::vector<LoaderIssue>& issues) {
  std::string out, condition;
  for (const auto& i : issues) {
    if (i.condition != condition) {
      out += (out.empty() ? "" : "; ") + i.condition + ":";
      condition = i.condition;
    } else {
      out += ",";
    }
    out += " " + i.loader + " " + i.effect;
  }
  return out;
}

std::string gptq_v2_readers_note() {
  return "gptq_v2 is read by GPTQModel >= 0.9.0, by transformers >= 4.49 + optimum >= 1.24 with "
         "gptqmodel "
         "installed, and by vLLM with PR #26092 (0.11.1 and later); auto-gptq (every release), "
         "transformers + "
         "optimum on auto-gptq (optimum < 1.24, or gptqmodel not installed) and older vLLM ignore "
         "checkpoint_format and read the zeros as v1: every weight one scale step off, silently";
}

std::string v1_zero_point_0_note() {
  return "v1 stores a zero point of 0 as zero - 1 = -1, the all-ones field: gptq.cpp reads it back "
         "as 0, but "
         "auto-gptq's torch path and vLLM's gptq_gemm read 2^bits (that group's weights shift by "
         "2^bits scale "
         "steps) and GPTQModel's packed v1->v2 conversion carries +1 into the next column's zero "
         "point; "
         "--format gptq_v2 stores it exactly (" +
         gptq_v2_readers_note() + ")";
}

int64_t count_zero_points_0(const std::vector<float>& zeros) {
  return std::count(zeros.begin(), zeros.end(), 0.0f);
}

}  // namespace gptq
