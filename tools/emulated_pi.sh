#!/usr/bin/env bash
# An emulated Raspberry Pi (64-bit Raspberry Pi OS bookworm userland) that runs
# edgekit's device side the way a Pi user installs it, without touching this
# machine's system:
#
#   - qemu-user-static and a Debian bookworm arm64 userland (python3.11, venv,
#     pip, libc, libstdc++ ...) are fetched with `apt-get download` and unpacked
#     with `dpkg -x` into a scratch folder, through a PRIVATE APT configuration
#     (its own sources.list, state and cache). No `dpkg --add-architecture`,
#     no binfmt registration, nothing installed system-wide.
#   - Python runs as `qemu-aarch64-static -L SYSROOT -cpu <model> python3.11`
#     through a small wrapper script, so venvs, pip's subprocesses and console
#     scripts (whose shebangs the host kernel runs) all land back in qemu.
#   - The sysroot gets a Pi-style /proc/cpuinfo: qemu 7.2 shows the guest the
#     host's x86 one (qemu's -L lookup tries SYSROOT/<path> first, /proc too),
#     and LiteRT's CPU probe segfaults on it.
#   - The built wheel is installed with [runtime] by the guest's pip, resolving
#     aarch64 wheels from PyPI (this machine's pip configuration, local wheel
#     folders and constraints are ignored: --isolated, clean environment).
#   - doctor, verify, deploy and bench run on a bundle with cpu+gpu+edgetpu
#     artifacts, once per CPU model (cortex-a72 = Pi 4, cortex-a76 = Pi 5),
#     then the device-side tests (pytest -m "not build").
#
# Emulated timings mean nothing; exit codes, fallback lines and results do.
#
# Usage (as root or any user; needs network to Debian's archive and PyPI):
#   tools/emulated_pi.sh [all|setup|install|refresh|check|tests]   (default: all)
# Environment:
#   EDGEKIT_PI_DIR   scratch folder (default /tmp/edgekit-pi, /tmp/edgekit-pi-trixie);
#                    delete it to start over
#   EDGEKIT_PI_SUITE Debian suite of the userland: bookworm (Raspberry Pi OS 12,
#                    Python 3.11, the default) or trixie (Raspberry Pi OS 13, Python 3.13)
#   EDGEKIT_PI_CPUS  CPU models to check (default "cortex-a72 cortex-a76")
#   PYTHON           an x86 Python with edgekit's build side, used to build the
#                    wheel and the test bundle (default: python3)
#   EDGEKIT_PI_BUNDLE  use this bundle instead of building one
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUITE="${EDGEKIT_PI_SUITE:-bookworm}"
case "$SUITE" in
    bookworm) PYV=3.11; DEFAULT_DIR=/tmp/edgekit-pi ;;
    trixie) PYV=3.13; DEFAULT_DIR=/tmp/edgekit-pi-trixie ;;
    *) echo "EDGEKIT_PI_SUITE must be bookworm or trixie, not $SUITE" >&2; exit 2 ;;
esac
SCRATCH="${EDGEKIT_PI_DIR:-$DEFAULT_DIR}"
CPUS="${EDGEKIT_PI_CPUS:-cortex-a72 cortex-a76}"
PYTHON="${PYTHON:-python3}"
SYSROOT="$SCRATCH/sysroot"
APTDIR="$SCRATCH/apt"
DEBS="$SCRATCH/debs"
QEMU="$SCRATCH/qemu/usr/bin/qemu-aarch64-static"
VENV="$SCRATCH/venv"
OUT="$SCRATCH/out"
MIRROR="${EDGEKIT_PI_MIRROR:-http://deb.debian.org/debian}"
# What a Pi user has: python3.11 with venv and pip (Debian's ensurepip wheels
# come with python3.11-venv -> python3-pip-whl), plus the C/C++ runtime that
# manylinux wheels link against.
# (libssl, libffi, zlib, expat come as python's own dependencies.)
PACKAGES="python$PYV python$PYV-venv python3-pip libc6 libstdc++6 libgcc-s1 ca-certificates"

log() { printf '\n=== %s\n' "$*"; }

# ------------------------------------------------------------------ setup

private_apt() {
    mkdir -p "$APTDIR"/{lists/partial,cache/archives/partial,etc/sources.list.d,etc/preferences.d,etc/apt.conf.d,log}
    : >"$APTDIR/status"
    echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" >"$APTDIR/etc/sources.list"
    cat >"$APTDIR/apt.conf" <<EOF
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
Dir::State "$APTDIR";
Dir::State::Lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::Cache "$APTDIR/cache";
Dir::Etc "$APTDIR/etc";
Dir::Etc::SourceList "$APTDIR/etc/sources.list";
Dir::Etc::SourceParts "$APTDIR/etc/sources.list.d";
Dir::Etc::Parts "$APTDIR/etc/apt.conf.d";
Dir::Etc::PreferencesParts "$APTDIR/etc/preferences.d";
Dir::Log "$APTDIR/log";
Debug::NoLocking "true";
EOF
}

