#!/usr/bin/env bash
# package_test: siam's install rules and its .deb, from the build directory SIAM_BIN_DIR (nothing
# is rebuilt; cpack writes into a temporary directory). Checked:
#   1. `cmake --install` with DESTDIR and prefix /usr: exactly the expected tree (programs,
#      .proto files with their relative paths, docs, plot.sh, the systemd unit, its start script,
#      settings and sysusers.d file), the programs without RUNPATH, the unit's paths and
#      hardening, no secrets;
#   2. `cmake --install --prefix DIR`: the unit names DIR's paths and passes `systemd-analyze
#      verify` (when systemd-analyze is here); siam-server-start's first start (no checkpoint:
#      no --resume, SIAM_MODEL as --model), its second (--resume from the checkpoint the first
#      wrote at SIGTERM), a bad option exits 2 (the unit's RestartPreventExitStatus); an install
#      over changed settings keeps them;
#   3. `cpack -G DEB`: one siam_<version>_<arch>.deb whose `dpkg-deb -c` is the tree of 1., whose
#      fields (`dpkg-deb -f`) name the package, version, architecture, maintainer, Recommends
#      dataset-fashion-mnist and Depends on libgrpc29, libprotobuf-c1, libopenblas0 (or a
#      variant), zlib1g and libc6; conffiles and maintainer scripts;
#   4. `dpkg-deb -x` into a scratch root: the extracted programs run (--version, --help),
#      stripped;
#   5. as root: `dpkg --root` installs it into a scratch root (maintainer scripts chrootless: the
#      siam user is made there, systemctl is never called), an install over changed settings
#      keeps them, a purge removes the files (not run, with a note, when not root).
# Exits 77 (skipped) without dpkg-deb.
set -uo pipefail
bin=${SIAM_BIN_DIR:?SIAM_BIN_DIR is the build directory}
root=$(cd "$(dirname "$0")/.." && pwd)
start_time=$SECONDS

if ! command -v dpkg-deb >/dev/null; then
  echo "package_test: skipped: no dpkg-deb here (Debian's dpkg package), so no .deb to check"
  exit 77
fi
for tool in cmake cpack; do
  command -v $tool >/dev/null || { echo "FAIL: $tool not found"; exit 1; }
done
for prog in siam-server siam-client siam-train siam-bench; do
  [ -x "$bin/$prog" ] || { echo "FAIL: $bin/$prog not built"; exit 1; }
done
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$bin/CMakeCache.txt")
[ -n "$version" ] || { echo "FAIL: no CMAKE_PROJECT_VERSION in $bin/CMakeCache.txt"; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy no_grpc_proxy DESTDIR
fails=0 checks=0
check() { # check DESCRIPTION COMMAND: prints ok or FAIL with COMMAND's output
  checks=$((checks + 1))
  if (eval "$2") >"$tmp/check.out" 2>&1; then
    echo "ok   $1"
  else
    echo "FAIL $1"; sed 's/^/       /' "$tmp/check.out" | head -n 25; fails=$((fails + 1))
  fi
}
note() { echo "note $*"; }
# list_tree DIR: the files and symlinks under DIR, relative, sorted
list_tree() { (cd "$1" && find . \( -type f -o -type l \) | sed 's:^\./::' | LC_ALL=C sort); }

# ---- what the install must hold (prefix /usr, relative to the root) ----
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)
unitdir=${unitdir:-/lib/systemd/system}
sysusersdir=$(pkg-config --variable=sysusersdir systemd 2>/dev/null)
sysusersdir=${sysusersdir:-/usr/lib/sysusers.d}
{
  printf '%s\n' etc/default/siam-server "${unitdir#/}/siam-server.service" \
    "${sysusersdir#/}/siam.conf" usr/libexec/siam/siam-server-start usr/share/siam/plot.sh \
    usr/share/doc/siam/README.md
  for prog in siam-server siam-client siam-train siam-bench; do echo "usr/bin/$prog"; done
  (cd "$root/docs" && find . -maxdepth 1 -name '*.md' | sed 's:^\./:usr/share/doc/siam/docs/:')
  (cd "$root/proto" && find . -name '*.proto' | sed 's:^\./:usr/share/siam/proto/:')
} | LC_ALL=C sort >"$tmp/expected.tree"
check "the expected tree names siam.proto, health.proto and the unit" \
  "grep -qx usr/share/siam/proto/siam/v1/siam.proto '$tmp/expected.tree' && grep -qx usr/share/siam/proto/grpc/health/v1/health.proto '$tmp/expected.tree'"

