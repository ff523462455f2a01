// The sweep command: planning tasks from a sweep config, and summarizing hand-made run folders
// (config.yaml, train/metrics.jsonl and metrics.json in the layouts train and evaluate write),
// run in-process through its registration as `dsir sweep` runs it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pipeline/atomic_file.h"
#include "pipeline/context.h"
#include "pipeline/errors.h"
#include "pipeline/registry.h"
#include "stages/sweep/sweep.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using dsir::Config;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

class Sweep : public dsir::test::TempDirTest {
 protected:
  void run(const std::vector<std::string>& overrides) {
    Config cfg = Config::load("", overrides);
    dsir::Context ctx{cfg, dsir::MpiContext::get()};
    dsir::find_command("sweep")->run(ctx);
  }

  // A finished run as `dsir run` leaves it: the effective config, the training curve, the metrics.
  void make_run(const std::string& name, double fwhm, int kernel, int epochs_planned,
                const std::vector<std::pair<double, double>>& losses, bool with_metrics, double ji50 = 0,
                double ji250 = 0, double pearson = 0) {
    const std::string run = dir() + "/" + name;
    fs::create_directories(run + "/train");
    dsir::write_text_file(run + "/config.yaml",
                          Config::load("", {"run.dir=" + run, "train.loss.fwhm=" + std::to_string(fwhm),
                                            "train.loss.kernel_size=" + std::to_string(kernel),
                                            "train.epochs=" + std::to_string(epochs_planned)})
                              .to_yaml());
    std::string jsonl;
    for (size_t e = 0; e < losses.size(); ++e)
      jsonl +=
          "{\"epoch\":" + std::to_string(e + 1) +
          ",\"frames_per_s\":40.5,\"lr\":0.001,\"seconds\":6.2,\"step\":" + std::to_string(18 * (e + 1)) +
          ",\"train_loss\":" + std::to_string(losses[e].first) +
          ",\"val_loss\":" + std::to_string(losses[e].second) + "}\n";
    dsir::write_text_file(run + "/train/metrics.jsonl", jsonl);
    if (!with_metrics) return;
    auto match = [](double ji, double rmse) {
      return "{\"efficiency\":0.1,\"fn\":10,\"fp\":3,\"jaccard\":" + std::to_string(ji) +
             ",\"rmse_lateral_nm\":" + std::to_string(rmse) + ",\"tp\":5}";
    };
    auto greedy = [](double ji) {
      return "{\"efficiency\":0.1,\"fn\":10,\"fp\":3,\"jaccard\":" + std::to_string(ji / 2) +
             ",\"rmse_lateral_nm\":99.0,\"tp\":5}";
    };
    dsir::write_text_file(
        run + "/metrics.json",
        "{\"ground_truth\":405,\"image\":{\"blur_sigma_nm\":20.0,\"file\":\"x\",\"pearson\":" +
            std::to_string(pearson) +
            ",\"pixel_size_nm\":12.5},\"localizations\":10,\"matching\":[{\"greedy\":" + greedy(ji50) +
            ",\"hungarian\":" + match(ji50, 20.0) + ",\"tolerance_nm\":50.0},{\"greedy\":" + greedy(ji250) +
            ",\"hungarian\":" + match(ji250, 80.0) + ",\"tolerance_nm\":250.0}]}\n");
  }
};

TEST_F(Sweep, PlanListsEveryFwhmWithTheConfigsKernel) {
  const auto tasks =
      dsir::sweep::plan_tasks(Config::load("", {"sweep.fwhm=[1.5, 3, 6]", "train.loss.kernel_size=7"}));
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0].name, "fwhm-1.5");
  EXPECT_EQ(tasks[1].name, "fwhm-3");
  EXPECT_EQ(tasks[2].name, "fwhm-6");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(tasks[i].index, i);
    EXPECT_EQ(tasks[i].kernel_size, 7);
  }
  EXPECT_EQ(tasks[0].fwhm, 1.5);
}

TEST_F(Sweep, PlanGridAndZipWithKernelWidths) {
  auto grid = dsir::sweep::plan_tasks(Config::load("", {"sweep.fwhm=[2, 4]", "sweep.kernel_size=[3, 9]"}));
  ASSERT_EQ(grid.size(), 4u);
  EXPECT_EQ(grid[0].name, "fwhm-2-kernel-3");
  EXPECT_EQ(grid[1].name, "fwhm-2-kernel-9");
  EXPECT_EQ(grid[3].name, "fwhm-4-kernel-9");
  auto zip = dsir::sweep::plan_tasks(
      Config::load("", {"sweep.fwhm=[2, 4]", "sweep.kernel_size=[3, 9]", "sweep.pairing=zip"}));
  ASSERT_EQ(zip.size(), 2u);
  EXPECT_EQ(zip[1].name, "fwhm-4-kernel-9");
  EXPECT_EQ(zip[1].kernel_size, 9);
}

