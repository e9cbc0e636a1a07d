"""Pydantic models of what HubSpot sends us and answers (execution requests, CRM records)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _HubSpotModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExecutionIndex(_HubSpotModel):
    enrollmentId: int | None = None
    actionExecutionIndex: int | None = None


# Ids travel as Temporal search attributes (Int is 64-bit) and into URLs: positive int64 only.
PositiveId = Annotated[int, Field(gt=0, lt=2**63)]


class Origin(_HubSpotModel):
    portalId: PositiveId
    actionDefinitionId: int | None = None
    actionDefinitionVersion: int | None = None
    actionExecutionIndexIdentifier: ExecutionIndex | None = None


class ExecutionObject(_HubSpotModel):
    objectId: PositiveId
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
    type: str | None = None  # v3 inline: "deal_to_company" is the primary company
    primary: bool = False  # v4: the "Primary" label


class AssociationList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: list[AssociationRef]
    paging: dict | None = None

    @field_validator("paging")
    @classmethod
    def _complete(cls, paging: dict | None) -> dict | None:
        if paging and paging.get("next"):
            raise ValueError("more associations than one answer holds (paging.next)")
        return paging


# hubspot.md section 7: inline associations of a v3 read are keyed by display names ("line items"
# with a space), not by object type names. Known keys -> object type; any other key is an answer
# we do not understand (an error, never "no associations").
INLINE_ASSOCIATION_KEYS = {"companies": "companies", "deals": "deals", "line items": "line_items",
                           "line_items": "line_items"}


class CrmObject(_HubSpotModel):
    id: str
    properties: dict[str, str | None] = Field(default_factory=dict)
    associations: dict[str, AssociationList] = Field(default_factory=dict)

    @field_validator("associations", mode="before")
    @classmethod
    def _by_object_type(cls, raw: object) -> object:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ValueError("associations must be an object")
        by_type: dict[str, object] = {}
        for key, value in raw.items():
            object_type = INLINE_ASSOCIATION_KEYS.get(key)
            if object_type is None:
                raise ValueError(f"unknown association key {key!r}")
            if object_type in by_type:
                raise ValueError(f"associations to {object_type} under two keys")
            by_type[object_type] = value
        return by_type

    def prop(self, name: str) -> str | None:
        """A property's value with HubSpot's empty string treated as not set."""
        value = self.properties.get(name)
        return value if value not in (None, "") else None

    def associated_ids(self, to_type: str) -> list[str]:
        seen: dict[str, None] = {}
        for ref in self.associations.get(to_type, AssociationList(results=[])).results:
            seen.setdefault(ref.id)
        return list(seen)

    def primary_company_id(self) -> str | None:
        """The primary company (label `deal_to_company`), else the first associated one."""
        refs = self.associations.get("companies", AssociationList(results=[])).results
        for ref in refs:
            if ref.primary or ref.type == "deal_to_company":
                return ref.id
        return refs[0].id if refs else None


class UpsertResult(CrmObject):
    new: bool = False
