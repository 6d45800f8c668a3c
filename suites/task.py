"""`task` suites: prompt a model with a Jinja template per record, score with metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from harness.config import GenerationParams
from harness.errors import UserError
from harness.store import GenerationRow, ScoreRow
from harness.templates import UserTemplate
from suites.base import (
    SUITE_KINDS,
    BoundMetric,
    Example,
    Request,
    SuiteConfig,
    SuiteKind,
    example_ids,
    read_jsonl,
)
from suites.metrics import METRICS, PRESETS, ExampleView


class PromptedConfig(SuiteConfig):
    """What a suite that makes the model answer prompts declares (task and judge suites)."""

    data: str
    """JSONL file, relative to the suite file."""
    prompt: str
    """Jinja template rendered with the record's fields."""
    reference: str | None = None
    """Record field holding the reference answer (a string or a list of strings)."""
    id_field: str = "id"
    """Record field with a stable example id; records without it get 'line-N'."""
    system_prompt: str | None = None
    chat: bool = True
    """Wrap the prompt in the model's chat template (False: send the raw prompt)."""
    generation: GenerationParams = Field(default_factory=GenerationParams)
    chat_template: str | None = None
    """The chat template local transformers models use on this suite: `trained` (the one each
    adapter was trained with), `base` (the base model's), or a Jinja file relative to the suite
    file. A model spec's `?chat_template=` wins over it (harness.models.chat_template)."""


class TaskConfig(PromptedConfig):
    """A generation task scored against references."""

    metrics: list[str | dict[str, Any]] = Field(min_length=1)
    """Metric names, mappings {name, as?, ...options}, or preset names (`llamafactory`)."""
    prompt: str | None = None  # type: ignore[assignment]
    """Jinja template rendered with the record's fields (not with `data_format`)."""
    data_format: Literal["messages", "sharegpt", "alpaca", "auto"] | None = None
    """Conversation data (suites.conversation): the turns before the last assistant turn are the
    prompt, sent as messages; that turn is the reference. Replaces `prompt` and `reference`."""

    @model_validator(mode="after")
    def _prompt_or_format(self) -> TaskConfig:
        if (self.prompt is None) == (self.data_format is None):
            raise ValueError("give either 'prompt' (a Jinja template) or 'data_format' (conversation data)")
        if self.data_format is not None and (self.reference is not None or not self.chat):
            raise ValueError("with data_format the reference is the last assistant turn, sent as chat")
        return self


@SUITE_KINDS.register("task")
class TaskSuite(SuiteKind):
    kind = "task"
    config_model: ClassVar[type[SuiteConfig]] = TaskConfig
    config: TaskConfig

    def data_path(self) -> Path:
        return self.local_path(self.config.data, ("data",))

    def bind_metrics(self) -> list[BoundMetric]:
        bound, names = [], set()
        # A preset name (e.g. `llamafactory`) stands for several metric entries.
        entries = [
            (i, e)
            for i, entry in enumerate(self.config.metrics)
            for e in (PRESETS[entry] if isinstance(entry, str) and entry in PRESETS else [entry])
        ]
        for i, entry in entries:
            loc = ("metrics", i)
            if isinstance(entry, str):
                name, alias, args = entry, entry, {}
            else:
                args = dict(entry)
                name = args.pop("name", None)
                if not isinstance(name, str):
                    raise self.doc.error("a metric mapping needs 'name'", loc)
                alias = args.pop("as", name)
            if name == "hf_evaluate" and isinstance(args.get("path"), str):  # relative to the suite file
                args["path"] = str((self.path.parent / args["path"]).resolve())
            try:
                built = METRICS.build(name, args)
            except UserError as e:
                where = (e.field,) if e.field else () if isinstance(entry, str) else ("name",)
                raise self.doc.error(e.detail, loc + where) from None
            if alias in names:
                raise self.doc.error(f"metric '{alias}' listed twice (use 'as:' to rename)", loc)
            names.add(alias)
            info = built.entry.info
            # a metric whose direction or identity is known only once built (an evaluate module)
            extra = getattr(built.unit, "spec_extra", None)
            bound.append(
                BoundMetric(
                    alias,
                    built.unit,
                    built.spec | extra if extra else built.spec,
                    info["aggregation"],
                    getattr(built.unit, "higher_is_better", info["higher_is_better"]),
                    info["binary"],
                    info.get("version", 1),
                )
            )
        return bound

    def template_option(self) -> str | None:
        """The suite's `chat_template` as a `?chat_template=` value (a file made absolute)."""
        value = self.config.chat_template
        if value is None or value in ("trained", "base"):
            return value
        path = self.local_path(value, ("chat_template",))
        if not path.is_file():
            raise self.doc.error(
                f"chat_template must be trained, base or a Jinja template file; {path} does not exist",
                ("chat_template",),
            )
        return str(path)

    def load_examples(self) -> list[Example]:
        self.template_option()  # a missing template file fails at load, naming the field
        path = self.data_path()
        data_format = getattr(self.config, "data_format", None)
        if data_format is not None:  # judge configs have none
            from suites.conversation import conversation_examples

            examples, self._messages = conversation_examples(
                path, data_format, self.config.id_field, self.config.system_prompt
            )
            return examples
        rows = read_jsonl(path)
        ids = example_ids(rows, self.config.id_field, path)
        prompt = self.config.prompt
        assert prompt is not None, "validated: a task without data_format has a prompt"
        template = UserTemplate(prompt, lambda msg: self.doc.error(msg, ("prompt",)), "the prompt")
        examples = []
        ref_field = self.config.reference
        for eid, (n, rec) in zip(ids, rows):

            def record_error(msg: str, n: int = n) -> UserError:
                return UserError(msg, path=path, line=n)

            # render once now so a missing field or a sandbox violation fails before any run
            template.render(rec, record_error=record_error)
            refs: list[str] = []
            if ref_field is not None:
                if ref_field not in rec:
                    raise UserError("record lacks the reference field", path=path, line=n, field=ref_field)
                value = rec[ref_field]
                refs = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            examples.append(Example(eid, rec, refs, n))
        self._template = template
        return examples

    def request(self, example: Example) -> Request:
        params = self.config.generation.model_dump()
        if getattr(self.config, "data_format", None) is not None:  # judge configs have none
            return Request("generate", None, params, messages=self._messages[example.id])
        text = self._template.render(example.record)
        if not self.config.chat:
            return Request("generate", text, params)
        messages = []
        if self.config.system_prompt:
            messages.append({"role": "system", "content": self.config.system_prompt})
        messages.append({"role": "user", "content": text})
        return Request("generate", None, params, messages=tuple(messages))

    def score(self, example: Example, response: GenerationRow) -> list[ScoreRow]:
        view = ExampleView(example.references, example.record)
        rows = []
        for m in self.metrics:
            try:
                r = m.scorer(response.output or "", view)
            except Exception as e:  # a metric bug must not kill the run; keep it visible
                rows.append(ScoreRow(example.id, m.name, None, 1.0, f"metric crashed: {e!r}"))
                continue
            rows.append(
                ScoreRow(example.id, m.name, None if r.error else r.value, r.weight, r.error, r.detail)
            )
        return rows
