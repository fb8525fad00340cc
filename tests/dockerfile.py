"""The repository's Dockerfile read into stages of instructions, for the tests that check it
without a container engine (none runs here): statically, and by running its build stage's
COPY and RUN steps in a folder."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    arguments: str


@dataclasses.dataclass(frozen=True)
class Stage:
    base: str  # the FROM image, ARG defaults substituted
    name: str | None
    instructions: tuple[Instruction, ...]

    def arguments(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Comment lines dropped, backslash continuations joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            logical.append(joined)
    result = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages(text: str) -> list[Stage]:
    """The stages in order; `${NAME}` in FROM takes the default of a global ARG."""
    defaults: dict[str, str] = {}
    found: list[Stage] = []
    current: list[Instruction] = []
    head: tuple[str, str | None] | None = None
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            if head is not None:
                found.append(Stage(head[0], head[1], tuple(current)))
            words = instruction.arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)),
                          words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            head, current = (base, name), []
        elif head is None and instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            defaults[name] = default
        else:
            current.append(instruction)
    if head is not None:
        found.append(Stage(head[0], head[1], tuple(current)))
    return found
