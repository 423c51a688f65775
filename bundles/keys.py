"""Ed25519 signing keys and signatures in minisign's formats, so the stock `minisign` reads ours.

Formats (minisign 0.11):
    public key   "untrusted comment: ...\\n" + b64("Ed" | key_id[8] | pk[32])
    secret key   "untrusted comment: ...\\n" + b64("Ed" | kdf "Sc"/"\\0\\0" | "B2" | salt[32] | ops[8] | mem[8]
                                                  | enc(key_id[8] | sk[64] | blake2b-256 checksum[32]))
    signature    "untrusted comment: ...\\n" + b64("ED" | key_id | ed25519(blake2b-512(msg)))
                 + "\\ntrusted comment: ...\\n" + b64(ed25519(sig | trusted_comment))
Parsing and checking are pure functions of bytes; reading files and prompting live in the CLI.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from .errors import KeyFormatError, SignatureError

__all__ = ["PublicKey", "SecretKey", "Signature", "generate", "sign", "sign_digest", "verify", "parse_signature"]

_SIG_ALG = b"Ed"
_SIG_ALG_PREHASHED = b"ED"
_KDF_SCRYPT = b"Sc"
_KDF_NONE = b"\x00\x00"
_CHK_ALG = b"B2"
# libsodium's crypto_pwhash_scryptsalsa208sha256 *_SENSITIVE limits, as minisign uses.
_OPSLIMIT = 33554432
_MEMLIMIT = 1073741824


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicKey:
    key_id: bytes
    raw: bytes

    @property
    def id_hex(self) -> str:
        return self.key_id[::-1].hex().upper()

    def to_text(self) -> str:
        return (f"untrusted comment: minisign public key {self.id_hex}\n"
                + base64.b64encode(_SIG_ALG + self.key_id + self.raw).decode() + "\n")

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        b64 = lines[-1] if lines else ""
        if len(lines) == 1 and not lines[0].startswith("untrusted comment:"):
            b64 = lines[0]
        try:
            data = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise KeyFormatError("public key is not base64 (expected a minisign .pub file)") from exc
        if len(data) != 42 or data[:2] != _SIG_ALG:
            raise KeyFormatError("not a minisign Ed25519 public key")
        return cls(key_id=data[2:10], raw=data[10:])

    def _ed(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretKey:
    key_id: bytes
    seed: bytes  # the 32-byte Ed25519 seed

    @property
    def public(self) -> PublicKey:
        pk = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(key_id=self.key_id, raw=pk)

    def to_text(self, password: str | None = None) -> str:
        sk = self.seed + self.public.raw
        checksum = hashlib.blake2b(_SIG_ALG + self.key_id + sk, digest_size=32).digest()
        keynum = self.key_id + sk + checksum
        salt = os.urandom(32)
        if password:
            keynum = _xor(keynum, _scrypt(password, salt, _OPSLIMIT, _MEMLIMIT, len(keynum)))
            kdf = _KDF_SCRYPT
        else:
            kdf = _KDF_NONE
        blob = _SIG_ALG + kdf + _CHK_ALG + salt + struct.pack("<QQ", _OPSLIMIT, _MEMLIMIT) + keynum
        comment = "minisign encrypted secret key" if password else "minisign secret key (unencrypted)"
        return f"untrusted comment: {comment}\n" + base64.b64encode(blob).decode() + "\n"

    @classmethod
    def from_text(cls, text: str, password: str | None = None) -> SecretKey:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        try:
            data = base64.b64decode(lines[-1], validate=True)
        except (binascii.Error, IndexError) as exc:
            raise KeyFormatError("secret key is not base64 (expected a minisign .key file)") from exc
        if len(data) != 158 or data[:2] != _SIG_ALG or data[4:6] != _CHK_ALG:
            raise KeyFormatError("not a minisign Ed25519 secret key")
        kdf, salt = data[2:4], data[6:38]
        ops, mem = struct.unpack("<QQ", data[38:54])
        keynum = data[54:]
        if kdf == _KDF_SCRYPT:
            if not password:
                raise KeyFormatError("the secret key is password-protected: set MIRROR_KEY_PASSWORD or answer the prompt")
            keynum = _xor(keynum, _scrypt(password, salt, ops, mem, len(keynum)))
        elif kdf != _KDF_NONE:
            raise KeyFormatError("unsupported key derivation in the secret key")
        key_id, sk, checksum = keynum[:8], keynum[8:72], keynum[72:]
        # minisign -W writes unencrypted keys with an all-zero checksum.
        unchecked = kdf == _KDF_NONE and checksum == bytes(32)
        if not unchecked and hashlib.blake2b(_SIG_ALG + key_id + sk, digest_size=32).digest() != checksum:
            raise KeyFormatError("wrong password for the secret key, or the key file is damaged")
        key = cls(key_id=key_id, seed=sk[:32])
        if key.public.raw != sk[32:]:
            raise KeyFormatError("the secret key file is damaged (its public half does not match)")
        return key


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    key_id: bytes
    signature: bytes
    trusted_comment: str
    global_signature: bytes
    untrusted_comment: str = "signature from airgap-mirror"

    def to_text(self) -> str:
        return (f"untrusted comment: {self.untrusted_comment}\n"
                + base64.b64encode(_SIG_ALG_PREHASHED + self.key_id + self.signature).decode() + "\n"
                + f"trusted comment: {self.trusted_comment}\n"
                + base64.b64encode(self.global_signature).decode() + "\n")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def _scrypt(password: str, salt: bytes, opslimit: int, memlimit: int, length: int) -> bytes:
    """libsodium's crypto_pwhash_scryptsalsa208sha256 parameter choice, then scrypt."""
    opslimit = max(opslimit, 32768)
    r = 8
    if opslimit < memlimit // 32:
        p = 1
        max_n = opslimit // (r * 4)
        n_log2 = next(i for i in range(1, 63) if (1 << i) > max_n // 2)
    else:
        max_n = memlimit // (r * 128)
        n_log2 = next(i for i in range(1, 63) if (1 << i) > max_n // 2)
        max_rp = min((opslimit // 4) // (1 << n_log2), 0x3FFFFFFF)
        p = max(1, max_rp // r)
    n = 1 << n_log2
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=min(128 * r * (n + p + 2) + (1 << 20), 2**31 - 1), dklen=length)


def generate() -> SecretKey:
    seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SecretKey(key_id=os.urandom(8), seed=seed)


def sign(key: SecretKey, message: bytes, trusted_comment: str) -> Signature:
    """A prehashed (BLAKE2b-512) minisign signature over message, and the global one over the comment."""
    return sign_digest(key, hashlib.blake2b(message, digest_size=64).digest(), trusted_comment)


def sign_digest(key: SecretKey, blake2b_512: bytes, trusted_comment: str) -> Signature:
    """As `sign`, given the BLAKE2b-512 digest of the message (for files hashed while written)."""
    if "\n" in trusted_comment or "\r" in trusted_comment:
        raise ValueError("a trusted comment is one line")
    ed = Ed25519PrivateKey.from_private_bytes(key.seed)
    sig = ed.sign(blake2b_512)
    glob = ed.sign(sig + trusted_comment.encode("utf-8"))
    return Signature(key_id=key.key_id, signature=sig, trusted_comment=trusted_comment, global_signature=glob)


def parse_signature(text: str | bytes) -> Signature:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureError("signature is not text (expected a minisign .minisig)") from exc
    lines = text.splitlines()
    if len(lines) < 4 or not lines[0].startswith("untrusted comment:") or not lines[2].startswith("trusted comment: "):
        raise SignatureError("not a minisign signature (expected 4 lines: comment, signature, trusted comment, global signature)")
    try:
        data = base64.b64decode(lines[1].strip(), validate=True)
        glob = base64.b64decode(lines[3].strip(), validate=True)
    except binascii.Error as exc:
        raise SignatureError("signature lines are not base64") from exc
    if len(data) != 74 or data[:2] not in (_SIG_ALG, _SIG_ALG_PREHASHED) or len(glob) != 64:
        raise SignatureError("malformed minisign signature")
    if data[:2] != _SIG_ALG_PREHASHED:
        raise SignatureError("legacy (non-prehashed) minisign signatures are not accepted")
    return Signature(key_id=data[2:10], signature=data[10:], trusted_comment=lines[2][len("trusted comment: "):],
                     global_signature=glob, untrusted_comment=lines[0][len("untrusted comment:"):].strip())


def verify(keys: list[PublicKey], message: bytes, signature: Signature) -> PublicKey:
    """The trusted key that made `signature` over `message` and its trusted comment; raises SignatureError."""
    candidates = [k for k in keys if k.key_id == signature.key_id]
    if not candidates:
        raise SignatureError(f"signed by key {signature.key_id[::-1].hex().upper()}, which is not trusted "
                             "(add it with `mirror trust add KEY.pub`, or pass --trust)")
    prehashed = hashlib.blake2b(message, digest_size=64).digest()
    # Two trusted keys may share the 8-byte id (by chance or by design): each is tried.
    for key in candidates:
        try:
            key._ed().verify(signature.signature, prehashed)
            key._ed().verify(signature.global_signature, signature.signature + signature.trusted_comment.encode("utf-8"))
        except InvalidSignature:
            continue
        return key
    raise SignatureError(f"signature by key {candidates[0].id_hex} does not match the signed bytes")
