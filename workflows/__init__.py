"""One Temporal workflow per HubSpot action; all share workflows.common.run_action."""

from workflows.create_agreement import CreateKleerAgreement
from workflows.create_client import CreateKleerClient
from workflows.create_client_from_mappings import CreateKleerClientFromMappings
from workflows.create_invoice import CreateKleerInvoice
from workflows.create_project import CreateKleerProject
from workflows.create_project_from_mappings import CreateKleerProjectFromMappings
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