TEST_F(Sweep, PlanRefusesBadListsNamingTheKey) {
  auto err = [](const std::vector<std::string>& o) {
    try {
      dsir::sweep::plan_tasks(Config::load("", o));
    } catch (const dsir::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err({}).find("sweep.fwhm: no FWHM values"), std::string::npos);
  EXPECT_NE(err({"sweep.fwhm=[3]", "sweep.kernel_size=[4]"}).find("sweep.kernel_size: 4 is not an odd"),
            std::string::npos);
  EXPECT_NE(err({"sweep.fwhm=[3]", "sweep.kernel_size=[2.5]"}).find("sweep.kernel_size: 2.5"),
            std::string::npos);
  EXPECT_NE(err({"sweep.fwhm=[3, 3]"}).find("sweep.fwhm: 3 is listed twice"), std::string::npos);
  EXPECT_NE(err({"sweep.fwhm=[1, 2, 3]", "sweep.kernel_size=[3, 5]", "sweep.pairing=zip"})
                .find("sweep.fwhm has 3 values and sweep.kernel_size 2"),
            std::string::npos);
  // The schema's range applies to each value.
  EXPECT_THROW(Config::load("", {"sweep.fwhm=[0]"}), dsir::ConfigError);
}

TEST_F(Sweep, PlanCommandWritesTasksAndTheFrozenConfig) {
  testing::internal::CaptureStdout();
  run({"sweep.action=plan", "sweep.dir=" + dir(), "sweep.fwhm=[2, 4.5]", "train.epochs=7"});
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "2\n");
  EXPECT_EQ(dsir::read_text_file(dir() + "/tasks.tsv"),
            "task\tname\tfwhm\tkernel_size\n0\tfwhm-2\t2\t5\n1\tfwhm-4.5\t4.5\t5\n");
  const auto tasks = dsir::sweep::read_tasks_tsv(dir() + "/tasks.tsv");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1].name, "fwhm-4.5");
  EXPECT_EQ(tasks[1].fwhm, 4.5);
  // Every task runs the frozen config: it loads as a dsir config and keeps the overrides.
  const Config frozen =
      Config::load(dir() + "/sweep.yaml", {"run.dir=" + dir() + "/fwhm-2", "train.loss.fwhm=2"});
  EXPECT_EQ(frozen.get_int("train.epochs"), 7);
  EXPECT_EQ(frozen.get_doubles("sweep.fwhm"), (std::vector<double>{2, 4.5}));
}

