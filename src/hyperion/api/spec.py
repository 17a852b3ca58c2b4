"""User-facing documents: YAML files (``hyperion submit``/``apply``) or JSON bodies (the REST API)
in, validated pydantic models out, and errors that say what was wrong, where, and what to do.

Glossary:
- *document*: one flat mapping with a ``kind:`` (``Job``, ``Team``, ``Queue``) and an optional
  ``apiVersion: hyperion/v1``; a YAML file may hold several, separated by ``---``. ``KINDS`` maps
  each kind to its model: a new kind is one more class decorated with ``@_kind``.
- *path*: where a field sits in its document: ``resources.memory``, ``command[1]``, or
  ``labels["app.kubernetes.io/name"]`` for keys that are not plain words (``join_path``).
- *quantity*: a number with an optional unit: sizes (``16Gi``), CPUs (``500m`` is half a core),
  durations (``90s``, ``1h30m``). A validated document holds plain numbers: bytes, millicores,
  seconds.

- *quota*: amounts of a queue's resource keys, written as ``gpus: {A100: 8}``, ``cpus: 64``,
  ``memory: 256Gi``; ``QuotaDoc.amounts`` turns them into the keys of ``model.queue``
  (``gpus/A100``, ``cpus`` in millicores, ``memory`` in bytes).

These are wire types; ``JobDoc.to_spec`` and ``QueueDoc.to_spec`` convert them to the domain model
(``model.JobSpec``, ``model.queue.QueueSpec``).
The module is longer than most because the schema, its quantity parsers, the translation of
pydantic's errors into ``FieldError`` and the line-tracking YAML loader change together; only the
names in ``__all__`` are public.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from hyperion.api.yaml_lines import LineLoader
from hyperion.model import Framework, JobSpec, Priority, Resources
from hyperion.model.autoscale import NodePoolSpec
from hyperion.model.cost import BudgetSpec, Rates
from hyperion.model.federation import WEIGHT_NAMES, ClusterView, FedPrefs
from hyperion.model.quantity import size_in_bytes
from hyperion.model.queue import QueueSpec, gpu_key

__all__ = [
    "API_VERSION", "KINDS", "BudgetDoc", "ClusterDoc", "NodePoolDoc", "IdlePolicyDoc", "PricingDoc",
    "Count", "CpuAmount", "DataDoc", "PlacementDoc", "WeightsDoc", "Document", "DocumentModel", "FieldError", "JobDoc",
    "Name", "PositiveSeconds", "Seconds", "Size", "StrictModel", "Text", "QueueDoc", "QuotaDoc", "ResourcesDoc",
    "SpecError", "TeamDoc", "join_path", "load_documents", "parse_bytes", "parse_duration", "parse_job",
    "parse_millicores", "parse_time", "split_path", "validate_document",
]

API_VERSION = "hyperion/v1"
HINT = "fix the fields above and submit again"


# ---- errors ---------------------------------------------------------------------------------
class FieldError(NamedTuple):
    """One problem: where (``path``, 1-based ``line``, 0-based ``doc`` in its file) and what."""

    path: str  # "" for the document (or the file) as a whole
    line: int | None  # None where the input had no lines (JSON)
    message: str
    doc: int = 0


class SpecError(ValueError):
    """Documents that failed validation; ``str()`` is the message to show a person."""

    def __init__(self, errors: list[FieldError], source: str = "<input>") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__("\n".join([*map(self._line, self.errors), HINT]))

    def _line(self, e: FieldError) -> str:
        where = self.source if e.line is None else f"{self.source}:{e.line}"
        if e.line is None and e.doc:
            where += f" (document {e.doc + 1})"
        return f"{where}: {e.path}: {e.message}" if e.path else f"{where}: {e.message}"

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[FieldError], str]]:
        return type(self), (self.errors, self.source)

    def to_detail(self) -> list[dict[str, Any]]:
        """The REST API's 422 body: ``[{"loc": [...], "line": int | None, "msg": str}]``."""
        return [{"loc": split_path(e.path), "line": e.line, "msg": e.message} for e in self.errors]


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PART = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def join_path(parts: typing.Iterable[str | int]) -> str:
    """``("resources", "memory")`` -> ``resources.memory``; ``("command", 1)`` -> ``command[1]``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _WORD.fullmatch(p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(p)}]"
    return out


def split_path(path: str) -> list[str | int]:
    """The inverse of ``join_path``."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PART.match(path, pos)
        if m is None:  # not written by join_path: keep the rest whole
            parts.append(path[pos:])
            break
        word, index, quoted = m.groups()
        parts.append(word if word is not None else int(index) if index is not None else json.loads(quoted))
        pos = m.end()
    return parts


def _show(v: object) -> str:
    """A value as the user wrote it, more or less (YAML spelling), for messages."""
    if isinstance(v, _Hidden):
        return "a value that is not shown (secret)"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v if len(v) <= 60 else v[:57] + "...")
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    return {dict: "a mapping", list: "a list"}.get(type(v), f"a {type(v).__name__}")


class _Hidden:
    """Stands in for a secret's value in messages (its length may be told, never its text)."""

    def __init__(self, v: object) -> None:
        self.n = len(v) if isinstance(v, str) else 0

    def __len__(self) -> int:
        return self.n


