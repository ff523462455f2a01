// The shard file (pipeline/formats/shard_file.h): round trip, and what a restarted infer and reduce
// make of shards that are absent, of another run, without checksums (older dsir) or corrupted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/formats/shard_file.h"
#include "tests/corrupt_file.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

class ShardFileTest : public dsir::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    shard_.info.source_file = "/data/cell.h5";
    shard_.info.source_stat = "100 bytes, modified 1.0";
    shard_.info.model_checksum = "abc";
    shard_.info.settings_hash = "0123";
    shard_.info.frame_range = "16:32";
    shard_.info.settings = "threshold=0.3";
    shard_.info.bn_mode = "running";
    shard_.info.threshold = "0.3";
    shard_.info.acquisition = "cell";
    shard_.info.camera = "";
    shard_.info.first_frame = 16;
    shard_.info.frames = 16;
    shard_.info.acquisition_frames = 40;
    shard_.info.pixel_size_nm = 12.5;
    shard_.info.raw_pixel_size_nm = 100;
    shard_.info.raw_width = 4;
    shard_.info.raw_height = 3;
    shard_.height = 24;
    shard_.width = 32;
    for (size_t i = 0; i < 24 * 32; ++i) shard_.sum.push_back(0.001 * static_cast<double>(i) + 0.5);
    Emitter e;
    e.frame = 17;
    e.x_nm = 120.5;
    e.y_nm = 80.25;
    e.confidence = 0.9;
    shard_.localizations = {e};
  }
  std::string path() const { return (dir_ / "shard-00001.h5").string(); }
  Shard shard_;
};

// A shard's frame numbers and sizes are doubles in the file: NaN or 1e300 converted to an
// integer was undefined behaviour in reduce, and a /sum declared far beyond the raw frame was
// allocated as it came (found writing tests/fuzz/fuzz_shard_h5.cpp). Each is an error naming the
// file and the attribute.
TEST_F(ShardFileTest, ValuesOutOfRangeAreErrorsNamingTheAttribute) {
  struct Case {
    const char* key;
    double value;
    const char* expected;
  };
  const Case cases[] = {
      {"first_frame", std::nan(""), "attribute 'first_frame' is nan"},
      {"frames", 1e300, "attribute 'frames' is"},
      {"raw_width", 1e9, "attribute 'raw_width' is"},
      {"frames", 30, "frames 16 to 46 are beyond the acquisition's 40"},
      {"pixel_size_nm", -1, "attribute 'pixel_size_nm' must be a finite number > 0"},
      {"raw_height", 0.5, "attribute 'raw_height' is"},
  };
  for (const Case& c : cases) {
    {  // write_shard's layout, by hand, with one number replaced
      h5::Attributes text;
      for (const auto& [key, value] : shard_.info.identity()) text[key] = value;
      for (const auto& [key, value] : shard_.info.shared()) text[key] = value;
      h5::File f = h5::File::create(path(), text, h5::Checksum::fletcher32);
      f.write("/sum", shard_.sum, {shard_.height, shard_.width});
      f.write_table("/localizations", emitters_to_table(shard_.localizations));
      const std::pair<const char*, double> numbers[] = {
          {"first_frame", 16},        {"frames", 16},   {"acquisition_frames", 40}, {"pixel_size_nm", 12.5},
          {"raw_pixel_size_nm", 100}, {"raw_width", 4}, {"raw_height", 3}};
      for (const auto& [key, v] : numbers) f.set_attr("/", key, std::string(key) == c.key ? c.value : v);
      f.commit();
    }
    try {
      read_shard(path());
      ADD_FAILURE() << c.key << " = " << c.value << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos) << e.what();
    }
  }
  // A /sum larger than 32x the raw frame (3 x 4 here): refused before it is read.
  Shard big = shard_;
  big.height = 97;
  big.width = 8;
  big.sum.assign(97 * 8, 0.0);
  write_shard(path(), {{"dsir_version", "test"}}, big);
  try {
    read_shard(path());
    ADD_FAILURE() << "a /sum of 97 x 8 for a 3 x 4 raw frame was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/sum is 97 x 8, not an upscaled image of the 3 x 4 raw frame"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(ShardFileTest, RoundTripsWithChecksums) {
  write_shard(path(), {{"dsir_version", "test"}}, shard_);
  const Shard back = read_shard(path());
  EXPECT_TRUE(back.checksummed);
  EXPECT_EQ(back.info.identity(), shard_.info.identity());
  EXPECT_EQ(back.info.shared(), shard_.info.shared());
  for (const auto& [key, value] : back.info.shared())
    EXPECT_NE(key, "frame_range");                             // differs between an acquisition's shards
  EXPECT_EQ(back.info.shared().front().first, "source_file");  // the identity first
  EXPECT_EQ(back.info.first_frame, 16u);
  EXPECT_EQ(back.info.acquisition_frames, 40u);
  EXPECT_EQ(back.info.raw_width, 4);
  EXPECT_EQ(back.info.pixel_size_nm, 12.5);
  EXPECT_EQ(back.height, 24u);
  EXPECT_EQ(back.width, 32u);
  EXPECT_EQ(back.sum, shard_.sum);
  ASSERT_EQ(back.localizations.size(), 1u);
  EXPECT_EQ(back.localizations[0].frame, 17);
  EXPECT_EQ(check_shard(path(), shard_.info).state, ShardState::complete);
}

TEST_F(ShardFileTest, ARestartReusesOnlyTheSameIdentity) {
  EXPECT_EQ(check_shard(path(), shard_.info).state, ShardState::absent);
  write_shard(path(), {}, shard_);
  for (auto field : {&ShardInfo::source_file, &ShardInfo::source_stat, &ShardInfo::model_checksum,
                     &ShardInfo::settings_hash, &ShardInfo::frame_range}) {
    ShardInfo other = shard_.info;
    other.*field += "x";
    EXPECT_EQ(check_shard(path(), other).state, ShardState::other);
  }
  write_text_file(path(), "not HDF5");  // an unreadable leftover is recomputed, not an error
  const ShardCheck c = check_shard(path(), shard_.info);
  EXPECT_EQ(c.state, ShardState::corrupt);
  EXPECT_NE(c.reason.find(path()), std::string::npos) << c.reason;
}

TEST_F(ShardFileTest, AFlippedByteInTheSumIsFoundByReduceAndByARestart) {
  write_shard(path(), {}, shard_);
  ASSERT_TRUE(test::flip_byte_inside(path(), shard_.sum));
  try {
    read_shard(path());
    ADD_FAILURE() << "a corrupt shard was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path() + ": /sum: read failed: checksum mismatch"),
              std::string::npos)
        << e.what();
  }
  const ShardCheck c = check_shard(path(), shard_.info);
  EXPECT_EQ(c.state, ShardState::corrupt);
  EXPECT_NE(c.reason.find("checksum mismatch"), std::string::npos) << c.reason;
}

