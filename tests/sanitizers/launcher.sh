#!/usr/bin/env bash
# Test launcher of the sanitized builds (scripts/test --sanitize and --tsan configure it as
# PV_TEST_LAUNCHER, so ctest runs every test through it): runs one test command with the sanitizer
# reports of the test and of every process it starts (pv-dev-broker, ingest, the dispatcher, the
# workers, pvctl, the dev stack) written to a fresh directory, and fails the test when that
# directory is not empty, printing each report. Without it, a report from a child the test stops
# with SIGTERM (a leak at exit, a race in a worker thread) would end in a log nobody reads, and a
# test that does not check the child's exit status would pass.
#
#   tests/sanitizers/launcher.sh COMMAND [ARG...]
#
# Sanitizer options: every report halts the process (halt_on_error); leaks are reported at exit
# (LeakSanitizer works on these machines); the suppression files beside this script name only
# third-party code, each entry with its reason. Options already in the environment come first, so a
# developer can add some (ASAN_OPTIONS=... ctest); log_path is always ours.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

reports=$(mktemp -d "${TMPDIR:-/tmp}/pv-sanitizer-reports.XXXXXX")
trap 'rm -rf "$reports"' EXIT

common="halt_on_error=1:log_path=$reports/report"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:$common"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:suppressions=$root/fuzz/ubsan.supp:$common"
export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}second_deadlock_stack=1:suppressions=$here/tsan.supp:$common"

"$@"
status=$?

shopt -s nullglob
found=("$reports"/report.*)
if [ ${#found[@]} -gt 0 ]; then
  for f in "${found[@]}"; do
    echo "=== sanitizer report ${f##*/} (pid ${f##*.})"
    cat "$f"
  done
  echo "sanitizer: ${#found[@]} report(s): the test fails whatever its own result (exit status $status)"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
