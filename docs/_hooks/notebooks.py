"""MkDocs hook: publish the top-level ``notebooks/*.ipynb`` as site pages, without copying them into ``docs/``.

``on_config`` fills the nav section titled "Notebooks" with every notebook found (so a new notebook appears
in the nav without editing ``mkdocs.yml``; the section is dropped when there is none), and ``on_files``
adds the notebooks to the site's files before mkdocs-jupyter turns ``.ipynb`` files into pages.
"""

from __future__ import annotations

import json
import pathlib

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

NAV_SECTION = "Notebooks"
FOLDER = "notebooks"


def _root(config) -> pathlib.Path:
    return pathlib.Path(config.config_file_path).resolve().parent


FIRST = "quickstart.ipynb"  # listed first; the others follow by file name


def _notebooks(config) -> list[pathlib.Path]:
    return sorted((_root(config) / FOLDER).glob("*.ipynb"), key=lambda p: (p.name != FIRST, p.name))


def _title(path: pathlib.Path) -> str:
    """The notebook's first Markdown heading, else its file name."""
    for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem.replace("_", " ").replace("-", " ").capitalize()


def on_config(config):
    config.watch.append(str(_root(config) / FOLDER))
    entries = [{_title(p): f"{FOLDER}/{p.name}"} for p in _notebooks(config)]
    nav = []
    for item in config.nav or []:
        if isinstance(item, dict) and NAV_SECTION in item:
            if entries:
                nav.append({NAV_SECTION: entries})
        else:
            nav.append(item)
    config.nav = nav
    return config


@event_priority(100)  # before mkdocs-jupyter (default priority) wraps the .ipynb files as pages
def on_files(files, config):
    root = str(_root(config))
    for path in _notebooks(config):
        files.append(File(f"{FOLDER}/{path.name}", src_dir=root, dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files
