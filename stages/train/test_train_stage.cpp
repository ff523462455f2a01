// The train stage run in-process through its registration, as `dsir train` runs it: resuming
// after any epoch, or after a stop signal mid-epoch, ends bit-identical to an uninterrupted run.
#include <ATen/ops/equal.h>
#include <ATen/ops/from_blob.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/h5store.h"
#include "pipeline/registry.h"
#include "stages/train/lr_schedule.h"
#include "stages/train/models/checkpoint.h"
#include "stages/train/threshold.h"
#include "stages/train/upscaled_set.h"
#include "tests/shared_data.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace {

class TrainStage : public dsir::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    // 40 frames of 32x32 "upscaled" inputs with a few emitters each.
    std::mt19937 rng(3);
    std::normal_distribution<float> noise;
    std::vector<float> in(40 * 32 * 32), lab(40 * 32 * 32, 0.0f);
    for (auto& v : in) v = noise(rng);
    for (int f = 0; f < 40; ++f)
      for (int k = 0; k < 3; ++k) lab[f * 1024 + (rng() % 1024)] = 1.0f;
    write_upscaled("up.h5", in, lab, 8);
  }

  // An upscaled file of 32x32 items (100 nm camera pixels upscaled `factor` times).
  void write_upscaled(const std::string& name, const std::vector<float>& inputs,
                      const std::vector<float>& labels, int factor) {
    const uint64_t items = inputs.size() / (32 * 32);
    auto h = dsir::h5::File::create(dir() + "/" + name, {});
    h.write("/inputs", inputs, {items, 32, 32});
    h.write("/labels", labels, {items, 32, 32});
    h.set_attr("/", "factor", static_cast<double>(factor));
    h.set_attr("/", "raw_pixel_size_nm", 100.0);
    h.set_attr("/", "normalize", std::string("per-frame"));
    h.commit();
  }

  void train(const std::string& out, int epochs, bool resume, std::vector<std::string> extra = {}) {
    std::vector<std::string> overrides{"train.input=" + dir() + "/up.h5",
                                       "train.output=" + dir() + "/" + out,
                                       "train.epochs=" + std::to_string(epochs),
                                       "train.batch_size=4",
                                       "train.lr=1e-3",
                                       "train.label_scale=100",
                                       "train.validation_fraction=0.2",
                                       "run.threads=1",
                                       "train.resume=" + std::string(resume ? "true" : "false"),
                                       "run.seed=9"};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    dsir::Config cfg = dsir::Config::load("", overrides);
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("train")->run(ctx);
  }

  std::string checksum(const std::string& file) {
    return dsir::h5::File::open(dir() + "/" + file).attr_string("/", "model_checksum");
  }
};

// Runs that train.epochs extends (a schedule spans the epochs, so a constant rate here).
TEST_F(TrainStage, ResumeAfterAnEpochIsBitIdentical) {
  const std::vector<std::string> constant{"train.lr_schedule=constant"};
  train("a", 3, false, constant);
  train("b", 1, false, constant);
  train("b", 3, true, constant);
  EXPECT_EQ(checksum("a/checkpoint-epoch-0003.h5"), checksum("b/checkpoint-epoch-0003.h5"));
  EXPECT_EQ(checksum("a/model.h5"), checksum("b/model.h5"));
  // Older checkpoints beyond keep_checkpoints (3) are not kept; metrics.jsonl has one line per epoch.
  const std::string metrics = dsir::read_text_file(dir() + "/b/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
  // metrics.csv: the same epochs and numbers as metrics.jsonl, the resumed run's included.
  std::stringstream csv(dsir::read_text_file(dir() + "/b/metrics.csv")), jsonl(metrics);
  std::string row, line;
  std::getline(csv, row);
  EXPECT_EQ(row, "epoch,step,train_loss,val_loss,lr,frames_per_s,seconds");
  for (int epoch = 1; epoch <= 3; ++epoch) {
    ASSERT_TRUE(std::getline(csv, row) && std::getline(jsonl, line)) << "epoch " << epoch;
    const nlohmann::json j = nlohmann::json::parse(line);
    std::vector<std::string> cells;
    std::stringstream cs(row);
    for (std::string cell; std::getline(cs, cell, ',');) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 7u) << row;
    EXPECT_EQ(std::stoll(cells[0]), epoch);
    EXPECT_EQ(std::stod(cells[2]), j["train_loss"].get<double>()) << row;  // exact: shortest round-trip text
    EXPECT_EQ(std::stod(cells[4]), j["lr"].get<double>()) << row;
  }
  EXPECT_TRUE(fs::exists(dir() + "/b/loss.png"));
  EXPECT_TRUE(fs::exists(dir() + "/b/previews/epoch-0003.png"));
}

