#!/usr/bin/env bash
# docs_test: the Markdown files hold together. For every *.md in the repository (build
# directories and node_modules aside):
#   1. every relative link [text](path) or [text](path#anchor) names a file or directory that
#      exists, inside the repository; an #anchor names a heading of that file (GitHub's ids);
#   2. nothing points outside the repository: no link and no ../ path in the text (code included)
#      that leaves it (../shared/..., ../../elsewhere), and every such ../ path exists;
#   3. no table appears twice, in one file or across files (each piece of the docs in one place);
#   4. README.md is a quick start: at most 200 lines.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 - "$root" <<'EOF'
import os, re, sys

root = os.path.realpath(sys.argv[1])
MAX_README_LINES = 200
fails = []
def fail(msg): fails.append(msg); print("FAIL: " + msg)

files = []
for d, dirs, names in os.walk(root):
    dirs[:] = sorted(x for x in dirs if x not in (".git", "build", "node_modules") and not x.startswith("build-"))
    files += [os.path.join(d, n) for n in sorted(names) if n.endswith(".md")]
rel = lambda p: os.path.relpath(p, root)
inside = lambda p: p == root or p.startswith(root + os.sep)

def slugs(path):
    """GitHub's heading ids: lower case, punctuation dropped, spaces to '-', -1, -2 for repeats."""
    seen, out, fence = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.lstrip().startswith("```"): fence = not fence
        m = None if fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m: continue
        s = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(s, 0); seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out

link_re = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)
updir_re = re.compile(r"(?<![\w.])((?:\.\./)+[\w.@-][\w./@-]*)")
tables = {}
links = 0
for f in files:
    text = open(f, encoding="utf-8").read()
    base = os.path.dirname(f)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)   # links in code blocks are not links
    for m in link_re.finditer(prose):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):   # https:, mailto: ...
            continue
        links += 1
        path, _, anchor = target.partition("#")
        dest = os.path.realpath(os.path.join(base, path)) if path else f
        where = f"{rel(f)}: link '{target}'"
        if path.startswith("/"):
            fail(f"{where} is absolute: link relative to the file"); continue
        if not inside(dest):
            fail(f"{where} points outside the repository"); continue
        if not os.path.exists(dest):
            fail(f"{where}: {rel(dest)} does not exist"); continue
        if anchor and dest.endswith(".md") and anchor not in slugs(dest):
            fail(f"{where}: {rel(dest)} has no heading with the id '#{anchor}'")
    for m in updir_re.finditer(text):
        dest = os.path.realpath(os.path.join(base, m.group(1)))
        if not inside(dest):
            fail(f"{rel(f)}: '{m.group(1)}' points outside the repository")
        elif not os.path.exists(dest.rstrip(".")):
            fail(f"{rel(f)}: '{m.group(1)}' names nothing in the repository")
    # tables: runs of lines that start with '|'; compared without spaces
    run = []
    for line in text.split("\n") + [""]:
        if line.lstrip().startswith("|"):
            run.append(re.sub(r"\s+", "", line))
        elif run:
            if len(run) >= 3:
                tables.setdefault("\n".join(run), []).append(rel(f))
            run = []

for body, where in tables.items():
    if len(where) > 1:
        fail(f"the same table is in {', '.join(where)} (header {body.split(chr(10))[0][:80]}): keep it in one place")

readme = os.path.join(root, "README.md")
n = sum(1 for _ in open(readme, encoding="utf-8"))
if n > MAX_README_LINES:
    fail(f"README.md has {n} lines; it is the quick start (at most {MAX_README_LINES}): move details to docs/")
if len(files) < 5 or links < 20:
    fail(f"only {len(files)} Markdown files and {links} links found: is the tree where this test thinks ({root})?")
print(f"{len(files)} Markdown files, {links} relative links, {len(tables)} tables, README.md {n} lines")
print(f"docs_test: {'passed' if not fails else str(len(fails)) + ' failure(s)'}")
sys.exit(1 if fails else 0)
EOF
