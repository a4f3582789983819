"""Bundle manifest read/write, hashing, atomic writes and verification.

Imports nothing from the build side: the device reads bundles with this.
"""
from edgekit.bundle.manifest import MANIFEST_NAME, SCHEMA_VERSION, ArtifactEntry, Manifest
from edgekit.bundle.store import (
    Bundle,
    BundleWriter,
    OutputLock,
    VerifyResult,
    check_writable_target,
    json_default,
    load_bundle,
    sha256_file,
    verify_bundle,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "ArtifactEntry",
    "Manifest",
    "Bundle",
    "BundleWriter",
    "OutputLock",
    "VerifyResult",
    "check_writable_target",
    "json_default",
    "load_bundle",
    "sha256_file",
    "verify_bundle",
    "write_bytes_atomic",
    "write_json_atomic",
]