TEST_F(Sweep, SummarizeWritesTableMarkdownAndPlots) {
  make_run("fwhm-1.5", 1.5, 5, 2, {{20.0, 21.0}, {15.5, 16.25}}, true, 0.1, 0.4, 0.5);
  make_run("fwhm-3", 3, 5, 2, {{30.0, 31.0}, {25.5, 26.5}}, true, 0.2, 0.6, 0.75);
  make_run("fwhm-6", 6, 5, 2, {{40.0, 41.0}}, false);  // preempted for good: one epoch, no evaluation
  dsir::write_text_file(
      dir() + "/tasks.tsv",
      "task\tname\tfwhm\tkernel_size\n0\tfwhm-3\t3\t5\n1\tfwhm-1.5\t1.5\t5\n2\tfwhm-6\t6\t5\n"
      "3\tfwhm-12\t12\t5\n");
  run({"sweep.action=summarize", "sweep.dir=" + dir()});
  const auto csv = lines_of(dsir::read_text_file(dir() + "/summary.csv"));
  ASSERT_EQ(csv.size(), 5u);
  EXPECT_EQ(csv[0],
            "name,fwhm,kernel_size,epochs,train_loss,val_loss,jaccard_50nm,rmse_nm_50nm,jaccard_250nm,rmse_"
            "nm_250nm,"
            "image_pearson,status");
  EXPECT_EQ(csv[1], "fwhm-1.5,1.5,5,2,15.5,16.25,0.1,20,0.4,80,0.5,ok");
  EXPECT_EQ(csv[2], "fwhm-3,3,5,2,25.5,26.5,0.2,20,0.6,80,0.75,ok");
  EXPECT_EQ(csv[3].rfind("fwhm-6,6,5,1,40,41,,,,,,", 0), 0u) << csv[3];
  EXPECT_NE(csv[3].find("training stopped at epoch 1 of 2"), std::string::npos);
  EXPECT_NE(csv[3].find("evaluate did not run"), std::string::npos);
  EXPECT_EQ(csv[4].rfind("fwhm-12,12,5,,,,,,,,,not run (no folder", 0), 0u) << csv[4];

  const std::string md = dsir::read_text_file(dir() + "/summary.md");
  EXPECT_NE(md.find("| run | FWHM (px) | kernel (px) | epochs | train loss | val loss | JI @ 50 nm |"),
            std::string::npos);
  EXPECT_NE(md.find("| fwhm-3 | 3 | 5 | 2 | 25.5 | 26.5 | 0.2 | 20 | 0.6 | 80 | 0.75 | ok |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("highest JI @ 250 nm: fwhm-3 (0.6)"), std::string::npos) << md;
  EXPECT_NE(md.find("highest image correlation: fwhm-3 (0.75)"), std::string::npos);

  for (const char* png : {"summary.png", "summary-rmse.png", "summary-loss.png"}) {
    std::ifstream f(dir() + "/" + png, std::ios::binary);
    ASSERT_TRUE(f.good()) << png;
    char magic[8] = {};
    f.read(magic, 8);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << png;
    EXPECT_GT(fs::file_size(dir() + "/" + png), 2000u) << png;
  }
  for (const auto& e : fs::directory_iterator(dir()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(Sweep, NoRmseWithoutTruePositives) {
  make_run("fwhm-2", 2, 5, 1, {{1.0, 2.0}}, true, 0.0, 0.5, 0.6);
  std::string m = dsir::read_text_file(dir() + "/fwhm-2/metrics.json");
  // The 50 nm Hungarian entry: nothing matched.
  m.replace(m.find("\"tp\":5", m.find("\"hungarian\"")), 6, "\"tp\":0");
  dsir::write_text_file(dir() + "/fwhm-2/metrics.json", m);
  run({"sweep.dir=" + dir()});
  const auto csv = lines_of(dsir::read_text_file(dir() + "/summary.csv"));
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[1], "fwhm-2,2,5,1,1,2,0,,0.5,80,0.6,ok");
}

TEST_F(Sweep, SummarizeUsesGreedyMatchingWhenAsked) {
  make_run("fwhm-2", 2, 5, 2, {{1.0, 2.0}, {0.5, 1.5}}, true, 0.3, 0.5, 0.6);
  run({"sweep.action=summarize", "sweep.dir=" + dir(), "sweep.matching=greedy"});
  const auto csv = lines_of(dsir::read_text_file(dir() + "/summary.csv"));
  ASSERT_EQ(csv.size(), 2u);
  EXPECT_EQ(csv[1], "fwhm-2,2,5,2,0.5,1.5,0.15,99,0.25,99,0.6,ok");
}

TEST_F(Sweep, SummarizeWithoutTasksFileScansRunFoldersAndSortsByFwhmThenKernel) {
  make_run("b", 4, 3, 1, {{2.0, 3.0}}, true, 0.2, 0.3, 0.4);
  make_run("a", 4, 9, 1, {{2.0, 3.0}}, true, 0.2, 0.3, 0.4);
  make_run("c", 0.5, 9, 1, {{2.0, 3.0}}, true, 0.2, 0.3, 0.4);
  fs::create_directories(dir() + "/not-a-run");
  run({"sweep.action=summarize", "sweep.dir=" + dir()});
  const auto csv = lines_of(dsir::read_text_file(dir() + "/summary.csv"));
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[1].substr(0, 10), "c,0.5,9,1,");
  EXPECT_EQ(csv[2].substr(0, 8), "b,4,3,1,");
  EXPECT_EQ(csv[3].substr(0, 8), "a,4,9,1,");
  EXPECT_TRUE(fs::exists(dir() + "/summary.png"));
}

TEST_F(Sweep, SummarizeErrorsNameTheFolderOrFile) {
  auto what = [&](const std::vector<std::string>& o) {
    try {
      run(o);
    } catch (const dsir::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(what({"sweep.action=summarize"}).find("sweep.dir: no sweep folder given"), std::string::npos);
  EXPECT_NE(what({"sweep.dir=" + dir() + "/absent"})
                .find("sweep.dir: folder '" + dir() + "/absent' does not exist"),
            std::string::npos);
  EXPECT_NE(what({"sweep.dir=" + dir()}).find(dir() + ": no sweep runs here"), std::string::npos);

  make_run("fwhm-2", 2, 5, 1, {{1.0, 2.0}}, true, 0.3, 0.5, 0.6);
  dsir::write_text_file(dir() + "/fwhm-2/metrics.json", "{\"matching\": [{\"tolerance_nm\": 50}]}");
  EXPECT_NE(what({"sweep.dir=" + dir()}).find(dir() + "/fwhm-2/metrics.json: not a dsir metrics.json"),
            std::string::npos);
  dsir::write_text_file(dir() + "/fwhm-2/train/metrics.jsonl", "{\"epoch\":1,\"train_loss\":1}\nnot json\n");
  EXPECT_NE(
      what({"sweep.dir=" + dir()}).find(dir() + "/fwhm-2/train/metrics.jsonl:2: not a metrics.jsonl line"),
      std::string::npos);
  dsir::write_text_file(dir() + "/tasks.tsv", "task\tname\tfwhm\tkernel_size\n0\tfwhm-2\ttwo\t5\n");
  EXPECT_NE(what({"sweep.dir=" + dir()}).find(dir() + "/tasks.tsv:2: not a task line"), std::string::npos);
  dsir::write_text_file(dir() + "/tasks.tsv", "task\tname\tfwhm\tkernel_size\n0\t..\t2\t5\n");
  EXPECT_NE(what({"sweep.dir=" + dir()}).find("'..' is not a run folder name"), std::string::npos);
  // Nothing half-written after the errors.
  EXPECT_FALSE(fs::exists(dir() + "/summary.csv"));
}

}  // namespace
