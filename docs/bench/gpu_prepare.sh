#!/usr/bin/env bash
# Prepares, on a machine with network access, what docs/bench/gpu_session.sh needs on a GPU
# machine that has none. Run it in the root of the checkout that the GPU machine receives:
#
#   bash docs/bench/gpu_prepare.sh
#
# It fills two ignored folders (both listed in .git/info/exclude; nothing tracked changes):
#   .gl/   the Vulkan loader and GL dispatch debs (amd64), unpacked into / on the GPU machine
#   .gpu/  deno.xz (the Deno binary, xz-compressed) and deno_dir.tar.xz (a DENO_DIR holding every
#          module the session's tasks and tests import, npm packages included)
# and checks their size, with the working tree's, against the 64 MiB a GPU call may carry.
# Then the GPU call is: command `bash docs/bench/gpu_session.sh`, carry [".gl", ".gpu"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DENO_VERSION=2.9.6
LIMIT=$((64 * 1024 * 1024))
exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
touch "$exclude"
for d in /.gl/ /.gpu/; do grep -qxF "$d" "$exclude" || echo "$d" >>"$exclude"; done

# 1. The Deno binary of the pinned version, from npx's cache (npm's `deno` package ships it).
npx -y "deno@$DENO_VERSION" --version >/dev/null
deno_bin=""
while IFS= read -r f; do
  if "$f" --version 2>/dev/null | head -1 | grep -q "^deno $DENO_VERSION "; then
    deno_bin="$f"
    break
  fi
done < <(find "$HOME/.npm/_npx" -type f -name deno -size +10M 2>/dev/null)
[ -n "$deno_bin" ] || { echo "gpu_prepare: no deno $DENO_VERSION binary under ~/.npm/_npx" >&2; exit 1; }
file -b "$deno_bin" | grep -q "x86-64" ||
  { echo "gpu_prepare: $deno_bin is not an x86-64 binary (the GPU machine is x86-64)" >&2; exit 1; }
mkdir -p .gpu
if [ ! -s .gpu/deno.xz ] || [ "$deno_bin" -nt .gpu/deno.xz ]; then
  echo "compressing $deno_bin" >&2
  xz -T0 -9 -c "$deno_bin" >.gpu/deno.xz.tmp && mv .gpu/deno.xz.tmp .gpu/deno.xz
fi
sha256sum "$deno_bin" | cut -d' ' -f1 >.gpu/deno.sha256

# 2. The Vulkan loader and GL dispatch libraries (the GPU image has the NVIDIA driver only).
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update >/dev/null
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

# 3. DENO_DIR with every module the session runs: the bench, the tuner, the GPU and model tests.
dd="$(mktemp -d)"
trap 'rm -rf "$dd"' EXIT
targets=(tasks/bench.ts tasks/tune.ts tests/gpu/*_test.ts tests/model/*_test.ts)
DENO_DIR="$dd" "$deno_bin" cache --unstable-webgpu --frozen "${targets[@]}" >&2
printf '%s\n' "${targets[@]}" >"$dd/targets.txt"
tar -C "$dd" -cf - . | xz -T0 -6 >.gpu/deno_dir.tar.xz

# 4. Size against the carry limit: what travels is the working tree (tracked and untracked files
# that git does not ignore) plus the carried folders.
tree=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null ||
  true) | awk '{s += $1} END {print s + 0}')
carried=$(du -sb .gl .gpu | awk '{s += $1} END {print s}')
total=$((tree + carried))
printf 'carry: .gl %s, .gpu %s; working tree %s; total %s of %s bytes\n' \
  "$(du -sb .gl | cut -f1)" "$(du -sb .gpu | cut -f1)" "$tree" "$total" "$LIMIT"
[ "$total" -lt "$LIMIT" ] || { echo "gpu_prepare: over the 64 MiB carry limit" >&2; exit 1; }
