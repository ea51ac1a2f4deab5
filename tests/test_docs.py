"""The generated docs (man pages, completions, README command table) match the command tree, and every
command is documented, listed in the README and machine-readable with --json."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from nsl.cli import docs
from nsl.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REGENERATE = "python -m nsl.cli.docs"

# Commands that print nothing at all and so need no --json. Keep this empty unless that is really so.
PRINT_NOTHING: set[str] = set()


def all_commands():
    return [(" ".join(path), cmd) for path, cmd, _ in docs.iter_commands()]


COMMANDS = all_commands()
NAMES = [name for name, _ in COMMANDS]


# ---- (a) generated files are up to date --------------------------------------------------------

def test_generator_is_deterministic():
    assert docs.man_pages() == docs.man_pages()
    assert docs.completions() == docs.completions()
    for text in docs.man_pages().values():
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "man pages must not carry a date"


@pytest.mark.parametrize("name", sorted(docs.man_pages()))
def test_man_page_is_up_to_date(name):
    path = ROOT / "man" / name
    assert path.exists(), f"man/{name} is missing: run `{REGENERATE}`"
    assert path.read_text(encoding="utf-8") == docs.man_pages()[name], (
        f"man/{name} is out of date: run `{REGENERATE}` and commit the result")


def test_no_stale_man_pages():
    expected = set(docs.man_pages())
    extra = sorted(p.name for p in (ROOT / "man").glob("*.1") if p.name not in expected)
    assert not extra, f"man pages for commands that no longer exist: {extra}; run `{REGENERATE}`"


def test_man_pages_cover_every_command():
    assert set(docs.man_pages()) == {"nsl.1"} | {f"nsl-{n.replace(' ', '-')}.1" for n in NAMES}


@pytest.mark.parametrize("shell,fname", sorted(docs.COMPLETION_FILES.items()))
def test_completion_is_up_to_date(shell, fname):
    path = ROOT / "completions" / fname
    assert path.exists(), f"completions/{fname} is missing: run `{REGENERATE}`"
    have = path.read_text(encoding="utf-8")
    made_with = docs.recorded_click_version(have)
    assert made_with, f"completions/{fname} does not say which click wrote it: run `{REGENERATE}`"
    if made_with != docs.click_version():
        # The script is click's own and changes between click releases; nsl's part cannot be stale.
        pytest.skip(f"completions/{fname} was generated with click {made_with}, click "
                    f"{docs.click_version()} is installed; run `{REGENERATE}` to update it")
    assert have == docs.completion_file(shell), (
        f"completions/{fname} differs from `_NSL_COMPLETE={shell}_source nsl`: run `{REGENERATE}` "
        "and commit the result")


@pytest.mark.parametrize("shell", sorted(docs.COMPLETION_FILES))
def test_completion_matches_click_env_mechanism(shell):
    """The generator writes what `_NSL_COMPLETE={shell}_source nsl` prints, plus a comment."""
    res = CliRunner().invoke(cli, [], prog_name="nsl", env={"_NSL_COMPLETE": f"{shell}_source"})
    assert res.exit_code == 0, res.output
    assert res.output.rstrip("\n") == docs.completion_script(shell).rstrip("\n")
    body = docs.completion_file(shell)
    for line in res.output.splitlines():
        assert line in body.splitlines()


def test_readme_command_table_is_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert docs.TABLE_BEGIN in text and docs.TABLE_END in text, "README lost its command table markers"
    assert docs.readme_with_table(text) == text, (
        f"the command table in README.md is out of date: run `{REGENERATE}`")


def test_check_mode_reports_nothing_stale():
    stale = docs.stale_files(ROOT, other_click_ok=True)
    assert not stale, (f"out of date: {[str(p.relative_to(ROOT)) for p in stale]}; run `{REGENERATE}`")


def test_regenerate_is_idempotent(tmp_path):
    """Regenerating into a copy writes what is committed, and a second run writes nothing."""
    for sub in ("man", "completions"):
        (tmp_path / sub).mkdir()
        for p in (ROOT / sub).iterdir():
            (tmp_path / sub / p.name).write_bytes(p.read_bytes())
    (tmp_path / "README.md").write_bytes(README.read_bytes())
    changed = docs.write_all(tmp_path)
    assert all(p.parent.name == "completions" for p in changed), (
        f"out of date: {[str(p.relative_to(tmp_path)) for p in changed]}; run `{REGENERATE}`")
    assert docs.write_all(tmp_path) == []
    assert not docs.stale_files(tmp_path)


# ---- (b) every command is documented -----------------------------------------------------------

@pytest.mark.parametrize("name,cmd", COMMANDS, ids=NAMES)
def test_command_has_help(name, cmd):
    assert cmd.help and cmd.help.strip(), f"`nsl {name}` has no help text (give it a docstring)"
    short = cmd.get_short_help_str()
    assert short.strip(), f"`nsl {name}` has no short help"
    assert docs.short_help(cmd).endswith((".", ")")), f"`nsl {name}`: end the first sentence with a period"


@pytest.mark.parametrize("args", [[]] + [n.split() for n in NAMES], ids=["nsl"] + NAMES)
def test_help_exits_zero(args):
    for flag in ("--help", "-h"):
        res = CliRunner().invoke(cli, args + [flag], prog_name="nsl")
        assert res.exit_code == 0, f"`nsl {' '.join(args + [flag])}` exited {res.exit_code}: {res.output}"
        assert "Usage: nsl" in res.output


def test_every_option_has_help():
    missing = []
    for name, cmd in COMMANDS:
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip():
                missing.append(f"nsl {name} {p.opts[0]}")
    assert not missing, f"options without help text: {missing}"


# ---- (c) every command is in the README's command table ----------------------------------------

def _readme_table_commands() -> set[str]:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(docs.TABLE_BEGIN), text.index(docs.TABLE_END)
    found = set()
    for line in text[start:end].splitlines():
        m = re.match(r"\|\s*`nsl ([a-z][a-z0-9-]*(?: [a-z][a-z0-9-]*)*)", line)
        if m:
            found.add(m.group(1))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_command_in_readme_table(name):
    listed = _readme_table_commands()
    assert any(entry == name or entry.startswith(name + " ") for entry in listed), (
        f"`nsl {name}` is missing from README's command table: run `{REGENERATE}`")


# ---- (d) every command that prints accepts --json ----------------------------------------------

@pytest.mark.parametrize("name,cmd", COMMANDS, ids=NAMES)
def test_command_accepts_json(name, cmd):
    if name in PRINT_NOTHING:
        pytest.skip(f"`nsl {name}` prints nothing")
    opts = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
    assert "--json" in opts, f"`nsl {name}` prints output but has no --json option"


def test_print_nothing_exceptions_are_real_commands():
    assert PRINT_NOTHING <= set(NAMES)


# ---- README and CI agree -----------------------------------------------------------------------

def _readme_opening_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert m, "README must open with a code block"
    assert text.index(m.group(0)) < text.index("\n## "), "the code block must come before any section"
    return [ln for ln in m.group(1).splitlines() if ln.strip()]


def test_readme_opens_with_two_commands():
    lines = _readme_opening_commands()
    assert len(lines) == 2, lines
    demo, tests = lines
    assert "pip install ." in demo and "nsl demo" in demo
    assert tests == "pip install -e '.[test]' && python -m pytest -q"
    shlex.split(demo)  # well-formed shell quoting


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tests = _readme_opening_commands()[1]
    assert tests in ci, f".ci/run must run exactly the README's test command: {tests}"
    assert "set -euo pipefail" in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"


def test_readme_docs_exist_for_storage():
    assert (ROOT / "docs" / "storage.md").exists()
