"""Find and load lm-eval tasks for `benchmark` suites, with user errors instead of tracebacks.

lm-eval's TaskManager indexes all ~14,000 built-in task YAMLs (about 16 s) and silently skips
YAML it cannot parse. We index only what a suite needs: its include_path folders (every YAML
parsed up front, so a malformed file is an error naming it) plus the lm-eval folders whose
YAML mentions a requested standard task (a text scan, under a second). The full index is the
fallback when that narrower one does not resolve a name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import LocatedYaml
from harness.errors import UserError
from harness.trust import require_trust, sandbox_lm_eval

_HOW_TO_GET_DATA = (
    "Make it available offline: download it once into the Hugging Face datasets cache "
    "(e.g. run the suite once with HF_HUB_OFFLINE=0 and network access, or "
    "`datasets.load_dataset(...)` on a machine that can reach the hub and copy ~/.cache/huggingface), "
    "or copy the task YAML into an include_path folder and point it at local files "
    "(dataset_path: json, dataset_kwargs: {data_files: ...})."
)


@dataclass(frozen=True)
class LoadedEntry:
    """One name from the suite's `tasks:` list: a task, a group or a tag, and its leaf tasks."""

    name: str
    obj: Any
    """What lm-eval built: a Task, a Group, or a list of Tasks (a tag)."""
    leaves: dict[str, Any]
    """Leaf task name -> lm-eval Task, in lm-eval's order."""


_SHIPPED = (Path(__file__).resolve().parent / "lm_eval_tasks").resolve()
"""The lm-eval tasks tunegate ships (their `!function`s are tunegate's code, not a suite's)."""


