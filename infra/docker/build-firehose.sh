#!/bin/sh
# Builds `arroba` for the image's platform with the build machine's own compiler: an arm64 image
# from an x86_64 machine (or the reverse) cross-compiles instead of running rustc under emulation,
# which would take an hour. Run in the Dockerfile's build stage, or by hand from the repository root:
#   infra/docker/build-firehose.sh TARGETARCH OUT    (TARGETARCH as Docker names it: amd64, arm64)
# A foreign target links with Debian's cross gcc, installed here when it is missing.
set -eu
case "${1:-}" in
  amd64) cpu=x86_64 debian_arch=amd64 ;;
  arm64) cpu=aarch64 debian_arch=arm64 ;;
  *) echo "unsupported platform: '${1:-}' (amd64 or arm64)" >&2; exit 1 ;;
esac
out="${2:?the output path}"
target="$cpu-unknown-linux-gnu"
if [ "$(uname -m)" != "$cpu" ]; then
  gcc="$cpu-linux-gnu-gcc"
  if ! command -v "$gcc" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y --no-install-recommends "gcc-$(echo "$cpu" | tr _ -)-linux-gnu" \
      "libc6-dev-$debian_arch-cross"
  fi
  # Cargo links with the cross gcc; the cc crate (aws-lc-sys, ring) compiles C with it.
  export "CARGO_TARGET_$(echo "$target" | tr a-z- A-Z_)_LINKER=$gcc"
  export "CC_$(echo "$target" | tr - _)=$gcc"
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
fi
cargo build --release --locked --bin arroba --target "$target"
mkdir -p "$(dirname "$out")"
cp "target/$target/release/arroba" "$out"
