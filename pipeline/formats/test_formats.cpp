// The file formats' owners (pipeline/formats): what a writer writes its reader reads back, and a
// malformed file is an InputError naming the file (and the line, for text files).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/formats/checkpoint_meta.h"
#include "pipeline/formats/picasso_file.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/formats/reconstruction_file.h"
#include "pipeline/formats/run_metrics.h"
#include "pipeline/formats/upscaled_file.h"
#include "tests/temp_dir.h"

namespace dsir {
namespace {

class Formats : public test::TempDirTest {};

// The InputError message of f(), or "" when it throws none.
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST_F(Formats, RawFileRoundTrip) {
  RawFileInfo info;
  info.frames = 2;
  info.width = 3;
  info.height = 2;
  info.pixel_size_nm = 107.5;
  info.camera_json = R"({"em_gain": 100})";
  const std::string path = in_dir("raw.h5");
  RawFileWriter w(path, info, {});
  const std::vector<uint16_t> frames{1, 2, 3, 4, 5, 6, 60000, 8, 9, 10, 11, 12};
  w.write_frame(frames.data());
  w.write_frame(frames.data() + 6);
  std::vector<Emitter> truth(2);
  truth[0].frame = 0, truth[0].x_nm = 10, truth[0].y_nm = 20;
  truth[1].frame = 1, truth[1].x_nm = 300, truth[1].y_nm = 150;
  w.set_emitters(truth, "gt.csv", 0);
  w.commit();

  const RawFileReader r(path);
  EXPECT_EQ(r.frames(), 2u);
  EXPECT_EQ(r.width(), 3);
  EXPECT_EQ(r.height(), 2);
  EXPECT_EQ(r.pixel_size_nm(), 107.5);
  EXPECT_EQ(r.read(0, 2), std::vector<float>(frames.begin(), frames.end()));
  const std::vector<Emitter> back = r.emitters();
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].frame, 1);
  EXPECT_EQ(back[1].x_nm, 300);
  EXPECT_EQ(back[1].y_nm, 150);
}

TEST_F(Formats, UpscaledFileRoundTrip) {
  const std::string path = in_dir("upscaled.h5");
  const int h = 4, w = 8;
  std::vector<float> inputs(3 * h * w), labels(3 * h * w);
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = 0.5f * i, labels[i] = i % 7 == 0;
  UpscaledFileWriter writer(path, 3, h, w, {});
  writer.write(0, 2, inputs.data(), labels.data());
  writer.write(2, 1, inputs.data() + 2 * h * w, labels.data() + 2 * h * w);
  UpscaledFileInfo info;
  info.factor = 4;
  info.raw_pixel_size_nm = 100;
  info.normalize = "per-frame";
  info.labels = "binary";
  writer.commit(info);

  const UpscaledFileReader reader(path);
  EXPECT_EQ(reader.layout().frames, 3u);
  EXPECT_EQ(reader.layout().height, h);
  EXPECT_EQ(reader.layout().width, w);
  EXPECT_EQ(reader.layout().factor, 4);
  EXPECT_EQ(reader.layout().raw_pixel_size_nm, 100);
  EXPECT_EQ(reader.layout().normalize, "per-frame");
  EXPECT_EQ(reader.inputs(0, 3), inputs);
  EXPECT_EQ(reader.labels(1, 2), std::vector<float>(labels.begin() + h * w, labels.end()));
}

