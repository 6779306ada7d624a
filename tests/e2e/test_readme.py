"""The README's worked examples, run as written against `phigate serve --demo` (the
README's first command) on a fresh data directory, so the answers it shows are what
phigate answers; and every relative link in the README and docs/ resolves.

An example is a ```sh block of the "Worked examples" section. All of them run, in order,
in one bash script, from a directory holding `.venv/bin/phigate` as the README's reader
has. A comment line that starts with `{`, `[` or a number, right after a command, is
that command's answer: everything the commands printed since the previous answer must
match it, where `"…"` matches any value, a string ending in `…` matches by prefix, a
bare `…` in a list or object stands for more items or keys, and nothing else may
differ."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.test_serve import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
MARKER = "@@readme-answer@@"
MORE = "\x00more"


def worked_examples(readme: str) -> list[str]:
    section = readme.split("\n## Worked examples\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def answer_lines(lines: list[str], start: int) -> tuple[str, int]:
    """The answer beginning at lines[start] (one comment line, or several that join into
    one JSON value), and the index after it."""
    text = ""
    for index in range(start, len(lines)):
        if not lines[index].startswith("# "):
            break
        text += lines[index][2:]
        try:
            parse_expected(text)
            return text, index + 1
        except ValueError:
            continue
    raise AssertionError(f"README answer does not parse: {text!r}")


def is_answer(line: str) -> bool:
    return bool(re.match(r"# [\[{0-9]", line))


def script_and_answers(blocks: list[str]) -> tuple[str, list[str]]:
    out: list[str] = ["set -eo pipefail"]
    answers: list[str] = []
    for block in blocks:
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            if is_answer(lines[index]):
                answer, index = answer_lines(lines, index)
                answers.append(answer)
                out.append(f"printf '\\n{MARKER}\\n'")
                continue
            out.append(lines[index])
            index += 1
    return "\n".join(out) + "\n", answers


def parse_expected(text: str) -> Any:
    """JSON in which a bare … (outside strings) means 'and more' in a list or object."""
    result: list[str] = []
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            result.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}":
            stack.pop()
        elif char == "…":
            result.append(json.dumps(MORE) + (": null" if stack and stack[-1] == "{" else ""))
            continue
        result.append(char)
    try:
        return json.loads("".join(result))
    except json.JSONDecodeError as error:
        raise ValueError(str(error)) from None


def mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where actual differs from expected, or None."""
    if expected == "…":
        return None
    if isinstance(expected, str) and expected.endswith("…"):
        ok = isinstance(actual, str) and actual.startswith(expected[:-1])
        return None if ok else f"{path}: {actual!r} does not start with {expected[:-1]!r}"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {type(actual).__name__}"
        more = MORE in expected
        keys = [key for key in expected if key != MORE]
        missing = [key for key in keys if key not in actual]
        if missing:
            return f"{path}: missing {missing}"
        extra = sorted(set(actual) - set(keys))
        if extra and not more:
            return f"{path}: not in the README: {extra}"
        for key in keys:
            if problem := mismatch(expected[key], actual[key], f"{path}.{key}"):
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{path}: expected a list, got {type(actual).__name__}"
        more = MORE in expected
        items = [item for item in expected if item != MORE]
        if not more:
            if len(items) != len(actual):
                return f"{path}: {len(actual)} items, the README shows {len(items)}"
            for number, (want, got) in enumerate(zip(items, actual, strict=True)):
                if problem := mismatch(want, got, f"{path}[{number}]"):
                    return problem
            return None
        # With …: the items shown appear in this order, others may come between.
        position = 0
        for want in items:
            while position < len(actual) and mismatch(want, actual[position]) is not None:
                position += 1
            if position == len(actual):
                return f"{path}: no item matches {json.dumps(want)[:200]}"
            position += 1
        return None
    if expected != actual:
        return f"{path}: {actual!r} where the README shows {expected!r}"
    return None


def test_the_answer_matcher_is_strict() -> None:
    expected = parse_expected('{"a": "x…", "b": [1, …], "c": {"d": "…", …}}')
    assert mismatch(expected, {"a": "xyz", "b": [0, 1, 2], "c": {"d": 5, "e": 6}}) is None
    assert mismatch(expected, {"a": "y", "b": [1], "c": {"d": 1}})
    assert mismatch(expected, {"a": "x", "b": [2], "c": {"d": 1}})
    assert mismatch(expected, {"a": "x", "b": [1], "c": {"d": 1}, "z": 1})
    assert mismatch(parse_expected("[1, 2]"), [1, 2, 3])
    assert mismatch(parse_expected("204"), 200)


def test_the_readme_worked_examples_answer_as_shown(tmp_path: Path) -> None:
    script, answers = script_and_answers(worked_examples((ROOT / "README.md").read_text()))
    assert len(answers) >= 10, "the worked examples lost their answers"
    # The reader's directory: a venv with phigate in it, and the demo's data.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "phigate").symlink_to(Path(sys.executable).parent / "phigate")
    port = free_port()
    env = {**os.environ, "PHIGATE_DATA_DIR": str(tmp_path / "var" / "pgdata")}
    for name in ("DATABASE_URL", "PHIGATE_MIGRATION_DATABASE_URL"):
        env.pop(name, None)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [".venv/bin/phigate", "serve", "--demo", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        script = script.replace("B=http://127.0.0.1:8000", f"B={base}", 1)
        assert f"B={base}" in script, "the examples no longer set B"
        run = subprocess.run(
            ["bash", "-c", script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
        log.close()
    assert run.returncode == 0, f"the examples failed: {run.stderr[-2000:]}"
    printed = run.stdout.split(f"\n{MARKER}\n")
    assert len(printed) == len(answers) + 1, run.stdout[-2000:]
    for number, (answer, output) in enumerate(zip(answers, printed, strict=False), start=1):
        output = output.strip()
        try:
            actual: Any = json.loads(output)
        except json.JSONDecodeError:
            actual = output
        problem = mismatch(parse_expected(answer), actual)
        assert problem is None, f"README answer {number} ({answer[:80]}…): {problem}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_in_the_readme_and_docs_resolves() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target}")
                continue
            if anchor and resolved.suffix == ".md":
                headings = re.findall(r"(?m)^#+ (.+)$", resolved.read_text())
                slugs = {
                    re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")
                    for heading in headings
                }
                if anchor not in slugs:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_every_variable_phigate_reads_is_documented() -> None:
    names: set[str] = set()
    for folder in ("graph", "db", "resolvers", "domain"):
        for source in (ROOT / folder).rglob("*.py"):
            names |= set(
                re.findall(r"\b(PHIGATE_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL\w*)", source.read_text())
            )
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert len(names) > 40
    assert not sorted(name for name in names if f"`{name}`" not in page)
