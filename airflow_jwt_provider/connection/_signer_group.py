"""The signer group: which signer, which key, and the signer's own settings (parsed by its registration).

A setting that another signer reads is refused, naming both, rather than ignored: a
``key_file`` left over after the key moved into an HSM would suggest that the file still signs.
``key_alias`` names the key for every signer and may list several (comma-separated or a JSON
list) for a rotation; ``key_id`` may then list one ``kid`` per key.
"""

from __future__ import annotations

from airflow_jwt_provider.common.registry import RegistrationError
from airflow_jwt_provider.connection.extras import ExtraReader
from airflow_jwt_provider.connection.fields import ALL_FIELDS
from airflow_jwt_provider.connection.signer_settings import (
    DEFAULT_SIGNER,
    SIGNERS,
    KeySelection,
    SignerRegistration,
    SignerSettings,
)


def allowed_keys() -> list[str]:
    """Every extra key a connection may set: the declared fields and those other installed signers declare."""
    keys = dict.fromkeys(ALL_FIELDS)
    for registration in SIGNERS.load_all():
        keys.update(dict.fromkeys(f.name for f in registration.fields))
    return list(keys)


def parse_signer(extras: ExtraReader) -> tuple[SignerSettings, KeySelection]:
    """The chosen signer's settings and the key selection every signer shares."""
    name = extras.choice("signer", SIGNERS.names()) or DEFAULT_SIGNER
    try:
        registration = SIGNERS.get(name)
    except RegistrationError as exc:
        raise extras.error("signer", f"is {name!r}, but {exc}") from None
    _refuse_settings_of_other_signers(extras, registration)
    aliases = extras.name_list("key_alias")
    keys = KeySelection(aliases, *_key_ids(extras, aliases))
    return registration.parse(extras, keys), keys


def _refuse_settings_of_other_signers(extras: ExtraReader, chosen: SignerRegistration) -> None:
    """A key another signer reads (its own field, or a shared one ``chosen`` does not read) is an error."""
    own = {f.name for f in chosen.fields}
    for key in sorted(extras.given):
        if key in own or key in chosen.reads:
            continue
        field = ALL_FIELDS.get(key)
        if field is not None and not field.signer_scoped:
            continue  # a setting of the connection itself
        readers = [
            registration.name
            for registration in SIGNERS.load_all()
            if key in registration.reads or any(f.name == key for f in registration.fields)
        ]
        if field is None and not readers:
            continue  # not a signer setting at all (unknown keys are refused before this group)
        named = " or ".join(repr(reader) for reader in readers) or "no installed signer"
        raise extras.error(
            key,
            f"does not apply to signer {chosen.name!r} (only signer {named} reads it); "
            f"remove {key} or set signer to {named}",
        )


def _key_ids(extras: ExtraReader, aliases: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``key_id`` as one kid, or (a JSON list) one kid per ``key_alias`` entry."""
    value = extras.json_value("key_id")
    if not isinstance(value, list):
        return extras.text("key_id"), ()
    if not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise extras.error("key_id", "must be one kid or a JSON list of kids (non-empty strings)")
    if len(value) != len(aliases):
        raise extras.error(
            "key_id",
            f"lists {len(value)} kid(s) but key_alias lists {len(aliases)} key(s); give one kid per key, "
            "in the order of key_alias",
        )
    kids = tuple(v.strip() for v in value)
    return kids[0], kids
