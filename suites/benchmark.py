"""`benchmark` suites: lm-evaluation-harness tasks on our loaded model, stored per doc.

lm-eval drives its own request loop, so this kind implements the runner's `execute_run` hook
instead of request/score. Each name in `tasks:` is one `lm_eval.simple_evaluate` call on an
HFLM around the backend's model; its logged samples become, per doc, one run_examples row,
one generation and one score per metric, written in one transaction. lm-eval's own
aggregates and stderrs are kept in the run's config under "lm_eval".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from harness.errors import UserError
from harness.lm_eval_rows import LmMetric, task_metrics
from harness.paths import cache_dir
from suites.base import SUITE_KINDS, BoundMetric, Example, SelfDrivenSuite, SuiteConfig
from suites.benchmark_run import quiet_lm_eval, run_entries
from suites.benchmark_tasks import _SHIPPED as SHIPPED_TASKS
from suites.benchmark_tasks import check_include_dir, load_entries

log = logging.getLogger(__name__)


class BenchmarkConfig(SuiteConfig):
    """lm-eval tasks (standard, or custom YAML under include_path) run as one suite."""

    tasks: list[str] = Field(min_length=1)
    """lm-eval task, group or tag names."""
    include_path: list[str] = Field(default_factory=list)
    """Folders of custom lm-eval task YAML, relative to the suite file."""
    num_fewshot: int | None = Field(None, ge=0)
    """Overrides the tasks' own few-shot count (lm-eval keeps an explicit 0)."""
    limit: int | None = Field(None, ge=1)
    """Docs per task, like lm-eval's --limit (`tunegate run --limit N` keeps the first N of the suite)."""
    batch_size: int | None = Field(None, ge=1)
    """Overrides `tunegate run --batch-size`."""
    max_length: int | None = Field(None, ge=16)
    """Context length for lm-eval (default: the model's)."""
    apply_chat_template: bool = False
    bootstrap_iters: int = Field(100000, ge=0)
    """lm-eval's resamples for the stderr of non-mean aggregations (0: none)."""
    metrics: dict[str, list[str]] = Field(default_factory=dict)
    """Task (or group) -> metrics to store, 'metric' or 'metric/filter'. Default: all that tunegate
    can aggregate exactly (mean, perplexity, weighted_perplexity, bits_per_byte)."""

    @field_validator("include_path", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


@SUITE_KINDS.register("benchmark")
class BenchmarkSuite(SelfDrivenSuite):
    kind = "benchmark"
    config_model = BenchmarkConfig
    config: BenchmarkConfig

    def data_path(self) -> Path:
        """A manifest of the loaded docs and task configs, so the content hash (suite id) changes
        exactly when the data or prompts do, wherever the tasks live."""
        return self._manifest

    def bind_metrics(self) -> list[BoundMetric]:
        include = [  # inside the suite's folder, a data root, or the tasks tunegate ships
            self.local_path(p, ("include_path", i), extra_roots=(SHIPPED_TASKS,))
            for i, p in enumerate(self.config.include_path)
        ]
        with quiet_lm_eval():
            for i, folder in enumerate(include):
                check_include_dir(folder, self.doc, ("include_path", i))
            self.task_manager, self.entries = load_entries(self.config.tasks, include, self.doc)
        leaves = [leaf for e in self.entries for leaf in e.leaves]
        for key in self.config.metrics:
            if key not in leaves and key not in self.config.tasks:
                raise self.doc.error(f"'{key}' is not one of this suite's tasks", ("metrics", key))
        self.lm_metrics: dict[str, list[LmMetric]] = {}
        for e in self.entries:
            for leaf, task in e.leaves.items():
                self.lm_metrics[leaf] = self._select(leaf, e.name, task_metrics(task))
        bound = []
        for m in (m for ms in self.lm_metrics.values() for m in ms):
            name, spec, agg, hib, binary = m.run_metric()
            bound.append(BoundMetric(name, None, spec, agg, hib, binary))  # no scorer: lm-eval scores
        return bound

    def _select(self, leaf: str, entry: str, available: list[LmMetric]) -> list[LmMetric]:
        key = leaf if leaf in self.config.metrics else entry
        wanted = self.config.metrics.get(key)
        if wanted is None:
            for m in available:
                if not m.supported:
                    log.warning("%s: not stored per doc (lm-eval aggregation %s)", m.name, m.aggregation)
            return [m for m in available if m.supported]
        out = []
        for i, w in enumerate(wanted):
            metric, _, filt = w.partition("/")
            hits = [m for m in available if m.metric == metric and filt in ("", m.filter)]
            if not hits:
                have = ", ".join(
                    sorted({m.metric if m.filter == "none" else f"{m.metric}/{m.filter}" for m in available})
                )
                raise self.doc.error(
                    f"task '{leaf}' has no metric '{w}' (it has: {have})", ("metrics", key, i)
                )
            bad = next((m for m in hits if not m.supported), None)
            if bad is not None:
                raise self.doc.error(
                    f"'{w}' uses lm-eval aggregation '{bad.aggregation}', which tunegate cannot recompute "
                    "from per-doc scores (supported: mean, nanmean, perplexity, weighted_perplexity, "
                    "bits_per_byte)",
                    ("metrics", key, i),
                )
            out += hits
        return out

    def load_examples(self) -> list[Example]:
        """Docs of every task, interleaved task by task (doc 0 of each, then doc 1, ...), so that
        `tunegate run --limit N` keeps a balanced first N of the suite."""
        per_task, manifest = [], {}
        self.n_docs: dict[str, int] = {}
        for entry in self.entries:
            for leaf, task in entry.leaves.items():
                docs = task.eval_docs
                self.n_docs[leaf] = len(docs)
                h, examples = hashlib.sha256(), []
                for i, doc in enumerate(docs):
                    if self.config.limit and i >= self.config.limit:
                        break
                    record, refs = _record(task, leaf, i, doc)
                    h.update(json.dumps(record["doc"], sort_keys=True).encode())
                    examples.append(Example(f"{leaf}/{i}", record, refs, i + 1))
                manifest[leaf] = {"config": _config_text(task), "docs_sha256": h.hexdigest()}
                per_task.append(examples)
        blob = json.dumps(manifest, sort_keys=True, indent=1)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self._manifest = cache_dir() / "benchmark" / f"{self.config.name}-{digest}.json"
        if not self._manifest.exists():
            self._manifest.parent.mkdir(parents=True, exist_ok=True)
            self._manifest.write_text(blob, encoding="utf-8")
        rounds = itertools.zip_longest(*per_task)
        return [ex for round_ in rounds for ex in round_ if ex is not None]

    def request_types(self) -> set[str]:
        """lm-eval's output types, as our request types (multiple_choice is log-likelihood)."""
        kinds = {
            "generate_until": "generate",
            "multiple_choice": "loglikelihood",
            "loglikelihood": "loglikelihood",
            "loglikelihood_rolling": "rolling_loglikelihood",
        }
        return {
            kinds.get(task.OUTPUT_TYPE, task.OUTPUT_TYPE)
            for entry in self.entries
            for task in entry.leaves.values()
        }

    def measurement_facts(self) -> dict[str, Any]:
        """lm-eval's version, the task configs (few-shot apart) and the few-shot count per task."""
        from importlib import metadata

        from harness.measurement import digest

        configs, fewshot = {}, {}
        for entry in self.entries:
            for leaf, task in entry.leaves.items():
                cfg = json.loads(_config_text(task))
                own = cfg.pop("num_fewshot", None)
                configs[leaf] = cfg
                fewshot[leaf] = self.config.num_fewshot if self.config.num_fewshot is not None else own
        return {"lm_eval": metadata.version("lm_eval"), "tasks": digest(configs), "fewshot": fewshot}

    def execute_run(self, store: Any, run_id: str, backend: Any, options: Any, progress: Any) -> None:
        """Run every task with docs still missing from `run_id`; store each task as it finishes."""
        run_entries(self, store, run_id, backend, options, progress)


def _record(task: Any, leaf: str, doc_id: int, doc: Any) -> tuple[dict[str, Any], list[str]]:
    """The stored example: the raw doc, its zero-shot prompt, choices and reference answer."""
    clean = json.loads(json.dumps(doc, default=str))
    record: dict[str, Any] = {"task": leaf, "doc_id": doc_id, "doc": clean}
    refs: list[str] = []
    from jinja2.sandbox import SecurityError

    try:
        record["input"] = task.doc_to_text(doc)
        target = task.doc_to_target(doc)
        choices = task.doc_to_choice(doc) if task.OUTPUT_TYPE == "multiple_choice" else None
    except SecurityError as e:  # harness.trust.sandbox_lm_eval: a template reached for Python internals
        raise UserError(
            f"lm-eval task '{leaf}': template rejected by the sandbox: {e} (task templates may read "
            "doc fields, use filters, loops and conditionals, but not Python internals)",
            path=getattr(task.config, "yaml_path", None) or None,
            field="doc_to_text",
        ) from None
    except Exception as e:  # a task whose templates need more than the doc; keep the doc itself
        log.debug("%s/%s: no prompt preview (%s)", leaf, doc_id, e)
        return record, refs
    if choices is not None:
        record["choices"] = list(choices)
        targets = target if isinstance(target, list) else [target]
        refs = [str(choices[t]) if isinstance(t, int) and 0 <= t < len(choices) else str(t) for t in targets]
    elif task.OUTPUT_TYPE != "loglikelihood_rolling":
        refs = [str(t) for t in target] if isinstance(target, list) else [str(target)]
    return json.loads(json.dumps(record, default=str)), refs


def _config_text(task: Any) -> str:
    """The task config as text, minus what differs between machines (paths, object addresses)."""
    cfg = task.config.to_dict()
    cfg["metadata"] = {"version": (cfg.get("metadata") or {}).get("version")}
    return re.sub(r" at 0x[0-9a-fA-F]+", "", json.dumps(cfg, sort_keys=True, default=str))
