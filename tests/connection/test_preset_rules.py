"""Every rule of every preset, one case each: broken alone on an otherwise compliant connection.

A rule the vendor's page states refuses the connection, naming the setting and the page; a rule no
page backs only warns. The last tests tie the cases to the presets' data: a rule without a case here,
or a refusing rule without a vendor page, fails the suite, so no rule can be added, dropped or
weakened unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_jwt_provider.connection.presets import PRESETS
from airflow_jwt_provider.connection.presets.rules import Algorithms, Guaranteed, Keyless, Severity
from airflow_jwt_provider.connection.presets.salesforce import salesforce_audience
from airflow_jwt_provider.exceptions import JwtBearerConfigError
from tests.connection.test_settings import parse

KEY = {"key_file": "/keys/k.p12"}
ENTRA_TOKEN_URL = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
GOOGLE_PROVIDER = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/airflow/providers/gke"
GOOGLE_IMPERSONATION = (
    "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/etl@p.iam.gserviceaccount.com"
    ":generateAccessToken"
)

#: One connection per preset that breaks no rule: (extra, connection fields).
COMPLIANT: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "box": (
        {**KEY, "preset": "box", "subject": "1234", "claims": {"box_sub_type": "enterprise"}, "key_id": "k1"},
        {"password": "secret"},
    ),
    "salesforce": ({**KEY, "preset": "salesforce", "subject": "integration@example.com"}, {}),
    "google": ({**KEY, "preset": "google", "scope": "https://www.googleapis.com/auth/cloud-platform"}, {}),
    "docusign": ({**KEY, "preset": "docusign", "subject": "4b3c-guid", "scope": "signature impersonation"}, {}),
    "docusign_application": ({**KEY, "preset": "docusign_application", "scope": "organization_read"}, {}),
    "servicenow": (
        {**KEY, "preset": "servicenow", "subject": "svc@example.com", "key_id": "k1"},
        {"password": "secret", "host": "https://dev1234.service-now.com"},
    ),
    "entra": (
        {**KEY, "preset": "entra", "auth_url": ENTRA_TOKEN_URL, "scope": "https://graph.microsoft.com/.default"},
        {},
    ),
    "entra_workload_identity": (
        {
            "preset": "entra_workload_identity",
            "auth_url": ENTRA_TOKEN_URL,
            "scope": "https://graph.microsoft.com/.default",
        },
        {"login": "app-guid"},
    ),
    "google_workload_identity": (
        {
            "preset": "google_workload_identity",
            "assertion_source": "file",
            "assertion_file": "/var/run/secrets/tokens/gcp",
            "exchange_audience": GOOGLE_PROVIDER,
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "service_account_impersonation_url": GOOGLE_IMPERSONATION,
        },
        {"login": None},
    ),
}


@dataclass(frozen=True)
class Case:
    rule: str
    extra: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    #: a fragment of the message
    says: str = ""

    @property
    def preset(self) -> str:
        return self.rule.split(".")[0]


UNSET = None
CASES = [
    Case("box.lifetime", {"lifetime": 61}, says="is 61 s but the vendor accepts at most 60 s"),
    Case("box.subject", {"subject": UNSET}, says="enterprise id"),
    Case("box.box_sub_type", {"claims": {"box_sub_type": "admin"}}, says="is 'admin' but the vendor accepts"),
    Case("box.client_secret", {"client_auth": "none"}, {"password": None}, says="client secret"),
    Case("box.algorithm", {"algorithm": "PS256"}, says="is PS256, but the vendor accepts RS256, RS384, RS512"),
    Case("box.key_id", {"key_id": UNSET}, says="essential when the app has several key pairs"),
    Case("salesforce.lifetime", {"lifetime": 181}, says="at most 180 s"),
    Case("salesforce.subject", {"subject": UNSET}, says="Salesforce username"),
    Case("salesforce.algorithm", {"algorithm": "RS384"}, says="the vendor accepts RS256"),
    Case("salesforce.audience", {"audience": "https://acme.my.salesforce.com"}, says="does not list"),
    Case("google.lifetime", {"lifetime": 3601}, says="at most 3600 s"),
    Case("google.scope", {"scope": UNSET}, says="cloud-platform"),
    Case("google.algorithm", {"algorithm": "RS512"}, says="the vendor accepts RS256"),
    Case("docusign.subject", {"subject": UNSET}, says="user id (GUID)"),
    Case("docusign.scope", {"scope": UNSET}, says="signature impersonation"),
    Case("docusign.impersonation", {"scope": "signature"}, says="does not include 'impersonation'"),
    Case("docusign.lifetime", {"lifetime": 3601}, says="at most 3600 s"),
    Case("docusign.algorithm", {"algorithm": "PS256"}, says="the vendor accepts RS256"),
    Case("docusign_application.subject", {"subject": "4b3c-guid"}, says="carries no sub"),
    Case("docusign_application.scope", {"scope": UNSET}, says="organization_read"),
    Case("docusign_application.lifetime", {"lifetime": 3601}, says="at most 3600 s"),
    Case("docusign_application.algorithm", {"algorithm": "ES256"}, says="the vendor accepts RS256"),
    Case("servicenow.subject", {"subject": UNSET}, says="User field"),
    Case("servicenow.algorithm", {"algorithm": "PS256"}, says="RS256, RS384, RS512, ES256, ES384, ES512"),
    Case("servicenow.client_secret", {}, {"password": None}, says="public client"),
    Case("servicenow.key_id", {"key_id": UNSET}, says="Kid of the JWT verifier map"),
    Case(
        "entra.login",
        {"client_auth": "client_secret_post", "issuer": "app-guid"},
        {"login": None, "password": "secret"},
        says="application (client) id",
    ),
    Case("entra.scope", {"scope": UNSET}, says=".default"),
    Case("entra.scope_default", {"scope": "https://graph.microsoft.com/User.Read"}, says="not ending with '/.default'"),
    Case("entra.auth_url", {"auth_url": "https://login.microsoftonline.com/t/oauth2/token"}, says="v2 endpoint"),
    Case("entra.algorithm", {"algorithm": "ES256"}, says="the vendor accepts PS256, RS256"),
    Case("entra_workload_identity.scope", {"scope": UNSET}, says=".default"),
    Case(
        "entra_workload_identity.scope_default",
        {"scope": "https://graph.microsoft.com/User.Read"},
        says="not ending with '/.default'",
    ),
    Case(
        "entra_workload_identity.auth_url",
        {"auth_url": "https://login.microsoftonline.com/t/oauth2/token"},
        says="AZURE_TENANT_ID",
    ),
    Case(
        "entra_workload_identity.source",
        {"assertion_source": "sign", **KEY},
        says="use preset entra to sign with a certificate",
    ),
    Case(
        "entra_workload_identity.audience",
        {"assertion_audience": "sts.amazonaws.com"},
        says="is 'sts.amazonaws.com' but the vendor expects api://AzureADTokenExchange",
    ),
    Case(
        "google_workload_identity.source",
        {"assertion_source": UNSET, "assertion_file": UNSET},
        says="set it to file (a token file such as a Kubernetes projected token), github_actions",
    ),
    Case("google_workload_identity.audience", {"exchange_audience": UNSET}, says="workloadIdentityPools/<pool>"),
    Case(
        "google_workload_identity.audience_shape",
        {"exchange_audience": "projects/1/locations/global/workloadIdentityPools/p/providers/q"},
        says="not //iam.googleapis.com/projects/<number>",
    ),
    Case("google_workload_identity.scope", {"scope": UNSET}, says="cloud-platform"),
    Case(
        "google_workload_identity.requested_token_type",
        {"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        says="the vendor expects urn:ietf:params:oauth:token-type:access_token",
    ),
    Case(
        "google_workload_identity.subject_token_type",
        {"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
        says="is 'urn:ietf:params:oauth:token-type:saml2'",
    ),
    Case(
        "google_workload_identity.auth_url",
        {"auth_url": "https://sts.example.com/v1/token"},
        says="not https://sts.googleapis.com/v1/token",
    ),
    Case(
        "google_workload_identity.impersonation",
        {"service_account_impersonation_url": GOOGLE_IMPERSONATION.replace("/-/", "/my-project/")},
        says="serviceAccounts/<email>:generateAccessToken",
    ),
]


def rules_by_id() -> dict[str, Any]:
    return {rule.id: (preset, rule) for preset in PRESETS.values() for rule in preset.rules}


def settings_for(case_preset: str, extra: dict[str, Any], fields: dict[str, Any]) -> Any:
    base_extra, base_fields = COMPLIANT[case_preset]
    merged_extra = {k: v for k, v in {**base_extra, **extra}.items() if v is not None}
    return parse(merged_extra, **{**base_fields, **fields})


@pytest.mark.parametrize("name", list(COMPLIANT))
def test_a_compliant_connection_meets_every_rule(name: str) -> None:
    settings = settings_for(name, {}, {})
    assert settings.preset is not None
    assert settings.preset.name == name
    assert settings.preset_warnings == ()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.rule)
def test_each_rule_refuses_or_warns_on_its_own(case: Case) -> None:
    preset, rule = rules_by_id()[case.rule]
    page = rule.source.url if rule.source else "no DocuSign page states this"
    if rule.severity is Severity.REFUSE:
        with pytest.raises(JwtBearerConfigError) as info:
            settings_for(case.preset, case.extra, case.fields)
        message = str(info.value)
        assert info.value.field == rule.field
        assert message.startswith(f"Connection 'my_conn': {rule.field} ")
    else:
        warnings = settings_for(case.preset, case.extra, case.fields).preset_warnings
        assert len(warnings) == 1, warnings
        message = warnings[0]
        assert message.startswith(f"Connection 'my_conn': {rule.field} ")
        if rule.source is None:
            assert "a warning, not a refusal" in message
    assert case.says in message
    assert f"preset {preset.name!r}" in message
    if rule.source is not None:
        assert rule.source.url in message
    else:
        assert page  # a warning without a page says so


def test_every_rule_has_a_case_and_every_case_a_rule() -> None:
    checked = {rule_id for rule_id, (_preset, rule) in rules_by_id().items() if not isinstance(rule, Guaranteed)}
    assert {case.rule for case in CASES} == checked


def test_a_refusing_rule_always_names_a_vendor_page_with_the_sentence_it_rests_on() -> None:
    for rule_id, (_preset, rule) in rules_by_id().items():
        if rule.severity is Severity.REFUSE:
            assert rule.source is not None, rule_id
            assert rule.source.url.startswith("https://"), rule_id
            assert rule.source.quote, rule_id
    for preset in PRESETS.values():
        assert preset.page.url.startswith("https://"), preset.name


@pytest.mark.parametrize(
    ("preset", "algorithm", "key", "refused"),
    [
        ("box", "ES256", "EC-secp256r1", "the key is EC-secp256r1, which signs ES256, but the vendor accepts"),
        ("salesforce", "RS256", "RSA-2048", None),
        ("google", "EdDSA", "Ed25519", "use an RSA key"),
        ("docusign", "ES384", "EC-secp384r1", "accepts RS256 (an RSA key)"),
        ("servicenow", "ES256", "EC-secp256r1", None),
        ("servicenow", "EdDSA", "Ed25519", "the key is Ed25519 and signs EdDSA"),
        ("entra", "PS256", "RSA-2048", None),
        ("entra", "RS256", "RSA-3072", None),
        ("entra", "ES256", "EC-secp256r1", "accepts PS256, RS256"),
    ],
)
def test_the_key_itself_is_judged_once_built(preset: str, algorithm: str, key: str, refused: str | None) -> None:
    """An EC or Ed25519 key signs with its own algorithm even when the connection names none."""
    problem = PRESETS[preset].key_problem(algorithm, key)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        field, text = problem
        assert field == "algorithm"
        assert refused in text
        assert "preset" in text


def test_every_preset_with_a_key_has_an_algorithm_rule_that_refuses_some_key() -> None:
    for preset in PRESETS.values():
        if any(isinstance(rule, Keyless) for rule in preset.rules):
            continue  # the platform signs: no key of the connection to judge
        algorithms = [rule for rule in preset.rules if isinstance(rule, Algorithms)]
        assert len(algorithms) == 1, preset.name
        assert algorithms[0].severity is Severity.REFUSE


@pytest.mark.parametrize(
    ("token_url", "audience"),
    [
        ("https://login.salesforce.com/services/oauth2/token", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com/services/oauth2/token", "https://login.salesforce.com"),
        ("https://test.salesforce.com/services/oauth2/token", "https://test.salesforce.com"),
        ("https://acme--dev.sandbox.my.salesforce.com/services/oauth2/token", "https://test.salesforce.com"),
        ("https://acme.my.site.com/customers/services/oauth2/token", "https://acme.my.site.com/customers"),
        ("https://site.force.com/customers/services/oauth2/token", "https://site.force.com/customers"),
        ("https://acme.my.site.com/services/oauth2/token", "https://acme.my.site.com"),
    ],
)
def test_salesforce_audience_follows_the_documented_set(token_url: str, audience: str) -> None:
    assert salesforce_audience(token_url) == audience


def test_salesforce_my_domain_token_url_sends_the_login_audience() -> None:
    settings = settings_for(
        "salesforce", {"auth_url": "https://acme.my.salesforce.com/services/oauth2/token"}, {"login": "consumer-key"}
    )
    assert settings.preset is not None
    assert settings.preset.audience_for(settings.auth_url or "", settings.client_id) == "https://login.salesforce.com"
    assert settings.preset_warnings == ()


def test_salesforce_documented_audiences_do_not_warn() -> None:
    for audience in ("https://test.salesforce.com", "https://acme.my.site.com/customers"):
        assert settings_for("salesforce", {"audience": audience}, {}).preset_warnings == ()


def test_entra_defaults_to_ps256_and_keeps_rs256_when_set() -> None:
    assert settings_for("entra", {}, {}).algorithm == "PS256"
    assert settings_for("entra", {"algorithm": "RS256"}, {}).algorithm == "RS256"


def test_entra_accepts_its_national_clouds() -> None:
    for host in ("login.microsoftonline.us", "login.chinacloudapi.cn"):
        settings = settings_for("entra", {"auth_url": f"https://{host}/t/oauth2/v2.0/token"}, {})
        assert settings.preset_warnings == ()


def test_servicenow_public_client_without_a_secret_sends_neither_id_nor_secret_and_warns() -> None:
    settings = settings_for("servicenow", {}, {"password": None})
    assert settings.client_auth.value == "none"
    assert any("public client" in warning for warning in settings.preset_warnings)


def test_docusign_application_tokens_carry_no_subject() -> None:
    preset = PRESETS["docusign_application"]
    assert preset.subject_defaults_to_issuer is False
    assert PRESETS["docusign"].subject_defaults_to_issuer is True


def test_entra_workload_identity_reads_the_webhook_file_for_entra_audience() -> None:
    """The defaults follow the AKS webhook: the file in $AZURE_FEDERATED_TOKEN_FILE, for api://AzureADTokenExchange."""
    settings = settings_for("entra_workload_identity", {}, {})
    assert settings.signer is None
    assert settings.grant_type.setting == "client_credentials"
    assert settings.client_auth.value == "private_key_jwt"
    assert (settings.source.source, settings.source.path, settings.source.audience) == (
        "file",
        "$AZURE_FEDERATED_TOKEN_FILE",
        "api://AzureADTokenExchange",
    )


def test_entra_workload_identity_asks_another_platform_for_the_entra_audience() -> None:
    """A source other than the file gets the audience default without the file's setting (which it would refuse)."""
    settings = settings_for("entra_workload_identity", {"assertion_source": "github_actions"}, {})
    assert (settings.source.source, settings.source.audience) == ("github_actions", "api://AzureADTokenExchange")


def test_google_workload_identity_fills_the_sts_request() -> None:
    settings = settings_for("google_workload_identity", {}, {})
    exchange = settings.token_exchange
    assert settings.auth_url == "https://sts.googleapis.com/v1/token"
    assert settings.client_auth.value == "none"
    assert exchange is not None
    assert exchange.requested_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert exchange.audiences == (GOOGLE_PROVIDER,)
    assert exchange.impersonation_url == GOOGLE_IMPERSONATION
