"""The README and docs/ stay true: generated tables agree with their JSON, the configuration
reference with the models, links and paths resolve, TOML examples are valid dataset.toml,
and every documented shell command runs (see docs/testing.md, "The docs are tested")."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 300
# Pages other engineers write: a link to them is allowed before they exist.
WRITTEN_ELSEWHERE = {"docs/adding-a-model.md", "docs/adding-a-task.md"}
# The order the pages' commands run in (they share one sandbox: `make run` comes first);
# pages not listed run after these, alphabetically.
RUN_ORDER = [
    "README.md",
    "docs/operations.md",
    "docs/data.md",
    "docs/publishing.md",
    "docs/models-and-evaluation.md",
    "docs/monitoring.md",
    "docs/reliability.md",
    "docs/reports.md",
    "docs/performance.md",
    "docs/results.md",
    "docs/testing.md",
]
# What the sandbox links to (the code and its environment); docs/ and README.md are copied
# so that commands writing there (make docs, a screenshot) leave the checkout alone.
LINKED = [
    ".venv",
    "Makefile",
    "pyproject.toml",
    "dataset.toml",
    "flows",
    "tasks",
    "demo_store",
    "deployments",
    "benchmarks",
    "expectations",
    "tests",
]
SHELLS = {"bash", "sh", "console", "shell"}
BLOCK_TIMEOUT_S = 900
READY_TIMEOUT_S = 240


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# ------------------------------------------------------------------ fenced blocks


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: tuple[str, str] | None  # ("illustrative" | "long-running" | "needs", detail)

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"

    def commands(self) -> list[str]:
        """The shell commands, continuation lines joined, comment-only lines dropped."""
        lines = self.text.splitlines()
        if self.lang == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        commands, pending = [], ""
        for line in lines:
            if pending:
                line = pending + line.lstrip()
                pending = ""
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            if line.strip() and not line.strip().startswith("#"):
                commands.append(line.strip())
        return commands


FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*(illustrative|long-running|needs):\s*(.*?)\s*-->$")


def blocks(page: Path) -> list[Block]:
    found, lines = [], page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        before = next((lines[i].strip() for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        marker = MARKER.match(before)
        indent = len(opening["indent"])
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        found.append(
            Block(page, index + 1, opening["lang"], body, marker.groups() if marker else None)
        )
        index = end + 1
    return found


def without_code(text: str) -> str:
    """The page without its fenced blocks (their text is not prose)."""
    return re.sub(r"^\s*```.*?^\s*```\s*$", "", text, flags=re.S | re.M)


# ------------------------------------------------------------------ generated parts


def test_generated_docs_agree_with_results_and_models():
    result = subprocess.run(
        [sys.executable, "docs/render.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_check_names_the_page_and_block_that_went_stale(tmp_path):
    """A figure changed in a copy of the results: --check fails naming page and block."""
    results = tmp_path / "results"
    shutil.copytree(DOCS / "results", results)
    victim = next(
        (
            results / f"{name}.json"
            for name in ("nightly", "refit", "scoring", "beauty", "ab_test", "large")
            if (results / f"{name}.json").exists()
        ),
        None,
    )
    if victim is None:
        pytest.skip("no benchmark has written docs/results/ yet")
    document = json.loads(victim.read_text())
    figures = document["figures"]
    key = next(k for k in ("wall_s", "project_users_per_s", "test_users") if k in figures)
    figures[key] += 1
    victim.write_text(json.dumps(document))
    result = subprocess.run(
        [sys.executable, "docs/render.py", "--check", "--results", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert re.search(rf"docs/[\w-]+\.md: block results:{victim.stem}\b", result.stderr), (
        result.stderr
    )


# ------------------------------------------------------------------ the README


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES, len(text.splitlines())
    hashes = [
        run
        for run in re.findall(r"(?<![\w./-])[0-9a-f]{7,40}(?![\w-])", text)
        if re.search(r"[a-f]", run) and re.search(r"\d", run)
    ]
    assert not hashes, f"commit hashes in the README: {hashes}"
    issues = re.findall(r"\bissues?\s+#?\d+|(?<![\w&])#\d+\b", text, flags=re.I)
    assert not issues, f"issue references in the README: {issues}"


def test_no_issue_numbers_in_the_docs():
    for page in pages():
        prose = without_code(page.read_text())
        issues = re.findall(r"\bissues?\s+#?\d+|(?<![\w&])#\d+\b", prose, flags=re.I)
        assert not issues, f"{rel(page)}: issue references {issues}"


# ------------------------------------------------------------------ links and paths


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in without_code(page.read_text()).splitlines():
        if match := re.match(r"^#{1,6}\s+(.*)$", line):
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


TOP_LEVEL = (
    "flows/",
    "tasks/",
    "demo_store/",
    "deployments/",
    "benchmarks/",
    "docs/",
    "tests/",
    "expectations/",
)
TOP_FILES = {"dataset.toml", "Makefile", "pyproject.toml", "README.md"}


def test_every_link_and_path_exists():
    problems = []
    for page in pages():
        prose = without_code(page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"[a-z]+:", target) or target.startswith("#") and not target[1:]:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            name = rel(resolved) if resolved.is_relative_to(REPO) else str(resolved)
            if not resolved.exists():
                if name not in WRITTEN_ELSEWHERE:
                    problems.append(f"{rel(page)}: link to {target}: no such file")
                continue
            if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{rel(page)}: link to {target}: no heading #{anchor}")
        for quoted in re.findall(r"`([^`\s]+)`", prose):
            path = quoted.split("::")[0].rstrip(",.;:")
            if not (path.startswith(TOP_LEVEL) or path in TOP_FILES):
                continue
            if re.search(r"[<>{}$]", path):
                continue
            exists = any(REPO.glob(path)) if "*" in path else (REPO / path).exists()
            if not exists and path not in WRITTEN_ELSEWHERE:
                problems.append(f"{rel(page)}: `{quoted}` names no file of the repository")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ TOML examples


def test_every_toml_example_is_valid_dataset_config():
    from tasks.dataset import DatasetSpec

    problems = []
    for page in pages():
        for block in blocks(page):
            if block.lang != "toml":
                continue
            try:
                DatasetSpec.model_validate(tomllib.loads(block.text))
            except Exception as error:  # noqa: BLE001 - reported with the block's place
                problems.append(f"{block.where}: {type(error).__name__}: {error}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the commands


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Sandbox:
    root: Path
    env: dict[str, str]
    port: int
    log: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Sandbox:
    """A folder the documented commands run in as if it were the checkout: links to the code
    and .venv, copies of README.md and docs/, its own data/ and PREFECT_HOME."""
    root = tmp_path_factory.mktemp("docs_sandbox")
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    shutil.copy(README, root / "README.md")
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECS_", "PREFECT_"))}
    env.update(
        {
            "PREFECT_HOME": str(root / ".prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PRESET": "small",  # the smallest store on which the demo's gate passes (seed 42)
            "PREFECT_PORT": str(port),
        }
    )
    return Sandbox(root, env, port)


EXPECTED = re.compile(r"#.*?\bexit (\d+(?:(?:, or |, | or )\d+)*)")


def expected_codes(command: str) -> list[int]:
    """Exit codes a command's trailing comment allows (`# exit 10: ...`); default 0."""
    match = EXPECTED.search(command)
    return [int(c) for c in re.findall(r"\d+", match[1])] if match else [0]


