"""Inputs and outputs of the sync workflow and its activity (no secrets: a portal id only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SyncKind = Literal["client", "agreement", "invoice"]
# Clients first: agreements and invoices are associated with their client's company.
KINDS: tuple[SyncKind, ...] = ("client", "agreement", "invoice")


class Unmatched(BaseModel):
    kleer_id: int
    name: str | None = None
    reason: str


class SyncSummary(BaseModel):
    """What a run did; also the run's result, shown in the Temporal UI."""

    clients_seen: int = 0
    clients_linked: int = 0
    companies_created: int = 0
    subscriptions_upserted: int = 0
    invoices_upserted: int = 0
    unchanged: int = 0
    waiting_for_client: int = 0  # mirrors skipped until their Kleer client is linked
    left_to_actions: int = 0  # mirrors skipped while an action run writes them (the next run does)
    unmatched: list[Unmatched] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    def add(self, other: SyncSummary) -> SyncSummary:
        counts = {name: getattr(self, name) + getattr(other, name)
                  for name, info in SyncSummary.model_fields.items() if info.annotation is int}
        return SyncSummary(**counts, unmatched=(self.unmatched + other.unmatched)[:200],
                           errors=(self.errors + other.errors)[:200])

    def line(self) -> str:
        return (f"{self.clients_linked} clients linked, {self.companies_created} companies created, "
                f"{self.subscriptions_upserted} subscriptions and {self.invoices_upserted} invoices "
                f"upserted, {self.unchanged} unchanged, {self.left_to_actions} left to running "
                f"actions, {len(self.unmatched)} unmatched, "
                f"{len(self.errors)} errors")


class SyncRequest(BaseModel):
    """A run, or its continuation after continue-as-new (where it stopped, what it did so far)."""

    portal_id: int
    kind: SyncKind = "client"
    offset: int = 0
    summary: SyncSummary = Field(default_factory=SyncSummary)


class SyncPage(BaseModel):
    portal_id: int
    kind: SyncKind
    offset: int
    size: int
    run_id: str  # the Kleer list is read once per run and kind, then sliced


class PageDone(BaseModel):
    summary: SyncSummary
    next_offset: int
    done: bool
