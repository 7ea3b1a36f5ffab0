"""Prints the README Quickstart's command lines: `main` (the first) or `test` (the second)."""
import pathlib
import re
import sys

readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
section = readme.split("## Quickstart", 1)[1]
block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
lines = [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
if len(lines) != 2:
    sys.exit(f"the Quickstart must hold exactly two command lines, found {len(lines)}")
print(lines[{"main": 0, "test": 1}[sys.argv[1]]])
