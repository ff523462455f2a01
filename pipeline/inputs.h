#pragma once
// The files that a list of names and glob patterns stands for: one reading for every stage that
// takes several inputs (ingest's frames, calibrate's frames, infer's acquisitions), so that the
// same pattern gives the same order everywhere.
#include <string>
#include <vector>

namespace dsir {

// Patterns in the order given; each glob's matches (regular files only) in natural order
// (frame2 before frame10); names without wildcards kept as given, existing or not (their reader
// reports them). InputError naming the pattern when a glob matches nothing.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns);

// The raw.h5 that ingest writes for one stack of an archive, or of run.input, in `folder`:
// FOLDER/<stem>.h5 (infer finds run.input's acquisitions there).
std::string ingested_path(const std::string& stack, const std::string& folder);

// Where ingest puts run.input's stacks and infer reads them: {run.dir}/data/input.
inline constexpr const char* kRunInputFolder = "data/input";

// "a2.tif" < "a10.tif": digit runs compare as numbers (leading zeros aside), the rest bytewise.
bool natural_less(const std::string& a, const std::string& b);

}  // namespace dsir
