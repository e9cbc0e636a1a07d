"""One Temporal workflow per HubSpot action; all share workflows.common.run_action."""

from sync.workflow import OutboundSync
from workflows.create_agreement import CreateKleerAgreement
from workflows.create_client import CreateKleerClient
from workflows.create_client_from_mappings import CreateKleerClientFromMappings
from workflows.create_invoice import CreateKleerInvoice
from workflows.create_project import CreateKleerProject
from workflows.create_project_from_mappings import CreateKleerProjectFromMappings
from workflows.record import KleerRecordWrite
from workflows.update_agreement import UpdateKleerAgreement

# Action key (the actionUrl segment) -> workflow class.
WORKFLOWS: dict[str, type] = {
    "create-client": CreateKleerClient,
    "create-client-from-mappings": CreateKleerClientFromMappings,
    "create-invoice": CreateKleerInvoice,
    "create-agreement": CreateKleerAgreement,
    "update-agreement": UpdateKleerAgreement,
    "create-project": CreateKleerProject,
    "create-project-from-mappings": CreateKleerProjectFromMappings,
}

# Everything a worker runs: the action workflows and the per-record workflow they hand writes to.
ALL_WORKFLOWS: list[type] = [*WORKFLOWS.values(), KleerRecordWrite, OutboundSync]
