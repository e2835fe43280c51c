#!/usr/bin/env python3
"""Replaces the README's table of config fields with `bitnet-train fields --markdown`
(the test ConfigTests.readmeTableEqualsTheFields fails until this is run after a change)."""
import pathlib
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parent.parent
binary = root / ".build" / "release" / "bitnet-train"
table = subprocess.run([str(binary), "fields", "--markdown"], capture_output=True, text=True, check=True).stdout
readme = root / "README.md"
text = readme.read_text()
begin = "<!-- fields: begin (bitnet-train fields --markdown) -->\n"
end = "<!-- fields: end -->"
start, stop = text.index(begin) + len(begin), text.index(end)
readme.write_text(text[:start] + table + text[stop:])
print(f"README.md: {table.count(chr(10)) - 2} fields", file=sys.stderr)
