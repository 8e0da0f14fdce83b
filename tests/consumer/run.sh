#!/bin/sh
# Install the built library into a scratch prefix, then build and run the
# consumer twice: once with pkg-config, once with find_package(secchat).
set -eu
build=$1 src=$2 work=$3
rm -rf "$work"; mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libsecchat.so' | head -n 1)")

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -Wall -Wextra -Werror -o "$work/consumer-pc" "$src/consumer.c" $(pkg-config --cflags --libs libsecchat)
LD_LIBRARY_PATH="$libdir" "$work/consumer-pc"

cmake -S "$src" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/cmake-build/consumer"
echo "consumer: pkg-config and find_package builds both ran"