// A checkpoint's schedule_progress (the share of train.time_limit_min's schedule done) reads
// back; absent it is 0, and outside [0, 1] an error naming the file and attribute.
TEST_F(Formats, ModelMetaReadsScheduleProgressAndRefusesValuesOutsideZeroToOne) {
  auto model_file = [this](const std::string& name, const double* progress) {
    const std::string path = in_dir(name);
    h5::File f = h5::File::create(path, {});
    f.write("/state/w", std::vector<float>{1}, {1});
    for (const char* key : {"arch", "bn_mode", "normalize"}) f.set_attr("/", key, std::string(key));
    for (const char* key : {"label_scale", "factor", "raw_pixel_size_nm", "epoch", "step", "val_loss"})
      f.set_attr("/", key, 8.0);
    if (progress) f.set_attr("/", "schedule_progress", *progress);
    f.commit();
    return path;
  };
  const double half = 0.5, over = 1.5, negative = -0.1;
  EXPECT_EQ(read_model_meta(h5::File::open(model_file("half.h5", &half))).schedule_progress, 0.5);
  EXPECT_EQ(read_model_meta(h5::File::open(model_file("none.h5", nullptr))).schedule_progress, 0.0);
  for (const auto& [name, value] : {std::pair{"over.h5", &over}, std::pair{"negative.h5", &negative}}) {
    const std::string path = model_file(name, value);
    const std::string message = input_error([&] { read_model_meta(h5::File::open(path)); });
    EXPECT_NE(message.find(path + ": attribute schedule_progress"), std::string::npos) << message;
  }
}

TEST_F(Formats, ReconstructionRoundTripAndMalformedImage) {
  ReconstructionContent r;
  r.width = 3;
  r.height = 2;
  r.pixel_size_nm = 12.5;
  r.image = {0, 1, 2, 3, 4, 5};
  r.network_sum = {5, 4, 3, 2, 1, 0};
  r.render = "histogram";
  r.image_unit = "localizations per pixel";
  const std::string path = in_dir("reconstruction.h5");
  write_reconstruction(path, r, {{"acquisition", "cell"}});
  const ReconstructionContent back = read_reconstruction_image(path);
  EXPECT_EQ(back.width, 3);
  EXPECT_EQ(back.height, 2);
  EXPECT_EQ(back.pixel_size_nm, 12.5);
  EXPECT_EQ(back.image, r.image);

  const std::string flat = in_dir("flat.h5");
  h5::File f = h5::File::create(flat, {});
  f.write("/image", std::vector<float>(6, 1.0f), {1, 2, 3});
  f.set_attr("/", "pixel_size_nm", 12.5);
  f.commit();
  const std::string message = input_error([&] { read_reconstruction_image(flat); });
  EXPECT_NE(message.find(flat + ": /image must be a 2-D image"), std::string::npos) << message;
}

TEST_F(Formats, EpochMetricsRoundTripWithTheirSpreadsheet) {
  std::vector<EpochMetrics> epochs(2);
  epochs[0] = {1, 19, 0.25, std::nan(""), 1e-3, 75.5, 8.0625};
  epochs[1] = {2, 38, 0.125, 0.1875, 5e-4, 80, 7.5};
  const std::string path = in_dir("metrics.jsonl");
  write_epoch_metrics(path, epochs);
  const std::vector<EpochMetrics> back = read_epoch_metrics(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].epoch, 1);
  EXPECT_EQ(back[0].step, 19);
  EXPECT_TRUE(std::isnan(back[0].val_loss));  // null: no validation set
  EXPECT_EQ(back[1].val_loss, 0.1875);
  EXPECT_EQ(back[1].lr, 5e-4);
  EXPECT_EQ(read_text_file(in_dir("metrics.csv")),
            "epoch,step,train_loss,val_loss,lr,frames_per_s,seconds\n"
            "1,19,0.25,,0.001,75.5,8.0625\n"
            "2,38,0.125,0.1875,0.0005,80.0,7.5\n");
  EXPECT_TRUE(read_epoch_metrics(in_dir("absent.jsonl")).empty());
}

TEST_F(Formats, AMalformedMetricsLineNamesFileAndLine) {
  const std::string path = in_dir("metrics.jsonl");
  write_text_file(path, "{\"epoch\": 1, \"train_loss\": 0.5}\n{\"epoch\": \"two\", \"train_loss\": 0.4}\n");
  const std::string message = input_error([&] { read_epoch_metrics(path); });
  EXPECT_NE(message.find(path + ":2: "), std::string::npos) << message;
  write_text_file(path, "{\"epoch\": 1, \"train_loss\": 0.5}\nnot json\n");
  EXPECT_NE(input_error([&] { read_epoch_metrics(path); }).find(path + ":2: not a metrics.jsonl line"),
            std::string::npos);
}

