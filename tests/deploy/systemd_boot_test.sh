#!/usr/bin/env bash
# The .deb installed on a clean Debian 12 and its units run under systemd, sandbox and all:
#
#   tests/deploy/systemd_boot_test.sh BUILD_DIR
#
# cpack -G DEB of the built tree; debootstrap --variant=minbase bookworm into a temporary directory;
# apt installs the package there (Depends resolved from Debian, postinst run); reinstall, remove and
# purge behave (an edited conffile kept, the pv user kept); then systemd-nspawn boots that root with
# systemd as PID 1 and a private network, where a oneshot unit points /etc/pv/pv.yaml at the dev
# broker (copied in: not part of the package) and Redis, starts the five pv units, checks they are
# active and ingest and the dispatcher ready, creates a key with pvctl as the pv user, sends one
# trigger to ingest and waits for the log provider's line in /var/lib/pv/outbox/email.jsonl, then
# stops each unit and reads its Result and exit status (SIGTERM: 0 within TimeoutStopSec).
#
# Not in ctest: it needs root, the network (Debian's mirror, ~40 MB) and several minutes (2 to 9 seen
# here, most of it debootstrap; PV_BOOT_TARBALL=/var/tmp/pv-boot.tgz keeps its downloads). Debian
# packages debootstrap and systemd-container (scripts/bootstrap installs them). Prints what it saw;
# exits non-zero on the first failed check. Removes its directory at the end.
set -euo pipefail

root_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: systemd_boot_test.sh BUILD_DIR}" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in debootstrap systemd-nspawn cpack; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done
[ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap, chroot, systemd-nspawn)"
work=$(mktemp -d "${TMPDIR:-/tmp}/pv-boot.XXXXXX")
trap 'rm -rf "$work"' EXIT
R=$work/root
units="pv-ingest pv-dispatcher pv-worker-email pv-worker-sms pv-worker-push"

echo "boot: cpack"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1) ||
  fail "cpack: $(tail -20 "$work/cpack.log")"
echo "boot: debootstrap bookworm (minbase)"
mirror=http://deb.debian.org/debian
# PV_BOOT_TARBALL=path keeps debootstrap's downloads between runs (made on the first).
if [ -n "${PV_BOOT_TARBALL:-}" ] && [ ! -f "$PV_BOOT_TARBALL" ]; then
  debootstrap --variant=minbase --make-tarball="$PV_BOOT_TARBALL" bookworm "$work/tarball" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || fail "debootstrap --make-tarball: $(tail -5 "$work/debootstrap.log")"
fi
debootstrap --variant=minbase ${PV_BOOT_TARBALL:+--unpack-tarball="$PV_BOOT_TARBALL"} bookworm "$R" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || fail "debootstrap: $(tail -5 "$work/debootstrap.log")"
echo "boot: debootstrap done at ${SECONDS}s"
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d" && chmod +x "$R/usr/sbin/policy-rc.d"
in_root() { DEBIAN_FRONTEND=noninteractive chroot "$R" "$@"; }
in_root apt-get update -qq >/dev/null
in_root apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus redis-server curl \
  >"$work/apt.log" 2>&1 || fail "apt (systemd, redis): $(tail -5 "$work/apt.log")"

echo "boot: apt install the package"
cp "$work"/out/pv_*.deb "$R/tmp/pv.deb"
in_root apt-get install -y -qq --no-install-recommends /tmp/pv.deb >"$work/apt-pv.log" 2>&1 ||
  fail "apt install pv: $(tail -20 "$work/apt-pv.log")"
in_root getent passwd pv | grep -q ':/var/lib/pv:/usr/sbin/nologin$' || fail "postinst made no pv user"
[ "$(in_root stat -c '%U %a' /var/lib/pv/keys)" = "pv 750" ] || fail "/var/lib/pv/keys: $(in_root stat -c '%U %a' /var/lib/pv/keys)"
for b in pv-ingest pv-dispatcher email-worker sms-worker push-worker; do
  in_root "$b" --version >/dev/null || fail "$b does not run: a library missing from Depends?"
done
uid=$(in_root id -u pv)
echo "# edited" >>"$R/etc/pv/pv.yaml"
in_root dpkg -i /tmp/pv.deb >/dev/null 2>&1 || fail "reinstall"
tail -1 "$R/etc/pv/pv.yaml" | grep -qx '# edited' || fail "a reinstall replaced the edited conffile"
[ "$(in_root id -u pv)" = "$uid" ] || fail "a reinstall changed the pv user"
in_root dpkg -r pv >/dev/null 2>&1 || fail "dpkg -r"
[ -e "$R/usr/bin/pv-ingest" ] && fail "dpkg -r left the binaries"
in_root getent passwd pv >/dev/null || fail "dpkg -r removed the pv user"
in_root dpkg -P pv >/dev/null 2>&1 || fail "dpkg -P"
[ -e "$R/etc/pv/pv.yaml" ] && fail "dpkg -P left the conffile"
in_root dpkg -i /tmp/pv.deb >/dev/null 2>&1 || fail "install after purge"
echo "boot: install, reinstall (edited conffile kept), remove (user kept), purge, install again: ok"