// Every byte of a shard inverted in turn, as a failing disk or a bad copy would: each read either
// fails with dsir's error or gives back exactly what was written — never another value, never a
// crash. The data carry Fletcher-32 checksums and, in HDF5 1.10's file format (h5store.cpp), so
// does every piece of metadata. In the default format a flipped byte in an object header made
// HDF5 1.10.8 read out of bounds (in 2,514 flips of such a shard: 4 heap-buffer-overflows and a
// SEGV inside HDF5 under ASan) or changed an attribute unseen.
TEST_F(ShardFileTest, EveryByteInvertedIsAnErrorOrChangesNothing) {
  // A small /sum keeps the file (and the test's time) small: every fourth byte of ~5 KB.
  shard_.height = 3 * 2;
  shard_.width = 4 * 2;
  shard_.sum.resize(shard_.height * shard_.width);
  write_shard(path(), {{"dsir_version", "test"}}, shard_);
  std::vector<char> original;
  {
    std::ifstream in(path(), std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(original.size(), 1000u);
  auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
  const std::string corrupt = (dir_ / "shard-corrupt.h5").string();
  size_t detected = 0, harmless = 0;
  for (size_t i = 0; i < original.size(); i += 4) {
    std::vector<char> bytes = original;
    bytes[i] = static_cast<char>(~bytes[i]);
    {
      std::ofstream out(corrupt, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    const ShardState state = check_shard(corrupt, shard_.info).state;
    Shard back;
    try {
      back = read_shard(corrupt);
    } catch (const Error&) {
      ++detected;
      EXPECT_NE(state, ShardState::complete) << "byte " << i << ": reduce refuses what a restart would reuse";
      continue;
    }
    ++harmless;
    EXPECT_EQ(state, ShardState::complete) << "byte " << i;
    EXPECT_EQ(back.info.identity(), shard_.info.identity()) << "byte " << i;
    EXPECT_EQ(back.info.shared(), shard_.info.shared()) << "byte " << i;
    EXPECT_EQ(back.info.first_frame, shard_.info.first_frame) << "byte " << i;
    EXPECT_EQ(back.info.frames, shard_.info.frames) << "byte " << i;
    EXPECT_EQ(back.info.acquisition_frames, shard_.info.acquisition_frames) << "byte " << i;
    EXPECT_EQ(back.info.pixel_size_nm, shard_.info.pixel_size_nm) << "byte " << i;
    EXPECT_EQ(back.info.raw_pixel_size_nm, shard_.info.raw_pixel_size_nm) << "byte " << i;
    EXPECT_EQ(back.info.raw_width, shard_.info.raw_width) << "byte " << i;
    EXPECT_EQ(back.info.raw_height, shard_.info.raw_height) << "byte " << i;
    EXPECT_EQ(back.height, shard_.height) << "byte " << i;
    EXPECT_EQ(back.width, shard_.width) << "byte " << i;
    EXPECT_EQ(back.sum, shard_.sum) << "byte " << i;
    ASSERT_EQ(back.localizations.size(), shard_.localizations.size()) << "byte " << i;
    for (size_t k = 0; k < back.localizations.size(); ++k) {
      const Emitter &a = back.localizations[k], &b = shard_.localizations[k];
      EXPECT_TRUE(a.frame == b.frame && same(a.x_nm, b.x_nm) && same(a.y_nm, b.y_nm) &&
                  same(a.sigma_nm, b.sigma_nm) && same(a.photons, b.photons) && same(a.offset, b.offset) &&
                  same(a.bkgstd, b.bkgstd) && same(a.confidence, b.confidence) &&
                  same(a.x_raw_nm, b.x_raw_nm) && same(a.y_raw_nm, b.y_raw_nm))
          << "byte " << i << ": localization " << k << " changed";
    }
    if (::testing::Test::HasFailure()) break;  // one byte's report is enough
  }
  // Most bytes are checksummed; the rest (free space, padding, unused fields) changed nothing.
  EXPECT_GT(detected, harmless);
  std::printf("%zu bytes, every fourth inverted: %zu detected, %zu changed nothing\n", original.size(),
              detected, harmless);
}

TEST_F(ShardFileTest, AShardWithoutChecksumsIsReadButNotReused) {
  // As an older dsir wrote it: the same layout, datasets without checksums.
  {
    const ShardAttributes id = shard_.info.identity(), shared = shard_.info.shared();
    h5::Attributes attrs(id.begin(), id.end());
    attrs.insert(shared.begin(), shared.end());
    h5::File f = h5::File::create(path(), attrs);
    f.write("/sum", shard_.sum, {shard_.height, shard_.width});
    f.write_table("/localizations", emitters_to_table(shard_.localizations), 0);
    const ShardInfo& i = shard_.info;
    const std::pair<const char*, double> numbers[] = {{"first_frame", double(i.first_frame)},
                                                      {"frames", double(i.frames)},
                                                      {"acquisition_frames", double(i.acquisition_frames)},
                                                      {"pixel_size_nm", i.pixel_size_nm},
                                                      {"raw_pixel_size_nm", i.raw_pixel_size_nm},
                                                      {"raw_width", double(i.raw_width)},
                                                      {"raw_height", double(i.raw_height)}};
    for (const auto& [k, v] : numbers) f.set_attr("/", k, v);
    f.commit();
  }
  const Shard old = read_shard(path());
  EXPECT_FALSE(old.checksummed);
  EXPECT_EQ(old.sum, shard_.sum);
  const ShardCheck c = check_shard(path(), shard_.info);
  EXPECT_EQ(c.state, ShardState::unverifiable);
  EXPECT_NE(c.reason.find(path() + ": no checksums"), std::string::npos) << c.reason;
}

TEST_F(ShardFileTest, AMissingAttributeIsAnErrorNamingIt) {
  {
    h5::File f = h5::File::create(path(), {});
    f.write("/sum", shard_.sum, {shard_.height, shard_.width});
    f.write_table("/localizations", emitters_to_table({}));
    f.commit();
  }
  try {
    read_shard(path());
    ADD_FAILURE() << "read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path() + ": missing attribute 'source_file'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace dsir
