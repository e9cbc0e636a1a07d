"""Pydantic models of what HubSpot sends us and answers (execution requests, CRM records)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _HubSpotModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExecutionIndex(_HubSpotModel):
    enrollmentId: int | None = None
    actionExecutionIndex: int | None = None


class Origin(_HubSpotModel):
    portalId: int
    actionDefinitionId: int | None = None
    actionDefinitionVersion: int | None = None
    actionExecutionIndexIdentifier: ExecutionIndex | None = None


class ExecutionObject(_HubSpotModel):
    objectId: int
    objectType: Literal["COMPANY", "DEAL"]
    properties: dict[str, str | None] = Field(default_factory=dict)


class ExecutionRequest(_HubSpotModel):
    """The body HubSpot POSTs to an action's actionUrl (hubspot.md section 1)."""

    callbackId: str = Field(min_length=1, max_length=200)
    origin: Origin
    context: dict[str, object] = Field(default_factory=dict)
    object: ExecutionObject
    inputFields: dict[str, str | None] = Field(default_factory=dict)


class AssociationRef(_HubSpotModel):
    id: str
    type: str | None = None


class AssociationList(_HubSpotModel):
    results: list[AssociationRef] = Field(default_factory=list)


class CrmObject(_HubSpotModel):
    id: str
    properties: dict[str, str | None] = Field(default_factory=dict)
    associations: dict[str, AssociationList] = Field(default_factory=dict)

    def prop(self, name: str) -> str | None:
        """A property's value with HubSpot's empty string treated as not set."""
        value = self.properties.get(name)
        return value if value not in (None, "") else None

    def associated_ids(self, to_type: str) -> list[str]:
        seen: dict[str, None] = {}
        for ref in self.associations.get(to_type, AssociationList()).results:
            seen.setdefault(ref.id)
        return list(seen)

    def primary_company_id(self) -> str | None:
        """The primary company (label `deal_to_company`), else the first associated one."""
        refs = self.associations.get("companies", AssociationList()).results
        for ref in refs:
            if ref.type == "deal_to_company":
                return ref.id
        return refs[0].id if refs else None


class UpsertResult(CrmObject):
    new: bool = False
