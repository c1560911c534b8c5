"""JUnit XML, the report format CI systems show test by test (GitLab, Jenkins, GitHub
actions that publish test results): one `<testcase>` per check, a `<failure>` saying
what was measured against what."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stats_service.offline.atomic import atomic_output


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class, despite the name

    classname: str  # "<model>.<feature>"
    name: str  # the check: quality, drift, ...
    failure: str | None = None  # None: passed
    detail: str = ""


def junit_xml(suite: str, cases: Sequence[TestCase]) -> bytes:
    failures = sum(case.failure is not None for case in cases)
    root = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures))
    element = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures), errors="0"
    )
    for case in cases:
        node = ET.SubElement(element, "testcase", classname=case.classname, name=case.name)
        if case.failure is not None:
            failure = ET.SubElement(node, "failure", message=case.failure, type="CheckFailed")
            failure.text = case.detail or case.failure
        elif case.detail:
            ET.SubElement(node, "system-out").text = case.detail
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"


def write_junit(path: Path, suite: str, cases: Sequence[TestCase]) -> None:
    with atomic_output(path) as temporary:
        temporary.write_bytes(junit_xml(suite, cases))
