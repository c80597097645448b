"""The README matches the project: its subcommand table is the CLI's, its
Contents links every section, its Layout names every doc and committed
report, its Requirements name what the project installs, and the program
names itself in messages the way it was started."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench import cli, progname
from bench.studies import compare
from bench.targets import KINDS
from tests.paths import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The README's text under ``heading`` (a ``## `` or ``### `` line) up to
    the next heading of that level or a higher one."""
    level = len(heading.split(" ", 1)[0])
    start = README.index(f"\n{heading}\n")
    after = re.compile(rf"^#{{1,{level}}} ", re.M).search(README, start + len(heading) + 2)
    return README[start : after.start() if after else len(README)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_subcommand_table_is_the_command_lines() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \|", section("### Every subcommand"), re.M)
    assert rows == list(cli.SUBCOMMANDS)


def test_the_compare_help_names_its_default_targets() -> None:
    text = cli.SUBCOMMANDS["compare"].help
    assert [t for t in compare.DEFAULT_TARGETS if t != "embedded" and t not in text] == []


def test_contents_links_every_section_and_every_link_has_its_section() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    links = re.findall(r"\]\(#([^)]+)\)", section("## Contents"))
    wanted = [slug(h) for h in headings if h != "Contents"]
    assert links == wanted


def test_the_layout_names_every_doc_and_every_committed_report() -> None:
    layout = section("## Layout")
    docs = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert [d for d in docs if d not in layout] == []
    tracked = subprocess.run(
        ["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    tops = sorted({path.split("/")[1] for path in tracked})
    assert tops, "no committed reports"
    assert [t for t in tops if t not in layout] == []


def test_the_requirements_name_the_python_version_and_every_package_installed() -> None:
    text = section("## Requirements")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and "Python ≥ 3.11" in text and "Linux" in text
    ci = (REPO / ".ci" / "run").read_text()
    packages = [p for line in re.findall(r"apt-get install -y -qq ([^>)]+)", ci) for p in line.split()]
    peers = {p.debian or p.pypi for kind in KINDS for p in kind.needs}
    assert packages and peers
    assert [p for p in [*packages, *sorted(str(p) for p in peers)] if f"`{p}`" not in text] == []
    assert "make test" in text and "minutes" in text


def test_the_program_names_itself_as_started() -> None:
    assert progname.invoked_as("/x/.venv/bin/chat-bench") == "chat-bench"
    assert progname.invoked_as("/x/bench/__main__.py") == "python -m bench"
    assert progname.invoked_as("/usr/bin/pytest") == "python -m bench"


@pytest.mark.parametrize("how", ["script", "module"])
def test_a_usage_error_names_the_command_that_was_typed(how: str) -> None:
    script = Path(sys.executable).with_name("chat-bench")
    if how == "script" and not script.exists():
        pytest.skip("chat-bench is not installed in this environment (make install)")
    argv = [str(script)] if how == "script" else [sys.executable, "-m", "bench"]
    done = subprocess.run([*argv, "sweep", "--clients", "1"], capture_output=True, text=True, timeout=60, cwd=REPO)
    name = "chat-bench" if how == "script" else "python -m bench"
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"{name} sweep: error:"), done.stderr
    assert f"(see `{name} sweep --help`)" in done.stderr
    if how == "script":
        assert "python -m bench" not in done.stderr
