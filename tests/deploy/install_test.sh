#!/usr/bin/env bash
# Installing pv outside the dev stack (docs/operations.md "Installing"):
#
#   install_test.sh install BUILD_DIR   `cmake --install` of the built tree into a DESTDIR, with the
#                                       prefixes /usr/local and /usr: exactly the expected files, the
#                                       units' ExecStart and PV_CONFIG pointing at what was installed,
#                                       `systemd-analyze verify` and `security --offline` on the units,
#                                       the installed binary's --version, an edited config kept by a
#                                       second install.
#   install_test.sh package BUILD_DIR   `cpack -G DEB` of the built tree: dpkg-deb -I (version,
#                                       Depends from dpkg-shlibdeps, maintainer scripts, conffiles) and
#                                       -c (the files, nothing of the dev broker or the tests).
#   install_test.sh no_tests BUILD_DIR  a configure of a fresh build directory with -DPV_BUILD_TESTS=OFF
#                                       and GoogleTest made unfindable (CMAKE_DISABLE_FIND_PACKAGE_GTest)
#                                       succeeds and has no test or bench target; the same with tests
#                                       ON fails, which proves the check would catch a need for GTest.
#
# Run by ctest (deploy.install, deploy.package, deploy.no_tests_configure). install and package take the
# binaries already built (scripts/test builds everything first; cpack's own build step is then a
# no-op). Everything happens in a temporary directory; nothing is installed on this machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:?usage: install_test.sh install|package|no_tests BUILD_DIR}
build=$(cd "${2:?usage: install_test.sh MODE BUILD_DIR}" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pv-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The version every binary and the package must carry: what CMake computed (cmake/PvVersion.cmake).
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake"

units=(pv-ingest.service pv-dispatcher.service pv-worker-email.service pv-worker-sms.service
  pv-worker-push.service)
binaries=(pv-ingest pv-dispatcher email-worker sms-worker push-worker pvctl)

# The file list of an install with `prefix` whose config directory is `etc` (both without DESTDIR).
expected_files() {
  local prefix=$1 etc=$2
  {
    for b in "${binaries[@]}"; do echo "$prefix/bin/$b"; done
    for u in "${units[@]}"; do echo "$prefix/lib/systemd/system/$u"; done
    echo "$etc/pv/pv.yaml"
    local doc=$prefix/share/doc/pv
    echo "$doc/README.md"
    for d in api architecture configuration configuration-dispatcher configuration-pvctl configuration-workers \
      dispatcher operations; do
      echo "$doc/$d.md"
    done
    (cd "$root/catalog/demo" && find . -type f | sed "s#^\.#$doc/examples/catalog#")
  } | sort
}

# Checks the units installed under `dest` (a DESTDIR) for `prefix`, with the config in `etc`.
check_units() {
  local dest=$1 prefix=$2 etc=$3
  local verify=$tmp/verify
  rm -rf "$verify" && mkdir -p "$verify"
  for u in "${units[@]}"; do
    local f=$dest$prefix/lib/systemd/system/$u
    [ -f "$f" ] || fail "$u not installed"
    local exec want channel
    exec=$(sed -n 's/^ExecStart=//p' "$f")
    case "$u" in
      pv-worker-*) channel=${u#pv-worker-} && want=$prefix/bin/${channel%.service}-worker ;;
      *) want=$prefix/bin/${u%.service} ;;
    esac
    [ "$exec" = "$want" ] || fail "$u: ExecStart=$exec, want $want"
    [ -x "$dest$exec" ] || fail "$u: ExecStart $exec is not an installed executable"
    grep -qx "Environment=PV_CONFIG=$etc/pv/pv.yaml" "$f" || fail "$u: no Environment=PV_CONFIG=$etc/pv/pv.yaml"
    [ -f "$dest$etc/pv/pv.yaml" ] || fail "$u: its PV_CONFIG is not installed"
    for line in Type=exec User=pv Group=pv Restart=on-failure KillSignal=SIGTERM NoNewPrivileges=yes \
      ProtectSystem=strict PrivateTmp=yes StateDirectory=pv; do
      grep -qx "$line" "$f" || fail "$u: no $line"
    done
    # Every service drains within its stop timeout (the units say how each was computed).
    local stop
    stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$f")
    case "$u" in
      pv-worker-*) [ "${stop:-0}" -ge 50 ] || fail "$u: TimeoutStopSec=${stop}s < the 50 s drain (30 s + flush, commit, leave)" ;;
      pv-ingest.service) [ "${stop:-0}" -ge 30 ] || fail "$u: TimeoutStopSec=${stop}s < the 27 s drain" ;;
      pv-dispatcher.service) [ "${stop:-0}" -ge 30 ] || fail "$u: TimeoutStopSec=${stop}s < the 30 s drain" ;;
    esac
    grep -q '@' "$f" && fail "$u: an unreplaced @VARIABLE@: $(grep '@' "$f")"
    # systemd-analyze checks ExecStart on this machine's file system: verify a copy that points at the
    # binary under DESTDIR.
    sed "s#^ExecStart=#ExecStart=$dest#" "$f" >"$verify/$u"
  done
  if command -v systemd-analyze >/dev/null; then
    # verify exits 0 on unknown keys and bad values, only printing them: any output fails.
    local out
    out=$(cd "$verify" && systemd-analyze verify --man=no "${units[@]}" 2>&1) || fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
    for u in "${units[@]}"; do
      local level
      level=$(systemd-analyze security --offline=yes "$verify/$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
      [ -n "$level" ] || fail "$u: systemd-analyze security gave no exposure level"
      echo "$u: exposure $level (systemd-analyze security --offline)"
      awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }' || fail "$u: exposure $level above 3.0: hardening lost"
    done
  else
    echo "systemd-analyze is not installed: units checked by the lines above only"
  fi
}

