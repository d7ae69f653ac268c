"""One TOML file, a section per area, every key defaulted and validated at start.

Precedence, lowest first: embedded defaults, the config file, then environment
variables named ``HOMEKEEP_<SECTION>_<KEY>`` (values in TOML syntax, or a bare string).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from homekeep.core.errors import ConfigError
from homekeep.core.files import write_atomic
from homekeep.core.limits import Limits
from homekeep.core.paths import DataDir, default_data_dir
from homekeep.core.rawconfig import config_file, read_toml

ENV_PREFIX = "HOMEKEEP_"
# Variables the CLI reads itself (click envvars), not config overrides.
_CLI_ENV = {"HOMEKEEP_CONFIG", "HOMEKEEP_DATA_DIR"}


@dataclass(frozen=True)
class Renamed:
    """A key that was renamed: the old name is still read, converted, with a warning."""

    new: str
    convert: Callable[[Any], Any] = lambda value: value


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable.

    ``renamed`` maps keys of earlier releases to their new names, so an old config file
    keeps working: each old key is read once, converted, and named in a warning.
    """

    # defer_build: a model's validator is built when first used, not when imported
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)
    renamed: ClassVar[Mapping[str, Renamed]] = {}


class CoreSection(Section):
    """Where homekeep keeps its state."""

    data_dir: Path | None = Field(
        default=None,
        description="Data directory (databases, logs, area files). "
        "Default: $XDG_DATA_HOME/homekeep.",
    )


class ServerSection(Section):
    """The web server started by `homekeep serve`."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    tls_cert: Path | None = Field(default=None, description="PEM certificate file; enables HTTPS.")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert.")
    public_url: str = Field(
        default="",
        description="Base URL clients use to reach this server, e.g. https://home.example; "
        "default: built from host and port.",
    )
    trusted_hosts: list[str] = Field(
        default_factory=list,
        description="Host names (and addresses) requests may name in their Host header, "
        "e.g. ['nas.lan', '*.home.example']; others get 400. Always trusted: localhost, "
        "the loopback addresses, the host of public_url, this machine's name and, when "
        "listening on every interface, its addresses. ['*'] trusts any name.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest request line plus headers a client may send (431 past it).",
    )
    max_header_count: int = Field(
        default=128, ge=16, le=4096, description="Most request headers a client may send."
    )
    header_timeout_seconds: float = Field(
        default=15,
        gt=0,
        le=600,
        description="A client must send a request's headers within this (408 after it).",
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="Open connections the server accepts at once (503 past it).",
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        le=3600,
        description=(
            "How long an idle connection stays open for the next request. Longer than "
            "clients keep theirs (5 s for httpx), so a client never reuses one the "
            "server is closing."
        ),
    )

    def base_url(self, port: int | None = None) -> str:
        """Return the public base URL, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port if port is None else port}"

    def limits(self) -> Limits:
        """The per-client bounds every HTTP server of homekeep applies."""
        return Limits(
            max_header_bytes=self.max_header_bytes,
            max_header_count=self.max_header_count,
            header_timeout_seconds=self.header_timeout_seconds,
            max_connections=self.max_connections,
            keep_alive_seconds=self.keep_alive_seconds,
        )


def _networks(value: list[str]) -> list[str]:
    """Check every entry is an address or a network (``10.0.0.0/8``), as written."""
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not an IP address or network; write e.g. '127.0.0.1' or '10.0.0.0/8'"
            ) from exc
    return value


class WebSection(Section):
    """People on the web: sessions, logins, and the proxies whose forwarded headers count."""

    trusted_proxies: Annotated[list[str], AfterValidator(_networks)] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies in front of `homekeep serve`, "
        "e.g. ['127.0.0.1', '10.0.0.0/24']. Only from these are X-Forwarded-For, "
        "X-Forwarded-Proto and Forwarded believed (for the client's address, the first-run "
        "check and login backoff); from anyone else they are ignored.",
    )
    session_idle_days: float = Field(
        default=14,
        gt=0,
        le=3650,
        description="A login session ends after this long without a request.",
    )
    session_lifetime_days: float = Field(
        default=90,
        gt=0,
        le=3650,
        description="A login session ends this long after the login, however busy.",
    )


LogLevel = Literal["debug", "info", "warning", "error"]


class LoggingSection(Section):
    """Console and log-file output."""

    level: LogLevel = Field(default="info", description="Level written to the log file.")
    file: Path | None = Field(
        default=None, description="Log file. Default: <data_dir>/logs/homekeep.log."
    )
    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Rotate the log file at this size."
    )
    backup_count: int = Field(default=5, ge=0, le=1000, description="Rotated files to keep.")


CORE_SECTIONS: dict[str, type[Section]] = {
    "core": CoreSection,
    "server": ServerSection,
    "web": WebSection,
    "logging": LoggingSection,
}

S = TypeVar("S", bound=Section)


@dataclass(frozen=True)
class _Raw:
    """One section's keys as read (file and environment merged), not yet validated."""

    model: type[Section]
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Settings:
    """The effective configuration, each section validated when first read.

    ``load_settings`` validates every section at once unless asked not to; the CLI asks
    not to, so a command pays only for the sections it reads (``homekeep serve`` and
    ``config show`` validate all at start). The cache of validated sections may be
    filled from several threads: each fills an entry with the same immutable value, so
    the race is harmless.
    """

    raw: Mapping[str, _Raw]
    path: Path | None = None
    data_dir_override: Path | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    where: str = field(default="the embedded defaults", compare=False)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    _valid: dict[str, Section] = field(default_factory=dict, compare=False, repr=False)

    @property
    def sections(self) -> dict[str, Section]:
        """Every section, validated."""
        return {name: self._validated(name) for name in self.raw}

    def validate(self) -> None:
        """Validate every section now: a mistake anywhere raises ConfigError."""
        for name in self.raw:
            self._validated(name)

    def _validated(self, name: str) -> Section:
        value = self._valid.get(name)
        if value is None:
            raw = self.raw[name]
            try:
                value = raw.model.model_validate(dict(raw.data))
            except ValidationError as exc:
                detail = _describe(self.where, name, exc.errors()[0], self.overrides)
                raise ConfigError(detail) from exc
            self._valid[name] = value
        return value

    @property
    def core(self) -> CoreSection:
        return self.section("core", CoreSection)

    @property
    def server(self) -> ServerSection:
        return self.section("server", ServerSection)

    @property
    def web(self) -> WebSection:
        return self.section("web", WebSection)

    @property
    def logging(self) -> LoggingSection:
        return self.section("logging", LoggingSection)

    @property
    def data(self) -> DataDir:
        """The data directory: --data-dir, else [core] data_dir, else the XDG default."""
        root = self.data_dir_override or self.core.data_dir or default_data_dir()
        return DataDir(root.expanduser())

    def section(self, name: str, model: type[S]) -> S:
        """Return one section, typed as the model that defines it."""
        value = self._validated(name)
        if not isinstance(value, model):
            raise TypeError(f"section [{name}] is {type(value).__name__}, not {model.__name__}")
        return value

    def with_section(self, name: str, value: Section) -> Settings:
        """Return a copy with one section replaced (command-line overrides)."""
        return Settings(
            {**self.raw, name: _Raw(type(value), value.model_dump())},
            path=self.path,
            data_dir_override=self.data_dir_override,
            warnings=self.warnings,
            where=self.where,
            overrides=self.overrides,
            _valid={**self._valid, name: value},
        )

    def to_toml(self) -> str:
        """Render the effective config as TOML, with secrets masked."""
        doc: dict[str, Any] = {}
        for name, section in self.sections.items():
            doc[name] = _drop_none(section.model_dump(mode="json"))
        import tomli_w

        return tomli_w.dumps(doc)


def load_settings(
    path: Path | None,
    sections: Mapping[str, type[Section]],
    *,
    env: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
    validate: bool = True,
) -> Settings:
    """Load and validate the config.

    ``path`` None means the default location if a file is there, else the embedded
    defaults. ``sections`` maps every known section name to its model. With
    ``validate`` False each section is validated when first read.
    """
    env = os.environ if env is None else env
    explicit = path is not None
    path = config_file(path)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path, explicit=explicit)
    where = str(path) if path is not None else "the embedded defaults"
    for name in raw:
        if name not in sections:
            known = ", ".join(f"[{s}]" for s in sections)
            raise ConfigError(f"{where}: unknown section [{name}]; known sections: {known}")
    values: dict[str, _Raw] = {}
    warnings: list[str] = []
    overrides = _env_overrides(env, sections)
    for name, model in sections.items():
        data = raw.get(name, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: [{name}] must be a table of keys, not a single value")
        merged = _rename({**data, **overrides.get(name, {})}, name, model, where, warnings)
        values[name] = _Raw(model, merged)
    settings = Settings(
        values,
        path=path,
        data_dir_override=data_dir,
        warnings=tuple(warnings),
        where=where,
        overrides=overrides,
    )
    if validate:
        settings.validate()
    return settings


def _rename(
    data: dict[str, Any], section: str, model: type[Section], where: str, warnings: list[str]
) -> dict[str, Any]:
    """Read the old names of renamed keys as their new ones, with a warning for each."""
    for old, renamed in model.renamed.items():
        if old not in data:
            continue
        value = data.pop(old)
        if renamed.new in data:
            warnings.append(
                f"{where}: [{section}] {old} is ignored: {renamed.new} is set; remove {old}"
            )
            continue
        try:
            data[renamed.new] = renamed.convert(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}: [{section}] {old}: {exc}; better, set {renamed.new} instead"
            ) from exc
        warnings.append(
            f"{where}: [{section}] {old} is now {renamed.new} "
            f"(= {data[renamed.new]!r}); rename it, the old name will go"
        )
    return data


def _env_overrides(
    env: Mapping[str, str], sections: Mapping[str, type[Section]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    # Longest names first, so a section named "a_b" wins over "a".
    names = sorted(sections, key=len, reverse=True)
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var in _CLI_ENV:
            continue
        rest = var[len(ENV_PREFIX) :].lower()
        for name in names:
            if rest.startswith(name + "_"):
                key = rest[len(name) + 1 :]
                model = sections[name]
                if key not in model.model_fields and key not in model.renamed:
                    known = ", ".join(sections[name].model_fields)
                    raise ConfigError(
                        f"environment variable {var}: [{name}] has no key '{key}'; "
                        f"known keys: {known}"
                    )
                out.setdefault(name, {})[key] = _parse_env_value(raw)
                break
    return out


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _describe(
    where: str, section: str, error: ErrorDetails, overrides: Mapping[str, Mapping[str, Any]]
) -> str:
    loc = [str(p) for p in error["loc"]]
    key = ".".join(loc) if loc else "(section)"
    origin = where
    if loc and loc[0] in overrides.get(section, {}):
        origin = f"environment variable {ENV_PREFIX}{section.upper()}_{loc[0].upper()}"
    if error["type"] == "extra_forbidden":
        return f"{origin}: [{section}] unknown key '{key}'; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{origin}: [{section}] {key} is required"
    msg = error["msg"].removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if not loc:  # a check across keys: the section's own words say it all
        return f"{origin}: [{section}] {msg}"
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) else f", got {got!r}"
    return f"{origin}: [{section}] {key}: {msg}{shown}"


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def default_config_text(sections: Mapping[str, type[Section]]) -> str:
    """Return a commented config file that states every key with its default."""
    lines = [
        "# homekeep configuration. Every key is optional: the values shown are the defaults.",
        "# Uncomment a line to change it. Any key can also be set in the environment as",
        "# HOMEKEEP_<SECTION>_<KEY>, e.g. HOMEKEEP_SERVER_PORT=8081.",
        "",
    ]
    for name, model in sections.items():
        if model.__doc__:
            lines.append(f"# {model.__doc__.strip().splitlines()[0]}")
        lines.append(f"[{name}]")
        for key, info in model.model_fields.items():
            if info.description:
                lines.append(f"# {info.description}")
            default = info.get_default(call_default_factory=True)
            if default is None:
                lines.append(f"# {key} =")
            else:
                dumped = model.model_construct(**{key: default}).model_dump(mode="json")[key]
                lines.append(f"# {key} = {_inline(dumped)}")
        lines.append("")
    return "\n".join(lines)


def _inline(value: Any) -> str:
    """Render a value as one line of TOML (tables inline), to sit under its section."""
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items() if v is not None)
        return "{" + (f" {items} " if items else "") + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def _key(name: str) -> str:
    if name.replace("_", "").replace("-", "").isalnum():
        return name
    import tomli_w

    return tomli_w.dumps({name: 0}).rstrip("\n").rpartition(" = ")[0]  # quoted as TOML needs


def save_section(path: Path, name: str, values: Mapping[str, Any]) -> None:
    """Replace one section of the config file, keeping every comment elsewhere.

    The file is rewritten atomically (temp file, fsync, rename).
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    import tomlkit  # only rewriting a file needs it

    doc = tomlkit.parse(text)
    doc[name] = _drop_none(dict(values))
    write_atomic(path, tomlkit.dumps(doc).encode("utf-8"))