// The detector trains on its own loss (labels as emitters: label scale 1 whatever train.label_scale
// says) and refuses what only a map's loss has: heat-map labels, an L1 penalty.
TEST_F(TrainStage, TheDetectorTrainsOnItsOwnLossAndRefusesMapLossSettings) {
  train("det", 2, false, {"train.model=detector"});
  dsir::ModelMeta meta;
  dsir::load_model(dir() + "/det/model.h5", &meta);
  EXPECT_EQ(meta.arch, "detector");
  EXPECT_EQ(meta.label_scale, 1);
  std::stringstream jsonl(dsir::read_text_file(dir() + "/det/metrics.jsonl"));
  std::vector<double> val_loss;
  for (std::string line; std::getline(jsonl, line);)
    val_loss.push_back(nlohmann::json::parse(line)["val_loss"].get<double>());
  ASSERT_EQ(val_loss.size(), 2u);
  EXPECT_TRUE(std::isfinite(val_loss[0]) && std::isfinite(val_loss[1]));
  EXPECT_TRUE(fs::exists(dir() + "/det/loss.png"));

  auto refused = [&](const std::string& out, const std::vector<std::string>& extra,
                     const std::string& names) {
    try {
      train(out, 1, false, extra);
      ADD_FAILURE() << names << ": not refused";
    } catch (const dsir::Error& e) {
      EXPECT_NE(std::string(e.what()).find(names), std::string::npos) << e.what();
    }
  };
  refused("g", {"train.model=detector", "upscale.labels=gaussian"}, "upscale.labels");
  refused("l1", {"train.model=detector", "train.loss.l1_weight=0.1"}, "train.loss.l1_weight");
  // An upscaled file of heat maps (no whole emitters in its labels), whatever upscale.labels says.
  std::vector<float> heat(40 * 32 * 32, 0.0f), inputs(40 * 32 * 32, 0.5f);
  heat[100] = 0.37f;
  write_upscaled("heat.h5", inputs, heat, 8);
  refused("h", {"train.model=detector", "train.input=" + dir() + "/heat.h5"}, "upscale.labels");
}

