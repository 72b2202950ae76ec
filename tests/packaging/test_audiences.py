"""Each audience installs only what it needs (from the installed distributions' metadata)."""

from __future__ import annotations

import pytest

from tests.packaging.distributions import closure

FORBIDDEN = {
    # The VM image: the worker runtime, torch and the model; no deployment or developer tooling.
    ("asyncinfer-worker", ("gcs",)): {"pulumi", "pulumi-gcp", "pulumi-command", "rich", "matplotlib", "holidays",
                                      "pytest", "ruff", "mypy", "asyncinfer-components", "asyncinfer-tools"},
    # An application that submits requests and reads results.
    ("asyncinfer-client", ()): {"torch", "pulumi", "pulumi-gcp", "asyncinfer-worker", "numpy", "pillow", "rich",
                                "holidays", "matplotlib"},
    # Another Pulumi stack that imports the components.
    ("asyncinfer-components", ()): {"torch", "asyncinfer-worker", "asyncinfer-client", "google-cloud-pubsub", "rich",
                                    "matplotlib", "drawing-symbols"},
}

REQUIRED = {
    ("asyncinfer-worker", ("gcs",)): {"asyncinfer-core", "asyncinfer-client", "torch", "google-cloud-pubsub",
                                      "google-cloud-storage", "pydantic-settings", "structlog"},
    ("asyncinfer-client", ()): {"asyncinfer-core", "google-cloud-pubsub", "pydantic"},
    ("asyncinfer-components", ()): {"asyncinfer-core", "pulumi", "pulumi-gcp", "pulumi-command", "holidays"},
}


@pytest.mark.parametrize("audience", sorted(FORBIDDEN), ids=lambda a: a[0])
def test_an_audience_installs_only_what_it_needs(audience: tuple[str, tuple[str, ...]]) -> None:
    installed = closure(*audience)
    # The closure must be real: an audit that saw nothing would pass every "forbidden" check.
    assert REQUIRED[audience] <= installed, f"{audience[0]} lacks {REQUIRED[audience] - installed}"
    assert len(installed) >= 8, f"closure of {audience[0]} is suspiciously small: {sorted(installed)}"
    assert not FORBIDDEN[audience] & installed, f"{audience[0]} pulls in {sorted(FORBIDDEN[audience] & installed)}"
