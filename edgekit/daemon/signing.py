"""Deployment keys: an Ed25519 key pair, the private half on the deploying machine, the public
half on every device that should accept its deployments (``edgekit run --trust-key``).

A device runs a model only if its offer is signed by a key it trusts: the signature covers the
offer's canonical JSON (deployment id, target model, bundle and artifact sha256, chunk hashes),
so neither the model nor the instructions can be changed on the way. The primitives are
``cryptography``'s; nothing here is home-made crypto.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from edgekit.errors import ConfigError, InputNotFoundError, OutputExistsError
from edgekit.foreign import KEY_LOAD, mapped


def _require() -> None:
    from edgekit.errors import require_extra

    require_extra("cryptography", "device")


def key_id(public_pem: bytes) -> str:
    """A short name of a public key (the first 16 hex digits of its raw bytes' sha256)."""
    from cryptography.hazmat.primitives import serialization

    with mapped(KEY_LOAD, "read a deployment public key"):
        key = serialization.load_pem_public_key(public_pem)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key_pair(private_path: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new private key (PEM, readable by its owner only) and its public key beside it (.pub)."""
    _require()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise OutputExistsError(
                f"{path} exists", hint="pass --force to replace it (devices trusting it then refuse)"
            )
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = private_path.with_name(f".{private_path.name}.partial")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    os.replace(temporary, private_path)
    temporary_public = public_path.with_name(f".{public_path.name}.partial")
    temporary_public.write_bytes(public_pem)
    os.replace(temporary_public, public_path)
    return private_path, public_path


class Signer:
    """The deploying machine's private key."""

    def __init__(self, path: Path) -> None:
        _require()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not path.exists():
            raise InputNotFoundError(
                f"deployment key {path} does not exist", hint="make one with `edgekit fleet keygen`"
            )
        with mapped(
            KEY_LOAD, f"read the deployment key {path.name}", hint="give the private key `edgekit fleet keygen` wrote"
        ):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path.name} is not an Ed25519 key", hint="make one with `edgekit fleet keygen`")
        self._key = key
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = key_id(public_pem)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._key.sign(message)).decode()


class TrustedKeys:
    """The public keys a device accepts deployments from, by key id."""

    def __init__(self, paths: list[Path]) -> None:
        self._keys: dict[str, object] = {}
        if not paths:
            return
        _require()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        for path in paths:
            if not path.exists():
                raise InputNotFoundError(f"trusted key {path} does not exist")
            pem = path.read_bytes()
            with mapped(
                KEY_LOAD, f"read the trusted key {path.name}", hint="give the .pub file `edgekit fleet keygen` wrote"
            ):
                key = serialization.load_pem_public_key(pem)
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError(f"trusted key {path.name} is not an Ed25519 public key")
            self._keys[key_id(pem)] = key

    def __bool__(self) -> bool:
        return bool(self._keys)

    def ids(self) -> list[str]:
        return sorted(self._keys)

    def refusal(self, message: bytes, key: str | None, signature: str | None) -> str | None:
        """Why a signed message is refused, or None when a trusted key signed it."""
        from cryptography.exceptions import InvalidSignature

        if not self._keys:
            return "this device trusts no deployment key (start it with --trust-key KEY.pub)"
        if not signature or not key:
            return "the deployment is not signed"
        trusted = self._keys.get(key)
        if trusted is None:
            return f"signed by key {key}, which this device does not trust"
        try:
            trusted.verify(base64.b64decode(signature, validate=True), message)  # type: ignore[attr-defined]
        except (InvalidSignature, ValueError):
            return f"the signature does not match (key {key}): the offer or its model was changed"
        return None
