"""The scheduled outbound sync, Kleer -> HubSpot: Kleer clients linked to their companies, Kleer
agreements and invoices mirrored as HubSpot subscriptions and invoices, on a Temporal Schedule per
portal (README "Outbound sync")."""
