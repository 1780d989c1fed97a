"""The docs as a tested contract: the README is a tour of at most 250 lines that names every
built-in lesson; docs/cli.md names every subcommand and every option of the real parser;
every relative link of the README, CONTRIBUTING.md and docs/ reaches an existing file (and
heading). Each failure names what is missing, and where."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from helpers import ROOT

from cachestudio.cliargs import build_parser
from cachestudio.engine.scenario import builtin_dir

README = ROOT / "README.md"
CLI_MD = ROOT / "docs" / "cli.md"
#: The reference pages the README links to (the tour's last section).
REFERENCE = ["docs/cli.md", "docs/window.md", "docs/architecture.md", "docs/design.md", "CONTRIBUTING.md"]
README_MAX_LINES = 250


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (argparse offers no public way to list them)."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def documented_options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string a user can type, but --help and options hidden from --help."""
    return [
        o
        for a in parser._actions  # noqa: SLF001
        if a.help != argparse.SUPPRESS
        for o in a.option_strings
        if o.startswith("--") and o != "--help"
    ]


# ---------------------------------------------------------------------------- the command line


def test_every_subcommand_is_in_cli_md():
    names = sorted(subparsers(build_parser()))
    assert {"run", "scenarios", "check", "bench", "replay", "report", "docs", "screenshot", "self-check"} <= set(names)
    text = read(CLI_MD)
    missing = [n for n in names if f"cachestudio {n}" not in text]
    assert missing == [], f"docs/cli.md does not name these subcommands: {', '.join(missing)}"


def test_every_option_of_every_subcommand_is_in_cli_md():
    """A new flag fails here, naming its subcommand, until docs/cli.md names it."""
    parser = build_parser()
    text = read(CLI_MD)
    spelled = set(re.findall(r"--[a-z0-9][a-z0-9-]*", text))
    missing = [f"cachestudio {o}" for o in documented_options(parser) if o not in spelled]
    for name, sub in sorted(subparsers(parser).items()):
        missing += [f"cachestudio {name} {o}" for o in documented_options(sub) if o not in spelled]
    assert missing == [], f"options not in docs/cli.md: {', '.join(missing)}"


def test_the_option_check_sees_every_flag_and_hides_only_hidden_ones():
    """The test above is only as good as its list: it sees the fault flags, the knob flags
    and both spellings of a yes/no flag, and leaves out only what --help hides."""
    subs = subparsers(build_parser())
    run = documented_options(subs["run"])
    assert {"--crash-at", "--outage", "--rate", "--coalesce", "--no-coalesce", "--lane"} <= set(run)
    assert "--pictures-only" not in documented_options(subs["docs"])  # the child process's own
    assert "--out" in documented_options(subs["docs"])


def default_rows(text: str) -> list[tuple[str, str]]:
    """(option, default) from the rows of cli.md's tables headed ``| option | default |``."""
    rows, in_table = [], False
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))] if line.startswith("|") else None
        if cells is None:
            in_table = False
        elif cells[:2] == ["option", "default"]:
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            option = re.match(r"`(--[a-z0-9-]+)", cells[0])
            rows.append((option.group(1) if option else cells[0], cells[1].strip("`")))
    return rows


def same_default(written: str, default) -> bool:
    if isinstance(default, bool):
        return written == ("on" if default else "off")
    if default in (None, "", []):
        return written == "none"
    if isinstance(default, (int, float)):
        try:
            return float(written.replace(",", "")) == float(default)
        except ValueError:
            return False
    return written == str(default)


def test_the_defaults_in_cli_md_are_the_parsers():
    """The knob tables of docs/cli.md give each option's default: the parser's, or this fails
    naming the option and both values."""
    run = subparsers(build_parser())["run"]
    by_option = {o: a for a in run._actions for o in a.option_strings}  # noqa: SLF001
    rows = default_rows(read(CLI_MD))
    assert len(rows) > 30 and ("--rate", "0") in rows
    wrong = [
        f"{option}: cli.md says {written!r}, the parser {by_option[option].default!r}"
        for option, written in rows
        if option in by_option and not same_default(written, by_option[option].default)
    ]
    unknown = [option for option, _ in rows if option not in by_option]
    assert wrong == [] and unknown == [], f"docs/cli.md's defaults: {wrong}; not options of run: {unknown}"


def test_every_module_is_in_architecture_md():
    """docs/architecture.md names every module of the package (as `name.py`, with or without
    its folder), so a new or moved module's job is written down where the layers are."""
    text = read(ROOT / "docs" / "architecture.md")
    modules = sorted(
        p for p in (ROOT / "cachestudio").rglob("*.py") if p.name != "__init__.py" and "resources" not in p.parts
    )
    assert len(modules) > 40
    missing = [
        str(p.relative_to(ROOT)) for p in modules if not re.search(r"`(?:[\w/]*/)?" + re.escape(p.name) + "`", text)
    ]
    assert missing == [], f"modules not in docs/architecture.md: {', '.join(missing)}"


# ---------------------------------------------------------------------------- the README


def test_the_readme_is_a_tour_of_at_most_250_lines():
    lines = read(README).splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move reference to docs/"
    )


def test_every_builtin_scenario_is_in_the_readme():
    text = read(README)
    missing = [p.stem for p in sorted(builtin_dir().glob("*.toml")) if f"`{p.stem}`" not in text]
    assert missing == [], f"lessons not in README.md's table: {', '.join(missing)}: run `make docs`"


def test_the_readme_links_to_the_reference():
    text = read(README)
    missing = [page for page in REFERENCE if f"]({page})" not in text]
    assert missing == [], f"README.md does not link to {', '.join(missing)}"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    text = read(README)
    assert "make run" in text and "make test" in text
    assert "make test" in read(ROOT / ".ci" / "run")


# ---------------------------------------------------------------------------- links


def doc_files() -> list[Path]:
    files = [README, ROOT / "CONTRIBUTING.md", ROOT / "packaging" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "docs" / "lessons").glob("*.md"))
    return [f for f in files if f.is_file()]


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code."""
    text = re.sub(r"(?ms)^(```|~~~).*?^\1[^\n]*$", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in re.sub(r"(?ms)^(```|~~~).*?^\1[^\n]*$", "", read(path)).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    body = prose(text)
    found = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body)
    found += re.findall(r"<img\s[^>]*src=\"([^\"]+)\"", body)
    return [u for u in found if not re.match(r"[a-z][a-z0-9+.-]*:", u)]  # http:, https:, mailto: …


def test_the_link_check_finds_links_and_anchors():
    text = '[a](b.md#c) `[x](no.md)` ![p](d.png "t") <img src="e.png" width="3"> [w](https://x.y)'
    assert links(text) == ["b.md#c", "d.png", "e.png"]
    assert slug("The summary (`--json`)") == "the-summary---json"
    assert (
        slug("Recordings: `cachestudio replay` and `cachestudio report`")
        == "recordings-cachestudio-replay-and-cachestudio-report"
    )


def test_every_relative_link_of_the_docs_reaches_a_file_and_its_heading():
    broken = []
    for path in doc_files():
        for target in links(read(path)):
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where} no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert broken == [], "broken links:\n" + "\n".join(broken)
