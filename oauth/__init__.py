"""HubSpot OAuth: the install flow, token exchange and refresh (one refresh per portal at a time)."""