# ---- quantities -----------------------------------------------------------------------------
def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_bytes(v: object) -> int:
    """Bytes from an integer or a string with a unit: ``16Gi`` (powers of 1024), ``16G`` (of 1000)."""
    if isinstance(v, str) and (size := size_in_bytes(v)) is not None:
        return size
    if _number(v) and float(v).is_integer():  # type: ignore[arg-type]
        return int(v)  # type: ignore[call-overload]
    raise ValueError("expected bytes or a size with a unit (Ki Mi Gi Ti: powers of 1024; K M G T: "
                     f'powers of 1000), e.g. "16Gi"; got {_show(v)}')


_CPUS = re.compile(r"(\d+(?:\.\d+)?)(m?)")


def parse_millicores(v: object) -> int:
    """Millicores from a number of CPUs (``2``, ``0.5``) or a millicore string (``"500m"``)."""
    amount = None
    if isinstance(v, str) and (m := _CPUS.fullmatch(v.strip())):
        amount = Decimal(m.group(1)) * (1 if m.group(2) else 1000)
    elif _number(v):
        amount = Decimal(repr(v)) * 1000
    if amount is None:
        raise ValueError(f'expected a number of CPUs (2, 0.5) or millicores ("500m"); got {_show(v)}')
    if amount != amount.to_integral_value():
        raise ValueError(f"{_show(v)} is finer than a millicore (0.001 CPU)")
    return int(amount)