install_mode() {
  for prefix in /usr/local /usr; do
    local dest=$tmp/dest${prefix//\//-} etc
    etc=$([ "$prefix" = /usr ] && echo /etc || echo "$prefix/etc")
    DESTDIR=$dest cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
      fail "cmake --install --prefix $prefix: $(cat "$tmp/install.log")"
    (cd "$dest" && find . -type f | sed 's#^\.##' | sort) >"$tmp/got"
    expected_files "$prefix" "$etc" >"$tmp/want"
    diff -u "$tmp/want" "$tmp/got" || fail "installed files (prefix $prefix) differ from the expected list (- expected, + installed)"
    [ -d "$dest$etc/pv/catalog" ] || fail "no $etc/pv/catalog directory"
    for b in "${binaries[@]}"; do [ -x "$dest$prefix/bin/$b" ] || fail "$b is not executable"; done
    [ -e "$dest$prefix/bin/pv-dev-broker" ] && fail "pv-dev-broker is installed"
    cmp -s "$root/deploy/config/pv.yaml" "$dest$etc/pv/pv.yaml" || fail "$etc/pv/pv.yaml is not deploy/config/pv.yaml"
    check_units "$dest" "$prefix" "$etc"
    local got
    got=$("$dest$prefix/bin/pv-dispatcher" --version)
    [[ "$got" == "pv-dispatcher $version (commit "* ]] || fail "installed pv-dispatcher --version: '$got', want version $version"

    # A second install keeps an edited config.
    echo "# edited" >>"$dest$etc/pv/pv.yaml"
    DESTDIR=$dest cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || fail "second install"
    tail -1 "$dest$etc/pv/pv.yaml" | grep -qx "# edited" || fail "a second install overwrote the edited $etc/pv/pv.yaml"
    echo "install (prefix $prefix): $(wc -l <"$tmp/got") files as expected"
  done
}

package_mode() {
  command -v dpkg-deb >/dev/null || fail "dpkg-deb is not installed (Debian package dpkg)"
  # Exactly `cpack -G DEB` in the build directory. cpack first builds the "preinstall" target (all):
  # a no-op after scripts/test's build, an incremental one after an edit; but never a whole tree from
  # nothing, which this test refuses.
  for b in "${binaries[@]}"; do
    [ -n "$(find "$build" -name "$b" -type f -perm -u+x -print -quit)" ] ||
      fail "$b is not built in $build: build the tree first (cpack would build all of it)"
  done
  (cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out" >"$tmp/cpack.log" 2>&1) ||
    fail "cpack: $(cat "$tmp/cpack.log")"
  local debs=("$tmp"/out/pv_*.deb)
  [ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one pv_*.deb in $tmp/out: $(ls "$tmp/out")"
  local deb=${debs[0]}
  dpkg-deb -I "$deb" >"$tmp/info"
  cat "$tmp/info"
  field() { sed -n "s/^ $1: //p" "$tmp/info"; }
  [ "$(field Package)" = pv ] || fail "Package: $(field Package)"
  [ "$(field Version)" = "$version" ] || fail "Version: $(field Version), want $version"
  local depends
  depends=$(field Depends)
  local libs=(librdkafka1 'libhiredis0\.14' libfmt9 'libyaml-cpp0\.7' libcurl4 libssl3 libdate-tz3 tzdata
    ca-certificates passwd)
  # The services' allocator (PV_MALLOC): jemalloc's package when the build linked it (not the sanitized
  # builds, which keep their runtime's).
  local ingest_bin
  ingest_bin=$(find "$build" -name pv-ingest -type f -perm -u+x -print -quit)
  if readelf -d "$ingest_bin" | grep -q 'NEEDED.*libjemalloc'; then libs+=(libjemalloc2); fi
  for lib in "${libs[@]}"; do
    [[ "$depends" =~ (^|, )$lib( |,|$) ]] || fail "Depends lacks $lib: $depends"
  done
  for script in postinst prerm postrm conffiles; do
    grep -q "^ *[0-9]* bytes, *[0-9]* lines *\*\? *$script" "$tmp/info" || fail "no $script in the control archive"
  done
  dpkg-deb -e "$deb" "$tmp/control"
  [ "$(cat "$tmp/control/conffiles")" = /etc/pv/pv.yaml ] || fail "conffiles: $(cat "$tmp/control/conffiles")"
  sh -n "$tmp/control/postinst" || fail "postinst is not valid sh"
  grep -q 'getent passwd pv' "$tmp/control/postinst" || fail "postinst does not check for the pv user first"

  dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$tmp/contents"
  for want in /usr/bin/pv-ingest /usr/bin/pv-dispatcher /usr/bin/email-worker /usr/bin/sms-worker \
    /usr/bin/push-worker /usr/bin/pvctl /etc/pv/pv.yaml /etc/pv/catalog/ /usr/share/doc/pv/operations.md \
    /usr/share/doc/pv/examples/catalog/44-order-shipped.yaml; do
    grep -qx "$want" "$tmp/contents" || fail "the .deb lacks $want"
  done
  for u in "${units[@]}"; do grep -qx "/usr/lib/systemd/system/$u" "$tmp/contents" || fail "the .deb lacks $u"; done
  grep -E 'dev-broker|_test$|bench|fill' "$tmp/contents" && fail "the .deb holds development binaries"
  # The units inside point at /usr/bin and /etc/pv, whatever prefix the build was configured with.
  dpkg-deb -x "$deb" "$tmp/root"
  check_units "$tmp/root" /usr /etc
  readelf -S "$tmp/root/usr/bin/pv-ingest" | grep -q '\.debug_info' && fail "binaries are not stripped"
  echo "package: $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB"
}

no_tests_mode() {
  local flags=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON)
  cmake -S "$root" -B "$tmp/off" "${flags[@]}" -DPV_BUILD_TESTS=OFF >"$tmp/off.log" 2>&1 ||
    fail "configure with PV_BUILD_TESTS=OFF and no GTest: $(cat "$tmp/off.log")"
  local targets
  targets=$(ninja -C "$tmp/off" -t targets all)
  for t in pv-ingest pv-dispatcher email-worker sms-worker push-worker pvctl; do
    grep -q "^$t:" <<<"$targets" || fail "no $t target"
  done
  if grep -E '^[^ ]*(_test|pv-bench-[^ ]*|_fuzz):' <<<"$targets"; then fail "test, bench or fuzz targets with PV_BUILD_TESTS=OFF"; fi
  grep -qi 'gtest\|gmock' "$tmp/off/build.ninja" && fail "build.ninja names GTest or GMock"
  # A target_link_libraries name that is not a target (one defined only with tests) becomes -l<name>:
  # configure passes, the link would fail.
  grep -q -- '-lpv_' "$tmp/off/build.ninja" && fail "a link line names a pv_ library that is not built: $(grep -o -- '-lpv_[a-z_]*' "$tmp/off/build.ninja" | sort -u)"
  [ -f "$tmp/off/CTestTestfile.cmake" ] && grep -q add_test "$tmp/off/CTestTestfile.cmake" && fail "tests registered"
  # The check has teeth: with tests ON the same configure must fail for want of GTest.
  if cmake -S "$root" -B "$tmp/on" "${flags[@]}" -DPV_BUILD_TESTS=ON >"$tmp/on.log" 2>&1; then
    fail "configure with tests ON succeeded although GTest was made unfindable"
  fi
  grep -q GTest "$tmp/on.log" || fail "tests ON failed, but not for GTest: $(tail -5 "$tmp/on.log")"
  echo "no_tests: configured without GTest; $(grep -c ':' <<<"$targets") targets, none a test"
}

case "$mode" in
  install) install_mode ;;
  package) package_mode ;;
  no_tests) no_tests_mode ;;
  *) fail "unknown mode $mode" ;;
esac
