// What catalog.cpp and campaign_records.cpp share: reading one campaign from a YAML tree, so that a
// campaign file and a record of the campaigns topic obey the same rules. Private to pv_common.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pv/catalog.hpp"

namespace pv::catalog_internal {

// Collects problems instead of stopping at the first, so an operator fixes a catalog in one pass.
struct Problems {
  std::vector<std::string> list;
  void Add(const std::string& where, const std::string& field, const std::string& message);
};

// Reads one campaign from `root`: a campaign file's YAML, or a record's campaign converted to YAML.
// `where` names it in every problem. Template fields named `<field>_file` are read from files
// relative to `files_dir`; with nullptr they are problems (a record carries its templates inline, and
// must never make a replica read a file of its own). `newest_file_ms`, when given, is raised to the
// latest modification time of the files read. Sets every field of `c` but source_file,
// updated_at_ms, from_topic and applied_from.
void ParseCampaign(const YAML::Node& root, const std::string& where, const std::filesystem::path* files_dir,
                   Campaign& c, Problems& problems, std::int64_t* newest_file_ms);

// A file's modification time in Unix milliseconds; -1 when it cannot be read.
std::int64_t ModifiedMs(const std::filesystem::path& path);

}  // namespace pv::catalog_internal
