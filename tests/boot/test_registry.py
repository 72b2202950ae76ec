"""Image references: where the registry lives (for the reader grant) and digest pinning."""

from __future__ import annotations

import pytest

from asyncinfer.components.registry import RegistryLocation, digest_of, pinned_reference, registry_location

DIGEST = "sha256:" + "a" * 64


def test_an_artifact_registry_reference_names_its_own_project_and_repository() -> None:
    assert registry_location("europe-west4-docker.pkg.dev/central-reg/models/ocr:1") == RegistryLocation(
        "central-reg", "europe-west4", "models"
    )
    assert registry_location("gcr.io/legacy-proj/ocr:1") == RegistryLocation("legacy-proj")
    assert registry_location("eu.gcr.io/legacy-proj/ocr@" + DIGEST) == RegistryLocation("legacy-proj")
    assert registry_location("pytorch/pytorch:2.13.0") is None


def test_a_digest_pins_the_repository_whatever_the_tag() -> None:
    ref = "asia-northeast1-docker.pkg.dev/p/r/symbols:1.0"
    assert pinned_reference(ref, DIGEST) == f"asia-northeast1-docker.pkg.dev/p/r/symbols@{DIGEST}"
    assert pinned_reference(f"{ref}@{DIGEST}", DIGEST) == f"asia-northeast1-docker.pkg.dev/p/r/symbols@{DIGEST}"
    assert pinned_reference("localhost:5000/symbols:1", DIGEST) == f"localhost:5000/symbols@{DIGEST}"
    assert pinned_reference(ref, None) == ref
    assert digest_of(f"{ref}@{DIGEST}") == DIGEST
    assert digest_of(ref) is None
    with pytest.raises(ValueError, match="sha256:<64 hex"):
        digest_of(f"{ref}@sha256:abc")


def test_an_unbaked_image_is_refused_with_the_key_and_the_fix() -> None:
    from asyncinfer.components.stack_config import StackConfigError, parse_stack_config

    with pytest.raises(StackConfigError, match=r"asyncinfer:imageBaked: false is not supported.*bake"):
        parse_stack_config(
            {
                "gcp:project": "p",
                "asyncinfer:image": "asia-northeast1-docker.pkg.dev/p/r/m:1",
                "asyncinfer:existingImage": "my-image",
                "asyncinfer:imageBaked": "false",
            },
            stack="symbols",
        )
