// Tests of pipeline/config.h: the YAML schema, loading, validation messages, overrides,
// the emitted effective config and its hash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "pipeline/config.h"
#include "pipeline/errors.h"
#include "pipeline/log.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using dsir::Config;
using dsir::ConfigError;
using dsir::KeySpec;
using dsir::KeyType;

namespace {

// The test binary links only the core library, so it declares its own section to exercise
// every key type (core sections run/camera/psf are declared in config.cpp).
const dsir::ConfigSection test_section(
    "tst", "test keys",
    {
        KeySpec::real("lr", "1e-4", "help").range(0, 10),
        KeySpec::integer("epochs", "100", "help").range(1, 1000),
        KeySpec::choice("mode", "a", "help", {"a", "b"}),
        KeySpec::text_list("files", "[]", "help"),
        KeySpec::real_list("range", "[1, 2]", "help").range(0, 100).size(2),
        KeySpec::boolean("flag", "false", "help"),
        KeySpec::text("nested.key", "''", "help"),
    });

const std::vector<std::string> kTestKeys = {"tst.lr",    "tst.epochs", "tst.mode",      "tst.files",
                                            "tst.range", "tst.flag",   "tst.nested.key"};

class ConfigTest : public dsir::test::TempDirTest {
 protected:
  // Writes `text` to <tmp>/<name> and returns the path.
  std::string write(const std::string& text, const std::string& name = "file.yaml") {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
};

// Runs `f`, expects a ConfigError and returns its message ("" and a failure otherwise).
std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected dsir::ConfigError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected dsir::ConfigError, nothing was thrown";
  return "";
}

std::string load_error(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return config_error([&] { Config::load(path, overrides); });
}

// ---------------------------------------------------------------------------------------------
// Schema and defaults

TEST(ConfigSchema, TestSectionIsRegisteredSortedWithFullKeys) {
  for (const auto& k : kTestKeys) {
    const dsir::KeyEntry* e = dsir::find_key(k);
    ASSERT_NE(e, nullptr) << k;
    EXPECT_EQ(e->section, "tst");
  }
  EXPECT_EQ(dsir::find_key("tst.nested.key")->spec.name, "nested.key");
  EXPECT_EQ(dsir::find_key("tst.nope"), nullptr);
  EXPECT_EQ(dsir::section_summary("tst"), "test keys");
  EXPECT_EQ(dsir::section_summary("no-such-section"), "");
  const auto& s = dsir::schema();
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i - 1].key, s[i].key);
}

TEST(ConfigSchema, CoreSectionsArePresent) {
  for (const char* k : {"run.dir", "run.seed", "run.stages", "run.threads", "run.verbose",
                        "camera.pixel_size_nm", "camera.em_gain", "psf.fwhm_nm", "psf.photons"})
    EXPECT_NE(dsir::find_key(k), nullptr) << k;
}

TEST(ConfigDefaults, DefaultsLoadWithDeclaredValues) {
  const Config c = Config::defaults();
  EXPECT_DOUBLE_EQ(c.get_double("tst.lr"), 1e-4);
  EXPECT_EQ(c.get_int("tst.epochs"), 100);
  EXPECT_EQ(c.get_string("tst.mode"), "a");
  EXPECT_TRUE(c.get_strings("tst.files").empty());
  EXPECT_EQ(c.get_doubles("tst.range"), (std::vector<double>{1, 2}));
  EXPECT_FALSE(c.get_bool("tst.flag"));
  EXPECT_EQ(c.get_string("tst.nested.key"), "");
  // Core sections.
  EXPECT_EQ(c.get_int("run.seed"), 42);
  EXPECT_EQ(c.get_string("run.dir"), "runs/dsir");
  EXPECT_EQ(c.get_strings("run.stages"), (std::vector<std::string>{"simulate", "ingest", "train", "infer",
                                                                   "reduce", "evaluate", "report"}));
  EXPECT_DOUBLE_EQ(c.get_double("camera.pixel_size_nm"), 100);
  EXPECT_EQ(c.get_doubles("psf.fwhm_nm"), (std::vector<double>{200, 300}));
  EXPECT_EQ(c.source(), "");
  EXPECT_TRUE(c.overrides().empty());
}

