// Inputs of block 0 for the calibration sequences: token embedding rows (+ learned positions),
// converted row by row from the mmap'ed checkpoint (the embedding matrix is never converted
// whole, so a 128k-vocabulary model costs only the rows it uses).
#pragma once

#include <cstdint>
#include <vector>

#include "calib/dataset.h"
#include "model/model_config.h"

namespace gptq {

class TensorStore;

// Row `row` of a 2-D float tensor, converted to fp32 (`out` holds shape[1] floats).
struct TensorInfo;
void tensor_row_to_f32(const TensorInfo& t, int64_t row, float* out);

// x [T, hidden] for each sequence: embed_tokens[id] (+ pos_embed[t + pos_offset]).
std::vector<std::vector<float>> embed_sequences(const ModelConfig& config, const TensorStore& store,
                                                const std::vector<TokenSequence>& seqs);

}  // namespace gptq
