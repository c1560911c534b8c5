"""Reading runbook links: the anchors GitHub gives prometheus/README.md's headings, and the
runbook_url of every alert in a directory of rule files (shipped or rendered)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urldefrag

import yaml

from tests.support.processes import require_binary

ROOT = Path(__file__).resolve().parents[3]
RUNBOOKS = ROOT / "prometheus" / "README.md"
RULES_DIR = ROOT / "prometheus" / "rules"
PLACEHOLDER = "${MLMON_RUNBOOK_BASE_URL}"


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for a Markdown file's headings."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def runbook_urls(rules_dir: Path) -> dict[str, str]:
    """Alert name -> its runbook_url annotation, over rules_dir/*.yml."""
    return {
        str(rule["alert"]): str(rule["annotations"]["runbook_url"])
        for path in sorted(rules_dir.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def split_runbook_url(url: str) -> tuple[str, str]:
    """(the document, the anchor) of a runbook URL."""
    document, anchor = urldefrag(url)
    assert anchor, f"{url}: no #anchor"
    return document, anchor


def assert_promtool_accepts(rules_dir: Path) -> None:
    """`promtool check rules` passes on every rule file of `rules_dir`."""
    paths = [str(path) for path in sorted(rules_dir.glob("*.yml"))]
    check = subprocess.run([require_binary("promtool"), "check", "rules", *paths],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