// A raw.h5 with ground truth trains as its upscaled.h5 does: the items rendered on the fly are
// the upscale stage's bit for bit (here random patches, global normalisation, Gaussian labels,
// emitters outside the field), and so are the weights.
TEST_F(TrainStage, ARawInputTrainsBitIdenticalToItsUpscaledFile) {
  dsir::RawFileInfo info;
  info.frames = 12;
  info.width = info.height = 12;
  info.pixel_size_nm = 100;
  std::mt19937 rng(5);
  std::vector<dsir::Emitter> truth;
  {
    dsir::RawFileWriter w(dir() + "/raw.h5", info, {});
    std::vector<uint16_t> px(144);
    for (int f = 0; f < 12; ++f) {
      for (auto& v : px) v = static_cast<uint16_t>(100 + rng() % 50);
      w.write_frame(px.data());
    }
    std::uniform_real_distribution<double> position(-50, 1250);
    for (int f = 0; f < 12; ++f)
      for (int k = 0; k < 4; ++k) {
        dsir::Emitter e;
        e.frame = f;
        e.x_nm = position(rng);
        e.y_nm = position(rng);
        truth.push_back(e);
      }
    w.set_emitters(truth, "truth.csv", dsir::count_outside(truth, 1200, 1200));
    w.commit();
  }
  const std::vector<std::string> items{"upscale.factor=4",
                                       "upscale.normalize=global",
                                       "upscale.labels=gaussian",
                                       "upscale.label_sigma_px=1.5",
                                       "upscale.patch_size=8",
                                       "upscale.patches_per_frame=3",
                                       "train.model=dsir",  // x4 frames (subpixel needs x8)
                                       "run.seed=9"};
  auto with = [&items](const std::string& key) {
    std::vector<std::string> o = items;
    o.push_back(key);
    return o;
  };
  {
    std::vector<std::string> o = with("upscale.input=" + dir() + "/raw.h5");
    o.push_back("upscale.output=" + dir() + "/raw-up.h5");
    dsir::Config cfg = dsir::Config::load("", o);
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("upscale")->run(ctx);
  }
  const dsir::ItemSpec spec = dsir::item_spec(dsir::Config::load("", items));
  const dsir::UpscaledSet from_file(dir() + "/raw-up.h5", spec), rendered(dir() + "/raw.h5", spec);
  ASSERT_TRUE(rendered.rendered_on_the_fly());
  EXPECT_FALSE(from_file.rendered_on_the_fly());
  EXPECT_EQ(rendered.frames, 36u);
  EXPECT_EQ(rendered.height, 32);
  EXPECT_EQ(rendered.width, from_file.width);
  EXPECT_EQ(rendered.normalize, from_file.normalize);
  EXPECT_EQ(rendered.raw_pixel_size_nm, from_file.raw_pixel_size_nm);
  const std::vector<uint64_t> idx{35, 0, 1, 2, 17, 16, 5};
  const auto [xa, ya] = from_file.batch(idx, 100);
  const auto [xb, yb] = rendered.batch(idx, 100);
  EXPECT_TRUE(at::equal(xa, xb));
  EXPECT_TRUE(at::equal(ya, yb));
  EXPECT_GT(ya.sum().item<double>(), 0);
  // Each item's emitters (for the localization threshold): its frame's ground truth, in nm from
  // its patch's corner; upscaled.h5 keeps none.
  for (const uint64_t item : idx) {
    const auto [row0, col0] = dsir::patch_origin(9, item / 3, 12, 12, 8, item % 3);
    const std::vector<dsir::Emitter> mine = *rendered.emitters(item);
    std::vector<dsir::Emitter> frame_truth;
    for (const auto& e : truth)
      if (e.frame == static_cast<int64_t>(item / 3)) frame_truth.push_back(e);
    ASSERT_EQ(mine.size(), frame_truth.size()) << item;
    for (size_t k = 0; k < mine.size(); ++k) {
      EXPECT_DOUBLE_EQ(mine[k].x_nm + col0 * 100.0, frame_truth[k].x_nm) << item;
      EXPECT_DOUBLE_EQ(mine[k].y_nm + row0 * 100.0, frame_truth[k].y_nm) << item;
    }
  }
  EXPECT_FALSE(from_file.emitters(0).has_value());
  // What a GPU is sent instead (UpscaledSet::upscales_on): each item's raw window and
  // its labels' nonzero pixels, expanded on the device: the same labels, the inputs within 1e-5.
  // Here on the CPU, for these items and for whole frames with per-frame normalisation and DSIR's
  // labels, and through the prefetcher's compact mode.
  const auto expect_compact_matches = [](const dsir::UpscaledSet& set, const std::vector<uint64_t>& items,
                                         const char* what) {
    const auto [x, y] = set.batch(items, 100);
    const dsir::CompactBatch compact = set.compact_batch(items, 100);
    EXPECT_EQ(compact.windows.numel() * set.factor * set.factor, x.numel()) << what;
    EXPECT_EQ(compact.label_index.numel(), y.nonzero().size(0)) << what;
    const auto [xc, yc] = set.expand(compact, torch::kCPU);
    EXPECT_TRUE(at::equal(yc, y)) << what;
    EXPECT_EQ(xc.sizes(), x.sizes()) << what;
    EXPECT_LT((xc - x).abs().max().item<double>(), 1e-5) << what;
    EXPECT_GT(x.abs().max().item<double>(), 0.5) << what;
    dsir::BatchPrefetcher prefetch(set, 100, torch::kCPU, /*compact=*/true);
    prefetch.request(items);
    const auto [xp, yp] = prefetch.take();
    EXPECT_TRUE(at::equal(xp, xc)) << what;
    EXPECT_TRUE(at::equal(yp, yc)) << what;
  };
  EXPECT_FALSE(rendered.upscales_on(torch::kCPU));
  EXPECT_TRUE(at::equal(rendered.batch_for(idx, 100, torch::kCPU).first, xb));  // the CPU keeps its bits
  expect_compact_matches(rendered, idx, "patches, global normalisation, Gaussian labels");
  dsir::ItemSpec whole = spec;
  whole.patch_size = 0;
  whole.normalize = dsir::Normalization::PerFrame;
  whole.labels = dsir::LabelMode::Dsir;
  const dsir::UpscaledSet whole_frames(dir() + "/raw.h5", whole);
  expect_compact_matches(whole_frames, {11, 0, 3}, "whole frames, per-frame normalisation, DSIR's labels");
  EXPECT_THROW(from_file.compact_batch(idx, 100), std::logic_error);
  EXPECT_THROW(from_file.expand(rendered.compact_batch(idx, 100), torch::kCPU), std::logic_error);
  train("from-file", 2, false, with("train.input=" + dir() + "/raw-up.h5"));
  train("from-raw", 2, false, with("train.input=" + dir() + "/raw.h5"));
  EXPECT_EQ(checksum("from-file/model.h5"), checksum("from-raw/model.h5"));
  // Only the model trained from raw.h5 (emitters known per item) has a localization threshold.
  const auto& thresholds = dsir::LocalizationScores::thresholds();
  const auto& masses = dsir::LocalizationScores::emitter_masses();
  const dsir::h5::File chosen = dsir::h5::File::open(dir() + "/from-raw/model.h5");
  const double threshold = chosen.attr_double("/", "localize_threshold"),
               mass = chosen.attr_double("/", "localize_emitter_mass");
  EXPECT_NE(std::find(thresholds.begin(), thresholds.end(), threshold), thresholds.end()) << threshold;
  EXPECT_NE(std::find(masses.begin(), masses.end(), mass), masses.end()) << mass;
  const dsir::h5::File none = dsir::h5::File::open(dir() + "/from-file/model.h5");
  EXPECT_EQ(none.attr_double("/", "localize_threshold"), 0.0);
  EXPECT_EQ(none.attr_double("/", "localize_emitter_mass"), 0.0);
  // Without ground truth there is nothing to train on: the error names the file.
  info.frames = 1;
  {
    dsir::RawFileWriter w(dir() + "/bare.h5", info, {});
    w.write_frame(std::vector<uint16_t>(144, 100).data());
    w.commit();
  }
  try {
    train("bare", 1, false, with("train.input=" + dir() + "/bare.h5"));
    ADD_FAILURE() << "trained on a raw.h5 without /emitters";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bare.h5"), std::string::npos) << e.what();
  }
}

