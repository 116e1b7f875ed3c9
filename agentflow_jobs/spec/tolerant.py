"""Loading a spec set that may hold broken files: the valid jobs still load.

``load_tolerant(files, root)`` first loads ``files`` together. When that fails, each file
is loaded alone and the ones that load are kept; then, for problems that exist only
across files (a duplicate job name or output, a cycle), the files blamed are dropped
until the rest loads. Every problem is kept, and so are the files a broken spec names
(its input and prompt files, read through the same YAML loader as any spec), so a
watcher notices when a missing one appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentflow_jobs.errors import Problem, SpecError
from agentflow_jobs.spec.documents import load_documents
from agentflow_jobs.spec.load import load_specs
from agentflow_jobs.spec.models import JobSpec
from agentflow_jobs.spec.rules import display_path

__all__ = ["SpecLoad", "load_tolerant", "named_files"]

_PATH_KEYS = ("system_prompt_file", "user_prompt_template_file")


@dataclass
class SpecLoad:
    """What one tolerant load found: the valid specs, every problem, the files named."""

    specs: list[JobSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # files named by specs that failed to load, so creating a missing one triggers a reload
    referenced: set[Path] = field(default_factory=set)


def load_tolerant(files: Sequence[Path], root: Path) -> SpecLoad:
    """Load ``files`` together; on problems, isolate them so the valid files still load."""
    try:
        return SpecLoad(specs=load_specs(files, root=root))
    except SpecError:
        pass
    found = SpecLoad()
    good = _loadable_alone(files, root, found)
    _drop_cross_file_culprits(good, root, found)
    return found


def _loadable_alone(files: Sequence[Path], root: Path, found: SpecLoad) -> list[Path]:
    good: list[Path] = []
    for file in files:
        try:
            load_specs([file], root=root)
            good.append(file)
        except SpecError as exc:
            found.problems += exc.problems
            found.referenced |= named_files(file)
    return good


def _drop_cross_file_culprits(good: list[Path], root: Path, found: SpecLoad) -> None:
    while good:
        try:
            found.specs = load_specs(good, root=root)
            return
        except SpecError as exc:
            blamed = {problem.path for problem in exc.problems}
            culprits = [f for f in good if display_path(f) in blamed] or good[-1:]
            found.problems += exc.problems
            found.referenced |= {ref for f in culprits for ref in named_files(f)}
            good = [f for f in good if f not in culprits]


def named_files(file: Path) -> set[Path]:
    """Input and prompt paths named in a spec file, even one that does not validate."""
    documents, _problems = load_documents(file, display_path(file))
    found: set[Path] = set()
    for doc in documents:
        if not isinstance(doc.data, dict):
            continue
        section = doc.data.get("input")
        values = [section.get("path") if isinstance(section, dict) else None]
        values += [doc.data.get(key) for key in _PATH_KEYS]
        found |= {(file.parent / v).resolve() for v in values if isinstance(v, str) and v}
    return found