TEST_F(Formats, EvaluationSummaryReadsEachToleranceAndLeavesUndefinedRmseEmpty) {
  const std::string path = in_dir("metrics.json");
  nlohmann::json m;
  m["matching"] = {{{"tolerance_nm", 50},
                    {"hungarian", {{"tp", 0}, {"jaccard", 0.0}, {"rmse_lateral_nm", nullptr}}},
                    {"greedy", {{"tp", 0}, {"jaccard", 0.0}, {"rmse_lateral_nm", nullptr}}}},
                   {{"tolerance_nm", 250},
                    {"hungarian", {{"tp", 3}, {"jaccard", 0.75}, {"rmse_lateral_nm", 41.5}}},
                    {"greedy", {{"tp", 2}, {"jaccard", 0.5}, {"rmse_lateral_nm", 60.0}}}}};
  m["image"] = {{"pearson", 0.875}};
  write_evaluation(path, m);
  const EvaluationSummary s = read_evaluation_summary(path, "hungarian");
  ASSERT_EQ(s.by_tolerance.size(), 2u);
  EXPECT_TRUE(std::isnan(s.by_tolerance.at(50).rmse_nm));
  EXPECT_EQ(s.by_tolerance.at(250).jaccard, 0.75);
  EXPECT_EQ(s.by_tolerance.at(250).rmse_nm, 41.5);
  EXPECT_EQ(s.pearson, 0.875);
  EXPECT_EQ(read_evaluation_summary(path, "greedy").by_tolerance.at(250).jaccard, 0.5);
  write_text_file(path, "{\"matching\": 3}");
  EXPECT_NE(
      input_error([&] { read_evaluation_summary(path, "greedy"); }).find(path + ": not a dsir metrics.json"),
      std::string::npos);
}

// picasso's files: what reduce writes evaluate reads back (nm, 0-based frames), and picasso's own
// layout (several YAML documents, sx != sy, columns dsir does not write, no confidence).
TEST_F(Formats, PicassoFileRoundTripInNanometres) {
  std::vector<Emitter> locs(3);
  for (size_t i = 0; i < locs.size(); ++i) {
    Emitter& e = locs[i];
    e.frame = int64_t(2 * i), e.x_nm = 120.5 + 700 * double(i), e.y_nm = 333.25 + 100 * double(i);
    e.photons = 800 + double(i), e.sigma_nm = 125, e.offset = 9.5, e.uncertainty_nm = 7.25,
    e.confidence = 0.75;
    e.photometry_flags = i == 1 ? photometry_flag::sigma_at_bound : 0;
  }
  PicassoInfo info;
  info.width = 32, info.height = 16, info.frames = 10, info.pixel_size_nm = 100, info.generated_by = "test";
  const std::string path = in_dir("locs.hdf5");
  ASSERT_EQ(write_picasso(path, locs, info, {}), 3u);
  const PicassoFile back = read_picasso(path);
  EXPECT_EQ(back.info.width, 32);
  EXPECT_EQ(back.info.height, 16);
  EXPECT_EQ(back.info.frames, 10u);
  EXPECT_EQ(back.info.pixel_size_nm, 100);
  ASSERT_EQ(back.emitters.size(), 3u);
  for (size_t i = 0; i < locs.size(); ++i) {
    const Emitter &a = locs[i], &b = back.emitters[i];
    EXPECT_EQ(b.frame, a.frame);
    // float32 in camera pixels: ~1e-7 relative.
    EXPECT_NEAR(b.x_nm, a.x_nm, 1e-3);
    EXPECT_NEAR(b.y_nm, a.y_nm, 1e-3);
    EXPECT_NEAR(b.photons, a.photons, 1e-3);
    EXPECT_NEAR(b.sigma_nm, a.sigma_nm, 1e-3);
    EXPECT_NEAR(b.offset, a.offset, 1e-5);
    EXPECT_NEAR(b.uncertainty_nm, a.uncertainty_nm, 1e-4);
    EXPECT_NEAR(b.confidence, a.confidence, 1e-7);
    EXPECT_EQ(b.photometry_flags, a.photometry_flags);
  }
  EXPECT_EQ(read_localizations_file(path).size(), 3u);
}