// A newest checkpoint that does not read whole (here cut in half, as a full disk or an
// interrupted copy leaves it) is passed over for the one before; the run then ends bit-identical
// to an uninterrupted one. A file whose name only looks like a checkpoint's is ignored.
TEST_F(TrainStage, ACorruptNewestCheckpointResumesFromTheOneBefore) {
  const std::vector<std::string> constant{"train.lr_schedule=constant"};
  train("a", 3, false, constant);
  train("b", 2, false, constant);
  const std::string newest = dir() + "/b/checkpoint-epoch-0002.h5";
  fs::resize_file(newest, fs::file_size(newest) / 2);
  std::ofstream(dir() + "/b/checkpoint-epoch-notes.h5") << "not a checkpoint";
  train("b", 3, true, constant);
  EXPECT_EQ(checksum("a/checkpoint-epoch-0003.h5"), checksum("b/checkpoint-epoch-0003.h5"));
  EXPECT_EQ(checksum("a/model.h5"), checksum("b/model.h5"));
  const std::string metrics = dsir::read_text_file(dir() + "/b/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
  // With no readable checkpoint left: the error names the oldest one tried.
  for (const char* name :
       {"/b/checkpoint-epoch-0001.h5", "/b/checkpoint-epoch-0002.h5", "/b/checkpoint-epoch-0003.h5"})
    fs::resize_file(dir() + name, 100);
  try {
    train("b", 4, true, constant);
    ADD_FAILURE() << "resumed from cut checkpoints";
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint-epoch-0001.h5"), std::string::npos) << e.what();
  }
}

TEST_F(TrainStage, StopSignalCheckpointsMidEpochAndResumeIsBitIdentical) {
  train("a", 8, false);
  // The signal arrives while training runs; the stage finishes its step, saves and stops.
  std::thread sender([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::raise(SIGUSR1);
  });
  bool interrupted = false;
  try {
    train("b", 8, false);
  } catch (const dsir::Interrupted& e) {
    interrupted = true;
    EXPECT_NE(std::string(e.what()).find("train.resume=true"), std::string::npos) << e.what();
  }
  sender.join();
  ASSERT_TRUE(interrupted) << "training finished before the signal; make the test data larger";
  EXPECT_FALSE(fs::exists(dir() + "/b/checkpoint-epoch-0008.h5"));
  train("b", 8, true);
  EXPECT_EQ(checksum("a/checkpoint-epoch-0008.h5"), checksum("b/checkpoint-epoch-0008.h5"));
}

// train.time_limit_min: the run stops at a step boundary once the budget is spent, as a
// normal finish (no exception), with model.h5 written and the state saved mid-epoch; resumed
// without a limit it ends bit-identical to an uninterrupted run.
TEST_F(TrainStage, TimeLimitStopsAtAStepKeepsAModelAndResumesBitIdentical) {
  train("a", 3, false);
  // 0.6 ms: spent by the first step, so the run stops at the first step boundary, mid-epoch 1.
  train("b", 3, false, {"train.time_limit_min=1e-5"});
  EXPECT_TRUE(fs::exists(dir() + "/b/checkpoint-epoch-0000.h5"));  // the state within epoch 1
  EXPECT_FALSE(fs::exists(dir() + "/b/checkpoint-epoch-0001.h5"));
  ASSERT_TRUE(fs::exists(dir() + "/b/model.h5"));  // no epoch finished: the weights at the limit
  EXPECT_NE(checksum("b/model.h5"), checksum("a/model.h5"));
  train("b", 3, true);
  EXPECT_EQ(checksum("a/checkpoint-epoch-0003.h5"), checksum("b/checkpoint-epoch-0003.h5"));
  EXPECT_EQ(checksum("a/model.h5"), checksum("b/model.h5"));
}

// Reduce-on-plateau: the logged learning rates follow from the logged validation losses.
TEST_F(TrainStage, PlateauReducesTheLearningRateExactlyWhenValidationStalls) {
  train("p", 8, false,
        {"train.lr=0.05", "train.lr_schedule=constant", "train.plateau.patience=1",
         "train.plateau.factor=0.5"});
  std::stringstream ss(dsir::read_text_file(dir() + "/p/metrics.jsonl"));
  double best = 1e300, lr = 0.05;
  int reductions = 0, lines = 0;
  for (std::string line; std::getline(ss, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    const double val = j["val_loss"].get<double>();
    if (val <= best) {
      best = val;
    } else {
      lr *= 0.5;  // patience 1: one epoch without improvement
      ++reductions;
    }
    EXPECT_DOUBLE_EQ(j["lr"].get<double>(), lr) << "epoch " << j["epoch"];
  }
  EXPECT_EQ(lines, 8);
  std::cout << "[ info ] " << reductions << " learning-rate reductions in 8 epochs\n";
}

// train.lr_schedule: each epoch's logged rate is the schedule's at the epoch's last step, and a
// run stopped mid-epoch by its time limit resumes bit-identical (the rate is a function of the
// step, not state). Not with reduce-on-plateau.
TEST_F(TrainStage, ScheduledRatesAreLoggedPerEpochAndResumeBitIdentical) {
  const std::vector<std::string> one_cycle{"train.lr_schedule=one-cycle"};
  train("a", 3, false, one_cycle);
  std::stringstream ss(dsir::read_text_file(dir() + "/a/metrics.jsonl"));
  const uint64_t steps = 8;  // 32 training frames (40, 20 % validation) in batches of 4
  int epoch = 0;
  for (std::string line; std::getline(ss, line); ++epoch)
    EXPECT_DOUBLE_EQ(nlohmann::json::parse(line)["lr"].get<double>(),
                     dsir::scheduled_lr(dsir::LrSchedule::OneCycle, 1e-3, (epoch + 1) * steps - 1, 3 * steps))
        << "epoch " << epoch + 1;
  EXPECT_EQ(epoch, 3);
  std::vector<std::string> limited = one_cycle;
  limited.push_back("train.time_limit_min=1e-5");
  train("b", 3, false, limited);
  train("b", 3, true, one_cycle);
  EXPECT_EQ(checksum("a/checkpoint-epoch-0003.h5"), checksum("b/checkpoint-epoch-0003.h5"));
  EXPECT_EQ(checksum("a/model.h5"), checksum("b/model.h5"));
  // A different schedule trains different weights (the schedule is applied at all).
  train("c", 3, false, {"train.lr_schedule=cosine"});
  EXPECT_NE(checksum("a/model.h5"), checksum("c/model.h5"));
  try {
    train("d", 1, false, {"train.lr_schedule=cosine", "train.plateau.patience=2"});
    FAIL() << "a schedule together with reduce-on-plateau was accepted";
  } catch (const dsir::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.plateau.patience"), std::string::npos) << e.what();
  }
}

// Under train.time_limit_min a schedule follows the budget where that is further along than the
// steps: 100,000 epochs' steps barely begin within 3 seconds, yet the rate nears the cosine's end
// by the stop. A run stopped by a signal part way records how far it was (schedule_progress) and
// its resumed run goes on from there, never above the rate at that point; a spent budget is
// recorded as 1.
TEST_F(TrainStage, UnderATimeLimitTheScheduleSpansTheBudget) {
  const double lr = 1e-3;
  const std::vector<std::string> budget{"train.lr_schedule=cosine", "train.time_limit_min=0.05"};
  // The newest checkpoint's root and optimizer attributes.
  auto newest_checkpoint = [this](const std::string& run) {
    std::string newest;
    for (const auto& e : fs::directory_iterator(dir() + "/" + run))
      if (e.path().filename().string().rfind("checkpoint-epoch-", 0) == 0 && e.path().string() > newest)
        newest = e.path().string();
    return dsir::h5::File::open(newest);
  };
  auto logged_rates = [this](const std::string& run) {
    std::vector<double> rates;
    std::stringstream ss(dsir::read_text_file(dir() + "/" + run + "/metrics.jsonl"));
    for (std::string line; std::getline(ss, line);)
      rates.push_back(nlohmann::json::parse(line)["lr"].get<double>());
    return rates;
  };

  train("t", 100000, false, budget);
  const dsir::h5::File spent = newest_checkpoint("t");
  EXPECT_EQ(spent.attr_double("/", "schedule_progress"), 1.0);
  const double steps_done = spent.attr_double("/optimizer", "step");
  ASSERT_GE(steps_done, 3) << "too few steps in 3 s to see the schedule move";
  // By the steps alone the rate would still be within 1 % of lr (hundreds of 800,000 steps).
  EXPECT_GT(dsir::scheduled_lr(dsir::LrSchedule::Cosine, lr, static_cast<uint64_t>(steps_done), 800000),
            0.99 * lr);
  EXPECT_LT(spent.attr_double("/optimizer", "lr"), 0.3 * lr);
  const std::vector<double> rates = logged_rates("t");
  for (size_t k = 1; k < rates.size(); ++k) EXPECT_LE(rates[k], rates[k - 1]) << "epoch " << k + 1;

  std::thread sender([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    std::raise(SIGUSR1);
  });
  bool interrupted = false;
  try {
    train("u", 100000, false, budget);
  } catch (const dsir::Interrupted&) {
    interrupted = true;
  }
  sender.join();
  ASSERT_TRUE(interrupted);
  const double carried = newest_checkpoint("u").attr_double("/", "schedule_progress");
  EXPECT_GT(carried, 0.2);
  EXPECT_LT(carried, 1.0);
  const size_t epochs_before = logged_rates("u").size();
  train("u", 100000, true, budget);
  const std::vector<double> resumed = logged_rates("u");
  const double ceiling = dsir::scheduled_lr_at(dsir::LrSchedule::Cosine, lr, carried);
  for (size_t k = epochs_before; k < resumed.size(); ++k) EXPECT_LE(resumed[k], ceiling) << "epoch " << k + 1;
  EXPECT_LE(newest_checkpoint("u").attr_double("/optimizer", "lr"), ceiling);
  EXPECT_EQ(newest_checkpoint("u").attr_double("/", "schedule_progress"), 1.0);
}

TEST_F(TrainStage, BadInputsAreNamed) {
  auto run_with = [](const std::vector<std::string>& overrides) {
    dsir::Config cfg = dsir::Config::load("", overrides);
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("train")->run(ctx);
  };
  EXPECT_THROW(run_with({"train.input=" + dir() + "/missing.h5"}), dsir::ConfigError);
  try {
    dsir::Config cfg =
        dsir::Config::load("", {"train.input=" + dir() + "/up.h5", "train.loss.kernel_size=4"});
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("train")->run(ctx);
    FAIL();
  } catch (const dsir::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.loss.kernel_size"), std::string::npos);
  }
  // The sub-pixel net paints 8x8 sub-pixels per camera pixel: frames upscaled x4 are refused.
  const std::vector<float> zeros(8 * 32 * 32, 0.0f);
  write_upscaled("up4.h5", zeros, zeros, 4);
  try {
    run_with({"train.input=" + dir() + "/up4.h5", "train.model=subpixel", "train.validation_fraction=0.25"});
    FAIL();
  } catch (const dsir::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("upscale.factor"), std::string::npos) << e.what();
  }
}

// DSIR's reference state dict imported through the command gives a model whose output matches
// DSIR's PyTorch output (per-frame BatchNorm, recorded in the model file).
TEST_F(TrainStage, ImportWeightsReproducesDsir) {
  const std::string ref = std::string(DSIR_SHARED_DIR) + "/reference/dsir/reference_26px.h5";
  DSIR_NEED_SHARED_FILE(ref);
  dsir::Config cfg = dsir::Config::load("", {"import-weights.state_dict=" + ref + ":/state_dict",
                                             "import-weights.output=" + dir() + "/dsir.h5"});
  dsir::Context ctx{cfg, dsir::MpiContext::get()};
  dsir::find_command("import-weights")->run(ctx);
  dsir::ModelMeta meta;
  auto model = dsir::load_model(dir() + "/dsir.h5", &meta);
  EXPECT_EQ(meta.bn_mode, "per-frame");
  EXPECT_EQ(meta.arch, "dsir");
  auto f = dsir::h5::File::open(ref);
  auto input = f.read<float>("/upscaled");
  const auto expected = f.read<float>("/output_per_frame_bn");
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor y = model->forward(at::from_blob(input.data(), {1, 1, 208, 208}, torch::kFloat)).contiguous();
  double worst = 0;
  for (size_t i = 0; i < expected.size(); ++i)
    worst = std::max(worst, std::abs(double(y.data_ptr<float>()[i]) - expected[i]));
  EXPECT_LT(worst, dsir::test::kDsirReferenceTolerance);
  // A missing group is named.
  dsir::Config bad = dsir::Config::load(
      "", {"import-weights.state_dict=" + ref + ":/nope", "import-weights.output=" + dir() + "/x.h5"});
  dsir::Context bctx{bad, dsir::MpiContext::get()};
  try {
    dsir::find_command("import-weights")->run(bctx);
    FAIL();
  } catch (const dsir::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nope"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir() + "/x.h5"));
}

}  // namespace
