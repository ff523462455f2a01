#pragma once
// Ingest: TIFF stacks (+ optional ground-truth CSV) into raw.h5 (docs/data-format.md).
#include <string>
#include <vector>

#include "pipeline/h5store.h"

namespace dsir {

struct IngestRequest {
  std::vector<std::string> frames;  // TIFF files forming one stack, in order
  std::string locs;                 // ground-truth CSV, optional
  double pixel_size_nm = 0;         // > 0 overrides the TIFF resolution tags
  std::string camera_json;          // recorded as the `camera` attribute
  std::string output;
};

struct IngestSummary {
  uint64_t frames = 0;
  uint32_t width = 0, height = 0;
  double pixel_size_nm = 0;
  uint64_t emitters = 0;
  uint64_t emitters_outside = 0;  // positions outside the field of view (kept, counted, warned)
};

// Streams frames one at a time (memory: one frame). InputError naming the file and frame or
// line on bad input; the output is written atomically, so nothing is left behind on error.
IngestSummary ingest_stack(const IngestRequest& req, const h5::Attributes& provenance);

// Archive mode (and run.input): one raw.h5 per TIFF, `<output_dir>/<file stem>.h5`, frames only.
// ConfigError naming `key` and both files when two inputs share a stem (their outputs would collide).
std::vector<IngestRequest> archive_requests(const std::vector<std::string>& files,
                                            const std::string& output_dir, double pixel_size_nm,
                                            const std::string& camera_json,
                                            const std::string& key = "ingest.archive");

}  // namespace dsir
