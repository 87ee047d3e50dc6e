// Inputs made for a model when the user gives none (neural_engine's generated inputs, and the
// compiler's calibration without --calib_dir): ids uniform within the embedding table that
// reads them, masks all ones, token types zero, other floats uniform in [-1, 1]. Dynamic dims:
// the first is the batch, the second the sequence.
#pragma once
#include <map>
#include <random>
#include <string>

#include "executor/executor.hpp"

namespace ne {

// Rows of the table of a Gather that reads `input` (through Cast/Reshape-like ops); -1 if none.
int64_t find_vocab(const Model& m, const std::string& input);

// One set of inputs; `rng` advances, so successive calls give different sets.
std::map<std::string, HostTensor> generate_inputs(const Model& m, int batch, int seq, std::mt19937& rng);

}  // namespace ne
