"""The docs as a tested contract: every subcommand and every built-in scenario is documented."""

from __future__ import annotations

from cachestudio.cli import build_parser
from cachestudio.engine.scenario import builtin_dir

from helpers import ROOT

README = (ROOT / "README.md").read_text()


def subcommands() -> list[str]:
    parser = build_parser()
    return sorted(parser._subparsers._group_actions[0].choices)  # noqa: SLF001


def test_every_subcommand_is_in_the_readme():
    names = subcommands()
    assert {"run", "scenarios", "check", "bench"} <= set(names)
    missing = [n for n in names if f"cachestudio {n}" not in README]
    assert missing == []


def test_every_run_option_is_in_the_readme():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    options = [o for a in run._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    missing = [o for o in options if o not in README and not o.startswith("--no-")]
    assert missing == []


def test_every_builtin_scenario_is_in_the_readme():
    missing = [p.stem for p in builtin_dir().glob("*.toml") if f"`{p.stem}`" not in README]
    assert missing == []


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