_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": Decimal("0.001"), "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v: object) -> float:
    """Seconds from a number or a duration string: ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``."""
    if _number(v):
        return float(v)  # type: ignore[arg-type]
    if isinstance(v, str):
        s = v.strip()
        if re.fullmatch(r"\d+(?:\.\d+)?", s):
            return float(s)
        if _DURATION.fullmatch(s):
            return float(sum(Decimal(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(s)))
    raise ValueError(f'expected seconds (90) or a duration such as "90s", "30m", "2h", "1h30m"; got {_show(v)}')


def parse_time(v: object) -> float:
    """Seconds since the epoch from an ISO-8601 time with a timezone, or from a number."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.strip())
        except ValueError:
            raise ValueError('expected an ISO-8601 time with a timezone ("2025-06-01T18:00:00Z") or '
                             f"seconds since the epoch; got {_show(v)}") from None
    if isinstance(v, datetime):
        if v.utcoffset() is None:
            raise ValueError(f"{v.isoformat()} has no timezone; add one, e.g. {v.isoformat()}Z or {v.isoformat()}+02:00")
        return v.timestamp()
    if isinstance(v, date):
        raise ValueError(  # noqa: TRY004 (pydantic reports ValueError, not TypeError, as a field error)
            f"{v.isoformat()} is a date; give a time with a timezone, e.g. {v.isoformat()}T18:00:00Z")
    if _number(v) and v >= 0:  # type: ignore[operator]
        return float(v)  # type: ignore[arg-type]
    raise ValueError(f'expected an ISO-8601 time with a timezone ("2025-06-01T18:00:00Z") or seconds since the epoch; got {_show(v)}')


N = TypeVar("N", int, float)
I64 = 2**63 - 1  # the largest integer the store's JSON (orjson) holds


def _quantity(parse: Callable[[object], N], *, gt: int | None = None, ge: int | None = None) -> BeforeValidator:
    def check(v: object) -> N:
        q = parse(v)
        if gt is not None and not q > gt:
            raise ValueError(f"must be more than {gt}; got {_show(v)}")
        if ge is not None and not q >= ge:
            raise ValueError(f"must be at least {ge}; got {_show(v)}")
        if q > I64:
            raise ValueError(f"is too large; got {_show(v)}")
        return q
    return BeforeValidator(check)


# ---- field types ----------------------------------------------------------------------------
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?")


def _check_name(v: str) -> str:
    if _NAME.fullmatch(v):
        return v
    if len(v) > 63:
        raise ValueError(f"must be at most 63 characters; this one has {len(v)}")
    fixed = re.sub(r"[^a-z0-9._-]+", "-", v.lower()).strip("-._")[:63]
    hint = f' (e.g. "{fixed}")' if fixed and _NAME.fullmatch(fixed) else ""
    raise ValueError("must be lowercase letters, digits, '-', '.' or '_', starting and ending with a letter "
                     f"or digit{hint}; got {_show(v)}")


def _check_env_name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"{_show(v)} is not an environment variable name: use letters, digits and '_', "
                         "not starting with a digit")
    return v


def _command(v: object) -> object:
    if isinstance(v, str):
        if not v.strip():
            raise ValueError("must not be empty")
        return [v]  # one string: the agent runs it through the shell
    if not isinstance(v, list):
        raise ValueError(f"expected a string (run by the shell) or a list of strings; got {_show(v)}")  # noqa: TRY004
    return v


E = TypeVar("E", Framework, Priority)


def _choice(enum: type[E], label: Callable[[E], str]) -> BeforeValidator:
    by_label = {label(m): m for m in enum}

    def check(v: object) -> E:
        if isinstance(v, enum):
            return v
        if isinstance(v, str) and v in by_label:
            return by_label[v]
        raise ValueError(f"must be one of {', '.join(by_label)}; got {_show(v)}")
    return BeforeValidator(check)


def _schema(description: str, *types: str) -> WithJsonSchema:
    """What the REST API's JSON schema says a quantity accepts (the document's form, not the model's)."""
    return WithJsonSchema({"anyOf": [{"type": t} for t in types], "description": description})


Name = Annotated[str, AfterValidator(_check_name)]
Text = Annotated[str, Field(min_length=1)]
_BYTES = _schema('bytes, or a size with a unit: "16Gi" (Ki Mi Gi Ti: powers of 1024; K M G T: of 1000)',
                 "integer", "string")
Bytes = Annotated[int, _quantity(parse_bytes, gt=0), _BYTES]
Size = Annotated[int, _quantity(parse_bytes, ge=0), _BYTES]
# Validated CPUs are millicores; dumped as "500m" so a dumped document validates to the same value.
_MILLICORES_JSON = PlainSerializer(lambda m: f"{m}m", when_used="json")
_CPUS_SCHEMA = _schema('CPUs (2, 0.5) or millicores ("500m")', "number", "string")
Millicores = Annotated[int, _quantity(parse_millicores, gt=0), _MILLICORES_JSON, _CPUS_SCHEMA]
CpuAmount = Annotated[int, _quantity(parse_millicores, ge=0), _MILLICORES_JSON, _CPUS_SCHEMA]  # a quota may be 0
Count = Annotated[int, Field(ge=0, le=I64)]
_SECONDS_SCHEMA = _schema('seconds, or a duration: "90s", "30m", "2h", "1h30m"', "number", "string")
Seconds = Annotated[float, _quantity(parse_duration, ge=0), _SECONDS_SCHEMA]
PositiveSeconds = Annotated[float, _quantity(parse_duration, gt=0), _SECONDS_SCHEMA]
EpochSeconds = Annotated[float, BeforeValidator(parse_time),
                         _schema('ISO-8601 time with a timezone ("2025-06-01T18:00:00Z") or seconds since the epoch',
                                 "string", "number")]
Command = Annotated[list[str], BeforeValidator(_command), Field(min_length=1)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
FrameworkName = Annotated[Framework, _choice(Framework, lambda f: f.value),
                          PlainSerializer(lambda f: f.value, when_used="json")]
PriorityName = Annotated[Priority, _choice(Priority, lambda p: p.label),
                         PlainSerializer(lambda p: p.label, when_used="json")]


# ---- documents ------------------------------------------------------------------------------
class _Strict(BaseModel):
    # strict: no silent coercion ("2" is not 2, true is not 1, 0.5 is not an int)
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Document(_Strict):
    api_version: Literal["hyperion/v1"] = Field(API_VERSION, alias="apiVersion")

    @classmethod
    def presence_problems(cls, data: dict) -> list[tuple[tuple[str, ...], str]]:
        """Cross-field checks that need only the raw mapping, so they are reported together with
        the errors of single fields (a model validator runs only once every field is valid)."""
        return []


KINDS: dict[str, type[_Document]] = {}

D = TypeVar("D", bound=type[_Document])


def _kind(cls: D) -> D:
    """Register a document class under its ``kind`` (the default of its ``kind`` field)."""
    KINDS[cls.model_fields["kind"].default] = cls
    return cls


class ResourcesDoc(_Strict):
    """Resources of one replica."""

    gpus: int = Field(0, ge=0, le=I64)
    gpu_type: Text | None = None
    cpus: Millicores = Field("1", validate_default=True)  # millicores once validated: 1000
    memory: Bytes = Field("1Gi", validate_default=True)  # bytes once validated

    @property
    def cpus_milli(self) -> int:
        return self.cpus


class DataDoc(_Strict):
    location: Text
    size: Size | None = None


class IdlePolicyDoc(_Strict):
    """Stop (with a checkpoint) a job whose GPUs all stay below ``gpu_utilization`` percent for
    ``window``: they are reclaimed for others. On a job or, as the default of its jobs, on a team."""

    gpu_utilization: float = Field(5.0, ge=0, le=100, allow_inf_nan=False)  # percent
    window: PositiveSeconds = 1800.0


Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WeightsDoc(_Strict):
    """Federation score weights (``core.federation.profiles``); a weight left out comes from the
    team's, else the profile's. Only these four names exist: an unknown one is an error."""

    cost: Weight | None = None
    carbon: Weight | None = None
    egress: Weight | None = None
    latency: Weight | None = None

    def pairs(self) -> tuple[tuple[str, float], ...]:
        return tuple(sorted((k, float(v)) for k in WEIGHT_NAMES if (v := getattr(self, k)) is not None))


class PlacementDoc(_Strict):
    """A job's knobs for the federation (docs/federation.md): score weights, where it may run
    (regions, providers, the regions or countries its data may be processed in), whether it
    tolerates interruption (so may run on spot) and how often it checkpoints, where its callers are."""

    weights: WeightsDoc | None = None
    regions: list[Text] = []
    providers: list[Text] = []
    residency: list[Text] = []
    spot: bool = False
    checkpoint_interval: PositiveSeconds | None = None
    caller_region: Text | None = None

    def to_prefs(self) -> FedPrefs:
        return FedPrefs(self.weights.pairs() if self.weights else (), tuple(self.regions), tuple(self.providers),
                        tuple(self.residency), self.spot, self.checkpoint_interval, self.caller_region)


@_kind
class JobDoc(_Document):
    kind: Literal["Job"] = "Job"
    name: Name
    team: Name | None = None  # the service fills it from the caller's token
    user: Text | None = None
    framework: FrameworkName = Framework.COMMAND
    priority: PriorityName = Priority.BATCH
    priority_value: int = Field(0, ge=-I64, le=I64)
    resources: ResourcesDoc = ResourcesDoc()
    replicas: int = Field(1, ge=1, le=I64)
    min_available: int | None = Field(None, ge=1, le=I64)  # an int once validated: replicas when not given
    queue: Name = "default"
    command: Command | None = None  # a string becomes a 1-element list, run through the shell
    image: Text | None = None
    env: dict[EnvName, str] = {}
    working_dir: Text | None = None
    checkpoint_dir: Text | None = None
    deadline: EpochSeconds | None = None
    data: DataDoc | None = None
    max_price_per_hour: float | None = Field(None, ge=0, allow_inf_nan=False)
    labels: dict[Text, str] = {}
    max_retries: int = Field(0, ge=0, le=100)
    runtime_estimate: PositiveSeconds | None = None
    grace_period: Seconds = 10.0
    idle_policy: IdlePolicyDoc | None = None  # else the team's
    placement: PlacementDoc | None = None  # its knobs for the federation (when members exist)

    @model_validator(mode="after")
    def _cross_check(self) -> JobDoc:
        if self.min_available is None:
            object.__setattr__(self, "min_available", self.replicas)
        problems = self.presence_problems({"command": self.command, "image": self.image})
        if self.min_available > self.replicas:
            problems.append((("min_available",), f"must be at most replicas ({self.replicas}); got {self.min_available}"))
        if problems:
            raise _Problems(problems)
        return self

    @classmethod
    def presence_problems(cls, data: dict) -> list[tuple[tuple[str, ...], str]]:
        if data.get("command") is None and data.get("image") is None:
            return [(("command",), "required unless `image` is given: a string (run by the shell) or a list of strings")]
        return []

    def to_spec(self, team: str) -> JobSpec:
        """The domain model; ``team`` is used when the document names none."""
        r = self.resources
        return JobSpec(
            name=self.name, team=self.team or team, user=self.user or "", framework=self.framework,
            priority=self.priority, priority_value=self.priority_value,
            resources=Resources(r.gpus, r.cpus, r.memory), gpu_type=r.gpu_type, replicas=self.replicas,
            min_available=self.min_available or self.replicas, queue=self.queue,
            command=tuple(self.command or ()), image=self.image, env=tuple(sorted(self.env.items())),
            working_dir=self.working_dir, checkpoint_dir=self.checkpoint_dir, deadline=self.deadline,
            data_location=self.data.location if self.data else None,
            data_size=self.data.size if self.data else None, max_price_per_hour=self.max_price_per_hour,
            labels=tuple(sorted(self.labels.items())), max_retries=self.max_retries,
            runtime_estimate_s=self.runtime_estimate, grace_period_s=self.grace_period,
            idle_gpu_utilization=self.idle_policy.gpu_utilization if self.idle_policy else None,
            idle_window_s=self.idle_policy.window if self.idle_policy else None,
            federation=self.placement.to_prefs() if self.placement else None,
        )


@_kind
class TeamDoc(_Document):
    kind: Literal["Team"] = "Team"
    name: Name
    token: str | None = Field(None, min_length=16, repr=False)  # None: the service generates one
    idle_policy: IdlePolicyDoc | None = None  # for the team's jobs that set none
    placement_weights: WeightsDoc | None = None  # federation score weights for the team's jobs that set none


class QuotaDoc(_Strict):
    """Amounts of a queue's resources; a resource left out is not limited by this mapping."""

    gpus: dict[Text, Count] = {}  # GPU type (as nodes report it, e.g. A100) -> GPUs
    cpus: CpuAmount | None = None  # millicores once validated
    memory: Size | None = None  # bytes once validated

    def amounts(self) -> tuple[tuple[str, int], ...]:
        """Sorted (resource key, amount) pairs, as ``QueueSpec`` holds them."""
        out = [(gpu_key(t), n) for t, n in self.gpus.items()]
        out += [(k, v) for k, v in (("cpus", self.cpus), ("memory", self.memory)) if v is not None]
        return tuple(sorted(out))

    def paths(self) -> dict[str, tuple[str | int, ...]]:
        """Resource key -> the path of its field within this mapping."""
        out: dict[str, tuple[str | int, ...]] = {gpu_key(t): ("gpus", t) for t in self.gpus}
        out.update({k: (k,) for k in ("cpus", "memory") if getattr(self, k) is not None})
        return out


@_kind
class QueueDoc(_Document):
    kind: Literal["Queue"] = "Queue"
    name: Name
    cohort: Name | None = None
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    quota: QuotaDoc = QuotaDoc()  # the nominal quota
    borrowing_limit: QuotaDoc | None = None
    lending_limit: QuotaDoc | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> QueueDoc:
        problems = self.presence_problems({"cohort": self.cohort, "borrowing_limit": self.borrowing_limit,
                                           "lending_limit": self.lending_limit})
        nominal = dict(self.quota.amounts())
        for field in ("borrowing_limit", "lending_limit"):
            limit = getattr(self, field) or QuotaDoc()
            amounts = dict(limit.amounts())
            for key, path in limit.paths().items():
                amount = amounts[key]
                quota_path = join_path(("quota", *path))
                if key not in nominal:
                    problems.append(((field, *path), f"{quota_path} is not set: a limit applies to a resource the queue "
                                                     f"has a quota of; add {quota_path} (0 for none of its own) or remove this"))
                elif field == "lending_limit" and amount > nominal[key]:
                    problems.append(((field, *path), f"must be at most {quota_path} ({_amount(key, nominal[key])}): a queue "
                                                     f"lends only its own quota; got {_amount(key, amount)}"))
        if problems:
            raise _Problems(problems)
        return self

    @classmethod
    def presence_problems(cls, data: dict) -> list[tuple[tuple[str, ...], str]]:
        if data.get("cohort") is not None:
            return []
        return [((field,), "needs a `cohort`: a queue borrows from and lends to the other queues of its cohort; "
                           "add `cohort: <name>` or remove this")
                for field in ("borrowing_limit", "lending_limit") if data.get(field) is not None]

    def to_spec(self) -> QueueSpec:
        return QueueSpec(
            name=self.name, cohort=self.cohort, weight=self.weight, nominal=self.quota.amounts(),
            borrowing_limit=self.borrowing_limit.amounts() if self.borrowing_limit else (),
            lending_limit=self.lending_limit.amounts() if self.lending_limit else (),
        )


Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]


@_kind
class BudgetDoc(_Document):
    """A team's allowance per period, in USD and/or GPU-hours (at least one)."""

    kind: Literal["Budget"] = "Budget"
    name: Name
    team: Name
    period: Literal["day", "week", "month"] = "month"
    usd: Money | None = None
    gpu_hours: Money | None = None
    action: Literal["hold", "reject"] = "hold"  # what admission does with a job that does not fit what is left

    @model_validator(mode="after")
    def _cross_check(self) -> BudgetDoc:
        problems = self.presence_problems({"usd": self.usd, "gpu_hours": self.gpu_hours})
        if problems:
            raise _Problems(problems)
        return self

    @classmethod
    def presence_problems(cls, data: dict) -> list[tuple[tuple[str, ...], str]]:
        if data.get("usd") is None and data.get("gpu_hours") is None:
            return [(("usd",), "a budget needs `usd:` and/or `gpu_hours:` (the allowance per period)")]
        return []

    def to_spec(self) -> BudgetSpec:
        return BudgetSpec(self.name, self.team, self.period, self.usd, self.gpu_hours, self.action)


@_kind
class PricingDoc(_Document):
    """The cluster's rates for nodes without a price of their own (see ``model.cost.Rates``); one
    per cluster, named ``default``. ``"*"`` in a mapping is the default for types not listed."""

    kind: Literal["Pricing"] = "Pricing"
    name: Literal["default"] = "default"
    gpu_hour_usd: dict[Text, Money] = {"*": 1.0}     # on-prem amortised USD per GPU-hour, by GPU type
    cpu_hour_usd: Money = 0.0                        # USD per core-hour for jobs without GPUs
    gpu_watts: dict[Text, Money] = {"*": 300.0}      # power of a busy GPU when telemetry has none
    busy_fraction: float = Field(1.0, ge=0, le=1, allow_inf_nan=False)
    pue: float = Field(1.0, ge=1, le=5, allow_inf_nan=False)
    carbon_intensity: Money = 400.0                  # gCO2e per kWh of the grid

    def to_rates(self) -> Rates:
        return Rates(dict(self.gpu_hour_usd), self.cpu_hour_usd, dict(self.gpu_watts), self.busy_fraction, self.pue,
                     self.carbon_intensity)


CLUSTER_PROVIDERS = ("onprem", "aws", "gcp", "azure", "ray", "slurm", "kubernetes")
CATALOG_PROVIDERS = ("aws", "gcp", "azure")  # priced from the shipped catalog (``providers.catalog``)
# USD per GB leaving the provider to the internet (list prices of the first tier, 2024)
EGRESS_USD_PER_GB = {"aws": 0.09, "gcp": 0.12, "azure": 0.087}
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


@_kind
class ClusterDoc(_Document):
    """A member of the federation: an on-prem cluster or a cloud region that can run jobs whole.

    ``gpus`` is its capacity (on-prem: installed; cloud: the GPUs it may launch, e.g. the account's
    quota there). Prices are USD per GPU-hour: ``gpu_hour_usd`` (required for on-prem, the
    amortised cost, so on-prem and cloud compete in one currency), else, for aws/gcp/azure, the
    shipped catalog's cheapest offer of that type in the region (``spot_gpu_hour_usd`` likewise).
    ``grid_zone``, ``country`` and ``location`` default to the shipped region table
    (``providers.regions``); ``carbon_intensity`` is the static gCO2/kWh used where no hourly series
    of the grid zone is given. ``"*"`` in a price or watts mapping is the default for other types.
    ``burst_after`` makes it a queueing member (an on-prem cluster): jobs routed to it wait in its
    queue when its GPUs are taken, and one whose expected wait there is longer than this is burst
    to the best other member that has nodes or a node pool, within its team's budget.
    """

    kind: Literal["Cluster"] = "Cluster"
    name: Name
    provider: Literal["onprem", "aws", "gcp", "azure", "ray", "slurm", "kubernetes"]
    region: Text
    zone: str = ""
    grid_zone: str | None = None
    country: str | None = None
    location: Annotated[tuple[Latitude, Longitude], Field(strict=False)] | None = None  # [latitude, longitude]
    gpus: dict[Text, Count]
    gpu_hour_usd: dict[Text, Money] = {}
    spot_gpu_hour_usd: dict[Text, Money] = {}
    spot_interruptions_per_h: Money | None = None
    carbon_intensity: Money | None = None
    gpu_watts: dict[Text, Money] = {}
    pue: float = Field(1.1, ge=1, le=5, allow_inf_nan=False)
    egress_usd_per_gb: Money | None = None
    wan_gbps: float = Field(10.0, gt=0, allow_inf_nan=False)
    data: list[Text] = []
    latency_ms: dict[Text, Money] = {}
    accepting: bool = True
    burst_after: Seconds | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> ClusterDoc:
        problems = []
        if not self.gpus:
            problems.append((("gpus",), "give the cluster's capacity as GPUs by type, e.g. `gpus: {A100: 64}`"))
        for gpu_type in self.gpus:
            if self.price(gpu_type) is None:
                if self.provider in CATALOG_PROVIDERS:
                    what = (f"the shipped catalog has no {gpu_type} offer in {self.provider} {self.region}; "
                            f"give `gpu_hour_usd: {{{gpu_type}: PRICE}}` or list a type the region offers")
                else:
                    what = (f"{self.provider} clusters are not in the price catalog: give `gpu_hour_usd: {{{gpu_type}: PRICE}}` "
                            "(USD per GPU-hour; on-prem: amortised hardware, power and staff)")
                problems.append((("gpus", gpu_type), what))
        if problems:
            raise _Problems(problems)
        return self

    def _lookup(self, mapping: dict[str, float], gpu_type: str) -> float | None:
        return mapping.get(gpu_type, mapping.get("*"))

    def price(self, gpu_type: str, spot: bool = False) -> float | None:
        """USD per GPU-hour on demand (or on spot); None: not offered."""
        own = self._lookup(self.spot_gpu_hour_usd if spot else self.gpu_hour_usd, gpu_type)
        if own is not None or self.provider not in CATALOG_PROVIDERS:
            return own
        from hyperion.providers.catalog import shipped

        return shipped().gpu_hour_price(self.provider, self.region, gpu_type, spot=spot)

    def to_view(self, free_gpus: dict[str, int] | None = None, carbon: tuple[float, ...] = ()) -> ClusterView:
        """The federation's view of this cluster: ``free_gpus`` (default: its whole capacity) and the
        hourly carbon series from the current hour (default: its static intensity, or unknown)."""
        from hyperion.providers.regions import region

        table = region(self.provider, self.region)
        on_demand = {t: p for t in self.gpus if (p := self.price(t)) is not None}
        spot = {t: p for t in self.gpus if (p := self.price(t, spot=True)) is not None}
        if not carbon and self.carbon_intensity is not None:
            carbon = (self.carbon_intensity,)
        return ClusterView(
            name=self.name, provider=self.provider, region=self.region, zone=self.zone,
            free_gpus=dict(self.gpus if free_gpus is None else free_gpus), on_demand_usd=on_demand, spot_usd=spot,
            spot_interruptions_per_h=self.spot_interruptions_per_h,
            grid_zone=self.grid_zone if self.grid_zone is not None else (table.grid_zone if table else ""),
            country=self.country if self.country is not None else (table.country if table else ""),
            carbon_g_per_kwh=tuple(carbon),
            gpu_watts={t: w for t in self.gpus if (w := self._lookup(self.gpu_watts, t)) is not None},
            pue=self.pue,
            egress_usd_per_gb=(self.egress_usd_per_gb if self.egress_usd_per_gb is not None
                               else EGRESS_USD_PER_GB.get(self.provider, 0.0)),
            wan_gbps=self.wan_gbps, data=frozenset(self.data),
            location=self.location if self.location is not None else (table.location if table else None),
            latency_ms=dict(self.latency_ms), accepting=self.accepting,
            queues=self.burst_after is not None, capacity_gpus=dict(self.gpus),
        )


@_kind
class NodePoolDoc(_Document):
    """A set of machines a provider launches on demand (Karpenter's NodePool): which instance or
    GPU types, which capacity types in order of preference, how many nodes at least and at most,
    and how long a node may stay idle before it is released (``min_nodes: 0`` scales to zero).
    ``cluster``: the federation member (``kind: Cluster``) whose capacity it is: its nodes join that
    member and it launches only for jobs routed there (a cloud member jobs burst to).
    ``consolidate_after``: how long a node must have run the same jobs before the autoscaler may
    move them (checkpointable jobs only) to other nodes of the pool and release it; none: never.
    ``region``: an aws pool's region (default: the control plane's ``--aws-region``)."""

    kind: Literal["NodePool"] = "NodePool"
    name: Name
    provider: Literal["local", "aws"]
    instance_types: list[Text] = []
    gpu_types: list[Text] = []
    capacity_types: list[Literal["spot", "on-demand"]] = ["spot", "on-demand"]
    min_nodes: Count = 0
    max_nodes: Count = 10
    idle_timeout: Seconds = 600.0
    boot_time: Seconds = 120.0
    cluster: Name | None = None
    consolidate_after: Seconds | None = None
    region: Text | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> NodePoolDoc:
        problems = []
        if self.region is not None and self.provider != "aws":
            problems.append((("region",), f"only aws pools launch in a region; a {self.provider} pool takes none"))
        if self.min_nodes > self.max_nodes:
            problems.append((("min_nodes",), f"must be at most max_nodes ({self.max_nodes}); got {self.min_nodes}"))
        if not self.capacity_types or len(set(self.capacity_types)) != len(self.capacity_types):
            problems.append((("capacity_types",), "list spot and/or on-demand, each once, in order of preference"))
        if problems:
            raise _Problems(problems)
        return self

    def to_spec(self) -> NodePoolSpec:
        return NodePoolSpec(self.name, self.provider, tuple(self.instance_types), tuple(self.gpu_types),
                            tuple(self.capacity_types), self.min_nodes, self.max_nodes, self.idle_timeout, self.boot_time,
                            self.cluster, self.consolidate_after, self.region or "")


def _amount(key: str, v: int) -> str:
    """An amount of a resource key as a document would write it: ``8``, ``500m`` (CPUs), ``16Gi``."""
    if key == "cpus":
        return str(v // 1000) if v % 1000 == 0 else f"{v}m"
    if key == "memory":
        return next((f"{v // 2**e}{u}" for e, u in ((40, "Ti"), (30, "Gi"), (20, "Mi")) if v and v % 2**e == 0), str(v))
    return str(v)


Document = JobDoc | TeamDoc | QueueDoc | BudgetDoc | PricingDoc | ClusterDoc | NodePoolDoc  # for annotations; KINDS is the registry
# the base of documents of other registries (``load_documents(kinds=...)``, e.g. the simulator's
# ``kind: Cluster``) and of their nested mappings
DocumentModel = _Document
StrictModel = _Strict


class _Problems(ValueError):
    """Cross-field problems raised from a model validator, each with its own path."""

    def __init__(self, problems: list[tuple[tuple[str, ...], str]]) -> None:
        super().__init__("; ".join(m for _, m in problems))
        self.problems = problems


# ---- pydantic errors -> FieldErrors ---------------------------------------------------------
_SECRET_FIELDS = {"token"}


def _string_type(e: dict) -> str:
    v = e["input"]
    if isinstance(v, (bool, int, float)):
        return f'expected a string, got {_show(v)}; put the value in quotes: "{_show(v)}"'
    return f"expected a string, got {_show(v)}"


def _too_short(e: dict) -> str:
    n = e["ctx"]["min_length"]
    unit = " characters" if isinstance(e["input"], (str, _Hidden)) else " items"
    return "must not be empty" if n == 1 else f"must be at least {n}{unit} long; got {len(e['input'])}"


_MESSAGES: dict[str, Callable[[dict], str]] = {
    "missing": lambda e: "required field is missing",
    "int_type": lambda e: f"expected a whole number, got {_show(e['input'])}",
    "float_type": lambda e: f"expected a number, got {_show(e['input'])}",
    "finite_number": lambda e: f"expected a finite number, got {_show(e['input'])}",
    "bool_type": lambda e: f"expected true or false, got {_show(e['input'])}",
    "string_type": _string_type,
    "dict_type": lambda e: f"expected a mapping (key: value lines), got {_show(e['input'])}",
    "model_type": lambda e: f"expected a mapping of fields, got {_show(e['input'])}",
    "list_type": lambda e: f"expected a list, got {_show(e['input'])}",
    "greater_than": lambda e: f"must be more than {e['ctx']['gt']}; got {_show(e['input'])}",
    "greater_than_equal": lambda e: f"must be at least {e['ctx']['ge']}; got {_show(e['input'])}",
    "less_than": lambda e: f"must be less than {e['ctx']['lt']}; got {_show(e['input'])}",
    "less_than_equal": lambda e: f"must be at most {e['ctx']['le']}; got {_show(e['input'])}",
    "string_too_short": _too_short,
    "too_short": _too_short,
    "string_too_long": lambda e: f"must be at most {e['ctx']['max_length']} characters long",
    "literal_error": lambda e: f"must be {e['ctx']['expected']}; got {_show(e['input'])}",
    "value_error": lambda e: str(e["ctx"]["error"]),
    "assertion_error": lambda e: str(e["ctx"]["error"]),
}


def _model_type(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_type, typing.get_args(annotation))), None)


