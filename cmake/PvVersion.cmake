# The version and commit every pv binary reports (`--version`, the pv_build_info metric) and the .deb
# carries. One source each, computed at configure time:
#
#   PV_VERSION     project(pv VERSION ...) in the top-level CMakeLists.txt; in a git checkout at or
#                  after a tag vX.Y.Z (or X.Y.Z), the tag instead: "X.Y.Z" on the tagged commit,
#                  "X.Y.Z+N.gHASH" N commits after it (git describe --tags, rewritten so that it is a
#                  valid Debian version that sorts after X.Y.Z).
#   PV_COMMIT      the commit built (git rev-parse --short=12 HEAD); "unknown" without git, e.g. in the
#                  Docker build context, which leaves .git out; -DPV_GIT_COMMIT=... gives it by hand.
#
# Both are read when CMake configures, not at every build: a commit made since in a development tree
# shows only after the next configure (a release build configures fresh). Watching HEAD instead would
# relink every binary of the tree after each commit.

set(PV_GIT_COMMIT "" CACHE STRING "Commit reported by --version and pv_build_info (empty: ask git)")

find_package(Git QUIET)
set(_pv_commit "unknown")
set(_pv_version "${PROJECT_VERSION}")
set(_pv_version_source "project(VERSION)")
if(GIT_FOUND AND EXISTS "${PROJECT_SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short=12 HEAD
                  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_rc EQUAL 0 AND _out MATCHES "^[0-9a-f]+$")
    set(_pv_commit "${_out}")
  endif()
  execute_process(COMMAND "${GIT_EXECUTABLE}" describe --tags --abbrev=12 --match "v[0-9]*" --match "[0-9]*"
                  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_rc EQUAL 0 AND _out MATCHES "^v?([0-9]+\\.[0-9]+\\.[0-9]+)(-([0-9]+)-g([0-9a-f]+))?$")
    if(CMAKE_MATCH_2)
      set(_pv_version "${CMAKE_MATCH_1}+${CMAKE_MATCH_3}.g${CMAKE_MATCH_4}")
    else()
      set(_pv_version "${CMAKE_MATCH_1}")
    endif()
    set(_pv_version_source "git tag (${_out})")
  endif()
endif()
if(PV_GIT_COMMIT)
  set(_pv_commit "${PV_GIT_COMMIT}")
endif()

set(PV_VERSION "${_pv_version}")
set(PV_COMMIT "${_pv_commit}")
message(STATUS "pv ${PV_VERSION} (from ${_pv_version_source}), commit ${PV_COMMIT}")