def script(block: Block) -> str:
    """The block as one bash script (variables carry from line to line), each command's
    exit code checked against what its comment allows."""
    lines = []
    for command in block.commands():
        codes = expected_codes(command)
        lines.append(command)
        lines.append(
            f'__rc=$?; case " {" ".join(map(str, codes))} " in *" $__rc "*) ;; '
            f'*) echo "docs-test: exit $__rc (expected {" or ".join(map(str, codes))}): "'
            f"{shlex.quote(command)} >&2; exit 97;; esac"
        )
    return "\n".join(lines) + "\n"


def run_block(block: Block, box: Sandbox) -> str | None:
    """Run the block in the sandbox; None when it did what it says, else what went wrong."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", script(block)],
        cwd=box.root,
        env=box.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    box.log.append(f"{block.where}: {time.monotonic() - started:.0f} s")
    if result.returncode == 0:
        return None
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
    return f"{block.where} failed (exit {result.returncode}):\n{tail}"


def server_health(box: Sandbox) -> bool:
    response = httpx.get(f"http://127.0.0.1:{box.port}/api/health", timeout=2)
    return response.status_code == 200


def deployments_served(box: Sandbox) -> bool:
    response = httpx.post(f"http://127.0.0.1:{box.port}/api/deployments/filter", json={}, timeout=5)
    names = {d["name"] for d in response.json()} if response.status_code == 200 else set()
    return {"nightly", "monitor", "rollback"} <= names


# How to tell that a long-running command is up, by its command (its comment left out).
READY = {"make server": server_health, "make serve": deployments_served}


def run_long_running(block: Block, box: Sandbox) -> str | None:
    """Start each command in turn, wait until it answers, then stop them all (only the
    process groups started here)."""
    started: list[tuple[str, subprocess.Popen, Path]] = []
    problem = None
    try:
        for command in block.commands():
            name = command.split("#")[0].strip()
            if name not in READY:
                problem = f"{block.where}: no readiness check for long-running `{name}`"
                break
            log = box.root / f"{name.replace(' ', '_')}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    ["bash", "-c", command],
                    cwd=box.root,
                    env=box.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started.append((name, process, log))
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    if READY[name](box):
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text().splitlines()[-25:])
                    problem = f"{block.where}: `{name}` never answered:\n{tail}"
                    break
                time.sleep(1)
            if problem:
                break
    finally:
        for _, process, _ in reversed(started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
    return problem


def ordered_pages() -> list[Path]:
    listed = [REPO / name for name in RUN_ORDER if (REPO / name).exists()]
    return listed + [p for p in pages() if p not in listed]


def test_every_documented_command_runs(sandbox):
    """Every bash/sh/console block of the README and docs/, in order, in one sandbox."""
    problems, not_run = [], []
    for page in ordered_pages():
        for block in blocks(page):
            if block.lang not in SHELLS:
                continue
            kind, detail = block.marker or ("run", "")
            if kind == "illustrative":
                assert detail, f"{block.where}: an illustrative block must say why"
                continue
            if kind == "needs" and not shutil.which(detail):
                not_run.append(f"{block.where} (needs {detail})")
                continue
            if kind == "long-running":
                problem = run_long_running(block, sandbox)
            else:
                problem = run_block(block, sandbox)
            if problem:
                problems.append(problem)
    print("\n".join(sandbox.log))
    if not_run:
        warnings.warn(f"not run here: {', '.join(not_run)}", stacklevel=1)
    assert not problems, "\n\n".join(problems)


def test_illustrative_commands_name_real_modules_and_options():
    """Commands not run still name modules that exist and options their --help lists."""
    uses: list[tuple[Block, str, list[str]]] = []
    for page in pages():
        for block in blocks(page):
            if block.lang not in SHELLS or not block.marker or block.marker[0] != "illustrative":
                continue
            for command in block.commands():
                for module, rest in re.findall(r"python -m ([\w.]+)([^|&;#]*)", command):
                    if module != "pytest":
                        uses.append((block, module, re.findall(r"(?<!\S)(--[\w.-]+)", rest)))
    helps = {  # every module's --help at once: each imports Prefect, which takes a while
        module: subprocess.Popen(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in {module for _, module, _ in uses}
    }
    texts = {}
    for module, process in helps.items():
        out, err = process.communicate(timeout=300)
        texts[module] = out if process.returncode == 0 else None
    problems = []
    for block, module, options in uses:
        if texts[module] is None:
            problems.append(f"{block.where}: `python -m {module} --help` failed")
            continue
        problems += [
            f"{block.where}: {module} has no option {option}"
            for option in options
            if option not in texts[module]
        ]
    assert not problems, "\n".join(sorted(set(problems)))


def test_rendered_targets_are_the_tested_ones():
    """The lift over popularity the results page judges is the one the model test requires."""
    import importlib.util

    from tests.model.test_model_quality import MIN_LIFT_OVER_POPULARITY

    spec = importlib.util.spec_from_file_location("docs_render", DOCS / "render.py")
    render = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = render  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(render)
    finally:
        del sys.modules[spec.name]
    assert render.TARGETS["demo_lift_over_popularity"] == MIN_LIFT_OVER_POPULARITY
