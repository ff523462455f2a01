// report.html: base64 and escaping against independent references, the widefield sum against
// its closed form, and a run folder's page: every picture inlined byte for byte, the numbers of
// its files, nothing of the config taken as HTML, missing pieces said.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/formats/raw_file.h"
#include "pipeline/formats/reconstruction_file.h"
#include "pipeline/formats/run_metrics.h"
#include "pipeline/picture.h"
#include "stages/report/report.h"
#include "tests/temp_dir.h"

namespace dsir {
namespace {
namespace fs = std::filesystem;

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Report, Base64MatchesRfc4648Vectors) {
  EXPECT_EQ(report::base64(""), "");
  EXPECT_EQ(report::base64("f"), "Zg==");
  EXPECT_EQ(report::base64("fo"), "Zm8=");
  EXPECT_EQ(report::base64("foo"), "Zm9v");
  EXPECT_EQ(report::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(report::base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(report::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(report::base64(std::string("\xff\xfe\x00\x80", 4)), "//4AgA==");  // high bytes, a zero
}

TEST(Report, TextIsEscapedNeverMarkup) {
  EXPECT_EQ(report::escape_html("<b a=\"1\">Tom's & co</b>"),
            "&lt;b a=&quot;1&quot;&gt;Tom&#39;s &amp; co&lt;/b&gt;");
  report::Page page("a <title>");
  page.table({{"<script>", "x & y"}});
  const std::string html = page.html();
  EXPECT_EQ(count(html, "<script"), 0u);
  EXPECT_NE(html.find("<title>a &lt;title&gt;</title>"), std::string::npos);
  EXPECT_NE(html.find("x &amp; y"), std::string::npos);
}

class ReportRun : public test::TempDirTest {
 protected:
  // A raw.h5 of `frames` frames of 5 x 3 pixels, frame k pixel p = k + p: the sum is
  // frames * p + frames (frames - 1) / 2.
  std::string write_raw(uint64_t frames) {
    const std::string path = in_dir("acq.h5");
    RawFileInfo info;
    info.frames = frames, info.width = 5, info.height = 3, info.pixel_size_nm = 100;
    RawFileWriter w(path, info, {});
    std::vector<uint16_t> f(15);
    for (uint64_t k = 0; k < frames; ++k) {
      for (int p = 0; p < 15; ++p) f[p] = static_cast<uint16_t>(k + p);
      w.write_frame(f.data());
    }
    w.commit();
    return path;
  }

  void write_reconstruction_for(const std::string& raw, uint64_t frames) {
    ReconstructionContent r;
    r.width = 40, r.height = 24, r.pixel_size_nm = 12.5, r.render = "gaussian", r.image_unit = "locs";
    r.image.assign(40 * 24, 0.f);
    r.image[100] = 5;
    r.network_sum = r.image;
    r.frames = frames, r.shards = 1, r.raw_pixel_size_nm = 100, r.raw_width = 5, r.raw_height = 3;
    write_reconstruction(in_dir("reconstruction.h5"), r, {{"source_file", raw}});
    picture::save_image_png(in_dir("reconstruction.png"), r.image, r.width, r.height, r.pixel_size_nm);
  }
};

TEST_F(ReportRun, WidefieldIsTheSumOfTheFramesWhateverTheChunk) {
  const uint64_t frames = 7;
  const std::string raw = write_raw(frames);
  for (uint64_t chunk_bytes : {uint64_t(1), uint64_t(2 * 15 * 4), uint64_t(64) << 20}) {
    int h = 0, w = 0;
    const std::vector<double> sum = report::widefield_sum(raw, h, w, chunk_bytes);
    ASSERT_EQ(h, 3);
    ASSERT_EQ(w, 5);
    for (int p = 0; p < 15; ++p) EXPECT_EQ(sum[p], double(frames) * p + frames * (frames - 1) / 2.0) << p;
  }
}

TEST_F(ReportRun, PageHoldsEveryPictureAndTheRunsNumbers) {
  const std::string raw = write_raw(4);
  write_reconstruction_for(raw, 4);
  fs::create_directories(dir_ / "train" / "previews");
  write_epoch_metrics(in_dir("train/metrics.jsonl"),
                      {{1, 10, 0.5, 0.6, 1e-3, 80, 60}, {2, 20, 0.25, 0.3, 1e-3, 90, 30}});
  picture::save_line_plot(in_dir("train/loss.png"), "loss", "epoch", "loss",
                          {{"train", {1, 2}, {0.5, 0.25}}});
  picture::save_panels_png(in_dir("train/previews/epoch-0002.png"), {{"input", {0, 1, 2, 3}, 2, 2}});
  nlohmann::json m;
  m["localizations"] = 511;
  m["ground_truth"] = 830;
  m["matching"] = {
      {{"tolerance_nm", 50.0}, {"hungarian", {{"jaccard", 0.4321}, {"rmse_lateral_nm", 29.5}, {"tp", 3}}}}};
  m["image"] = {{"pearson", 0.875}};
  m["frc_resolution_nm"] = 61.25;
  m["nena_precision_nm"] = nullptr;
  write_evaluation(in_dir("metrics.json"), m);
  write_text_file(in_dir("config.yaml"), "run:\n  dir: <b>evil</b>\n");
  write_text_file(in_dir("dsir.log"), "[info] reduce: done\n[warning] evaluate: NeNA precision undefined\n");

  EXPECT_TRUE(report::write_widefield_pictures(dir()).empty());
  ASSERT_TRUE(fs::exists(dir_ / "widefield.png"));
  const report::Page page = report::run_report(dir());
  const std::string html = page.html();

  // Every picture inlined, byte for byte, and nothing else loaded.
  const std::vector<fs::path> pngs = {dir_ / "reconstruction.png", dir_ / "widefield.png",
                                      dir_ / "train/loss.png", dir_ / "train/previews/epoch-0002.png"};
  EXPECT_EQ(page.figure_count(), 4);
  EXPECT_EQ(count(html, "<img src=\"data:image/png;base64,"), pngs.size());
  for (const auto& p : pngs)
    EXPECT_NE(html.find("data:image/png;base64," + report::base64(file_bytes(p)) + "\""), std::string::npos)
        << p;
  EXPECT_EQ(count(html, "src=\"http"), 0u);
  EXPECT_EQ(count(html, "<script"), 0u);

  // The numbers of the run's files.
  for (const char* text :
       {">Reconstruction</h2>", ">Training</h2>", ">Evaluation</h2>", ">Warnings (1)</h2>",
        "<td>Jaccard index at 50 nm</td><td>0.4321</td>", "<td>511</td>", "<td>830</td>",
        "<td>lateral RMSE at 50 nm</td><td>29.5 nm</td>", "<td>0.875</td>",
        "<td>FRC resolution</td><td>61.25 nm</td>", "<td>NeNA localization precision</td><td>undefined</td>",
        "<td>epochs</td><td>2</td>", "<td>last training loss</td><td>0.25</td>",
        "<td>training time</td><td>1.5 min</td>", "<td>frames</td><td>4</td>",
        "NeNA precision undefined</p>"})
    EXPECT_NE(html.find(text), std::string::npos) << text;
  EXPECT_NE(html.find("<td>acquisition</td><td>" + raw + "</td>"), std::string::npos);
  // The config shown as text.
  EXPECT_NE(html.find("dir: &lt;b&gt;evil&lt;/b&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<b>evil"), std::string::npos);
}

TEST_F(ReportRun, RanksShareTheAcquisitionsOfAnArchive) {
  const std::string raw = write_raw(3);
  write_reconstruction_for(raw, 3);
  for (const char* acquisition : {"cell-a", "cell-b", "cell-c"}) {
    fs::create_directories(dir_ / acquisition);
    fs::copy_file(dir_ / "reconstruction.h5", dir_ / acquisition / "reconstruction.h5");
  }
  fs::remove(dir_ / "reconstruction.h5");
  // Folders in name order, rank 1 of 2 takes the second.
  EXPECT_TRUE(report::write_widefield_pictures(dir(), 1, 2).empty());
  EXPECT_FALSE(fs::exists(dir_ / "cell-a" / "widefield.png"));
  EXPECT_TRUE(fs::exists(dir_ / "cell-b" / "widefield.png"));
  EXPECT_FALSE(fs::exists(dir_ / "cell-c" / "widefield.png"));
  EXPECT_TRUE(report::write_widefield_pictures(dir(), 0, 2).empty());
  EXPECT_TRUE(fs::exists(dir_ / "cell-a" / "widefield.png"));
  EXPECT_TRUE(fs::exists(dir_ / "cell-c" / "widefield.png"));
  const std::string html = report::run_report(dir()).html();
  for (const char* heading :
       {">Reconstruction: cell-a</h2>", ">Reconstruction: cell-b</h2>", ">Reconstruction: cell-c</h2>"})
    EXPECT_NE(html.find(heading), std::string::npos) << heading;
}

TEST_F(ReportRun, MissingAcquisitionIsSaidAndTheRestReported) {
  write_reconstruction_for(in_dir("moved-away.h5"), 4);
  const std::vector<std::string> notes = report::write_widefield_pictures(dir());
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("moved-away.h5"), std::string::npos) << notes[0];
  EXPECT_FALSE(fs::exists(dir_ / "widefield.png"));
  const std::string html = report::run_report(dir()).html();
  EXPECT_EQ(count(html, "<img "), 1u);  // the reconstruction alone
}

TEST_F(ReportRun, BadFoldersAndFilesAreErrorsNamingThem) {
  try {
    report::run_report(in_dir("nothing-here"));
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing-here: no such run folder"), std::string::npos) << e.what();
  }
  try {
    report::run_report(dir());  // empty
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a dsir run folder"), std::string::npos) << e.what();
  }
  fs::create_directories(dir_ / "train");
  write_text_file(in_dir("train/loss.png"), "not a picture");
  try {
    report::run_report(dir());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("loss.png: not a PNG file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsir
