"""``assertion_source: callable``: a function returns the JWT, for any platform the provider does not know.

A SPIFFE Workload API client, a vault plugin, a company's token broker: ``assertion_callable`` names a
function importable on every worker and the triggerer (``package.module.function``), called with the
audience (``assertion_audience``, or ``None``) and returning a compact JWT. It is imported once per
process; its JWT is reused until it nears expiry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_jwt_provider.assertions.base import PlatformSource, SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.common.imports import import_callable
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.exceptions import AssertionSourceError


@dataclass(frozen=True)
class CallableSettings:
    path: str
    audience: str | None = None
    prefix: str = "assertion"

    @property
    def source(self) -> str:
        return CALLABLE.name

    @property
    def needs_key(self) -> bool:
        return False

    def describe(self) -> str:
        audience = f"({self.audience!r})" if self.audience else "(None)"
        return f"{self.prefix}_source callable: {self.path}{audience}"


class CallableAssertions(PlatformSource):
    def __init__(self, settings: CallableSettings, context: SourceContext) -> None:
        super().__init__(context, "callable")
        self.settings = settings
        self._function: Callable[..., object] | None = None

    def describe(self) -> str:
        return f"{self.context.setting('callable')} {self.settings.path!r}"

    def _loaded(self) -> Callable[..., object]:
        if self._function is None:
            try:
                self._function = import_callable(self.settings.path)
            except (ImportError, AttributeError) as exc:
                raise AssertionSourceError(
                    f"{self.describe()} cannot be imported ({exc}); it must be importable on every worker and the "
                    "triggerer (an installed package or the plugins folder)",
                    field=self.context.setting("callable"),
                ) from None
        return self._function

    def fetch(self) -> ExternalJwt:
        try:
            value = self._loaded()(self.settings.audience)
        except AssertionSourceError:
            raise
        except Exception as exc:
            raise AssertionSourceError(
                f"{self.describe()} failed: {type(exc).__name__}", field=self.context.setting("callable")
            ) from None
        if not isinstance(value, str):
            raise AssertionSourceError(
                f"{self.describe()} returned a {type(value).__name__}, not a compact JWT (a str)",
                field=self.context.setting("callable"),
            )
        return ExternalJwt.parse(
            value, where=f"what {self.describe()} returned", field_name=self.context.setting("callable")
        )

    def check(self, jwt: ExternalJwt) -> None:
        jwt.check_usable(
            where=f"what {self.describe()} returned",
            field_name=self.context.setting("callable"),
            audience=self.settings.audience,
        )


class CallableSourceType:
    name = "callable"
    title = "A function that returns a JWT"
    suffixes = frozenset({"callable", "audience"})

    def parse(self, extras: ExtraReader, prefix: str) -> CallableSettings:
        path = extras.required_text(
            f"{prefix}_callable",
            "is required with source 'callable': the dotted path of a function(audience) returning a JWT",
        )
        if "." not in path:
            raise extras.error(f"{prefix}_callable", f"is {path!r}: give package.module.function")
        return CallableSettings(path, extras.text(f"{prefix}_audience"), prefix)

    def build(self, settings: CallableSettings, context: SourceContext) -> CallableAssertions:
        return CallableAssertions(settings, context)


CALLABLE = CallableSourceType()
