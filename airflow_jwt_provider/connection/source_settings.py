"""Where the JWT comes from: the ``assertion_source`` setting, and the actor token's source for token exchange.

``sign`` (the default) mints it with the connection's key. The other built-in sources take a JWT the
platform already hands the workload, so the connection needs no key at all: ``file`` (a Kubernetes
projected service-account token, ``AZURE_FEDERATED_TOKEN_FILE``, a SPIFFE JWT-SVID written to disk),
``github_actions`` (the job's OIDC token), ``aws_sts`` (``GetWebIdentityToken``), ``gcp_metadata``
(the metadata server's identity token) and ``callable`` (a function, for anything else). Another
package may register more in the ``airflow_jwt_provider.assertion_sources`` entry-point group.

A source's settings are read under a prefix: ``assertion_…`` for the assertion, ``actor_token_…``
for the actor token of a token exchange (``assertion_file`` / ``actor_token_file``). Like signers, a
source registers its parse here (:class:`SourceRegistration`) and builds its runtime object in the
assertions layer (:class:`~airflow_jwt_provider.assertions.base.SourceType`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from airflow_jwt_provider.common.registry import ASSERTION_SOURCE_GROUP, Registry
from airflow_jwt_provider.connection.extras import ExtraReader

#: The default ``assertion_source``: minted and signed with the connection's key.
SIGN_SOURCE = "sign"
#: The prefixes a source's settings are read under.
ASSERTION_PREFIX = "assertion"
ACTOR_PREFIX = "actor_token"
#: What the built-in sources read, after the prefix (``file`` → ``assertion_file``, ``actor_token_file``).
SOURCE_SETTING_SUFFIXES = ("file", "audience", "callable", "aws_conn_id", "signing_algorithm", "options")


@runtime_checkable
class SourceSettings(Protocol):
    """The settings of one assertion source (a frozen dataclass of the source's module).

    * ``source``: the registered name (``file``, ``github_actions``…).
    * ``needs_key``: the source signs with the connection's key (only ``sign``): the signer settings
      are then required, and refused otherwise (unless a client assertion needs the key).
    * ``describe()``: one line for ``airflow jwt-bearer check`` (never a secret).
    """

    @property
    def source(self) -> str: ...

    @property
    def needs_key(self) -> bool: ...

    def describe(self) -> str: ...


@runtime_checkable
class SourceRegistration(Protocol):
    """What an assertion source registers for the connection layer.

    * ``name``: the ``assertion_source`` value; ``title``: how the form and ``check`` call it.
    * ``suffixes``: the settings it reads, after the prefix (``file``, ``audience``…).
    * ``parse(extras, prefix)``: its settings from ``<prefix>_<suffix>`` keys, or an error naming the key.
    """

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def suffixes(self) -> frozenset[str]: ...

    def parse(self, extras: ExtraReader, prefix: str) -> SourceSettings: ...


#: Every installed assertion source, the provider's own ones first.
SOURCES: Registry[SourceRegistration] = Registry(
    ASSERTION_SOURCE_GROUP,
    "assertion source",
    lambda registration: isinstance(registration, SourceRegistration),
    preferred=(SIGN_SOURCE, "file", "github_actions", "aws_sts", "gcp_metadata", "callable"),
)
