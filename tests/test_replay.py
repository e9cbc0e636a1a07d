"""Runs in flight when a new version is deployed replay on the new code.

`tests/histories/` holds histories recorded on earlier code (encrypted with the tests' payload
key). A workflow change that would make one of them fail to replay (a step added, removed or
reordered without `workflow.patched`) breaks runs already in flight in production: it fails here
first. Record new ones when the workflow code changes shape (README, "Changing workflows").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from settings import Settings
from temporal_client import data_converter
from tests.conftest import PAYLOAD_KEY
from workflows import ALL_WORKFLOWS
from workflows.runner import workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_to_replay():
    assert len(HISTORIES) >= 4, HISTORIES


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_run_recorded_on_earlier_code_replays(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    converter = data_converter(Settings(payload_key=PAYLOAD_KEY))
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=converter,
                        workflow_runner=workflow_runner(converter))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
