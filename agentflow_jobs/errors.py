"""The one exception tree of agentflow-jobs.

Library code raises these; only the CLI catches broadly, prints ``str(error)`` and exits
with ``error.exit_code``. Errors carry their data as attributes; ``to_dict()`` feeds
``--json`` output and HTTP error bodies. Per-item errors (``OperationInputError``,
``InvalidOutput``, ``RefusalError``, a non-fatal ``ProviderError``) end as failed rows.

    AgentFlowError                    exit 1
    ├── UsageError                    exit 2   bad command-line use
    ├── SpecError                     exit 3   one or more problems in job specs
    ├── UnsupportedYAMLError          exit 3   an anchor, alias or nesting job specs refuse (located)
    ├── TemplateError                 exit 1   a prompt template that is not plain {field} placeholders
    ├── ConfigError                   exit 2   missing or broken profile / setting
    │   └── InterpolationError        exit 2   a ${...} reference cannot be expanded
    ├── InputError                    exit 1   a data file cannot be read (names file and line)
    │   └── NotRegularFileError       exit 1   a directory, pipe or device where a file is wanted
    ├── OutputError                   exit 1   an output file cannot be written (names the file)
    ├── JobFailedError                exit 1   a job ran but failed (failure rate, ...)
    ├── StateError                    exit 5   state file problem
    │   └── LockedError               exit 5   another process holds the state lock
    ├── OperationInputError           exit 1   one item cannot be sent (code: missing_field, ...)
    ├── InvalidOutput                 exit 1   a model reply breaks the operation's contract
    ├── RefusalError                  exit 1   the model declined to answer an item
    ├── ProviderError                 exit 4   a model provider failed (code: rate_limited, ...)
    │   └── UnsupportedFeatureError   exit 4   the model cannot take json_schema, logprobs, ...
    ├── APIError                      exit 4   talking to an AgentFlow service
    │   ├── APIConnectionError        exit 4   service unreachable
    │   ├── APITimeoutError           exit 4   request or wait timed out
    │   └── APIStatusError            exit 4   service answered with an error status
    │       ├── BadRequestError       400
    │       ├── AuthenticationError   401
    │       ├── PermissionDeniedError 403
    │       ├── NotFoundError         404
    │       ├── ConflictError         409
    │       ├── PayloadTooLargeError  413
    │       ├── UnprocessableEntityError 422
    │       │   └── InvalidRequest    422      a request that cannot run (broken template, schema)
    │       ├── RateLimitError        429
    │       └── InternalServerError   5xx
    └── Interrupted                   exit 130 Ctrl-C / SIGTERM
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "APIConnectionError", "APIError", "APIStatusError", "APITimeoutError", "AgentFlowError",
    "AuthenticationError", "BadRequestError", "ConfigError", "ConflictError", "InputError",
    "InternalServerError", "InterpolationError", "Interrupted", "InvalidOutput", "InvalidRequest",
    "JobFailedError", "LockedError", "NotFoundError", "NotRegularFileError", "OperationInputError",
    "OutputError", "PayloadTooLargeError", "PermissionDeniedError", "Problem", "ProviderError",
    "RateLimitError", "RefusalError", "SpecError", "StateError", "TemplateError",
    "UnprocessableEntityError", "UnsupportedFeatureError", "UnsupportedYAMLError", "UsageError",
    "status_error",
]


class AgentFlowError(Exception):
    """Root of every error agentflow-jobs raises on purpose."""

    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class UsageError(AgentFlowError):
    """The command line asks for something impossible."""

    exit_code = 2
    code = "usage"


class ConfigError(AgentFlowError):
    """A profile or setting is missing or broken; names the file and key."""

    exit_code = 2
    code = "config"

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ":".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.key = key


@dataclass(frozen=True)
class Problem:
    """One located problem in a spec: ``path:line:col: message``."""

    path: str
    line: int
    column: int
    message: str
    hint: str | None = None
    job: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.column}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InterpolationError(ConfigError):
    """A ``${...}`` reference cannot be expanded; ``offset`` is where it starts."""

    def __init__(self, message: str, *, variable: str | None, offset: int) -> None:
        super().__init__(message)
        self.variable = variable
        self.offset = offset


class SpecError(AgentFlowError):
    """One or more problems in job specs, every one located."""

    exit_code = 3
    code = "invalid_spec"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line, p.column))
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in job specs"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message.splitlines()[0],
            "problems": [p.to_dict() for p in self.problems],
        }


class UnsupportedYAMLError(AgentFlowError):
    """A YAML feature job specs refuse (anchor, alias, deep nesting); ``mark`` locates it."""

    exit_code = 3
    code = "invalid_spec"

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.mark = mark


class TemplateError(AgentFlowError):
    """A template that is not plain ``{field}`` placeholders; ``offset`` locates it."""

    code = "invalid_template"

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class InputError(AgentFlowError):
    """A data file cannot be read; names the file and, where known, the line."""

    code = "invalid_input"

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}" if path and line else (path or "")
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line


class NotRegularFileError(InputError):
    """A path naming a directory, pipe, device or socket where a file's text is wanted."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"not a regular file ({kind})")
        self.kind = kind


