"""The seven workflow actions: one module each for its inputs, Kleer mapping and sync back."""

from __future__ import annotations

from actions import (
    agreement,
    client,
    client_from_mappings,
    invoice,
    project,
    project_from_mappings,
    update_agreement,
)
from actions.base import ActionSpec

ACTIONS: dict[str, ActionSpec] = {
    spec.key: spec
    for spec in (
        client.SPEC, client_from_mappings.SPEC, invoice.SPEC, agreement.SPEC,
        update_agreement.SPEC, project.SPEC, project_from_mappings.SPEC,
    )
}
