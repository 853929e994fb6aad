#!/usr/bin/env bash
# Installs what siam needs from Debian's archive, only what is missing (safe to run again).
#   scripts/install-deps.sh            build + test dependencies and the Fashion-MNIST data
#   scripts/install-deps.sh --bench    also python3-torch, for the PyTorch comparison in bench.sh
set -euo pipefail

packages=(build-essential cmake pkg-config clang-format gnuplot-nox
          libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
          libopenblas-dev zlib1g-dev dataset-fashion-mnist
          python3-grpcio python3-protobuf protobuf-compiler iproute2 python3-yaml openssl
          nodejs npm)
# the Python client library (clients/python) installs offline into a venv that sees Debian's
# grpcio: pip, setuptools and venv from Debian (python_client_test)
packages+=(python3-pip python3-setuptools python3-venv)
# for the tests only (not for building the programs, so not in docker/Dockerfile): the sanitizer
# build is made with clang, whose libFuzzer is in libclang-rt-14-dev; valgrind_test; test_pca
# compares the principal components with numpy's
packages+=(clang libclang-rt-14-dev valgrind python3-numpy)
# package_test: cpack -G DEB computes Depends with dpkg-shlibdeps (dpkg-dev); systemd gives
# systemd-analyze verify for the unit, systemd-sysusers for the postinst and pkg-config's
# systemd.pc (the unit's directory); it does not make systemd the init system (systemd-sysv)
packages+=(dpkg-dev systemd)
# container_test: podman as root with runc (crun refuses hybrid cgroup hosts), netavark networks
# (iptables for their rules, aardvark-dns for service names), catatonit (the pause process of
# kube play's pods), debootstrap (base images where no registry is reachable), podman-compose
packages+=(podman runc netavark aardvark-dns iptables catatonit debootstrap podman-compose)
for arg in "$@"; do
  case "$arg" in
    --bench) packages+=(python3-torch) ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  # a node and npm from elsewhere (e.g. a nodejs package that bundles npm and conflicts with
  # Debian's npm) serve as well: do not replace them
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
