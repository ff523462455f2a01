// The inference plan: inputs (files, globs), acquisition names, shards, the plan's round trip
// through MPI bytes, shard identity and the clean-up of a killed run's leftovers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "pipeline/atomic_file.h"
#include "pipeline/csv.h"
#include "pipeline/errors.h"
#include "pipeline/inputs.h"
#include "stages/infer/plan.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

class PlanTest : public dsir::test::TempDirTest {
 protected:
  std::string touch(const std::string& rel) {
    const fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << "x";
    return p.string();
  }
};

TEST_F(PlanTest, ExpandsGlobsSortedAndDropsRepeats) {
  const std::string b = touch("b.h5"), a = touch("a.h5");
  touch("c.txt");
  touch("sub/d.h5");
  std::vector<std::string> repeated;
  const auto files =
      resolve_inputs({(dir_ / "*.h5").string(), a, (dir_ / "sub" / "?.h5").string()}, &repeated);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], a);
  EXPECT_EQ(files[1], b);
  EXPECT_EQ(files[2], (dir_ / "sub" / "d.h5").string());
  ASSERT_EQ(repeated.size(), 1u);
  EXPECT_EQ(repeated[0], a);
  EXPECT_THROW(resolve_inputs({(dir_ / "*.tif").string()}), ConfigError);
  EXPECT_THROW(resolve_inputs({(dir_ / "absent.h5").string()}), ConfigError);
  EXPECT_THROW(resolve_inputs({dir_.string()}), ConfigError);  // a folder is not an input
}

// The same glob gives the same order in every command (pipeline/inputs.h): ingest's natural
// order, not bytewise (which put cell10 before cell2).
TEST_F(PlanTest, GlobsExpandInNaturalOrderAsInIngest) {
  const std::string c10 = touch("cell10.h5"), c2 = touch("cell2.h5"), c1 = touch("cell1.h5");
  EXPECT_EQ(resolve_inputs({(dir_ / "cell*.h5").string()}), (std::vector<std::string>{c1, c2, c10}));
  EXPECT_EQ(resolve_inputs({(dir_ / "cell*.h5").string()}),
            dsir::expand_inputs({(dir_ / "cell*.h5").string()}));
}

TEST_F(PlanTest, NamesAreStemsOrPathsWhenStemsCollide) {
  EXPECT_EQ(acquisition_names({"/d/cell1.h5", "/e/cell2.h5"}), (std::vector<std::string>{"cell1", "cell2"}));
  EXPECT_EQ(acquisition_names({"/arch/day1/raw.h5", "/arch/day2/raw.h5", "/arch/day2/b/raw.h5"}),
            (std::vector<std::string>{"day1_raw", "day2_raw", "day2_b_raw"}));
  EXPECT_THROW(acquisition_names({"/a/x_y/raw.h5", "/a/x/y_raw.h5", "/a/z/raw.h5"}), ConfigError);
}

TEST(Plan, ShardsCoverEveryFrameOnce) {
  std::vector<Acquisition> acq(2);
  acq[0].frames = 10;
  acq[1].frames = 4;
  const auto s = make_shards(acq, 4);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].first, 0u);
  EXPECT_EQ(s[2].first, 8u);
  EXPECT_EQ(s[2].count, 2u);
  EXPECT_EQ(s[2].index, 2u);
  EXPECT_EQ(s[3].acquisition, 1u);
  EXPECT_EQ(s[3].index, 0u);
  EXPECT_EQ(s[3].count, 4u);
  EXPECT_EQ(shard_path("/o", "cell", 7), "/o/cell/shard-00007.h5");
}

TEST(Plan, PacksAndUnpacksAnyBytes) {
  std::vector<Acquisition> acq(2);
  acq[0] = {"a", "/p/with\ttab\nand:colon.h5", 123456789012ull,          512,
            256, 106.66666666666667,           R"({"base_level": 100})", "12 bytes"};
  acq[1] = {"b", "/q.h5", 1, 8, 8, 100, "", ""};
  const auto back = unpack(pack(acq));
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back[i].name, acq[i].name);
    EXPECT_EQ(back[i].path, acq[i].path);
    EXPECT_EQ(back[i].frames, acq[i].frames);
    EXPECT_EQ(back[i].height, acq[i].height);
    EXPECT_EQ(back[i].width, acq[i].width);
    EXPECT_EQ(back[i].pixel_size_nm, acq[i].pixel_size_nm);  // exactly
    EXPECT_EQ(back[i].camera, acq[i].camera);
    EXPECT_EQ(back[i].stat, acq[i].stat);
  }
  EXPECT_TRUE(unpack(pack({})).empty());
}

TEST(Plan, SettingsHashIsFnv1a) {
  EXPECT_EQ(settings_hash(""), "cbf29ce484222325");
  EXPECT_EQ(settings_hash("a"), "af63dc4c8601ec8c");
}

TEST(Plan, ShardIdentityNamesSourceModelSettingsAndFrames) {
  Acquisition a;
  a.path = "/data/cell.h5";
  a.stat = "100 bytes, modified 1.0";
  const ShardInfo id = shard_identity(a, ShardTask{0, 3, 48, 16}, "abc", "threshold=0.3");
  EXPECT_EQ(id.identity(), (ShardAttributes{{"source_file", "/data/cell.h5"},
                                            {"source_stat", "100 bytes, modified 1.0"},
                                            {"model_checksum", "abc"},
                                            {"settings_hash", settings_hash("threshold=0.3")},
                                            {"frame_range", "48:64"}}));
}

TEST_F(PlanTest, RemovesTemporariesAndSurplusShards) {
  for (const char* n : {"shard-00000.h5", "shard-00001.h5", "shard-00002.h5", "shard-00003.h5",
                        ".shard-00001.h5.tmp4242", "notes.txt"})
    touch(std::string("acq/") + n);
  EXPECT_EQ(remove_stale_shards((dir_ / "acq").string(), 2), 3u);
  EXPECT_TRUE(fs::exists(dir_ / "acq" / "shard-00000.h5"));
  EXPECT_TRUE(fs::exists(dir_ / "acq" / "shard-00001.h5"));
  EXPECT_FALSE(fs::exists(dir_ / "acq" / "shard-00002.h5"));
  EXPECT_FALSE(fs::exists(dir_ / "acq" / ".shard-00001.h5.tmp4242"));
  EXPECT_TRUE(fs::exists(dir_ / "acq" / "notes.txt"));
  EXPECT_EQ(remove_stale_shards((dir_ / "absent").string(), 0), 0u);
}

TEST_F(PlanTest, FileStatChangesWhenTheFileIsRewritten) {
  const std::string p = touch("raw.h5");
  const std::string before = file_stat(p);
  std::ofstream(p) << "longer contents";
  EXPECT_NE(file_stat(p), before);
  EXPECT_THROW(file_stat((dir_ / "absent").string()), InputError);
}

}  // namespace
}  // namespace dsir