# ---- 1. cmake --install, DESTDIR, prefix /usr ----
dest=$tmp/destdir
if ! DESTDIR=$dest cmake --install "$bin" --prefix /usr >"$tmp/install.log" 2>&1; then
  echo "FAIL cmake --install (DESTDIR, prefix /usr):"; tail -20 "$tmp/install.log"; exit 1
fi
list_tree "$dest" >"$tmp/installed.tree"
check "DESTDIR install, prefix /usr: exactly the expected $(wc -l <"$tmp/expected.tree") files" \
  "diff '$tmp/expected.tree' '$tmp/installed.tree'"
mode() { stat -c %a "$1"; }
check "programs, siam-server-start and plot.sh are 755; unit, settings, sysusers.d, docs, protos 644" \
  "for f in usr/bin/siam-server usr/bin/siam-client usr/bin/siam-train usr/bin/siam-bench usr/libexec/siam/siam-server-start usr/share/siam/plot.sh; do [ \$(mode '$dest'/\$f) = 755 ] || { echo \"\$f: \$(mode '$dest'/\$f)\"; exit 1; }; done;
   grep -vE '^usr/(bin|libexec)/|plot.sh$' '$tmp/installed.tree' | while read -r f; do [ \$(mode '$dest'/\$f) = 644 ] || { echo \"\$f: \$(mode '$dest'/\$f)\"; exit 1; }; done"
check "the .proto files and docs are the source's, byte for byte" \
  "(cd '$root/proto' && find . -name '*.proto' | while read -r f; do cmp \"\$f\" '$dest/usr/share/siam/proto/'\"\$f\" || exit 1; done) &&
   cmp '$root/README.md' '$dest/usr/share/doc/siam/README.md' && cmp '$root/docs/DISTRIBUTED.md' '$dest/usr/share/doc/siam/docs/DISTRIBUTED.md'"
check "installed programs have no RUNPATH/RPATH (the build's openblas-pthread path is removed)" \
  "for p in siam-server siam-client siam-train siam-bench; do ! readelf -d '$dest/usr/bin/'\$p | grep -E 'R(UN)?PATH' || exit 1; done"
unit=$dest/${unitdir#/}/siam-server.service
check "unit: runs siam-server-start as user siam, settings from /etc/default/siam-server" \
  "grep -qxF 'ExecStart=/usr/libexec/siam/siam-server-start \$SIAM_ARGS' '$unit' && grep -qx 'User=siam' '$unit' && grep -qx 'Group=siam' '$unit' && grep -qxF 'EnvironmentFile=-/etc/default/siam-server' '$unit'"
check "unit: state directory for checkpoints, restart on failure but not after a usage error" \
  "grep -qx 'StateDirectory=siam' '$unit' && grep -qx 'Restart=on-failure' '$unit' && grep -qx 'RestartPreventExitStatus=2' '$unit' && grep -qx 'WantedBy=multi-user.target' '$unit'"
hardening=(NoNewPrivileges=yes CapabilityBoundingSet= ProtectSystem=strict ProtectHome=yes
  PrivateTmp=yes PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes
  ProtectKernelLogs=yes ProtectControlGroups=yes "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
  MemoryDenyWriteExecute=yes SystemCallFilter=@system-service)
check "unit: hardening (${hardening[*]})" \
  "for h in \"\${hardening[@]}\"; do grep -qxF \"\$h\" '$unit' || { echo \"missing: \$h\"; exit 1; }; done"
check "siam-server-start runs /usr/bin/siam-server; state /var/lib/siam" \
  "grep -qxF \"server='/usr/bin/siam-server'\" '$dest/usr/libexec/siam/siam-server-start' && grep -qF 'STATE_DIRECTORY:-/var/lib/siam}' '$dest/usr/libexec/siam/siam-server-start'"
check "settings: SIAM_ARGS serves 127.0.0.1:50051 by default; sysusers.d makes user siam" \
  "grep -qx 'SIAM_ARGS=\"--listen 127.0.0.1:50051\"' '$dest/etc/default/siam-server' && grep -qE '^u siam ' '$dest/${sysusersdir#/}/siam.conf'"
check "no secrets: no key, certificate, token or checkpoint file; no token or key in the settings" \
  "! grep -Ei '\\.(pem|key|crt|ckpt)\$|token' '$tmp/installed.tree' && ! grep -E '^[^#]*(BEGIN [A-Z ]*PRIVATE KEY|Bearer|TOKEN=)' '$dest/etc/default/siam-server'"
check "every flag the unit's settings and start script pass is in siam-server --help" \
  "'$bin/siam-server' --help >'$tmp/server.help' 2>&1 &&
   for f in \$(grep -hoE -- '--[a-z][a-z0-9-]+' '$dest/etc/default/siam-server' '$dest/usr/libexec/siam/siam-server-start' | sort -u); do grep -qE -- \"^  \$f( |\$)\" '$tmp/server.help' || { echo \"not in --help: \$f\"; exit 1; }; done"

# ---- 2. cmake --install --prefix DIR: a runnable tree ----
prefix=$tmp/prefix
if ! cmake --install "$bin" --prefix "$prefix" >"$tmp/install2.log" 2>&1; then
  echo "FAIL cmake --install --prefix $prefix:"; tail -20 "$tmp/install2.log"; exit 1
fi
punit=$prefix/lib/systemd/system/siam-server.service
check "prefix install: unit in PREFIX/lib/systemd/system naming PREFIX's start script and settings" \
  "grep -qxF 'ExecStart=$prefix/libexec/siam/siam-server-start \$SIAM_ARGS' '$punit' && grep -qxF 'EnvironmentFile=-$prefix/etc/default/siam-server' '$punit' && [ -f '$prefix/lib/sysusers.d/siam.conf' ]"
if command -v systemd-analyze >/dev/null; then
  # verify prints its warnings (unknown keys, a missing ExecStart) and may still exit 0
  check "systemd-analyze verify siam-server.service: exit 0, no warnings" \
    "systemd-analyze verify --man=no '$punit' >'$tmp/verify.out' 2>&1; rc=\$?; cat '$tmp/verify.out'; [ \$rc -eq 0 ] && [ ! -s '$tmp/verify.out' ]"
  if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
    systemd-analyze security --offline=yes "$punit" 2>/dev/null | grep -o 'Overall exposure level.*' |
      sed 's/^/note systemd-analyze security: /'
  fi
else
  note "no systemd-analyze here (Debian's systemd package): the unit is not verified"
fi

# start_wrapper NAME ARGS...: siam-server-start of the prefix install with the state directory
# $tmp/state, in a clean environment plus SIAM_MODEL when set; waits for "listening on"
start_wrapper() {
  local name=$1; shift
  env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$tmp/state" ${SIAM_MODEL:+SIAM_MODEL=$SIAM_MODEL} \
    "$prefix/libexec/siam/siam-server-start" --listen 127.0.0.1:0 --grace 1 "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.log" &
  wpid=$!
  pids+=("$wpid")
  for _ in $(seq 150); do
    grep -q 'listening on 127\.0\.0\.1:' "$tmp/$name.out" 2>/dev/null && return 0
    kill -0 "$wpid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL siam-server-start ($name) did not start:"; cat "$tmp/$name.log"; return 1
}
# stop_wrapper: SIGTERM, then the exit status in wrc
stop_wrapper() {
  kill -TERM "$wpid"
  wait "$wpid"; wrc=$?
}
mkdir -p "$tmp/state"
ckpt=$tmp/state/global.ckpt
if SIAM_MODEL=mlp start_wrapper first; then
  stop_wrapper
  check "first start: no checkpoint, so no --resume; SIAM_MODEL=mlp becomes --model mlp" \
    "grep -qF 'no checkpoint at $ckpt yet: first start with --model mlp' '$tmp/first.log' && grep -q 'global model .* initialised with seed' '$tmp/first.log'"
  check "first start: SIGTERM exits 0 and writes the checkpoint into the state directory" \
    "[ $wrc -eq 0 ] && [ -s '$ckpt' ] && grep -qF 'written to $ckpt' '$tmp/first.log'"
else
  fails=$((fails + 1))
fi
if [ -s "$ckpt" ] && SIAM_MODEL=mlp start_wrapper second; then
  stop_wrapper
  check "second start: --resume from the checkpoint (SIAM_MODEL ignored), exits 0 at SIGTERM" \
    "grep -qF 'resuming from $ckpt' '$tmp/second.log' && grep -qF 'resumed from $ckpt: round 0' '$tmp/second.log' && [ $wrc -eq 0 ]"
else
  echo "FAIL second start not tried or did not start"; fails=$((fails + 1))
fi
check "no sanitizer report from the two starts" \
  "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$tmp/first.log' '$tmp/second.log'"
env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$tmp/state" "$prefix/libexec/siam/siam-server-start" \
  --no-such-option >"$tmp/bad.out" 2>&1
check "a bad option in SIAM_ARGS exits 2 (RestartPreventExitStatus=2: no restart loop)" "[ $? -eq 2 ]"

echo 'SIAM_ARGS="--listen 127.0.0.1:50999"' >>"$prefix/etc/default/siam-server"
cmake --install "$bin" --prefix "$prefix" --component service >"$tmp/install3.log" 2>&1
check "an install over changed settings keeps them (and says so)" \
  "grep -qx 'SIAM_ARGS=\"--listen 127.0.0.1:50999\"' '$prefix/etc/default/siam-server' && grep -q 'Keeping: .*/etc/default/siam-server' '$tmp/install3.log'"

# ---- 3. cpack -G DEB from the build directory into a temporary one ----
cpack_start=$SECONDS
if ! cpack -G DEB --config "$bin/CPackConfig.cmake" -B "$tmp/cpack" >"$tmp/cpack.log" 2>&1; then
  echo "FAIL cpack -G DEB:"; tail -20 "$tmp/cpack.log"
  grep -q dpkg-shlibdeps "$tmp/cpack.log" &&
    echo "     (dpkg-shlibdeps computes Depends: apt-get install dpkg-dev, or run scripts/install-deps.sh)"
  exit 1
fi
arch=$(dpkg --print-architecture)
debs=("$tmp"/cpack/*.deb)
deb=$tmp/cpack/siam_${version}_${arch}.deb
check "cpack made one package, $(basename "$deb") (${#debs[@]} .deb in all), in $((SECONDS - cpack_start)) s" \
  "[ ${#debs[@]} -eq 1 ] && [ -f '$deb' ]"
[ -f "$deb" ] || { echo "package_test: $((checks - fails)) of $checks checks passed; no .deb to check further"; exit 1; }
note "$(basename "$deb"): $(stat -c %s "$deb") bytes, Installed-Size $(dpkg-deb -f "$deb" Installed-Size) KiB"

dpkg-deb -c "$deb" >"$tmp/deb.list"
awk '$1 !~ /^d/ { p = $6; sub(/^\.\//, "", p); print p }' "$tmp/deb.list" | LC_ALL=C sort >"$tmp/deb.tree"
check "dpkg-deb -c: the files of the install (prefix /usr), no more, no fewer" \
  "diff '$tmp/expected.tree' '$tmp/deb.tree'"
check "dpkg-deb -c: owned by root, programs 755" \
  "! awk '\$2 != \"root/root\"' '$tmp/deb.list' | grep . && grep -qE '^-rwxr-xr-x .* \\./usr/bin/siam-server\$' '$tmp/deb.list'"
field() { dpkg-deb -f "$deb" "$1"; }
dpkg-deb -I "$deb" >"$tmp/info"
deps=$(field Depends)
echo "     Depends: $deps"
check "fields: Package siam, Version $version, Architecture $arch, Section, Priority" \
  "[ '$(field Package)' = siam ] && [ '$(field Version)' = '$version' ] && [ '$(field Architecture)' = '$arch' ] && [ -n '$(field Section)' ] && [ '$(field Priority)' = optional ]"
check "fields: Maintainer is 'name <email>', Description has a summary and a body" \
  "[[ '$(field Maintainer)' =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>\$ ]] && [ \$(dpkg-deb -f '$deb' Description | wc -l) -ge 3 ]"
for dep in libgrpc29 libprotobuf-c1 'libopenblas0(-pthread|-openmp|-serial)?' zlib1g libc6; do
  check "Depends names $dep" "grep -qE '(^|, |\\| )$dep( |,|\$)' <<<'$deps'"
done
check "Recommends dataset-fashion-mnist" "[[ '$(field Recommends)' == *dataset-fashion-mnist* ]]"
dpkg-deb -e "$deb" "$tmp/control"
check "conffiles: /etc/default/siam-server" "[ \"\$(cat '$tmp/control/conffiles')\" = /etc/default/siam-server ]"
check "maintainer scripts postinst, prerm, postrm: executable, sh -n clean" \
  "for s in postinst prerm postrm; do [ -x '$tmp/control/'\$s ] && sh -n '$tmp/control/'\$s || exit 1; done"
# The scripts run with stubs for systemctl, systemd-sysusers and useradd that record their calls:
# systemctl must be called exactly when systemd runs the system (/run/systemd/system exists),
# never in a container or chroot without it. Run once as they find this system, and, as root
# where a mount namespace can be made, once more with an empty /run that holds
# /run/systemd/system (the other case).
mkdir -p "$tmp/stubs"
for s in systemctl systemd-sysusers useradd; do
  printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$s" "$tmp/calls" >"$tmp/stubs/$s"
  chmod +x "$tmp/stubs/$s"
done
# run_scripts [PREFIX COMMAND...]: the five script runs of an install, an upgrade, a remove and a
# purge, with the stubs first on PATH; their calls and failures in $tmp/calls
run_scripts() {
  : >"$tmp/calls"
  local run
  for run in "postinst configure" "postinst configure 0.0.1" "prerm remove" "postrm remove" "postrm purge"; do
    # shellcheck disable=SC2086
    "$@" env -u DPKG_ROOT PATH="$tmp/stubs:$PATH" sh "$tmp/control/${run%% *}" ${run#* } \
      >>"$tmp/calls" 2>&1 || echo "exit $? from $run" >>"$tmp/calls"
  done
}
# check_scripts WHERE SYSTEMD(0|1)
check_scripts() {
  local want=""
  [ "$2" = 1 ] && want="daemon-reload|daemon-reload|daemon-reload|stop siam-server.service|try-restart siam-server.service|daemon-reload"
  want=$(tr '|' '\n' <<<"$want" | grep . | LC_ALL=C sort | paste -sd'|')
  local got
  got=$(sed -n 's/^systemctl //p' "$tmp/calls" | LC_ALL=C sort | paste -sd'|')
  check "maintainer scripts, $1: systemctl calls '$want'; exit 0; systemd-sysusers siam.conf" \
    "[ '$got' = '$want' ] && ! grep -q '^exit ' '$tmp/calls' && [ \$(grep -c '^systemd-sysusers siam.conf\$' '$tmp/calls') -eq 2 ] && ! grep -q '^useradd' '$tmp/calls' || { cat '$tmp/calls'; false; }"
}
run_scripts
if [ -d /run/systemd/system ]; then
  check_scripts "systemd running here" 1
else
  check_scripts "no systemd running here" 0
fi
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
  # shellcheck disable=SC2016
  run_scripts unshare -m sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' sh
  check_scripts "a mount namespace whose /run has systemd/system" 1
else
  note "not root or no mount namespace: the maintainer scripts' other systemd case is not run"
fi

# ---- 4. dpkg-deb -x: the programs of the package run ----
x=$tmp/extracted
dpkg-deb -x "$deb" "$x"
check "extracted siam-server --version says $version" \
  "[ \"\$('$x/usr/bin/siam-server' --version)\" = 'siam-server $version' ]"
check "extracted siam-server --help (exit 0) lists --checkpoint and --resume" \
  "'$x/usr/bin/siam-server' --help >'$tmp/x.help' && grep -q -- '--checkpoint' '$tmp/x.help' && grep -q -- '--resume' '$tmp/x.help'"
check "extracted siam-client, siam-train, siam-bench --version" \
  "for p in siam-client siam-train siam-bench; do [ \"\$('$x/usr/bin/'\$p --version)\" = \"\$p $version\" ] || exit 1; done"
check "extracted programs are stripped (no .debug_info, no symbol table)" \
  "for p in siam-server siam-client siam-train siam-bench; do ! readelf -S '$x/usr/bin/'\$p | grep -qE '\\.debug_info|\\.symtab' || { echo \"\$p not stripped\"; exit 1; }; done"

# ---- 5. dpkg --root: installed into a scratch root (root only) ----
if [ "$(id -u)" -ne 0 ]; then
  note "not root: dpkg --root into a scratch root not tried (dpkg-deb -x above ran the programs)"
elif ! command -v dpkg >/dev/null; then
  note "no dpkg: dpkg --root into a scratch root not tried"
else
  sr=$tmp/scratchroot
  host_users=$(cat /etc/passwd /etc/group | md5sum)
  mkdir -p "$sr/var/lib/dpkg/info" "$sr/var/lib/dpkg/updates" "$sr/var/lib/dpkg/triggers" "$sr/etc" \
    "$tmp/stub"
  : >"$sr/var/lib/dpkg/status"; : >"$sr/var/lib/dpkg/available"
  # a systemctl that records being called: the scripts must not call it here
  printf '#!/bin/sh\necho "systemctl $*" >>"%s"\n' "$tmp/systemctl.calls" >"$tmp/stub/systemctl"
  chmod +x "$tmp/stub/systemctl"
  # chrootless: the scripts run here with DPKG_ROOT=$sr (the scratch root has no shell);
  # --force-depends: the libraries are this system's, not the scratch root's
  dpkgr() {
    PATH="$tmp/stub:$PATH" dpkg --root="$sr" --force-script-chrootless --force-depends \
      --force-confold --log=/dev/null "$@"
  }
  dpkgr -i "$deb" >"$tmp/dpkg.log" 2>&1; rc=$?
  check "dpkg --root -i: exit 0, status installed" \
    "[ $rc -eq 0 ] && dpkg --root='$sr' -s siam | grep -qx 'Status: install ok installed' || { cat '$tmp/dpkg.log'; false; }"
  check "dpkg --root -i: every file of the package in the scratch root, the programs run" \
    "while read -r f; do [ -e '$sr/'\$f ] || { echo \"missing \$f\"; exit 1; }; done <'$tmp/deb.tree' && [ \"\$('$sr/usr/bin/siam-server' --version)\" = 'siam-server $version' ]"
  if command -v systemd-sysusers >/dev/null; then
    check "postinst made the system user and group siam in the scratch root (systemd-sysusers)" \
      "grep -qE '^siam:x:[0-9]+:[0-9]+:.*:/var/lib/siam:' '$sr/etc/passwd' && grep -qE '^siam:x:' '$sr/etc/group'"
  else
    note "no systemd-sysusers: postinst makes no user under DPKG_ROOT (useradd is for real installs)"
  fi
  echo 'SIAM_ARGS="--listen 0.0.0.0:50051"' >"$sr/etc/default/siam-server"
  dpkgr -i "$deb" >>"$tmp/dpkg.log" 2>&1; rc=$?
  check "dpkg --root -i again (reinstall): exit 0, changed conffile kept" \
    "[ $rc -eq 0 ] && grep -qx 'SIAM_ARGS=\"--listen 0.0.0.0:50051\"' '$sr/etc/default/siam-server'"
  dpkgr -P siam >>"$tmp/dpkg.log" 2>&1; rc=$?
  check "dpkg --root -P (purge): exit 0, files and conffile gone, user siam kept" \
    "[ $rc -eq 0 ] && [ ! -e '$sr/usr/bin/siam-server' ] && [ ! -e '$sr/etc/default/siam-server' ] && [ ! -e '$sr/${unitdir#/}/siam-server.service' ] && { ! command -v systemd-sysusers >/dev/null || grep -q '^siam:' '$sr/etc/passwd'; }"
  check "the maintainer scripts never called systemctl (DPKG_ROOT), this system's users untouched" \
    "[ ! -e '$tmp/systemctl.calls' ] && [ \"\$(cat /etc/passwd /etc/group | md5sum)\" = '$host_users' ] || { cat '$tmp/systemctl.calls'; false; }"
fi

echo "package_test: $((checks - fails)) of $checks checks passed in $((SECONDS - start_time)) s"
[ $fails -eq 0 ]
