#include "pv/files.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "test_util.hpp"

namespace pv {
namespace {

TEST(FilesTest, WriteFileAtomically) {
  testing::TempDir dir;
  std::string path = dir / "bootstrap";
  std::string error;
  ASSERT_TRUE(WriteFileAtomically(path, "127.0.0.1:1", error)) << error;
  ASSERT_TRUE(WriteFileAtomically(path, "127.0.0.1:2,127.0.0.1:3", error)) << error;
  EXPECT_EQ(ReadFile(path), "127.0.0.1:2,127.0.0.1:3");
  EXPECT_EQ(std::filesystem::directory_iterator(dir.path())->path().filename(), "bootstrap");  // no .tmp left

  ASSERT_TRUE(WriteFileAtomically(dir / "secret", "k", error, 0600)) << error;
  struct stat st {};
  ASSERT_EQ(::stat((dir / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);

  EXPECT_FALSE(WriteFileAtomically("/nonexistent-dir/x", "y", error));
  EXPECT_NE(error.find("/nonexistent-dir/x.tmp."), std::string::npos) << error;
}

TEST(FilesTest, ReadFile) {
  testing::TempDir dir;
  std::string error;
  std::string bytes("a\0b\r\n", 5);
  ASSERT_TRUE(WriteFileAtomically(dir / "f", bytes, error)) << error;
  EXPECT_EQ(ReadFile(dir / "f"), bytes);
  EXPECT_EQ(ReadFile(dir / "missing"), std::nullopt);
}

}  // namespace
}  // namespace pv
