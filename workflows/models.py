"""Workflow input and output: one HubSpot execution in, its outcome out. No secrets here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ActionExecution(BaseModel):
    action: str
    callback_id: str
    portal_id: int
    object_type: Literal["COMPANY", "DEAL"]
    object_id: int
    input_fields: dict[str, str | None] = Field(default_factory=dict)


class ActionResult(BaseModel):
    state: Literal["SUCCESS", "FAIL_CONTINUE"]
    result: Literal["created", "updated", "skipped", "failed"]
    kleer_id: str = ""
    error_message: str = ""
    callback: str = ""  # "completed", or why HubSpot no longer accepts the completion

    def output_fields(self) -> dict[str, str]:
        return {
            "hs_execution_state": self.state,
            "kleer_id": self.kleer_id,
            "result": self.result,
            "error_message": self.error_message,
        }


def workflow_id(callback_id: str) -> str:
    """One workflow per HubSpot execution: a re-delivered request maps to the same id."""
    return f"hubspot-action-{callback_id}"
