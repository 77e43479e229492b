"""``python -m fnnet.bench.report``: the benchmark tables of ``docs/performance.md`` and the performance line of
``README.md``, rendered from saved ``python -m fnnet.bench --json`` runs.

Each generated block sits between marker comments that name the runs it was rendered from::

    <!-- bench:training docs/bench/run1.json docs/bench/run2.json -->
    ...generated markdown...
    <!-- /bench -->

Examples::

    python -m fnnet.bench --workload mlp --workload cnn --workload ops --json run1.json   # (a quiet machine)
    python -m fnnet.bench.report run1.json run2.json --write   # copies the runs to docs/bench/, renders
    python -m fnnet.bench.report --write                        # re-render every block from its own runs
    python -m fnnet.bench.report --check                        # exit 1 if a block differs from its runs

The runs a block names must lie under ``docs/bench/`` (``--write`` copies them there), so that the tests
can re-render every block and fail when the text and the stored numbers drift apart.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import sys

from . import render, render_distributed

BLOCKS = {**render.BLOCKS, **render_distributed.BLOCKS}

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = ("README.md", "docs/performance.md", "docs/distributed.md")
STORE = "docs/bench"
_BLOCK = re.compile(r"<!-- bench:(?P<name>[\w-]+)(?P<sources>(?: [^\s>]+)*) -->\n(?P<body>.*?)<!-- /bench -->", re.S)


def find_blocks(text):
    """``[(name, sources, body)]`` of every generated block in a markdown text."""
    return [(m["name"], m["sources"].split(), m["body"]) for m in _BLOCK.finditer(text)]


def load_runs(sources, root=ROOT):
    """``[(source, results)]`` for run paths relative to ``root``."""
    return [(s, json.loads((root / s).read_text())) for s in sources]


def render_block(name, runs):
    """The markdown body of block ``name`` (ending in a newline)."""
    if name not in BLOCKS:
        raise ValueError(f"bench report: unknown block {name!r}; known blocks: {sorted(BLOCKS)}")
    renderer, section = BLOCKS[name]
    missing = [s for s, results in runs if section not in results]
    if not runs or missing:
        raise ValueError(f"bench report: block {name!r} needs runs with a {section!r} section; "
                         f"{missing or 'no runs'} lack it (run python -m fnnet.bench with --workload {section})")
    return renderer(runs).rstrip("\n") + "\n"


def rerender(text, root=ROOT, runs=None, only=None):
    """``text`` with its blocks re-rendered: from ``runs`` (``[(source, results)]``) for the blocks whose
    section every run has, else from the runs each block names.  ``only``: block names to touch."""
    def replace(m):
        name = m["name"]
        if only and name not in only:
            return m[0]
        use = runs if runs and all(BLOCKS.get(name, (None, name))[1] in r for _, r in runs) else None
        use = use or load_runs(m["sources"].split(), root)
        return f"<!-- bench:{name} {' '.join(s for s, _ in use)} -->\n{render_block(name, use)}<!-- /bench -->"

    return _BLOCK.sub(replace, text)


def stale_blocks(root=ROOT):
    """``[(file, block name)]`` whose text differs from what its stored runs render."""
    stale = []
    for file in FILES:
        for name, sources, body in find_blocks((root / file).read_text()):
            if body != render_block(name, load_runs(sources, root)):
                stale.append((file, name))
    return stale


def store(path, root=ROOT):
    """The run's path relative to ``root`` under ``docs/bench/``, copying it there if it lies elsewhere."""
    path = pathlib.Path(path).resolve()
    target = root / STORE / path.name
    if path != target:
        if target.exists() and target.read_bytes() != path.read_bytes():
            raise FileExistsError(f"bench report: {target} exists with other contents; rename {path.name} "
                                  "(e.g. after its date) or delete the stored run first")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return f"{STORE}/{path.name}"


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fnnet.bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", help="JSON files of python -m fnnet.bench --json (default: each block's own)")
    p.add_argument("--write", action="store_true", help=f"store the runs under {STORE}/ and rewrite {', '.join(FILES)}")
    p.add_argument("--check", action="store_true", help="exit 1 if a block differs from what its runs render")
    p.add_argument("--block", action="append", choices=sorted(BLOCKS), help="only these blocks (repeatable)")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_blocks()
        for file, name in stale:
            print(f"{file}: block {name!r} differs from its runs; run python -m fnnet.bench.report --write")
        return 1 if stale else 0
    if not (args.runs or args.write):
        p.error("give the JSON runs to render (printed here), or --write / --check for the documentation's blocks")
    runs = [(store(r) if args.write else r, json.loads(pathlib.Path(r).read_text())) for r in args.runs]
    if not args.write:
        names = args.block or [n for n in sorted(BLOCKS) if all(BLOCKS[n][1] in r for _, r in runs)]
        for name in names:
            print(f"<!-- bench:{name} -->\n{render_block(name, runs)}<!-- /bench -->\n")
        return 0
    for file in FILES:
        path = ROOT / file
        text = path.read_text()
        new = rerender(text, runs=runs, only=args.block)
        if new != text:
            path.write_text(new)
            print(f"rewrote {file}: " + ", ".join(name for name, _, _ in find_blocks(new)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