TEST(ConfigDefaults, EveryKeyIsDefaultAfterDefaults) {
  const Config c = Config::defaults();
  for (const auto& e : dsir::schema()) EXPECT_TRUE(c.is_default(e.key)) << e.key;
}

TEST(ConfigDefaults, GetDoubleAcceptsAnIntegerKey) {
  EXPECT_DOUBLE_EQ(Config::defaults().get_double("tst.epochs"), 100.0);
}

TEST(ConfigDefaults, ReadingWithTheWrongTypeOrAnUnknownKeyThrowsInternalError) {
  const Config c = Config::defaults();
  try {
    c.get_int("tst.lr");
    FAIL() << "expected dsir::Error";
  } catch (const dsir::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tst.lr"), std::string::npos) << e.what();
  }
  try {
    c.get_string("tst.unknown");
    FAIL() << "expected dsir::Error";
  } catch (const dsir::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tst.unknown"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Loading a YAML file

TEST_F(ConfigTest, YamlFileOverridesValuesIncludingNestedSections) {
  const std::string path = write(
      "tst:\n"
      "  lr: 0.5\n"
      "  epochs: 7\n"
      "  mode: b\n"
      "  files: [x.tif, y.tif]\n"
      "  range: [3, 4.5]\n"
      "  flag: true\n"
      "  nested:\n"
      "    key: hello world\n"
      "camera:\n"
      "  pixel_size_nm: 160\n"
      "run:\n"
      "  seed: 7\n");
  const Config c = Config::load(path);
  EXPECT_DOUBLE_EQ(c.get_double("tst.lr"), 0.5);
  EXPECT_EQ(c.get_int("tst.epochs"), 7);
  EXPECT_EQ(c.get_string("tst.mode"), "b");
  EXPECT_EQ(c.get_strings("tst.files"), (std::vector<std::string>{"x.tif", "y.tif"}));
  EXPECT_EQ(c.get_doubles("tst.range"), (std::vector<double>{3, 4.5}));
  EXPECT_TRUE(c.get_bool("tst.flag"));
  EXPECT_EQ(c.get_string("tst.nested.key"), "hello world");
  EXPECT_DOUBLE_EQ(c.get_double("camera.pixel_size_nm"), 160);
  EXPECT_EQ(c.get_int("run.seed"), 7);
  // Untouched keys keep their defaults.
  EXPECT_DOUBLE_EQ(c.get_double("camera.base_level"), 100);
  EXPECT_EQ(c.source(), path);
}

TEST_F(ConfigTest, DottedKeyInsideSectionIsAccepted) {
  const Config c = Config::load(write("tst:\n  nested.key: dotted\n"));
  EXPECT_EQ(c.get_string("tst.nested.key"), "dotted");
}

TEST_F(ConfigTest, IsDefaultIsFalseOnlyForKeysTheFileSets) {
  const Config c = Config::load(write("tst:\n  lr: 0.001\n  epochs: 100\n"));
  EXPECT_FALSE(c.is_default("tst.lr"));
  EXPECT_FALSE(c.is_default("tst.epochs"));  // given explicitly, even if equal to the default
  EXPECT_TRUE(c.is_default("tst.mode"));
  EXPECT_TRUE(c.is_default("run.seed"));
}

// A second document after '---' used to be ignored without a word.
TEST_F(ConfigTest, SecondYamlDocumentIsAnError) {
  const std::string path = write("tst:\n  lr: 1\n---\ntst:\n  lr: 2\n");
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("2 YAML documents"), std::string::npos) << msg;
  EXPECT_EQ(Config::load(write("---\ntst:\n  lr: 3\n")).get_double("tst.lr"), 3);  // one document, marked
}

// yaml-cpp 0.7's LoadAll never returns on these (it allocates an empty document per turn without
// moving on; found by the config fuzzer, tests/fuzz/corpus/config/yaml-cpp-loadall-stall.yaml).
TEST_F(ConfigTest, InputThatStallsYamlCppIsASyntaxErrorNotAHang) {
  for (const std::string& text : {std::string(","), std::string("\n  , stages: []},@p,f: {x: 1}}\n")}) {
    const std::string path = write(text);
    const std::string msg = load_error(path);
    EXPECT_NE(msg.find(path + ":"), std::string::npos) << msg;
    EXPECT_NE(msg.find("YAML syntax error: unexpected ','"), std::string::npos) << msg;
  }
  const std::string msg = load_error(write("tst:\n  lr: 1\n---\n"));  // an empty second document still counts
  EXPECT_NE(msg.find("2 YAML documents"), std::string::npos) << msg;
}

TEST_F(ConfigTest, EmptyFileGivesDefaults) {
  const std::string path = write("");
  const Config c = Config::load(path);
  EXPECT_EQ(c.get_int("tst.epochs"), 100);
  EXPECT_EQ(c.source(), path);
  EXPECT_EQ(c.hash(), Config::defaults().hash());
}

TEST_F(ConfigTest, BoolAcceptsYesNoOnOff) {
  EXPECT_TRUE(Config::load(write("tst:\n  flag: yes\n")).get_bool("tst.flag"));
  EXPECT_TRUE(Config::load(write("tst:\n  flag: on\n")).get_bool("tst.flag"));
  EXPECT_FALSE(Config::load(write("tst:\n  flag: no\n")).get_bool("tst.flag"));
  EXPECT_FALSE(Config::load(write("tst:\n  flag: off\n")).get_bool("tst.flag"));
}

TEST_F(ConfigTest, IntegerWrittenAsWholeFloatIsAccepted) {
  EXPECT_EQ(Config::load(write("tst:\n  epochs: 12.0\n")).get_int("tst.epochs"), 12);
}

TEST_F(ConfigTest, NullStringValueIsEmptyString) {
  EXPECT_EQ(Config::load(write("tst:\n  nested:\n    key:\n")).get_string("tst.nested.key"), "");
}

TEST_F(ConfigTest, NullStringListIsEmpty) {
  EXPECT_TRUE(Config::load(write("run:\n  stages:\n")).get_strings("run.stages").empty());
}

TEST_F(ConfigTest, SameSectionTwiceMergesDistinctKeys) {
  const Config c = Config::load(write("tst:\n  lr: 0.5\ntst:\n  epochs: 9\n"));
  EXPECT_DOUBLE_EQ(c.get_double("tst.lr"), 0.5);
  EXPECT_EQ(c.get_int("tst.epochs"), 9);
}

// ---------------------------------------------------------------------------------------------
// Validation errors: every message names the file position and the key.

TEST_F(ConfigTest, UnknownKeyReportsFileLineColumnAndSuggestion) {
  const std::string msg =
      load_error(write("tst:\n"
                       "  lr: 0.5\n"
                       "  lrr: 3\n"));
  EXPECT_NE(msg.find("file.yaml:3:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'tst.lrr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'tst.lr'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, UnknownKeyInNestedSectionReportsItsPosition) {
  const std::string msg =
      load_error(write("run:\n"
                       "  seed: 1\n"
                       "tst:\n"
                       "  nested:\n"
                       "      kee: x\n"));
  EXPECT_NE(msg.find("file.yaml:5:7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'tst.nested.kee'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'tst.nested.key'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, UnknownTopLevelSectionIsReported) {
  const std::string msg = load_error(write("tst:\n  lr: 1\nbogus_section:\n  a: 1\n"));
  EXPECT_NE(msg.find("file.yaml:3:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'bogus_section'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, WrongTypeNamesKeyAndPosition) {
  const std::string msg = load_error(write("tst:\n  lr: abc\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expects a number"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'abc'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, ListGivenForScalarKeyIsATypeError) {
  const std::string msg = load_error(write("tst:\n  lr: [1, 2]\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got a list"), std::string::npos) << msg;
}

TEST_F(ConfigTest, OutOfRangeNamesKeyAndRange) {
  const std::string msg = load_error(write("tst:\n  epochs: 0\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.epochs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 1000]"), std::string::npos) << msg;
}

TEST_F(ConfigTest, OutOfRangeFloatNamesKeyAndRange) {
  const std::string msg = load_error(write("tst:\n  lr: 11\n"));
  EXPECT_NE(msg.find("tst.lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 10]"), std::string::npos) << msg;
}

TEST_F(ConfigTest, NonIntegerForIntKeyIsRejected) {
  const std::string msg = load_error(write("tst:\n  epochs: 2.5\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.epochs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expects an integer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'2.5'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, NonFiniteNumberIsRejected) {
  const std::string msg = load_error(write("tst:\n  lr: nan\n"));
  EXPECT_NE(msg.find("tst.lr"), std::string::npos) << msg;
}

TEST_F(ConfigTest, BadChoiceListsAllowedValues) {
  const std::string msg = load_error(write("tst:\n  mode: c\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.mode"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("one of a, b"), std::string::npos) << msg;
}

TEST_F(ConfigTest, BadBoolIsRejected) {
  const std::string msg = load_error(write("tst:\n  flag: maybe\n"));
  EXPECT_NE(msg.find("tst.flag"), std::string::npos) << msg;
  EXPECT_NE(msg.find("true or false"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'maybe'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, FloatListOfWrongLengthIsRejected) {
  const std::string msg = load_error(write("tst:\n  range: [1, 2, 3]\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.range"), std::string::npos) << msg;
  EXPECT_NE(msg.find("list of 2 numbers"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got 3"), std::string::npos) << msg;
}

TEST_F(ConfigTest, FloatListElementOutOfRangeIsRejected) {
  const std::string msg = load_error(write("tst:\n  range: [1, 200]\n"));
  EXPECT_NE(msg.find("tst.range"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0, 100]"), std::string::npos) << msg;
}

TEST_F(ConfigTest, FloatListElementNotANumberIsRejected) {
  const std::string msg = load_error(write("tst:\n  range: [1, x]\n"));
  EXPECT_NE(msg.find("tst.range"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
}

TEST_F(ConfigTest, StringListOfMappingsIsRejected) {
  const std::string msg = load_error(write("tst:\n  files: [{a: 1}]\n"));
  EXPECT_NE(msg.find("tst.files"), std::string::npos) << msg;
  EXPECT_NE(msg.find("list of strings"), std::string::npos) << msg;
}

TEST_F(ConfigTest, DuplicateKeyIsRejectedWithBothPositions) {
  const std::string msg =
      load_error(write("tst:\n"
                       "  lr: 1\n"
                       "  epochs: 3\n"
                       "  lr: 2\n"));
  EXPECT_NE(msg.find("file.yaml:4:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'tst.lr' given twice"), std::string::npos) << msg;
  EXPECT_NE(msg.find("first at"), std::string::npos) << msg;
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
}

TEST_F(ConfigTest, DuplicateKeyInDottedAndNestedFormIsRejected) {
  const std::string msg =
      load_error(write("tst:\n"
                       "  nested.key: a\n"
                       "  nested:\n"
                       "    key: b\n"));
  EXPECT_NE(msg.find("'tst.nested.key' given twice"), std::string::npos) << msg;
}

TEST_F(ConfigTest, NonScalarKeyIsAConfigErrorWithPosition) {
  // A flow sequence used as a mapping key is valid YAML; it must be reported as a config error
  // (main() only turns ConfigError from Config::load into a clean exit), not escape as a
  // yaml-cpp exception.
  const std::string msg =
      load_error(write("tst:\n"
                       "  lr: 1\n"
                       "  [a, b]: 1\n"));
  EXPECT_NE(msg.find("file.yaml:3:3"), std::string::npos) << msg;
}

TEST_F(ConfigTest, SectionGivenAScalarIsRejected) {
  const std::string msg = load_error(write("run:\n  seed: 1\ntst: 3\n"));
  EXPECT_NE(msg.find("file.yaml:3:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'tst' is a section"), std::string::npos) << msg;
}

TEST_F(ConfigTest, NestedSectionGivenAScalarIsRejected) {
  const std::string msg = load_error(write("tst:\n  nested: 5\n"));
  EXPECT_NE(msg.find("file.yaml:2:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'tst.nested' is a section"), std::string::npos) << msg;
}

TEST_F(ConfigTest, TopLevelListIsRejected) {
  const std::string msg = load_error(write("- a\n- b\n"));
  EXPECT_NE(msg.find("file.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mapping of sections"), std::string::npos) << msg;
}

TEST_F(ConfigTest, YamlSyntaxErrorReportsFileAndLine) {
  const std::string msg =
      load_error(write("tst:\n"
                       "  lr: 1\n"
                       "  mode: [a, b\n"
                       "  epochs: 3\n"
                       "other: {\n"));
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
  EXPECT_NE(msg.find("file.yaml:"), std::string::npos) << msg;
}

TEST_F(ConfigTest, YamlSyntaxErrorReportsTheOffendingLine) {
  // A mapping key indented deeper than its sibling: yaml-cpp fails on line 3.
  const std::string msg =
      load_error(write("tst:\n"
                       "  lr: 1\n"
                       "   epochs: 3\n"));
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
  EXPECT_NE(msg.find("file.yaml:3:"), std::string::npos) << msg;
}

TEST_F(ConfigTest, MissingConfigFileNamesThePath) {
  const std::string path = (dir_ / "does-not-exist.yaml").string();
  const std::string msg = load_error(path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

TEST_F(ConfigTest, FolderGivenAsConfigFileIsRejected) {
  const std::string msg = load_error(dir_.string());
  EXPECT_NE(msg.find(dir_.string()), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------------------------
// Overrides

TEST_F(ConfigTest, OverridesApplyAfterTheFileAndAreRecorded) {
  const std::string path = write("tst:\n  lr: 0.5\n  epochs: 7\n");
  const std::vector<std::string> ov = {"tst.lr=0.25", "tst.mode=b", "tst.nested.key=from cli"};
  const Config c = Config::load(path, ov);
  EXPECT_DOUBLE_EQ(c.get_double("tst.lr"), 0.25);
  EXPECT_EQ(c.get_int("tst.epochs"), 7);  // from the file
  EXPECT_EQ(c.get_string("tst.mode"), "b");
  EXPECT_EQ(c.get_string("tst.nested.key"), "from cli");
  EXPECT_EQ(c.overrides(), ov);
  EXPECT_FALSE(c.is_default("tst.mode"));
  EXPECT_EQ(c.source(), path);
}

TEST_F(ConfigTest, LaterOverrideOfTheSameKeyWins) {
  const Config c = Config::load("", {"tst.epochs=5", "tst.epochs=6"});
  EXPECT_EQ(c.get_int("tst.epochs"), 6);
  EXPECT_EQ(c.overrides().size(), 2u);
}

TEST_F(ConfigTest, OverrideValueMayContainEqualsSign) {
  const Config c = Config::load("", {"tst.nested.key=a=b"});
  EXPECT_EQ(c.get_string("tst.nested.key"), "a=b");
}

TEST_F(ConfigTest, EmptyOverrideValueGivesEmptyString) {
  const Config c = Config::load("", {"run.dir="});
  EXPECT_EQ(c.get_string("run.dir"), "");
}

TEST(ConfigOverrides, UnknownOverrideKeyIsNamedWithSuggestion) {
  const std::string msg = load_error("", {"tst.lrr=3"});
  EXPECT_NE(msg.find("override 'tst.lrr=3'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'tst.lrr'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'tst.lr'"), std::string::npos) << msg;
}

TEST(ConfigOverrides, KeyInTheWrongSectionSuggestsTheRightOne) {
  const std::string msg = load_error("", {"camera.epochs=3"});
  EXPECT_NE(msg.find("unknown key 'camera.epochs'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'tst.epochs'"), std::string::npos) << msg;
}

TEST(ConfigOverrides, OverrideWithoutEqualsSignIsRejected) {
  EXPECT_NE(load_error("", {"tst.lr"}).find("expected key=value"), std::string::npos);
  EXPECT_NE(load_error("", {"=3"}).find("expected key=value"), std::string::npos);
}

TEST(ConfigOverrides, BadOverrideValueNamesTheOverrideAndKey) {
  const std::string msg = load_error("", {"tst.epochs=abc"});
  EXPECT_NE(msg.find("override 'tst.epochs=abc'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.epochs"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'abc'"), std::string::npos) << msg;
}

TEST(ConfigOverrides, OutOfRangeOverrideNamesRange) {
  const std::string msg = load_error("", {"tst.epochs=5000"});
  EXPECT_NE(msg.find("[1, 1000]"), std::string::npos) << msg;
}

TEST(ConfigOverrides, CommaSeparatedStringListOverrideGivesItems) {
  const Config c = Config::load("", {"tst.files=a,b"});
  EXPECT_EQ(c.get_strings("tst.files"), (std::vector<std::string>{"a", "b"}));
}

TEST(ConfigOverrides, YamlListStringListOverrideGivesItems) {
  const Config c = Config::load("", {"run.stages=[train, infer]"});
  EXPECT_EQ(c.get_strings("run.stages"), (std::vector<std::string>{"train", "infer"}));
}

TEST(ConfigOverrides, FloatListOverride) {
  const Config c = Config::load("", {"tst.range=[5, 6.5]"});
  EXPECT_EQ(c.get_doubles("tst.range"), (std::vector<double>{5, 6.5}));
}

TEST(ConfigOverrides, UnparsableYamlValueIsAConfigError) {
  const std::string msg = load_error("", {"tst.range=[1, 2"});
  EXPECT_NE(msg.find("tst.range"), std::string::npos) << msg;
}

TEST(ConfigOverrides, LargeSeedKeepsAllIntegerDigits) {
  // run.seed accepts up to 9.2e18; integers above 2^53 must not be rounded through a double.
  const Config c = Config::load("", {"run.seed=9007199254740993"});
  EXPECT_EQ(c.get_int("run.seed"), INT64_C(9007199254740993));
}

TEST(ConfigSet, SetUsesTheOriginInItsErrors) {
  Config c = Config::defaults();
  c.set("tst.lr", "0.75", "flag --lr");
  EXPECT_DOUBLE_EQ(c.get_double("tst.lr"), 0.75);
  EXPECT_FALSE(c.is_default("tst.lr"));
  const std::string msg = config_error([&] { c.set("tst.lr", "fast", "flag --lr"); });
  EXPECT_NE(msg.find("flag --lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tst.lr"), std::string::npos) << msg;
  const std::string unknown = config_error([&] { c.set("tst.lrr", "1", "flag --lrr"); });
  EXPECT_NE(unknown.find("unknown key 'tst.lrr'"), std::string::npos) << unknown;
}

TEST(ConfigSuggest, DidYouMeanFindsCloseKeysOnly) {
  EXPECT_EQ(dsir::did_you_mean("tst.lrr"), " (did you mean 'tst.lr'?)");
  EXPECT_EQ(dsir::did_you_mean("tst.epoch"), " (did you mean 'tst.epochs'?)");
  EXPECT_EQ(dsir::did_you_mean("zzzzzzzzzzzzzzzzzz.qqqqqqqqqqqqqqqq"), "");
}

// ---------------------------------------------------------------------------------------------
// Effective config: YAML, hash, docs

TEST_F(ConfigTest, ToYamlRoundTripsThroughAFile) {
  const Config a = Config::load(write("tst:\n"
                                      "  lr: 0.1\n"
                                      "  epochs: 12\n"
                                      "  mode: b\n"
                                      "  files: [one.tif, 'two, with comma.tif', 'yes', '']\n"
                                      "  range: [0.3, 99.125]\n"
                                      "  flag: true\n"
                                      "  nested:\n"
                                      "    key: 'a: b # not a comment'\n"
                                      "camera:\n"
                                      "  e_per_adu: 0.123456789012345\n",
                                      "in.yaml"),
                                {"run.seed=123"});
  const std::string yaml = a.to_yaml();
  const Config b = Config::load(write(yaml, "out.yaml"));
  EXPECT_EQ(b.to_yaml(), yaml);
  EXPECT_EQ(b.hash(), a.hash());
  EXPECT_DOUBLE_EQ(b.get_double("tst.lr"), 0.1);
  EXPECT_EQ(b.get_strings("tst.files"),
            (std::vector<std::string>{"one.tif", "two, with comma.tif", "yes", ""}));
  EXPECT_EQ(b.get_string("tst.nested.key"), "a: b # not a comment");
  EXPECT_EQ(b.get_double("camera.e_per_adu"), 0.123456789012345);
  EXPECT_EQ(b.get_int("run.seed"), 123);
}

TEST_F(ConfigTest, NumbersAreWrittenAsTheShortestTextThatReadsBackTheSameDouble) {
  // A calibrated 182.194 once read "182.19399999999999" in a run's config.yaml.
  const Config a = Config::load("", {"camera.base_level=182.194", "camera.e_per_adu=0.1",
                                     "camera.em_gain=0.123456789012345", "psf.fwhm_nm=[250.5, 259.7]"});
  const std::string yaml = a.to_yaml();
  EXPECT_NE(yaml.find("base_level: 182.194\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("e_per_adu: 0.1\n"), std::string::npos);
  EXPECT_NE(yaml.find("fwhm_nm: [250.5, 259.7]\n"), std::string::npos);
  const Config b = Config::load(write(yaml, "short.yaml"));
  for (const char* key : {"camera.base_level", "camera.e_per_adu", "camera.em_gain"})
    EXPECT_EQ(b.get_double(key), a.get_double(key)) << key;  // bit for bit
  EXPECT_EQ(b.get_doubles("psf.fwhm_nm"), a.get_doubles("psf.fwhm_nm"));
}

TEST_F(ConfigTest, DefaultsToYamlRoundTripsThroughAFile) {
  const Config a = Config::defaults();
  const Config b = Config::load(write(a.to_yaml()));
  EXPECT_EQ(b.to_yaml(), a.to_yaml());
  EXPECT_EQ(b.hash(), a.hash());
}

TEST_F(ConfigTest, StringsWithYamlSpecialCharactersRoundTrip) {
  const std::vector<std::string> values = {
      "~",      "null", "true",       "123",       " lead",       "trail ",    "#hash", "[x]",
      "{a: 1}", "it's", "say \"hi\"", "tab\there", "back\\slash", "*star",     "&amp",  "!bang",
      "- dash", "%pct", "@at",        "a,b",       "multi\nline", "\xc2\xb5m", ""};
  for (const auto& v : values) {
    // Set the key from a double-quoted YAML scalar, so that any string is representable.
    std::string quoted = "\"";
    for (char ch : v) {
      if (ch == '\t' || ch == '\n') {
        quoted += ch == '\t' ? "\\t" : "\\n";
        continue;
      }
      if (ch == '"' || ch == '\\') quoted += '\\';
      quoted += ch;
    }
    quoted += "\"";
    Config c = Config::defaults();
    c.set("tst.nested.key", quoted, "test");
    c.set("tst.files", "[" + quoted + "]", "test");
    ASSERT_EQ(c.get_string("tst.nested.key"), v);
    const Config d = Config::load(write(c.to_yaml(), "special.yaml"));
    EXPECT_EQ(d.get_string("tst.nested.key"), v) << "string value " << v;
    EXPECT_EQ(d.get_strings("tst.files"), std::vector<std::string>{v}) << "list item " << v;
    EXPECT_EQ(d.hash(), c.hash()) << v;
  }
}

TEST_F(ConfigTest, ToYamlNestsDottedKeysUnderTheirSection) {
  const std::string yaml = Config::load("", {"tst.nested.key=v"}).to_yaml();
  EXPECT_NE(yaml.find("tst:\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  nested:\n    key: \"v\"\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  epochs: 100\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("\n  range: [1, 2]\n"), std::string::npos) << yaml;
  // The key after the nested one is back at section level.
  EXPECT_NE(yaml.find("    key: \"v\"\n  range:"), std::string::npos) << yaml;
}

TEST(ConfigHash, HashIsStableAndChangesWithAValue) {
  const Config a = Config::defaults();
  const Config b = Config::defaults();
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash().size(), 16u);
  EXPECT_EQ(a.hash().find_first_not_of("0123456789abcdef"), std::string::npos) << a.hash();
  EXPECT_NE(Config::load("", {"tst.lr=0.0002"}).hash(), a.hash());
  EXPECT_NE(Config::load("", {"tst.flag=true"}).hash(), a.hash());
  EXPECT_NE(Config::load("", {"tst.files=a"}).hash(), a.hash());
  EXPECT_NE(Config::load("", {"tst.files=a"}).hash(), Config::load("", {"tst.files=b"}).hash());
}

TEST(ConfigHash, HashDependsOnValuesNotOnHowTheyWereGiven) {
  EXPECT_EQ(Config::load("", {"tst.epochs=100"}).hash(), Config::defaults().hash());
  EXPECT_EQ(Config::load("", {"tst.lr=0.0001"}).hash(), Config::defaults().hash());
}

TEST(ConfigDocs, SchemaMarkdownListsEveryTestKey) {
  const std::string md = dsir::schema_markdown();
  EXPECT_NE(md.find("### `tst`"), std::string::npos);
  EXPECT_NE(md.find("test keys"), std::string::npos);
  for (const auto& k : kTestKeys) EXPECT_NE(md.find("| `" + k + "` |"), std::string::npos) << k;
  EXPECT_NE(md.find("| `tst.epochs` | integer | `100` | [1, 1000] |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `tst.mode` | one of a, b |"), std::string::npos);
  EXPECT_NE(md.find("| `tst.range` | list of 2 numbers |"), std::string::npos);
  // Core keys too, with their CLI flag.
  EXPECT_NE(md.find("| `run.seed` |"), std::string::npos);
  EXPECT_NE(md.find("`--seed`"), std::string::npos);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Progress lines' time left (pipeline/log.h)

TEST(EtaText, TimeLeftAtTheRateSoFar) {
  EXPECT_EQ(dsir::eta_text(0, 100, 5.0), "");    // no rate yet
  EXPECT_EQ(dsir::eta_text(100, 100, 5.0), "");  // done
  EXPECT_EQ(dsir::eta_text(10, 100, 0.0), "");
  EXPECT_EQ(dsir::eta_text(50, 100, 30.0), "ETA 30 s");
  EXPECT_EQ(dsir::eta_text(25, 100, 64.0), "ETA 3 min 12 s");  // 75 left at 25 per 64 s
  EXPECT_EQ(dsir::eta_text(1, 3, 1800.0), "ETA 1 h 00 min");
  EXPECT_EQ(dsir::eta_text(1, 1000, 3600.0), "ETA 999 h 00 min");
}