TEST_F(Formats, PicassoOwnFileReads) {
  const std::string path = in_dir("movie_locs.hdf5");
  {
    h5::Table t;
    t.columns.push_back({"frame", h5::DType::u32, {0, 4}});
    t.columns.push_back({"x", h5::DType::f32, {10.5, 3.25}});
    t.columns.push_back({"y", h5::DType::f32, {2.5, 7.75}});
    t.columns.push_back({"photons", h5::DType::f32, {1500, 900}});
    t.columns.push_back({"sx", h5::DType::f32, {1.0, 1.2}});
    t.columns.push_back({"sy", h5::DType::f32, {1.0, 1.6}});
    t.columns.push_back({"bg", h5::DType::f32, {20, 21}});
    t.columns.push_back({"lpx", h5::DType::f32, {0.05, 0.03}});
    t.columns.push_back({"lpy", h5::DType::f32, {0.05, 0.04}});
    t.columns.push_back({"net_gradient", h5::DType::f32, {5000, 4000}});
    auto f = h5::File::create(path, {});
    f.write_table("/locs", t);
    f.commit();
  }
  write_text_file(in_dir("movie_locs.yaml"),
                  "Byte Order: <\nData Type: uint16\nFrames: 5\nHeight: 64\nWidth: 48\n---\n"
                  "Box Size: 7\nGenerated by: Picasso Localize\nPixelsize: 130\n");
  const PicassoFile p = read_picasso(path);
  EXPECT_EQ(p.info.width, 48);
  EXPECT_EQ(p.info.height, 64);
  EXPECT_EQ(p.info.pixel_size_nm, 130);
  EXPECT_EQ(p.info.generated_by, "Picasso Localize");
  ASSERT_EQ(p.emitters.size(), 2u);
  EXPECT_EQ(p.emitters[1].frame, 4);
  EXPECT_NEAR(p.emitters[1].x_nm, 3.25 * 130, 1e-9);
  EXPECT_NEAR(p.emitters[1].y_nm, 7.75 * 130, 1e-9);
  EXPECT_NEAR(p.emitters[1].sigma_nm, std::sqrt((1.2 * 1.2 + 1.6 * 1.6) / 2) * 130, 1e-4);
  EXPECT_NEAR(p.emitters[1].uncertainty_nm, std::sqrt((0.03 * 0.03 + 0.04 * 0.04) / 2) * 130, 1e-5);
  EXPECT_NEAR(p.emitters[0].offset, 20, 1e-9);
  EXPECT_TRUE(std::isnan(p.emitters[0].confidence));
  EXPECT_EQ(p.emitters[0].photometry_flags, photometry_flag::not_measured);
}

TEST_F(Formats, MalformedPicassoFileNamesFileAndKeyOrColumn) {
  const std::string path = in_dir("bad.hdf5"), yaml = in_dir("bad.yaml");
  {
    h5::Table t;
    t.columns.push_back({"frame", h5::DType::u32, {0}});
    t.columns.push_back({"y", h5::DType::f32, {2.5}});
    auto f = h5::File::create(path, {});
    f.write_table("/locs", t);
    f.commit();
  }
  EXPECT_NE(input_error([&] { read_picasso(path); }).find(yaml + ": no such file"), std::string::npos);
  write_text_file(yaml, "Width: 10\nHeight: 10\n");
  EXPECT_NE(input_error([&] { read_picasso(path); }).find(yaml + ": no 'Pixelsize' key"), std::string::npos);
  write_text_file(yaml, "Pixelsize: wide\n");
  EXPECT_NE(input_error([&] { read_picasso(path); }).find(yaml + ": key 'Pixelsize' is not a number"),
            std::string::npos);
  write_text_file(yaml, "Pixelsize: -3\n");
  EXPECT_NE(input_error([&] { read_picasso(path); }).find("'Pixelsize' must be a number > 0"),
            std::string::npos);
  write_text_file(yaml, "Pixelsize: 100\n");
  EXPECT_NE(input_error([&] { read_picasso(path); }).find(path + ":/locs: missing column 'x'"),
            std::string::npos);
}
}  // namespace
}  // namespace dsir