def check_include_dir(folder: Path, doc: LocatedYaml, loc: tuple[Any, ...]) -> None:
    """Every YAML under `folder` must parse (lm-eval would skip a broken one without a word)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    if not folder.is_dir():
        raise doc.error(f"include_path folder not found: {folder}", loc)
    shipped = folder.resolve().is_relative_to(_SHIPPED)  # tunegate's own tasks: part of the install
    for path in sorted(folder.rglob("*.yaml")):
        for n, text in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
            if not shipped and "!function" in text.split("#", 1)[0]:
                require_trust("the lm-eval task's `!function`", path, n, text.split(":", 1)[0].strip())
        try:
            cfg = load_yaml(path, resolve_func=False, recursive=True)
        except Exception as e:  # yaml errors, a missing `include:` target, unreadable files
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise UserError(
                f"malformed lm-eval task YAML ({problem})", path=path, line=mark.line + 1 if mark else None
            ) from None
        if not isinstance(cfg, dict):
            raise UserError("an lm-eval task YAML must be a mapping", path=path, line=1)


def load_entries(names: list[str], include: list[Path], doc: LocatedYaml) -> tuple[Any, list[LoadedEntry]]:
    """(TaskManager, loaded entries) for the suite's task names; problems are located errors."""
    sandbox_lm_eval()  # before any task is built: its templates render in the sandbox
    from lm_eval.tasks import TaskManager

    paths = [str(p) for p in include]
    tm = TaskManager(include_defaults=False, include_path=paths or None)
    standard = [n for n in names if n not in tm.all_tasks]
    if standard:
        folders = _standard_folders(standard)
        for n in standard:  # named in no YAML at all: unknown, no need for the full index
            if not folders[n]:
                close = difflib.get_close_matches(n, tm.all_tasks + _lm_eval_names(), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                loc = ("tasks", names.index(n))
                raise doc.error(f"unknown lm-eval task '{n}'.{hint} (see `lm_eval ls tasks`)", loc)
        narrow = [str(f) for f in dict.fromkeys(f for fs in folders.values() for f in fs)] + paths
        tm = TaskManager(include_defaults=False, include_path=narrow)
    try:
        return tm, _load_all(tm, names, doc, narrowed=bool(standard))
    except _NotInIndex:  # a group member lives outside the folders we indexed: use them all
        tm = TaskManager(include_path=paths or None)
        return tm, _load_all(tm, names, doc, narrowed=False)


class _NotInIndex(Exception):
    pass


def _load_all(tm: Any, names: list[str], doc: LocatedYaml, *, narrowed: bool) -> list[LoadedEntry]:
    entries: list[LoadedEntry] = []
    owner: dict[str, str] = {}
    for i, name in enumerate(names):
        if name not in tm.all_tasks:
            if narrowed:
                raise _NotInIndex(name)
            close = difflib.get_close_matches(name, tm.all_tasks, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise doc.error(f"unknown lm-eval task '{name}'.{hint} (see `lm_eval ls tasks`)", ("tasks", i))
        loaded = _load_one(tm, name, doc, ("tasks", i), narrowed)
        for leaf in loaded["tasks"]:
            if leaf in owner:
                raise doc.error(f"task '{leaf}' is already part of '{owner[leaf]}'", ("tasks", i))
            owner[leaf] = name
        obj = loaded["groups"].get(name) or loaded["tasks"].get(name) or list(loaded["tasks"].values())
        entries.append(LoadedEntry(name, obj, dict(loaded["tasks"])))
    return entries


def _load_one(tm: Any, name: str, doc: LocatedYaml, loc: tuple[Any, ...], narrowed: bool) -> dict[str, Any]:
    entry = tm.task_index.get(name)
    cfg = (entry.cfg or {}) if entry is not None else {}
    where = f" ({entry.yaml_path})" if entry is not None and entry.yaml_path else ""
    try:
        return tm.load([name])
    except KeyError as e:  # a group member that is not in the index
        if narrowed:
            raise _NotInIndex(name) from e
        raise doc.error(f"lm-eval cannot load task '{name}'{where}: {_first_line(e)}", loc) from e
    except Exception as e:  # a YAML lm-eval cannot build (bad key, template, function) or no data
        hub = cfg.get("dataset_path")
        offline = isinstance(e, ConnectionError) or (
            isinstance(e, FileNotFoundError) and hub and hub not in _LOCAL_BUILDERS and not Path(hub).exists()
        )
        if offline:
            what = f"dataset '{hub}'" if hub else "a dataset"
            raise doc.error(
                f"lm-eval task '{name}' needs {what}, which is not available offline "
                f"({type(e).__name__}: {_first_line(e)}). {_HOW_TO_GET_DATA}",
                loc,
            ) from e
        raise doc.error(
            f"lm-eval cannot load task '{name}'{where}: {type(e).__name__}: {_first_line(e)}", loc
        ) from e


_LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas"}


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _standard_folders(names: list[str]) -> dict[str, list[Path]]:
    """Per name, the top-level lm-eval task folders whose YAML defines or lists it (a text scan)."""
    found: dict[str, list[Path]] = {n: [] for n in names}
    for path, text in _lm_eval_yaml():
        for n in names:
            if n in text and re.search(
                rf"^\s*-?\s*(?:(?:task|group|tag)\s*:)?\s*['\"]?{re.escape(n)}['\"]?\s*$", text, re.M
            ):
                top = _tasks_root() / path.relative_to(_tasks_root()).parts[0]
                if top not in found[n]:
                    found[n].append(top)
    return found


def _lm_eval_names() -> list[str]:
    """Every task, group and tag name lm-eval's YAML defines (for did-you-mean)."""
    pattern = re.compile(r"^\s*-?\s*(?:task|group|tag)\s*:\s*['\"]?([\w.\-]+)", re.M)
    return sorted({m for _, text in _lm_eval_yaml() for m in pattern.findall(text)})


def _tasks_root() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


def _lm_eval_yaml() -> list[tuple[Path, str]]:
    return [(p, p.read_text("utf-8", "replace")) for p in sorted(_tasks_root().glob("**/*.yaml"))]