class OutputError(AgentFlowError):
    """An output or errors file cannot be written; names the file and the reason."""

    code = "output_error"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class JobFailedError(AgentFlowError):
    """A job ran but failed as a whole (e.g. its failure rate was too high)."""

    code = "job_failed"

    def __init__(self, message: str, *, job: str | None = None) -> None:
        super().__init__(message)
        self.job = job


class StateError(AgentFlowError):
    """The state file is unusable (corrupt, newer schema, unwritable)."""

    exit_code = 5
    code = "state"


class LockedError(StateError):
    """Another process holds the state lock."""

    code = "locked"

    def __init__(self, message: str, *, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class OperationInputError(AgentFlowError):
    """One item cannot be sent (``missing_field``, ``empty_content``, ``item_too_large``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidOutput(AgentFlowError):
    """The model's reply does not satisfy the operation's contract."""

    code = "invalid_output"


class RefusalError(AgentFlowError):
    """The model declined to answer (its refusal text is the message)."""

    code = "refused"


class ProviderError(AgentFlowError):
    """A model provider call failed; ``code`` is the per-item error code."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        code: str = "provider_error",
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code
        self.retry_after = retry_after
        self.retryable = retryable
        self.attempts = attempts  # HTTP requests this failure took (usage counts them)


class UnsupportedFeatureError(ProviderError):
    """The model's server cannot take these ``features`` of a request; resend without them."""

    def __init__(self, features: frozenset[str], *, status_code: int | None = None) -> None:
        super().__init__(", ".join(sorted(features)), code="bad_request", status_code=status_code)
        self.features = features


class APIError(AgentFlowError):
    """A call to an AgentFlow service failed."""

    exit_code = 4
    code = "api_error"


class APIConnectionError(APIError):
    """The AgentFlow service could not be reached."""

    code = "unreachable"


class APITimeoutError(APIError):
    """A request to, or a wait on, the AgentFlow service timed out."""

    code = "timeout"


class APIStatusError(APIError):
    """The service answered with an error status; keeps status, body and request id."""

    code = "api_status"
    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.request_id = request_id

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "status_code": self.status_code}


class BadRequestError(APIStatusError):
    """400: the request was malformed."""

    code = "bad_request"


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""

    code = "unauthorized"


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""

    code = "forbidden"


class NotFoundError(APIStatusError):
    """404: no such object (or not yours)."""

    code = "not_found"


class ConflictError(APIStatusError):
    """409: e.g. an idempotency key reused with a different body."""

    code = "conflict"


class PayloadTooLargeError(APIStatusError):
    """413: the request body or upload is over the limit."""

    code = "payload_too_large"


class UnprocessableEntityError(APIStatusError):
    """422: the request failed validation."""

    code = "validation_error"


class InvalidRequest(UnprocessableEntityError):
    """422: the request as a whole cannot run (broken template, schema or fields)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=422)


class RateLimitError(APIStatusError):
    """429: too many requests."""

    code = "rate_limited"


class InternalServerError(APIStatusError):
    """5xx: the service failed."""

    code = "server_error"


class Interrupted(AgentFlowError):
    """The user interrupted the command (Ctrl-C / SIGTERM)."""

    exit_code = 130
    code = "interrupted"


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(
    status_code: int, message: str, *, body: Any = None, request_id: str | None = None
) -> APIStatusError:
    """Map an HTTP error status to its exception class, in one place."""
    cls = _STATUS_ERRORS.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    return cls(message, status_code=status_code, body=body, request_id=request_id)
