"""What the commands write by default is ignored by git, so ``git status``
stays clean after the README's commands; the committed examples stay tracked."""

from __future__ import annotations

import itertools
import shlex
import subprocess

import pytest

from bench import cli
from bench.studies import capacity, sweep
from tests.paths import REPO

README = REPO / "README.md"
#: A timestamp as ``bench.results.store.new_report_dir`` writes it.
STAMP = "20260101-000000"
#: The suffixes of timestamped directories: sweep/run, capacity, cluster-scaling.
SUFFIXES = ("", "-capacity", "-cluster", "-2")


def git_ignored(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, timeout=30, check=False)
    assert done.returncode in (0, 1), f"git check-ignore failed on {path}"
    return done.returncode == 0


def default_outputs() -> list[str]:
    """A file in every place a subcommand writes to with its defaults."""
    paths = []
    for name, parser in cli.build_parser().subcommands.items():
        defaults = {action.dest: action.default for action in parser._actions}
        root = defaults.get("reports_root")
        if root:
            paths += [f"{root}/{STAMP}{suffix}/report.md" for suffix in SUFFIXES]
            paths += [f"{root}/{link}" for link in (sweep.LATEST, capacity.LATEST_CAPACITY)]
            paths += [f"{root}/{link}.txt" for link in (sweep.LATEST, capacity.LATEST_CAPACITY)]
            paths.append(f"{root}/.{sweep.LATEST}.tmp1234")
        if defaults.get("baselines_root"):
            paths.append(f"{defaults['baselines_root']}/before/queued/index.json")
        if name == "selftest":
            paths.append(f"{defaults['out']}/selftest.json")
    return sorted(set(paths))


def readme_locust_outputs() -> list[str]:
    """Every file the README's Locust commands write (``--csv PREFIX``, ``--html FILE``)."""
    paths = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("locust "):
            words = shlex.split(line.split("#", 1)[0])
            for option, value in itertools.pairwise(words):
                if option == "--csv":
                    paths += [f"{value}_stats.csv", f"{value}_fanout_hdr.json"]
                elif option == "--html":
                    paths.append(value)
    assert paths, "the README has no Locust command writing files"
    return paths


@pytest.mark.parametrize("path", default_outputs() + readme_locust_outputs())
def test_what_the_commands_write_by_default_is_ignored(path: str) -> None:
    assert git_ignored(path), f"{path} would show in `git status`: add its directory to .gitignore"


def test_the_committed_examples_stay_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert tracked, "no committed example reports"
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(tracked), capture_output=True,
        text=True, timeout=30, check=False,
    ).stdout.split()  # fmt: skip
    assert ignored == [], f"committed files that the ignore rules would hide: {ignored}"