# The test's own units: the dev broker as Kafka, and the driver (output in /boot-test.log).
cp "$build/tools/dev-broker/pv-dev-broker" "$R/usr/local/bin/"
cat >"$R/etc/systemd/system/pv-test-broker.service" <<'EOF'
[Service]
ExecStart=/usr/local/bin/pv-dev-broker --bootstrap-file /run/pv-test-broker/bootstrap --control-file /run/pv-test-broker/control
RuntimeDirectory=pv-test-broker
EOF
cat >"$R/etc/systemd/system/pv-test-driver.service" <<'EOF'
[Unit]
After=multi-user.target redis-server.service pv-test-broker.service
Requires=pv-test-broker.service redis-server.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/pv-test-driver
ExecStopPost=/bin/systemctl poweroff --no-block
[Install]
WantedBy=multi-user.target
EOF
cat >"$R/usr/local/bin/pv-test-driver" <<EOF
#!/bin/sh
exec >/boot-test.log 2>&1
units="$units"
EOF
cat >>"$R/usr/local/bin/pv-test-driver" <<'EOF'
for i in $(seq 1 100); do [ -s /run/pv-test-broker/bootstrap ] && break; sleep 0.2; done
sed -i "s#^  brokers: .*#  brokers: \"$(cat /run/pv-test-broker/bootstrap)\"#; s#redis://redis:6379#redis://127.0.0.1:6379#; s#redis://suppression-redis:6379#redis://127.0.0.1:6379/1#; s#redis://status-redis:6379#redis://127.0.0.1:6379/2#" /etc/pv/pv.yaml
cp -r /usr/share/doc/pv/examples/catalog/. /etc/pv/catalog/
systemctl start $units
for u in $units; do echo "active $u $(systemctl is-active $u)"; done
for p in 9110 9091; do
  for i in $(seq 1 150); do [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$p/readyz)" = 200 ] && break; sleep 0.2; done
  echo "ready $p $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$p/readyz)"
done
echo "build_info $(curl -s http://127.0.0.1:9110/metrics | grep '^pv_build_info')"
key=$(runuser -u pv -- pvctl --config /etc/pv/pv.yaml keys create --project demo --name boot | grep -o 'sk_[A-Za-z0-9_-]*' | head -1)
for i in $(seq 1 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"user":{"external_id":"u1","email":"a@b.co"}}' http://127.0.0.1:8080/api/client/campaigns/44/trigger)
  [ "$code" = 204 ] && break; sleep 0.2   # 401/503 until the key and pv.keys reached ingest
done
echo "trigger $code"
for i in $(seq 1 150); do [ -s /var/lib/pv/outbox/email.jsonl ] && break; sleep 0.2; done
echo "outbox $(cat /var/lib/pv/outbox/email.jsonl 2>/dev/null | wc -l)"
for u in $units; do
  t0=$(date +%s%N); systemctl stop $u; t1=$(date +%s%N)
  echo "stopped $u $(systemctl show -p Result --value $u) $(systemctl show -p ExecMainStatus --value $u) $(( (t1 - t0) / 1000000 ))ms"
done
echo "journal-errors $(journalctl --no-pager -o cat -u 'pv-*' | grep -c '"level":"error"')"
EOF
chmod +x "$R/usr/local/bin/pv-test-driver"
in_root systemctl enable pv-test-driver.service >/dev/null 2>&1

echo "boot: systemd-nspawn (systemd as PID 1, private network)"
timeout 300 systemd-nspawn -D "$R" -b --register=no --keep-unit --private-network --console=pipe \
  >"$work/nspawn.log" 2>&1 || true
[ -s "$R/boot-test.log" ] || fail "the driver did not run: $(tail -20 "$work/nspawn.log")"
cat "$R/boot-test.log"
for u in $units; do
  grep -qx "active $u active" "$R/boot-test.log" || fail "$u was not active"
  grep -q "^stopped $u success 0 " "$R/boot-test.log" || fail "$u did not stop cleanly on SIGTERM"
done
grep -qx 'ready 9110 200' "$R/boot-test.log" || fail "ingest never ready"
grep -qx 'ready 9091 200' "$R/boot-test.log" || fail "dispatcher never ready"
grep -qx 'trigger 204' "$R/boot-test.log" || fail "the trigger was not accepted"
grep -qx 'outbox 1' "$R/boot-test.log" || fail "the trigger did not reach the email worker's outbox"
echo "boot: ok"