papt() { APT_CONFIG="$APTDIR/apt.conf" "$@"; }

setup() {
    if [[ -x "$SYSROOT/usr/bin/python$PYV" && -x "$QEMU" ]]; then
        log "sysroot ready: $SYSROOT"
        return
    fi
    log "qemu-user-static (this machine's architecture, unpacked, not installed)"
    mkdir -p "$SCRATCH/qemu" "$DEBS"
    (cd "$DEBS" && apt-get download qemu-user-static)
    dpkg -x "$DEBS"/qemu-user-static_*.deb "$SCRATCH/qemu"
    "$QEMU" --version | head -1

    log "Debian $SUITE arm64 userland via a private APT configuration"
    private_apt
    papt apt-get update -q
    # The dependency closure, without recommends; virtual packages (<...>) and
    # alternatives already satisfied by a real package drop out.
    # shellcheck disable=SC2086
    pkgs=$(papt apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances $PACKAGES | grep -v '^ ' | grep -v '^<' | sort -u)
    echo "$(echo "$pkgs" | wc -w) packages"
    # shellcheck disable=SC2086
    (cd "$DEBS" && papt apt-get download -q $pkgs)
    mkdir -p "$SYSROOT"
    for deb in "$DEBS"/*_arm64.deb "$DEBS"/*_all.deb; do
        [[ -e "$deb" ]] && dpkg -x "$deb" "$SYSROOT"
    done
    # Debian's merged /usr: /lib -> usr/lib etc. come from base-files' postinst, which we do not run.
    for d in bin sbin lib; do
        if [[ ! -e "$SYSROOT/$d" ]]; then ln -s "usr/$d" "$SYSROOT/$d"; fi
    done
    pi_cpuinfo
    "$SCRATCH/bin/pi-python" cortex-a72 -c 'import platform, sys; print("guest:", platform.machine(), sys.version.split()[0], platform.libc_ver())'
}

pi_cpuinfo() {
    # A Raspberry Pi 4's /proc/cpuinfo (4x Cortex-A72, r0p3). The per-model
    # wrapper swaps in the A76 one (Pi 5) when asked. qemu's -L maps
    # /proc/cpuinfo to SYSROOT/proc/cpuinfo because that file exists;
    # /proc/self/* and everything else in /proc still come from the host.
    mkdir -p "$SYSROOT/proc" "$SCRATCH/cpuinfo"
    local features_a72="fp asimd evtstrm crc32 cpuid"
    local features_a76="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
    for model in cortex-a72 cortex-a76; do
        local part=0xd08 variant=0x0 revision=3 features=$features_a72 hw="Raspberry Pi 4 Model B Rev 1.4"
        if [[ $model == cortex-a76 ]]; then
            part=0xd0b variant=0x4 revision=1 features=$features_a76 hw="Raspberry Pi 5 Model B Rev 1.0"
        fi
        {
            for i in 0 1 2 3; do
                printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
                    "$i" "$features" "$variant" "$part" "$revision"
            done
            printf 'Revision\t: c03114\nSerial\t\t: 100000000000cafe\nModel\t\t: %s\n' "$hw"
        } >"$SCRATCH/cpuinfo/$model"
    done
    cp "$SCRATCH/cpuinfo/cortex-a72" "$SYSROOT/proc/cpuinfo"
    wrappers
}

wrappers() {
    mkdir -p "$SCRATCH/bin"
    # pi-python MODEL ARGS...: the guest's python3.11 on that CPU model.
    cat >"$SCRATCH/bin/pi-python" <<EOF
#!/bin/sh
model="\$1"; shift
cp "$SCRATCH/cpuinfo/\$model" "$SYSROOT/proc/cpuinfo"
exec "$QEMU" -L "$SYSROOT" -cpu "\$model" "$SYSROOT/usr/bin/python$PYV" "\$@"
EOF
    chmod +x "$SCRATCH/bin/pi-python"
}

# ---------------------------------------------------------------- install

venv_wrapper() {
    # The venv's python is a shell script, not a symlink: the host kernel runs
    # it (for pip's subprocesses and for console-script shebangs) and it hands
    # over to qemu. `-0` makes argv[0] the venv's path, which is how Python
    # finds pyvenv.cfg and sets sys.executable to this same wrapper.
    # EDGEKIT_PI_CPU picks the model (the check sets it per run).
    [[ -n "$VENV" && -d "$VENV/bin" ]] || { echo "no venv at $VENV" >&2; exit 1; }
    rm -f "$VENV/bin/python" "$VENV/bin/python3" "$VENV/bin/python$PYV"
    cat >"$VENV/bin/python$PYV" <<EOF
#!/bin/sh
exec "$QEMU" -L "$SYSROOT" -cpu "\${EDGEKIT_PI_CPU:-cortex-a72}" -0 "$VENV/bin/python$PYV" "$SYSROOT/usr/bin/python$PYV" "\$@"
EOF
    chmod +x "$VENV/bin/python$PYV"
    ln -s "python$PYV" "$VENV/bin/python"
    ln -s "python$PYV" "$VENV/bin/python3"
}

build_wheel() {
    log "building the wheel (x86, $PYTHON)"
    rm -rf "$SCRATCH/dist" && mkdir -p "$SCRATCH/dist"
    (cd "$HERE" && "$PYTHON" -m pip wheel --no-deps --no-build-isolation -q -w "$SCRATCH/dist" .)
    ls "$SCRATCH"/dist/*.whl
}

build_bundle() {
    if [[ -n "${EDGEKIT_PI_BUNDLE:-}" ]]; then
        rm -rf "$SCRATCH/bundle" && cp -r "$EDGEKIT_PI_BUNDLE" "$SCRATCH/bundle"
        return
    fi
    if [[ -f "$SCRATCH/bundle/manifest.json" ]]; then return; fi
    log "building a cpu+gpu+edgetpu bundle on x86 (the build side, $PYTHON)"
    (cd "$HERE" && PYTHONPATH="$HERE" "$PYTHON" "$HERE/tools/make_test_bundle.py" "$SCRATCH/bundle")
}

install() {
    setup
    build_wheel
    log "venv on the guest + pip install <wheel>[runtime], resolving for aarch64 from PyPI"
    rm -rf "$VENV"
    "$SCRATCH/bin/pi-python" cortex-a72 -m venv --without-pip "$VENV"
    venv_wrapper
    local whl
    whl=$(ls "$SCRATCH"/dist/*.whl)
    # A clean environment: this machine's pip config (local wheel folders,
    # constraints) must not leak into what a Pi resolves.
    local -a clean=(env -i HOME="$SCRATCH/home" PATH="$VENV/bin:/usr/bin:/bin" PIP_CONFIG_FILE=/dev/null
        PIP_NO_CACHE_DIR=1 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt)
    mkdir -p "$SCRATCH/home"
    # pip from Debian's own wheel, run straight from the .whl: ensurepip's
    # copy2 calls listxattr, which qemu-user does not map under -L (trixie).
    local pipwhl
    pipwhl=$(ls "$SYSROOT"/usr/share/python-wheels/pip-*.whl | head -1)
    "${clean[@]}" "$VENV/bin/python" "$pipwhl/pip" install --isolated -q --no-index "$pipwhl"
    "${clean[@]}" "$VENV/bin/python" -m pip install --isolated -q --only-binary=:all: "$whl[runtime]" pytest
    "${clean[@]}" "$VENV/bin/python" -m pip list --isolated 2>/dev/null | tee "$SCRATCH/pip-list.txt"
    if "${clean[@]}" "$VENV/bin/python" -c 'import tensorflow' 2>/dev/null; then
        echo "TensorFlow got installed into the runtime venv" >&2
        exit 1
    fi
    log "installed size of [runtime] on the Pi (site-packages, pip/setuptools/pytest excluded)"
    local sp
    sp=$(ls -d "$VENV"/lib/python$PYV/site-packages)
    du -sm "$sp" | tee "$SCRATCH/size.txt"
    (cd "$sp" && du -sm --total $(ls -d * | grep -v -E '^(pip|setuptools|_pytest|pytest|pluggy|iniconfig|packaging|py\.py|_distutils_hack|distutils-precedence\.pth)' ) | tail -1 | tee -a "$SCRATCH/size.txt")
}

refresh() {
    # This checkout's edgekit into the existing venv (dependencies untouched).
    build_wheel
    env -i HOME="$SCRATCH/home" PATH="$VENV/bin:/usr/bin:/bin" PIP_CONFIG_FILE=/dev/null \
        "$VENV/bin/python" -m pip install --isolated -q --no-deps --force-reinstall "$(ls "$SCRATCH"/dist/*.whl)"
}

# ------------------------------------------------------------------- check

check() {
    if [[ -x "$VENV/bin/edgekit" ]]; then refresh; else install; fi
    build_bundle
    [[ -f "$SCRATCH/x86.jsonl" ]] || x86_reference
    mkdir -p "$OUT"
    local b="$SCRATCH/bundle" status=0
    local -a clean=(env -i HOME="$SCRATCH/home" PATH="$VENV/bin:/usr/bin:/bin" COLUMNS=200 TERM=dumb)
    for cpu in $CPUS; do
        cp "$SCRATCH/cpuinfo/$cpu" "$SYSROOT/proc/cpuinfo"
        log "$cpu"
        local -a run=("${clean[@]}" EDGEKIT_PI_CPU="$cpu")
        local cmds=(
            "doctor --bundle $b"
            "verify $b"
            "deploy $b -s $HERE/calibration/digits --jsonl $OUT/$cpu-auto.jsonl"
            "deploy $b -s $HERE/calibration/digits --device rpi4 --jsonl $OUT/$cpu-rpi4.jsonl"
            "bench $b --device rpi4 --runs 10 --warmup 1 --min-seconds 0 --warmup-seconds 0"
        )
        for c in "${cmds[@]}"; do
            echo "\$ edgekit $c"
            # shellcheck disable=SC2086
            set +e
            "${run[@]}" "$VENV/bin/edgekit" $c >"$OUT/$cpu.cmd.log" 2>&1
            local rc=$?
            set -e
            grep -E -i 'unavailable|fell back|falls back|instead|fallback|runs here|error|illegal|exit' "$OUT/$cpu.cmd.log" | head -20 || true
            tail -3 "$OUT/$cpu.cmd.log"
            echo "exit code: $rc"
            cat "$OUT/$cpu.cmd.log" >>"$OUT/$cpu.log"
            [[ $rc == 0 ]] || status=1
        done
        "${run[@]}" "$VENV/bin/python" -m edgekit --version >/dev/null 2>&1 && echo "python -m edgekit: ok" || { echo "python -m edgekit: FAILED"; status=1; }
    done
    if [[ -f "$SCRATCH/x86.jsonl" ]]; then
        log "JSONL agreement with x86"
        for cpu in $CPUS; do
            "$PYTHON" "$HERE/tools/compare_jsonl.py" "$SCRATCH/x86.jsonl" "$OUT/$cpu-auto.jsonl" || status=1
        done
    fi
    return $status
}

x86_reference() {
    log "x86 reference deploy (this machine)"
    (cd "$HERE" && PYTHONPATH="$HERE" "$PYTHON" -m edgekit deploy "$SCRATCH/bundle" -s "$HERE/calibration/digits" --jsonl "$SCRATCH/x86.jsonl" >/dev/null)
}

test_deps() {
    # The [test-device] extra's data packages (scikit-learn digits, scikit-image
    # photos), keeping the runtime's numpy as installed.
    local np
    np=$(env -i PATH="$VENV/bin:/usr/bin:/bin" "$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')
    env -i HOME="$SCRATCH/home" PATH="$VENV/bin:/usr/bin:/bin" PIP_CONFIG_FILE=/dev/null \
        "$VENV/bin/python" -m pip install --isolated -q --only-binary=:all: "pytest>=8" "scikit-learn>=1.3" "scikit-image>=0.22" "numpy==$np"
}

tests() {
    if [[ -x "$VENV/bin/edgekit" ]]; then refresh; else install; fi
    env -i PATH="$VENV/bin:/usr/bin:/bin" "$VENV/bin/python" -c 'import sklearn, skimage' 2>/dev/null || test_deps
    build_bundle
    log "device-side tests on the emulated ${EDGEKIT_PI_CPU:-cortex-a72}: pytest -m 'not build'"
    cp "$SCRATCH/cpuinfo/${EDGEKIT_PI_CPU:-cortex-a72}" "$SYSROOT/proc/cpuinfo"
    # The tests run from a copy of the repository's tests/ against the
    # INSTALLED wheel (no repository on the path), as on a Pi CI runner.
    rm -rf "$SCRATCH/tests" && cp -r "$HERE/tests" "$SCRATCH/tests" && cp "$HERE/pyproject.toml" "$SCRATCH/"
    # Emulation is ~20x slower than the host: the one test with a time bound
    # scales it. SIGINT is ignored in a background job and a child inherits
    # that; the Ctrl-C test needs Python's own handler, so it is put back.
    (cd "$SCRATCH" && env -i HOME="$SCRATCH/home" PATH="$VENV/bin:/usr/bin:/bin" EDGEKIT_PI_CPU="${EDGEKIT_PI_CPU:-cortex-a72}" \
        EDGEKIT_TEST_BUNDLE="$SCRATCH/bundle" EDGEKIT_TEST_TIME_SCALE="${EDGEKIT_TEST_TIME_SCALE:-30}" \
        "$VENV/bin/python" -c 'import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); sys.exit(pytest.main(sys.argv[1:]))' \
        -m "not build" -q -p no:cacheprovider -rfEs tests)
}

case "${1:-all}" in
    setup) setup ;;
    install) install ;;
    refresh) refresh ;;
    test-deps) test_deps ;;
    check) check ;;
    tests) tests ;;
    all)
        install
        rc=0
        check || rc=1
        tests || rc=1
        exit $rc
        ;;
    *) echo "usage: $0 [all|setup|install|check|tests]" >&2; exit 2 ;;
esac
