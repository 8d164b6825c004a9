#!/bin/sh
# build.sh - builds the libFuzzer harnesses in tests/fuzz/ and their small
# seed corpora. Not part of the meson build: the harnesses need clang's
# -fsanitize=fuzzer, and the core sources each one uses are compiled straight
# into it with ASan + UBSan (UB aborts, so the fuzzer sees it as a crash).
#
#   tests/fuzz/build.sh [OUT]      (OUT defaults to build-fuzz/, git-ignored)
#   build-fuzz/fuzz_config build-fuzz/corpus/config -dict=tests/fuzz/json.dict
#
# See tests/fuzz/README.md. Needs clang (14+), python3, and the libraries of
# the main build (jansson, pcre2-8, utf8proc, OpenBLAS for OpenMP).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build-fuzz}
SHARED=${R1D_SHARED:-$ROOT/../shared}
CC=${CC:-clang}
case "$OUT" in /*) ;; *) OUT=$(pwd)/$OUT ;; esac
mkdir -p "$OUT"

MULTIARCH=$($CC -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLAS_DIR=/usr/lib/$MULTIARCH/openblas-openmp
CFLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Werror -I$ROOT -I/usr/include/$MULTIARCH/openblas-openmp \
  $(pkg-config --cflags jansson libpcre2-8 libutf8proc)"
LIBS="$(pkg-config --libs jansson libpcre2-8 libutf8proc) \
  -L$BLAS_DIR -Wl,-rpath,$BLAS_DIR -lopenblas -fopenmp -lm"

COMMON="common/status.c common/file.c common/utf8.c"
SRC_safetensors="engine/model/safetensors.c engine/model/dtype.c"
SRC_config="engine/model/config.c"
SRC_tokenizer="engine/text/tokenizer.c engine/text/tokenizer_load.c \
  engine/text/tokenizer_tables.c engine/text/tokenizer_unicode.c \
  engine/text/tokenizer_pretok.c engine/text/tokenizer_bpe.c"
SRC_template="engine/text/template.c engine/text/template_load.c \
  engine/text/chat_messages.c"
SRC_stop="engine/serve/stop.c"

cd "$ROOT"
for t in ${TARGETS:-safetensors config tokenizer template stop}; do
  eval "src=\$SRC_$t"
  echo "build $OUT/fuzz_$t"
  # shellcheck disable=SC2086
  $CC $CFLAGS -o "$OUT/fuzz_$t" "tests/fuzz/fuzz_$t.c" $COMMON $src $LIBS
done

# Seed corpora: a few valid inputs of each kind, from the fixtures.
python3 "$ROOT/tests/fuzz/make_seeds.py" "$ROOT" "$SHARED" "$OUT/corpus"
echo "seeds in $OUT/corpus"
