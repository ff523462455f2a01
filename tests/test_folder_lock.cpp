// Tests of pipeline/folder_lock.h: one holder at a time, the holder named to the refused, an ended
// process's lock taken over, another host's refused, the file removed when released.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "pipeline/atomic_file.h"
#include "pipeline/errors.h"
#include "pipeline/folder_lock.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;

namespace dsir {
namespace {

class FolderLockTest : public dsir::test::TempDirTest {
 protected:
  std::string lock_path() const { return (dir_ / "out" / ".dsir-infer.lock").string(); }
  void write_holder(const std::string& host, long pid) {
    fs::create_directories(dir_ / "out");
    std::ofstream(lock_path()) << "host=" << host << "\npid=" << pid << "\nstarted=2026-01-01T00:00:00Z\n";
  }
};

std::string error_of(const std::string& path) {
  try {
    FolderLock second(path, "dsir infer");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(FolderLockTest, ASecondHolderIsRefusedWithTheFirstNamed) {
  {
    FolderLock first(lock_path(), "dsir infer");  // creates the folder
    EXPECT_TRUE(first.took_over().empty());
    const std::string msg = error_of(lock_path());
    EXPECT_NE(msg.find(lock_path() + ": the folder is in use by another dsir infer (host " + host_name() +
                       ", PID " + std::to_string(getpid()) + ", started "),
              std::string::npos)
        << msg;
    EXPECT_TRUE(fs::exists(lock_path()));
  }
  EXPECT_FALSE(fs::exists(lock_path()));  // released
  FolderLock again(lock_path(), "dsir infer");
  EXPECT_TRUE(again.took_over().empty());
}

TEST_F(FolderLockTest, TheLockOfAnEndedProcessOfThisHostIsTakenOver) {
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  waitpid(dead, nullptr, 0);
  write_holder(host_name(), dead);
  FolderLock lock(lock_path(), "dsir infer");
  EXPECT_EQ(lock.took_over(),
            "host " + host_name() + ", PID " + std::to_string(dead) + ", started 2026-01-01T00:00:00Z");
  EXPECT_NE(read_text_file(lock_path()).find("pid=" + std::to_string(getpid())), std::string::npos);
}

TEST_F(FolderLockTest, ARecordedLiveProcessOrAnotherHostIsRefusedWithAdvice) {
  write_holder(host_name(), getppid());  // alive, though it holds no kernel lock (PID reuse)
  std::string msg = error_of(lock_path());
  EXPECT_NE(
      msg.find("locked by another dsir infer (host " + host_name() + ", PID " + std::to_string(getppid())),
      std::string::npos)
      << msg;
  EXPECT_NE(msg.find("remove the lock file"), std::string::npos) << msg;
  write_holder("elsewhere.example", 1);
  msg = error_of(lock_path());
  EXPECT_NE(msg.find("(host elsewhere.example, PID 1, started 2026-01-01T00:00:00Z), which cannot be checked "
                     "from host " +
                     host_name()),
            std::string::npos)
      << msg;
  EXPECT_TRUE(fs::exists(lock_path()));  // a refusal leaves the holder's record alone
}

}  // namespace
}  // namespace dsir
