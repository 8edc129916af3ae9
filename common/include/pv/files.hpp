// Whole-file reads and atomic replacements: one of each for every component (the catalog's template
// files, the config, provider key files, the port files of the services and the dev broker's
// bootstrap and control files, the keys file).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace pv {

// The whole file, bytes as they are; nullopt when it cannot be opened or read (errno says why).
std::optional<std::string> ReadFile(const std::string& path);

// Writes `content` to `path` through a temporary file in the same directory, fsync(2) and rename(2), so
// that a reader sees the old file or the whole new one, never a part, even after a crash. False and
// `error` set (the temporary file removed) otherwise. `mode` is the new file's. (Test:
// FilesTest.WriteFileAtomically in common/test/files_test.cpp.)
bool WriteFileAtomically(const std::string& path, std::string_view content, std::string& error,
                         mode_t mode = 0644);

}  // namespace pv