def _model_at(model: type[BaseModel] | None, parts: tuple[str | int, ...]) -> type[BaseModel] | None:
    for p in parts:
        fields = {f.alias or n: f for n, f in model.model_fields.items()} if model else {}
        model = _model_type(fields[p].annotation) if p in fields else None
    return model


def _unknown_field(cls: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    key, model = str(loc[-1]), _model_at(cls, loc[:-1])
    if model is None:
        return f"unknown field {_show(key)}"
    known = [f.alias or n for n, f in model.model_fields.items()]
    for n, f in model.model_fields.items():  # e.g. `gpus` at the top: it belongs in `resources`
        sub = _model_type(f.annotation)
        if sub is not None and key in sub.model_fields:
            return f"unknown field {_show(key)} here; did you mean {n}.{key}?"
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown field {_show(key)}; did you mean {close[0]}?"
    return f"unknown field {_show(key)}; known fields here: {', '.join(known)}"


def _line(lines: dict[tuple[str, ...], int] | None, path: tuple[str | int, ...], start: int | None) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one, or the document's start."""
    if lines is None:
        return start
    key = tuple(map(str, path))
    for n in range(len(key), 0, -1):
        if key[:n] in lines:
            return lines[key[:n]]
    return start


def _translate(e: dict, cls: type[BaseModel], doc: int, lines: dict | None, start: int | None) -> list[FieldError]:
    loc = tuple(p if isinstance(p, (int, str)) and not isinstance(p, bool) else str(p)
                for p in e["loc"] if p != "[key]")
    error = (e.get("ctx") or {}).get("error")
    if isinstance(error, _Problems):
        found = [(loc + path, message) for path, message in error.problems]
    else:
        if loc and loc[-1] in _SECRET_FIELDS:
            e = {**e, "input": _Hidden(e.get("input"))}
        if e["type"] == "extra_forbidden":
            message = _unknown_field(cls, loc)
        else:
            message = _MESSAGES.get(e["type"], lambda e: str(e["msg"]))(e)
        found = [(loc, message)]
    return [FieldError(join_path(path), _line(lines, path, start), message, doc) for path, message in found]


def _validate(cls: type[_Document], data: object, doc: int = 0, lines: dict | None = None,
              start: int | None = None) -> tuple[_Document | None, list[FieldError]]:
    try:
        return cls.model_validate(data), []
    except ValidationError as exc:
        errors = [f for e in exc.errors(include_url=False) for f in _translate(dict(e), cls, doc, lines, start)]
    seen = {e.path for e in errors}
    errors += [FieldError(join_path(p), _line(lines, p, start), m, doc)
               for p, m in (cls.presence_problems(data) if isinstance(data, dict) else []) if join_path(p) not in seen]
    return None, errors


def _document_class(data: object, doc: int = 0, lines: dict | None = None, start: int | None = None,
                    default: str | None = None, kinds: dict[str, type[_Document]] | None = None
                    ) -> type[_Document] | FieldError:
    registry = kinds or KINDS
    known = ", ".join(registry)
    if not isinstance(data, dict):
        return FieldError("", start, f"expected a mapping of fields with a `kind:` ({known}); got {_show(data)}", doc)
    kind = data.get("kind", default)
    if kind is None:
        return FieldError("kind", start, f"required field is missing: say what this document is; known kinds: {known}", doc)
    cls = registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        near = [k for k in registry if isinstance(kind, str) and k.lower() == kind.lower()]
        hint = f" (did you mean {near[0]}?)" if near else ""
        return FieldError("kind", _line(lines, ("kind",), start), f"unknown kind {_show(kind)}{hint}; known kinds: {known}", doc)
    return cls


# ---- entry points ---------------------------------------------------------------------------
def parse_job(data: dict, source: str = "request") -> JobDoc:
    """Validate one job as a JSON object (``kind`` optional); raises ``SpecError`` without lines."""
    cls = _document_class(data, default="Job")
    if isinstance(cls, FieldError) or cls is not JobDoc:
        err = cls if isinstance(cls, FieldError) else FieldError("kind", None, f"expected Job here; got {_show(data['kind'])}")
        raise SpecError([err], source)
    doc, errors = _validate(JobDoc, data)
    if errors:
        raise SpecError(errors, source)
    return typing.cast(JobDoc, doc)


def validate_document(data: object, source: str = "request") -> Document:
    """Validate one document of any kind as a JSON object (``kind`` required)."""
    cls = _document_class(data)
    if isinstance(cls, FieldError):
        raise SpecError([cls], source)
    doc, errors = _validate(cls, data)
    if errors:
        raise SpecError(errors, source)
    return typing.cast(Document, doc)


def load_documents(text: str, source: str = "<input>", kinds: dict[str, type[DocumentModel]] | None = None
                   ) -> list[Document]:
    """Parse YAML (one or more documents) and validate each; errors of all documents together.
    ``kinds``: the kinds this file may hold (default ``KINDS``, the API's)."""
    loader = LineLoader(text)
    try:
        raws = list(loader.raw_documents())
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_error(exc)], source) from None
    finally:
        loader.dispose()
    docs: list[Document] = []
    errors: list[FieldError] = []
    for i, raw in enumerate(raws):
        if raw.data is None:  # an empty document, e.g. after a trailing `---`
            continue
        errors += [FieldError(join_path(p), line, "duplicate key: it would silently replace the earlier one; keep one", i)
                   for p, line in raw.duplicates]
        cls = _document_class(raw.data, i, raw.lines, raw.start, kinds=kinds)
        if isinstance(cls, FieldError):
            errors.append(cls)
            continue
        doc, errs = _validate(cls, raw.data, i, raw.lines, raw.start)
        errors += errs
        if doc is not None:
            docs.append(typing.cast(Document, doc))
    if all(raw.data is None for raw in raws):
        errors.append(FieldError("", None, f"no documents found; expected a mapping with `kind:` ({', '.join(kinds or KINDS)})"))
    if errors:
        raise SpecError(sorted(errors, key=lambda e: (e.doc, e.line or 0)), source)
    return docs


def _yaml_error(exc: yaml.YAMLError) -> FieldError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if "\\t" in problem:
        message += "; indent with spaces, not tabs"
    return FieldError("", mark.line + 1 if mark is not None else None, message)
