"""The HubSpot OAuth scopes our actions need, each with why.

The install link asks for exactly these (`scope=`, separated by URL-encoded spaces); the app's Auth
settings must list the same ones as required, or HubSpot's authorize page shows a scope-mismatch
error instead of the account chooser
(https://developers.hubspot.com/docs/apps/legacy-apps/authentication/working-with-oauth).

Scope names from HubSpot's scope list (https://developers.hubspot.com/docs/api/scopes) and the
"Scope requirements" of each API we call:
  companies/deals/line items/properties: https://developers.hubspot.com/docs/api-reference/latest/crm/properties/guide
  invoices: https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/invoices/guide
  subscriptions (and their line items): https://developers.hubspot.com/docs/api-reference/latest/crm/objects/commerce-subscriptions/guide
  callbacks: https://developers.hubspot.com/docs/api-reference/legacy/automation/workflow-actions/callbacks/complete-callback
Associations (v4) need no scope of their own: the object scopes of both ends cover them.
Action definitions are published with the developer API key, not a portal token: no scope.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    name: str
    why: str


REQUIRED_SCOPES: tuple[Scope, ...] = (
    Scope("oauth", "Basic OAuth scope every HubSpot app has: install, token refresh, token info "
                   "(which portal and user installed the app)."),
    Scope("crm.objects.companies.read", "Read the enrolled company (name, address, org number, "
                                        "kleer_id) and a deal's associated companies."),
    Scope("crm.objects.companies.write", "Write the Kleer client id (kleer_id) back onto the "
                                         "company."),
    Scope("crm.objects.deals.read", "Read the enrolled deal and its kleer_* ids."),
    Scope("crm.objects.deals.write", "Write kleer_invoice_id, kleer_agreement_id and "
                                     "kleer_project_id back onto the deal."),
    Scope("crm.objects.line_items.read", "Read the deal's line items: they become the Kleer "
                                         "invoice/agreement rows."),
    Scope("crm.objects.line_items.write", "Create and replace the line items of the mirrored "
                                          "HubSpot invoice or subscription."),
    Scope("crm.objects.invoices.read", "Find the mirrored HubSpot invoice by kleer_id (upsert)."),
    Scope("crm.objects.invoices.write", "Mirror a Kleer invoice as a HubSpot invoice, associated "
                                        "with the deal and the company."),
    Scope("crm.objects.subscriptions.read", "Find the mirrored HubSpot subscription by kleer_id "
                                            "(upsert)."),
    Scope("crm.objects.subscriptions.write", "Mirror a Kleer agreement as a HubSpot subscription, "
                                             "associated with the deal and the company."),
    Scope("crm.schemas.companies.read", "List company properties: portal setup and the settings "
                                        "page's field mappings."),
    Scope("crm.schemas.companies.write", "Create the kleer_id company property and the Kleer "
                                         "property group (portal setup)."),
    Scope("crm.schemas.deals.read", "List deal properties: portal setup and field mappings."),
    Scope("crm.schemas.deals.write", "Create the kleer_invoice_id, kleer_agreement_id and "
                                     "kleer_project_id deal properties (portal setup)."),
    Scope("crm.schemas.invoices.read", "Check the invoice kleer_id property exists (portal "
                                       "setup)."),
    Scope("crm.schemas.invoices.write", "Create the unique kleer_id invoice property the mirror "
                                        "upserts by (portal setup)."),
    Scope("crm.schemas.subscriptions.read", "Check the subscription kleer_id property exists "
                                            "(portal setup)."),
    Scope("crm.schemas.subscriptions.write", "Create the unique kleer_id subscription property "
                                             "the mirror upserts by (portal setup)."),
    Scope("automation", "Complete the workflow action callbacks (SUCCESS / FAIL_CONTINUE with "
                        "the output fields)."),
)

# Asked for with `optional_scope=` (dropped when the account lacks the product); none today.
OPTIONAL_SCOPES: tuple[Scope, ...] = ()


def required_scope_names() -> list[str]:
    return [scope.name for scope in REQUIRED_SCOPES]


def optional_scope_names() -> list[str]:
    return [scope.name for scope in OPTIONAL_SCOPES]
