#!/usr/bin/env bash
# cibuildwheel before-all on macOS: put a pinned LLVM OpenMP runtime (libomp)
# for each architecture under DEST/<arch>/{include,lib}.
#
#   tools/cibw_macos_libomp.sh DEST ARCH:TARGET [ARCH:TARGET ...]
#   e.g. tools/cibw_macos_libomp.sh /tmp/fastconv-libomp x86_64:10.13 arm64:12.0
#
# Apple's clang compiles OpenMP (-Xpreprocessor -fopenmp) but ships no
# runtime. delocate copies the libomp.dylib the extensions link against into
# the wheel, so that library must run on every macOS the wheel claims: the
# one used here is conda-forge's llvm-openmp 11.1.0, an exact build per
# architecture (the package files are immutable), built for macOS 10.9
# (x86_64) and 11.0 (arm64). For each ARCH:TARGET this script checks that the
# library's minimum macOS (LC_BUILD_VERSION / LC_VERSION_MIN_MACOSX) is not
# above TARGET, the MACOSX_DEPLOYMENT_TARGET that [tool.cibuildwheel]'s
# overrides in pyproject.toml set for that architecture (keep the two in
# step). It prints each download's SHA-256 for the build log.
# Written for macOS's bash 3.2 (no associative arrays).
set -euo pipefail

[ "$#" -ge 2 ] || { echo "usage: $0 DEST ARCH:TARGET [ARCH:TARGET ...]" >&2; exit 2; }
DEST=$1
shift
LIBOMP_VERSION=11.1.0
BASE=https://anaconda.org/conda-forge/llvm-openmp/$LIBOMP_VERSION/download

package_for() {  # the conda-forge file for one architecture
    case $1 in
        x86_64) echo "osx-64/llvm-openmp-$LIBOMP_VERSION-hda6cdc1_1.tar.bz2" ;;
        arm64) echo "osx-arm64/llvm-openmp-$LIBOMP_VERSION-hf3c4609_1.tar.bz2" ;;
        *) echo "cibw_macos_libomp: no libomp pinned for architecture '$1'" >&2; return 1 ;;
    esac
}

version_le() {  # version_le A B: A <= B for dotted versions such as 10.9 and 10.13
    local a1 a2 b1 b2
    IFS=. read -r a1 a2 _ <<< "$1.0.0"
    IFS=. read -r b1 b2 _ <<< "$2.0.0"
    [ "$a1" -lt "$b1" ] || { [ "$a1" -eq "$b1" ] && [ "${a2:-0}" -le "${b2:-0}" ]; }
}

min_macos() {  # the minimum macOS a Mach-O file was built for
    otool -l "$1" | awk '
        /LC_BUILD_VERSION/ { build = 1 }
        /LC_VERSION_MIN_MACOSX/ { legacy = 1 }
        build && $1 == "minos" { print $2; exit }
        legacy && $1 == "version" { print $2; exit }'
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-libomp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

for pair in "$@"; do
    arch=${pair%%:*}
    target=${pair#*:}
    if [ -z "$arch" ] || [ -z "$target" ] || [ "$arch" = "$pair" ]; then
        echo "cibw_macos_libomp: expected ARCH:TARGET, got '$pair'" >&2
        exit 2
    fi
    file=$(package_for "$arch")
    echo "cibw_macos_libomp: $arch <- $BASE/$file"
    curl --fail --silent --show-error --location --retry 3 -o "$WORK/$arch.tar.bz2" "$BASE/$file"
    shasum -a 256 "$WORK/$arch.tar.bz2"
    rm -rf "${DEST:?}/$arch"
    mkdir -p "$DEST/$arch"
    tar -xjf "$WORK/$arch.tar.bz2" -C "$DEST/$arch" include lib
    lib=$DEST/$arch/lib/libomp.dylib
    if [ ! -f "$DEST/$arch/include/omp.h" ] || [ ! -f "$lib" ]; then
        echo "cibw_macos_libomp: $file has no include/omp.h or lib/libomp.dylib" >&2
        exit 1
    fi
    lipo -info "$lib"
    lipo "$lib" -verify_arch "$arch" || { echo "cibw_macos_libomp: $lib is not $arch" >&2; exit 1; }
    minos=$(min_macos "$lib")
    [ -n "$minos" ] || { echo "cibw_macos_libomp: cannot read the minimum macOS of $lib" >&2; exit 1; }
    version_le "$minos" "$target" \
        || { echo "cibw_macos_libomp: $lib needs macOS $minos > MACOSX_DEPLOYMENT_TARGET $target" >&2; exit 1; }
    echo "cibw_macos_libomp: $arch libomp $LIBOMP_VERSION needs macOS $minos <= deployment target $target: ok"
done
