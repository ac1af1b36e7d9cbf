"""Sign JWT assertions inside a PKCS#11 device (an HSM, a smart card, SoftHSM2).

The private key never leaves the device: the provider sends it the JWS signing input (or its
digest) and gets the signature back. Needs the optional ``python-pkcs11`` dependency
(``pip install 'airflow-jwt-provider[pkcs11]'``) and the device vendor's PKCS#11 module (a
``.so`` file) on every machine that signs: Airflow workers, and the triggerer for deferrable
operators.

Design notes (what an integrator needs to know):

* **One library, one session per token, per process.** Opening a PKCS#11 library and logging
  in costs a round trip to the device (and HSMs limit concurrent sessions), so
  :class:`Pkcs11Signer` objects share one logged-in session per (module, token label) in a
  process; building a second signer for the same token costs a key lookup only. After a fork
  (Celery prefork, the task supervisor) the child re-initialises the library and opens its
  own session, as PKCS#11 requires: a session is never shared across processes.
* **Thread safety: one lock per token, not a session per thread.** python-pkcs11 initialises
  the library with ``C_Initialize(NULL)``, which in PKCS#11 terms tells the library that the
  application will not call it from several threads at once; many HSM modules then do no
  locking of their own. Every call into a token therefore goes through that token's lock:
  signing is serialised per token and process (SoftHSM2: ~1 ms per RSA-2048 signature, so a
  lock costs nothing that matters next to the HTTP round trip of a token request).
* **Reconnects.** When the device reports the session closed or the login lost (device
  restarted, network HSM reconnected, library re-initialised), the signer opens a new
  session, logs in again and retries the signature once.
* **The PIN** is held by the signer for those re-logins. It is never part of ``repr``, of an
  error message or a log line, and the signer refuses to be pickled.
* **The public key** is read from the token's public-key object with the same ``CKA_ID``
  (else the same label), else from a certificate object, else (RSA) from the private-key
  object's public attributes. **The certificate** (for ``x5t`` headers and for inspection)
  comes from ``certificate_file`` when configured, else from a certificate object on the
  token with the key's ``CKA_ID`` (else label); either must certify this key pair.
* **Mechanisms.** RS256/384/512: ``CKM_SHA*_RSA_PKCS`` when the token has it, else
  ``CKM_RSA_PKCS`` over a DigestInfo; PS256/384/512: ``CKM_SHA*_RSA_PKCS_PSS`` else
  ``CKM_RSA_PKCS_PSS`` over the digest, MGF1 with the same hash and a salt as long as the hash
  (RFC 7518 §3.5); ES256/384/512: ``CKM_ECDSA`` over the digest (else ``CKM_ECDSA_SHA*``), whose
  ``r || s`` output is already the JWS form.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.signing.certificates import load_certificate_file
from airflow_jwt_provider.signing.jws import (
    SigningPublicKey,
    choose_algorithm,
    describe_public_key,
    public_key_fingerprint,
    same_public_key,
)
from airflow_jwt_provider.signing.signers.base import DeviceSigner
from airflow_jwt_provider.signing.signers.pkcs11._mechanisms import (
    SigningPlan,
    algorithms_with,
    candidate_plans,
    plan_for,
)
from airflow_jwt_provider.signing.signers.pkcs11._objects import (
    FoundKey,
    public_key_from_token_object,
    token_ecdsa_to_jws,
)
from airflow_jwt_provider.signing.signers.pkcs11._sessions import (
    INSTALL_HINT,
    TokenLink,
    import_pkcs11,
    library,
    link_for,
)

__all__ = ["DEFAULT_FIELD_NAMES", "INSTALL_HINT", "Pkcs11Signer"]

#: The setting names errors point at, by constructor argument; ``field_names`` overrides them
#: so that messages name the connection fields a user actually typed.
DEFAULT_FIELD_NAMES: Mapping[str, str] = {
    "module_path": "pkcs11_module_path",
    "token_label": "pkcs11_token_label",
    "pin": "pkcs11_pin",
    "key_label": "pkcs11_key_label",
    "key_object_id": "pkcs11_key_id",
    "algorithm": "algorithm",
    "certificate_file": "certificate_file",
}

_T = TypeVar("_T")


class Pkcs11Signer(DeviceSigner):
    """A :class:`~airflow_jwt_provider.signing.signers.base.Signer` whose private key stays in a PKCS#11 token.

    :param module_path: the vendor's PKCS#11 module (``/usr/lib/softhsm/libsofthsm2.so``,
        ``/opt/cloudhsm/lib/libcloudhsm_pkcs11.so``...), present on every machine that signs.
    :param token_label: the label of the token (``softhsm2-util --show-slots``, ``pkcs11-tool -T``).
    :param pin: the user PIN (a secret: kept for re-logins, never shown).
    :param key_label: ``CKA_LABEL`` of the private key.
    :param key_object_id: ``CKA_ID`` of the private key in hex (``pkcs11-tool --id``); give it
        when several keys share a label. At least one of ``key_label``/``key_object_id``.
    :param algorithm: JWS algorithm; default from the key (RSA → RS256, EC → ES256/384/512 by
        curve). RSA keys may also use RS384/512 and PS256/384/512.
    :param certificate_file: PEM/DER certificate of the key pair, for tokens that hold none
        (wins over a certificate object on the token).
    :param field_names: setting names for error messages, by argument name
        (:data:`DEFAULT_FIELD_NAMES`).
    :raises KeystoreError: the module, token, key or certificate cannot be used (wrong PIN too).
    :raises JwtBearerConfigError: a setting is missing, or the algorithm does not fit the key or
        the token's mechanisms.
    """

    def __init__(
        self,
        module_path: str | os.PathLike[str],
        token_label: str,
        pin: str,
        *,
        key_label: str | None = None,
        key_object_id: str | None = None,
        algorithm: str | None = None,
        certificate_file: str | os.PathLike[str] | None = None,
        field_names: Mapping[str, str] | None = None,
    ) -> None:
        self._fields = {**DEFAULT_FIELD_NAMES, **(field_names or {})}
        self._pkcs11 = import_pkcs11(self._fields["module_path"])
        self._pin = pin
        self._module_path = self._check_module_path(module_path)
        self._token_label = self._require(token_label, "token_label", "the label of the token that holds the key")
        if not pin:
            raise JwtBearerConfigError(
                f"{self._fields['pin']} is empty; set the user PIN of token {token_label!r}", field=self._fields["pin"]
            )
        self._key_label = key_label or None
        self._key_object_id = self._parse_object_id(key_object_id)
        if self._key_label is None and self._key_object_id is None:
            raise JwtBearerConfigError(
                f"set {self._fields['key_label']} (the key's CKA_LABEL) or {self._fields['key_object_id']} "
                "(its CKA_ID in hex) to say which key of the token signs",
                field=self._fields["key_label"],
            )
        self._link = self._open_link()
        self._key_handle: tuple[int, Any] | None = None

        found = self._on_token(self._find_key, "looking up the key")
        self._key_template = found.template
        self._public_key: SigningPublicKey = found.public_key
        self._shown_label: str | None = found.label
        self._shown_id: str = found.object_id
        token_certificate = found.certificate

        self._certificate: x509.Certificate | None
        self._certificate_source: str | None
        if certificate_file:
            self._certificate = load_certificate_file(
                certificate_file, self._public_key, field=self._fields["certificate_file"]
            )
            self._certificate_source = "file"
        elif token_certificate is not None:
            self._certificate, self._certificate_source = token_certificate, "token"
        else:
            self._certificate, self._certificate_source = None, None

        self._algorithm = choose_algorithm(
            self._public_key,
            algorithm,
            field=self._fields["algorithm"],
            key_field=self._fields["key_label"],
            where=f"PKCS#11 key {self._describe_key()}",
        )
        self._plan = self._choose_plan(found.mechanisms)

    # --- the Signer contract -------------------------------------------------------------------

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input``, computed by the token (blocks on the device)."""
        data = self._plan.prepare(signing_input)
        raw = self._on_token(lambda session: self._key_in(session).sign(data, **self._plan.sign_kwargs()), "signing")
        if isinstance(self._public_key, ec.EllipticCurvePublicKey):
            try:
                return token_ecdsa_to_jws(raw, self._public_key.curve.key_size)
            except ValueError as exc:
                raise KeystoreError(
                    f"the PKCS#11 module returned an ECDSA signature in an unknown form: {exc}",
                    field=self._fields["module_path"],
                ) from None
        size = (self._public_key.key_size + 7) // 8  # type: ignore[union-attr]
        return bytes(raw).rjust(size, b"\0")

    # --- more about the key, for inspection and logs ----------------------------------------------

    @property
    def module_path(self) -> str:
        return self._module_path

    @property
    def token_label(self) -> str:
        return self._token_label

    @property
    def key_label(self) -> str | None:
        return self._shown_label

    @property
    def key_object_id(self) -> str:
        """The key's ``CKA_ID`` in hex (empty when the token gave it none)."""
        return self._shown_id

    @property
    def mechanism(self) -> str:
        """The PKCS#11 mechanism that signs, e.g. ``SHA256_RSA_PKCS`` or ``ECDSA``."""
        return self._plan.mechanism_name

    @property
    def certificate_source(self) -> str | None:
        """``"file"`` (certificate_file), ``"token"`` (a certificate object) or ``None``."""
        return self._certificate_source

    def __repr__(self) -> str:
        return (
            f"Pkcs11Signer(module={self._module_path!r}, token={self._token_label!r}, key={self._describe_key()}, "
            f"algorithm={self._algorithm}, mechanism={self.mechanism}, "
            f"public_key={describe_public_key(self._public_key)}, "
            f"fingerprint={public_key_fingerprint(self._public_key)[:16]}…)"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a Pkcs11Signer holds a device session and the token PIN and cannot be pickled or copied; "
            "build one in the process that signs"
        )

    # --- construction steps --------------------------------------------------------------------------

    def _require(self, value: str | None, name: str, what: str) -> str:
        if not value:
            raise JwtBearerConfigError(f"{self._fields[name]} is empty; set {what}", field=self._fields[name])
        return value

    def _check_module_path(self, module_path: str | os.PathLike[str]) -> str:
        field = self._fields["module_path"]
        shown = self._require(os.fspath(module_path) if module_path else "", "module_path", "the PKCS#11 module path")
        path = Path(shown).expanduser()
        if not path.is_file():
            raise KeystoreError(
                f"{field} {shown!r} does not exist on this machine; install the HSM vendor's PKCS#11 library "
                "on every Airflow worker (and triggerer) and set its full path (SoftHSM2: "
                "/usr/lib/softhsm/libsofthsm2.so)",
                field=field,
            )
        # One library object per file: two spellings of one path would initialise it twice.
        return os.path.realpath(path)

    def _parse_object_id(self, key_object_id: str | None) -> bytes | None:
        if not key_object_id:
            return None
        text = key_object_id.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
        try:
            return bytes.fromhex(text)
        except ValueError:
            field = self._fields["key_object_id"]
            raise JwtBearerConfigError(
                f"{field} {key_object_id!r} is not hexadecimal; give the key's CKA_ID as hex digits "
                "(e.g. 01 or a1b2c3, as pkcs11-tool --list-objects shows it)",
                field=field,
            ) from None

    def _open_link(self) -> TokenLink:
        pkcs11 = self._pkcs11
        field = self._fields["module_path"]
        try:
            loaded = library(pkcs11, self._module_path)
        except pkcs11.PKCS11Error as exc:
            detail = str(exc).split(": ")[-1] if str(exc) else type(exc).__name__
            raise KeystoreError(
                f"{field} {self._module_path!r} cannot be loaded as a PKCS#11 module ({detail}); "
                "point it at the vendor's PKCS#11 library (.so)",
                field=field,
            ) from None
        labels = self._token_labels(loaded)
        if self._token_label not in labels:
            token_field = self._fields["token_label"]
            shown = ", ".join(repr(label) for label in labels) or "none (is the token initialised?)"
            raise KeystoreError(
                f"{token_field} {self._token_label!r} matches no token of {self._module_path}; tokens present: {shown}",
                field=token_field,
            )
        return link_for(self._module_path, self._token_label)

    def _token_labels(self, library: Any) -> list[str]:
        labels = []
        try:
            for slot in library.get_slots(token_present=True):
                try:
                    token = slot.get_token()
                except self._pkcs11.PKCS11Error:
                    continue
                if token.flags & self._pkcs11.TokenFlag.TOKEN_INITIALIZED and token.label:
                    labels.append(token.label)
        except self._pkcs11.PKCS11Error as exc:
            self._raise_device_error(exc, "listing its tokens")
        return labels

    def _find_key(self, session: Any) -> FoundKey:
        from pkcs11 import Attribute, ObjectClass

        template: dict[Any, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        if self._key_label is not None:
            template[Attribute.LABEL] = self._key_label
        if self._key_object_id is not None:
            template[Attribute.ID] = self._key_object_id
        matches = list(session.get_objects(template))
        if len(matches) != 1:
            self._raise_key_not_found(session, len(matches))
        private = matches[0]
        object_id = bytes(private[Attribute.ID] or b"")
        label = private[Attribute.LABEL] or None
        exact = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: object_id}
        if label is not None:
            exact[Attribute.LABEL] = label
        if not private[Attribute.SIGN]:
            raise KeystoreError(
                f"PKCS#11 key {self._describe_key(label, object_id)} may not sign (CKA_SIGN is false); "
                "use a signing key or have the HSM administrator allow signing with it",
                field=self._fields["key_label"],
            )

        def companion(object_class: Any) -> Any:
            for attrs in ({Attribute.ID: object_id} if object_id else {}, {Attribute.LABEL: label} if label else {}):
                if attrs:
                    found = list(session.get_objects({Attribute.CLASS: object_class, **attrs}))
                    if len(found) == 1:
                        return found[0]
            return None

        public_key: SigningPublicKey | None = None
        public_object = companion(ObjectClass.PUBLIC_KEY)
        if public_object is not None:
            public_key = public_key_from_token_object(public_object)
        certificate = None
        certificate_object = companion(ObjectClass.CERTIFICATE)
        if certificate_object is not None:
            certificate = x509.load_der_x509_certificate(bytes(certificate_object[Attribute.VALUE]))
        if public_key is None and certificate is not None:
            cert_key = certificate.public_key()
            if isinstance(cert_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                public_key = cert_key
        if public_key is None:
            try:
                public_key = public_key_from_token_object(private)  # RSA private keys carry n and e
            except (ValueError, self._pkcs11.PKCS11Error):
                public_key = None
        if public_key is None:
            raise KeystoreError(
                f"PKCS#11 key {self._describe_key(label, object_id)} has no public-key object, certificate or "
                "readable public attributes on the token; import its public key or certificate with the same "
                "CKA_ID, or set certificate_file",
                field=self._fields["key_label"],
            )
        if certificate is not None and not same_public_key(certificate.public_key(), public_key):
            certificate = None  # a certificate object for another key pair under the same label/id
        slot = session.token.slot
        return FoundKey(exact, public_key, label, object_id.hex(), certificate, frozenset(slot.get_mechanisms()))

    def _raise_key_not_found(self, session: Any, count: int) -> NoReturn:
        from pkcs11 import Attribute, ObjectClass

        keys = []
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
            keys.append(f"{obj[Attribute.LABEL]!r} (id {bytes(obj[Attribute.ID] or b'').hex() or '-'})")
        wanted = self._describe_key()
        label_field, id_field = self._fields["key_label"], self._fields["key_object_id"]
        if count > 1:
            raise KeystoreError(
                f"{count} private keys on token {self._token_label!r} match {wanted}; set {id_field} too to pick "
                f"one: {', '.join(keys)}",
                field=id_field,
            )
        raise KeystoreError(
            f"no private key on token {self._token_label!r} matches {wanted}; private keys on the token: "
            f"{', '.join(keys) or 'none'}",
            field=label_field if self._key_label is not None else id_field,
        )

    def _describe_key(self, label: str | None = None, object_id: bytes | None = None) -> str:
        if label is None and object_id is None:
            label = getattr(self, "_shown_label", None) or self._key_label
            object_id = bytes.fromhex(self._shown_id) if getattr(self, "_shown_id", "") else self._key_object_id
        parts = []
        if label is not None:
            parts.append(f"label {label!r}")
        if object_id:
            parts.append(f"id {object_id.hex()}")
        return " ".join(parts) or "(no label, no id)"

    def _choose_plan(self, available: frozenset[Any]) -> SigningPlan:
        """The mechanism for the algorithm, and how the signing input becomes its input."""
        plan = plan_for(self._algorithm, available)
        if plan is not None:
            return plan
        names = " or ".join(f"CKM_{candidate.mechanism_name}" for candidate in candidate_plans(self._algorithm))
        usable = algorithms_with(self._public_key, available)
        raise JwtBearerConfigError(
            f"token {self._token_label!r} offers no mechanism for {self._algorithm} ({names}); "
            f"algorithms this token can sign with this key: {', '.join(usable) or 'none'}",
            field=self._fields["algorithm"],
        )

    # --- device calls ------------------------------------------------------------------------------

    def _key_in(self, session: Any) -> Any:
        """The private key's handle in the link's current session (found again after a reconnect)."""
        generation = self._link.generation
        if self._key_handle is None or self._key_handle[0] != generation:
            matches = list(session.get_objects(self._key_template))
            if len(matches) != 1:
                raise KeystoreError(
                    f"PKCS#11 key {self._describe_key()} is no longer on token {self._token_label!r} "
                    f"({len(matches)} matches); was it deleted or replaced?",
                    field=self._fields["key_label"],
                )
            self._key_handle = (generation, matches[0])
        return self._key_handle[1]

    def _on_token(self, operation: Callable[[Any], _T], doing: str) -> _T:
        try:
            return self._link.run(self._pkcs11, self._pin, operation)
        except self._pkcs11.PKCS11Error as exc:
            self._raise_device_error(exc, doing)

    def _raise_device_error(self, exc: Exception, doing: str) -> NoReturn:
        """A provider error for a PKCS#11 error; python-pkcs11's own texts are not reused (no PIN can slip in)."""
        p = self._pkcs11
        token = self._token_label
        pin_field = self._fields["pin"]
        if isinstance(exc, p.PinIncorrect | p.PinInvalid | p.PinLenRange):
            raise KeystoreError(
                f"{pin_field} is not the user PIN of token {token!r} (the device refused it); check the connection's "
                f"{pin_field}. Careful: HSMs lock the PIN after a few wrong attempts",
                field=pin_field,
            ) from None
        if isinstance(exc, p.PinLocked):
            raise KeystoreError(
                f"the user PIN of token {token!r} is locked after too many wrong attempts; "
                "the HSM administrator must unlock or reset it",
                field=pin_field,
            ) from None
        if isinstance(exc, p.PinExpired):
            raise KeystoreError(
                f"the user PIN of token {token!r} has expired; set a new one", field=pin_field
            ) from None
        if isinstance(exc, p.UserPinNotInitialized):
            raise KeystoreError(
                f"token {token!r} has no user PIN yet; initialise it (softhsm2-util --init-pin / the vendor's tool)",
                field=pin_field,
            ) from None
        if isinstance(exc, p.UserAlreadyLoggedIn | p.AnotherUserAlreadyLoggedIn | p.UserTooManyTypes):
            raise KeystoreError(
                f"token {token!r} is already logged in by other code in this process, so {pin_field} cannot be "
                "checked; use one PKCS#11 client per process",
                field=pin_field,
            ) from None
        if isinstance(exc, p.NoSuchToken | p.TokenNotPresent | p.TokenNotRecognised | p.DeviceRemoved):
            field = self._fields["token_label"]
            raise KeystoreError(
                f"token {token!r} is not present in {self._module_path} any more while {doing}; is the HSM reachable?",
                field=field,
            ) from None
        if isinstance(exc, p.MechanismInvalid | p.MechanismParamInvalid | p.FunctionNotSupported):
            field = self._fields["algorithm"]
            raise JwtBearerConfigError(
                f"token {token!r} refused the {self._algorithm_or_none()} mechanism while {doing} "
                f"({type(exc).__name__}); choose another {field}",
                field=field,
            ) from None
        if isinstance(exc, p.KeyTypeInconsistent | p.KeySizeRange):
            raise KeystoreError(
                f"token {token!r} refused PKCS#11 key {self._describe_key()} for {self._algorithm_or_none()} "
                f"({type(exc).__name__}) while {doing}",
                field=self._fields["key_label"],
            ) from None
        raise KeystoreError(
            f"the PKCS#11 module {self._module_path} failed while {doing} on token {token!r} "
            f"({type(exc).__name__}); check the device and its logs",
            field=self._fields["module_path"],
        ) from None

    def _algorithm_or_none(self) -> str:
        return getattr(self, "_algorithm", None) or "requested"
