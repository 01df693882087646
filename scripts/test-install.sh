#!/usr/bin/env bash
# The installed package as a user gets it. Installs a build directory into a
# temporary prefix and moves the prefix elsewhere (the package must not care
# where it lives), then:
#   1. builds tests/install's programs with find_package(walcut), and again
#      with plain c++ and `pkg-config --cflags --libs --static walcut`, and runs them;
#   2. checks that <walcut/version.h>, `walcut --version` and the .pc agree;
#   3. checks the man pages, the bash completion and the documents are installed;
#   4. when HEAD carries a release tag (vMAJOR.MINOR.PATCH), checks it names that version.
#   scripts/test-install.sh BUILD_DIR   (a complete build, with help2man installed)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/walcut-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test-install: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$tmp/staged/usr" >/dev/null
mv "$tmp/staged/usr" "$tmp/usr"
prefix=$tmp/usr
walcut=$prefix/bin/walcut
pc=$(find "$prefix" -name walcut.pc)
[ -n "$pc" ] || fail "no walcut.pc under $prefix"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")

echo "== installed package: find_package(walcut) from a consumer project"
cmake -S "$root/tests/install" -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
"$tmp/consumer/walcut_consumer" "$tmp/wal"
"$walcut" gen --out "$tmp/gen" --seed 1 --txs 2000 --increments 2 >/dev/null
"$tmp/consumer/walcut_restore_example" "$tmp/gen/snapshots/snp" "$tmp/restored"

echo "== installed package: the same programs built with pkg-config --static"
mkdir "$tmp/pkg-config"
for program in consumer restore_example; do
  # shellcheck disable=SC2046  # pkg-config's output is meant to be split into words
  "${CXX:-c++}" -std=c++20 "$root/tests/install/$program.cc" -o "$tmp/pkg-config/$program" \
    $(pkg-config --cflags --libs --static walcut)
done
"$tmp/pkg-config/consumer" "$tmp/wal-pkg-config"
"$tmp/pkg-config/restore_example" "$tmp/gen/snapshots/snp" "$tmp/restored-pkg-config"

echo "== installed package: version, man pages, bash completion, documents"
version=$(pkg-config --modversion walcut)
[ "$("$walcut" --version)" = "walcut $version" ] || fail "walcut --version is not walcut $version"
grep -q "^#define WALCUT_VERSION_STRING \"$version\"$" "$prefix/include/walcut/version.h" ||
  fail "include/walcut/version.h does not say $version"
[ -d "$build/man" ] || fail "$build/man: no man pages were built (is help2man installed?)"
for page in "$build"/man/*.1; do
  [ -f "$prefix/share/man/man1/$(basename "$page")" ] || fail "$(basename "$page") is not installed"
done
[ -f "$prefix/share/man/man1/walcut-snapshot-restore.1" ] || fail "walcut-snapshot-restore.1 is not installed"
completion=$prefix/share/bash-completion/completions/walcut
offered=$(PATH="$prefix/bin:$PATH" bash --norc --noprofile -c \
  'source "$0" && COMP_WORDS=(walcut snapshot "") && COMP_CWORD=2 && _walcut && echo "${COMPREPLY[*]}"' "$completion")
[ "$offered" = "info restore check" ] || fail "bash completion of 'walcut snapshot ' offered '$offered'"
for doc in LICENSE README.md CHANGELOG.md; do
  [ -f "$prefix/share/doc/walcut/$doc" ] || fail "$doc is not installed"
done

if tag=$(git -C "$root" describe --exact-match --tags --match 'v[0-9]*' HEAD 2>/dev/null); then
  [ "$tag" = "v$version" ] || fail "HEAD is tagged $tag but the project's version is $version"
  grep -q "^## \[$version\]" "$root/CHANGELOG.md" || fail "CHANGELOG.md has no section for $version"
fi
echo "installed package checked"
