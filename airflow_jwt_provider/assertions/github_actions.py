"""``assertion_source: github_actions``: the OIDC token of the GitHub Actions job the task runs in.

GitHub gives a job that has ``permissions: id-token: write`` two environment variables: the URL of its
token service (``ACTIONS_ID_TOKEN_REQUEST_URL``) and a bearer token to ask it with
(``ACTIONS_ID_TOKEN_REQUEST_TOKEN``). The JWT is asked for with the ``audience`` the authorization
server trusts (``assertion_audience``) and answered as ``{"value": "<JWT>"}``; it lives about five
minutes and is asked for again when it nears expiry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

import requests

from airflow_jwt_provider.assertions.base import PlatformSource, SourceContext
from airflow_jwt_provider.assertions.jwt import ExternalJwt
from airflow_jwt_provider.common.redaction import mask_stable_secret
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.exceptions import AssertionSourceError

REQUEST_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
REQUEST_TOKEN = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"


@dataclass(frozen=True)
class GitHubActionsSettings:
    audience: str | None = None
    prefix: str = "assertion"

    @property
    def source(self) -> str:
        return GITHUB_ACTIONS.name

    @property
    def needs_key(self) -> bool:
        return False

    def describe(self) -> str:
        return f"{self.prefix}_source github_actions: the job's OIDC token, audience {self.audience or '(default)'!r}"


class GitHubActionsAssertions(PlatformSource):
    def __init__(self, settings: GitHubActionsSettings, context: SourceContext) -> None:
        super().__init__(context, "github_actions")
        self.settings = settings

    def describe(self) -> str:
        return "the GitHub Actions OIDC token"

    def fetch(self) -> ExternalJwt:
        url, token = os.environ.get(REQUEST_URL), os.environ.get(REQUEST_TOKEN)
        if not url or not token:
            raise AssertionSourceError(
                f"{self.context.setting('source')} github_actions: {REQUEST_URL} and {REQUEST_TOKEN} are not set in "
                "this process: the task must run inside a GitHub Actions job whose workflow grants "
                "`permissions: id-token: write`",
                field=self.context.setting("source"),
            )
        mask_stable_secret(token)  # one per job: registered once
        if self.settings.audience:
            url += ("&" if "?" in url else "?") + "audience=" + quote(self.settings.audience, safe="")
        http = self.context.http
        try:
            response = requests.get(
                url,
                headers={"Authorization": f"bearer {token}", "Accept": "application/json"},
                timeout=http.timeout,
                verify=http.verify,
            )
        except requests.RequestException as exc:
            raise AssertionSourceError(
                f"GitHub's OIDC token service cannot be reached ({type(exc).__name__})",
                field=self.context.setting("source"),
            ) from None
        if response.status_code != 200:
            raise AssertionSourceError(
                f"GitHub's OIDC token service answered HTTP {response.status_code}: check the workflow's "
                "`permissions: id-token: write`" + (" and the audience" if self.settings.audience else ""),
                field=self.context.setting("audience" if response.status_code == 400 else "source"),
            )
        try:
            value = response.json()["value"]
        except (ValueError, KeyError, TypeError):
            value = None
        if not isinstance(value, str):
            raise AssertionSourceError(
                "GitHub's OIDC token service answered without a token (no JSON 'value')",
                field=self.context.setting("source"),
            )
        return ExternalJwt.parse(value, where=self.describe(), field_name=self.context.setting("source"))

    def check(self, jwt: ExternalJwt) -> None:
        jwt.check_usable(
            where=self.describe(), field_name=self.context.setting("audience"), audience=self.settings.audience
        )


class GitHubActionsSourceType:
    name = "github_actions"
    title = "The GitHub Actions job's OIDC token"
    suffixes = frozenset({"audience"})

    def parse(self, extras: ExtraReader, prefix: str) -> GitHubActionsSettings:
        return GitHubActionsSettings(extras.text(f"{prefix}_audience"), prefix)

    def build(self, settings: GitHubActionsSettings, context: SourceContext) -> GitHubActionsAssertions:
        return GitHubActionsAssertions(settings, context)


GITHUB_ACTIONS = GitHubActionsSourceType()
