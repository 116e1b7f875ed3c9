"""The job-spec models: what one YAML document describes.

Field names are the YAML keys and, for operation fields, the SDK's keyword names. The
models are the single source of ``schemas/job-spec.schema.json`` (see ``schema.py``);
every field carries a description because editors show it as help.

A loaded ``JobSpec`` also knows where it came from (file, document index) and its
paths resolved against the spec file's directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from agentflow_jobs.hashing import content_hash
from agentflow_jobs.io.locations import location_kind, url_scheme
from agentflow_jobs.io.readers import extension_format
from agentflow_jobs.sdk.profiles import profile_name
from agentflow_jobs.urls import display_url
from agentflow_jobs.wire import EnrichField, normalize_operation

__all__ = [
    "API_VERSION", "NAME_PATTERN", "OPERATION_FIELDS", "TABLE_PATTERN", "ExecutionSpec",
    "InputSpec", "JobSpec", "OutputSpec", "ResponseFormat", "default_format",
]

API_VERSION = "agentflow-jobs/v1"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
TABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Operation = Literal["classify", "label", "extract", "summarize", "enrich", "run"]
InputFormat = Literal["jsonl", "csv", "json", "txt", "parquet"]
OutputFormat = Literal["jsonl", "csv", "json", "parquet"]
Mode = Literal["sync", "batch", "auto"]

# operation kind (after normalisation) -> the operation fields it uses
OPERATION_FIELDS: dict[str, tuple[str, ...]] = {
    "label": ("categories",),
    "extract": ("extraction_instructions", "output_schema"),
    "summarize": ("summary_instructions",),
    "enrich": ("fields", "include_context"),
    "run": (
        "system_prompt",
        "system_prompt_file",
        "user_prompt_template",
        "user_prompt_template_file",
        "response_format",
        "operation_name",
    ),
}


def default_format(path: str) -> str | None:
    """The data format a path's extension implies, if any (io keeps the one map)."""
    return extension_format(path)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ResponseFormat(_Model):
    """The reply format a `run` job asks the model for (OpenAI `response_format`)."""

    type: Literal["text", "json_object", "json_schema"] = Field(
        description="`text` for free text, `json_object` for any JSON object, "
        "`json_schema` for an object matching `json_schema.schema`."
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="For `type: json_schema`: `{name, schema, strict}` as in the OpenAI API.",
    )


class InputSpec(_Model):
    """Where the items come from."""

    path: str = Field(
        min_length=1,
        description="Input file, relative to the spec file; must stay inside the workspace.",
    )
    format: InputFormat | None = Field(
        default=None,
        description="jsonl, csv, json, txt or parquet; by default from the file extension.",
    )
    content_field: str = Field(
        default="content",
        min_length=1,
        description="The item field holding the text; available to templates as `{content}`.",
    )
    id_field: str | None = Field(
        default=None,
        min_length=1,
        description="Item field carried to the output (and the errors file) as `id`; null for an "
        "item without it. Without id_field, `id` is the item's 0-based position in the input.",
    )
    on_error: Literal["skip", "fail"] = Field(
        default="skip",
        description="An unreadable input row: `skip` it (it goes to the errors file) or `fail` the job.",
    )


class OutputSpec(_Model):
    """Where the results go."""

    path: str = Field(
        min_length=1,
        description="Output file, relative to the spec file (must stay inside the workspace); "
        "or an object-store URL (s3://, gs://, az://, memory://, file://); or a database URL "
        "(postgresql://…, sqlite:///…, relative to the spec file) together with `table`.",
    )
    table: str | None = Field(
        default=None,
        pattern=TABLE_PATTERN,
        max_length=63,
        description="With a database URL as `path`: the table to write, created with typed "
        "columns if missing; written in one transaction per apply.",
    )
    write: Literal["replace", "upsert"] = Field(
        default="replace",
        description="Table outputs: `replace` the table's rows with the job's, or `upsert` by "
        "`id` (the primary key of a table this creates).",
    )
    format: OutputFormat | None = Field(
        default=None,
        description="jsonl, csv, json or parquet (typed columns); by default from the file "
        "extension.",
    )
    include_input: bool = Field(
        default=False, description="Copy each input item's fields into its output row."
    )
    include_provenance: bool = Field(
        default=False,
        description="Add `provenance` to every output row: job, model (model and endpoint), "
        "spec_hash (of the spec the output was written for), run_id (of the run that got the "
        "answer), mode, attempts and usage; in CSV the columns _job, _model, _mode, _attempts, "
        "_total_tokens, _spec_hash and _run_id.",
    )
    errors_path: str | None = Field(
        default=None,
        min_length=1,
        description="File for failed items, relative to the spec file; "
        "default `<output>.errors.jsonl` beside the output.",
    )


class ExecutionSpec(_Model):
    """How the job runs; every setting has a default."""

    concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Most provider requests in flight at once (sync mode; batch mode runs at "
        "the profile's provider concurrency).",
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="Attempts per item before it fails.")
    max_failure_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fraction of failed items (0..1) above which the job fails; good rows are kept.",
    )
    batch_size: int = Field(default=1000, ge=1, description="Items per submitted batch (batch mode).")
    auto_batch_threshold: int = Field(
        default=5000, ge=1, description="In `auto` mode, inputs with at least this many items run as batches."
    )
    chunk_size: int = Field(
        default=64,
        ge=1,
        description="Sync mode: most items per request to AgentFlow, committed together; "
        "requests are smaller when needed to keep `concurrency`.",
    )
    max_cost_usd: float | None = Field(
        default=None,
        ge=0,
        description="Budget in USD for one apply of this job: a job whose estimated cost "
        "exceeds it is not started, and sending stops once its recorded spend reaches it "
        "(answered rows are kept; the rest wait for a later apply). Needs a known price.",
    )


class JobSpec(_Model):
    """One job: an operation over an input file, producing an output file."""

    api_version: Literal["agentflow-jobs/v1"] = Field(
        alias="apiVersion", description="Spec format version; always `agentflow-jobs/v1`."
    )
    kind: Literal["Job"] = Field(description="Always `Job`.")
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=100,
        description="Unique job name across the spec set: lowercase letters, digits, `-` and `_`.",
    )
    description: str | None = Field(default=None, description="What the job is for.")
    profile: str | None = Field(
        default=None,
        description='AgentFlow profile to run with; default $AGENTFLOW_PROFILE, else "local".',
    )
    model: str | None = Field(default=None, min_length=1, description="Model name; the profile's default otherwise.")
    operation: Operation = Field(
        description="classify (alias label), extract, summarize, enrich, or run (custom prompts)."
    )
    categories: list[str] | None = Field(
        default=None, description="classify/label: the labels to choose from (at least 2 distinct)."
    )
    extraction_instructions: str | None = Field(
        default=None, description="extract: what to extract from each item."
    )
    output_schema: dict[str, Any] | None = Field(
        default=None, description="extract: optional JSON Schema the extracted object must match."
    )
    summary_instructions: str | None = Field(
        default=None, description="summarize: optional instructions (length, focus, format)."
    )
    fields: list[EnrichField] | None = Field(
        default=None, description="enrich: the fields to fill in for every item."
    )
    include_context: bool = Field(
        default=False, description="enrich: also return the model's reasoning context."
    )
    system_prompt: str | None = Field(default=None, description="run: the system prompt.")
    system_prompt_file: str | None = Field(
        default=None, description="run: file holding the system prompt, relative to the spec file."
    )
    user_prompt_template: str | None = Field(
        default=None,
        description="run: the user prompt; `{field}` placeholders name item fields, `{{`/`}}` are literal braces.",
    )
    user_prompt_template_file: str | None = Field(
        default=None, description="run: file holding the user prompt template, relative to the spec file."
    )
    response_format: ResponseFormat | None = Field(
        default=None, description="run: the reply format; text unless set."
    )
    operation_name: str | None = Field(
        default=None, min_length=1, description="run: a name for this custom operation (e.g. feedback_analysis)."
    )
    input: InputSpec = Field(description="Where the items come from.")
    output: OutputSpec = Field(description="Where the results go.")
    mode: Mode = Field(
        default="auto",
        description="sync (request by request), batch (AgentFlow batches), or auto (by input size).",
    )
    execution: ExecutionSpec = Field(
        default_factory=ExecutionSpec, description="Concurrency, retries and failure tolerance."
    )

    _source: Path = PrivateAttr(default=Path("."))
    _document_index: int = PrivateAttr(default=0)
    _line: int = PrivateAttr(default=1)
    _prompts: dict[str, str] = PrivateAttr(default_factory=dict)

    def bind_source(self, source: Path, document_index: int, line: int, prompts: dict[str, str]) -> None:
        """Record where the spec came from and the text of its prompt files (loader use)."""
        self._source = source.resolve()
        self._document_index = document_index
        self._line = line
        self._prompts = dict(prompts)

    @property
    def source(self) -> Path:
        """The absolute path of the spec file."""
        return self._source

    @property
    def document_index(self) -> int:
        """0-based position of this job's document in its file."""
        return self._document_index

    @property
    def line(self) -> int:
        """1-based line where this job's document starts."""
        return self._line

    @property
    def operation_kind(self) -> str:
        """The engine's operation name: label, extract, summarize, enrich or run."""
        return normalize_operation(self.operation)[0]

    @property
    def resolved_profile(self) -> str:
        """The profile the job runs with (see ``sdk.profiles.profile_name``)."""
        return profile_name(self.profile)

    def resolve_path(self, relative: str) -> Path:
        """A path written in the spec, made absolute against the spec file's directory."""
        return Path(os.path.normpath(self._source.parent / os.path.expanduser(relative)))

    def resolve_location(self, written: str) -> str:
        """A location written in the spec: a local path made absolute (a relative SQLite
        file too, against the spec file's directory); other URLs as written."""
        kind = location_kind(written)
        if kind == "local":
            return str(self.resolve_path(written))
        if url_scheme(written) == "sqlite" and written.startswith("sqlite:///"):
            file = written.removeprefix("sqlite:///")
            if file and not file.startswith(("/", ":memory:")):
                return f"sqlite:///{self.resolve_path(file)}"
        return written

    def _path_of(self, written: str) -> Path:
        if location_kind(written) == "local":
            return self.resolve_path(written)
        # a URL stands for itself (password-free), so jobs chained through it still match
        return Path(display_url(self.resolve_location(written)))

    @property
    def input_path(self) -> Path:
        return self._path_of(self.input.path)

    @property
    def output_path(self) -> Path:
        return self._path_of(self.output.path)

    @property
    def input_location(self) -> str:
        """The input as io reads it: a local path or a URL."""
        return self.resolve_location(self.input.path)

    @property
    def output_location(self) -> str:
        """The output as io writes it: a local path, an object-store or database URL."""
        return self.resolve_location(self.output.path)

    @property
    def output_display(self) -> str:
        """The output for people: the path or the URL without its password (and the table)."""
        shown = display_url(self.output_location)
        return f"{shown} (table {self.output.table})" if self.output.table else shown

    @property
    def errors_path(self) -> Path:
        if self.output.errors_path:
            return self.resolve_path(self.output.errors_path)
        if location_kind(self.output.path) != "local":
            # a table or an object has no folder of its own: beside the spec file
            return self.resolve_path(f"{self.name}.errors.jsonl")
        out = self.output_path
        return out.with_name(f"{out.name.rsplit('.', 1)[0]}.errors.jsonl")

    @property
    def input_format(self) -> str:
        return self.input.format or default_format(self.input.path) or "jsonl"

    @property
    def output_format(self) -> str:
        """The output's format; ``table`` for a database table."""
        if self.output.table is not None:
            return "table"
        return self.output.format or default_format(self.output.path) or "jsonl"

    def referenced_files(self) -> list[Path]:
        """Files whose change means the job must re-run: the input and prompt files."""
        files = [self.input_path]
        files += [self.resolve_path(p) for p in (self.system_prompt_file, self.user_prompt_template_file) if p]
        return files

    def request_fields(self) -> dict[str, Any]:
        """The operation fields as SDK keyword arguments (prompt files read in)."""
        fields: dict[str, Any] = {}
        for name in OPERATION_FIELDS[self.operation_kind]:
            value = getattr(self, name)
            if name.endswith("_file"):
                if value is not None:
                    fields[name.removesuffix("_file")] = self._prompts[name]
                continue
            if isinstance(value, list):
                value = [v.model_dump(exclude_none=True) if isinstance(v, BaseModel) else v for v in value]
            elif isinstance(value, BaseModel):
                value = value.model_dump(exclude_none=True)
            if value is not None and not (name == "include_context" and value is False):
                fields[name] = value
        return fields

    @property
    def spec_hash(self) -> str:
        """A hash of everything that changes results: operation, fields, model, profile.

        Output format, paths, execution settings and descriptions are left out, so
        changing them never re-runs paid work.
        """
        return content_hash(
            self.operation_kind,
            self.request_fields(),
            self.model,
            self.resolved_profile,
            self.input.content_field,
        )
