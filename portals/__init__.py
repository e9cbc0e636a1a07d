"""Which portals this deployment serves and how to reach their HubSpot and Kleer accounts:
installed portals from the database (OAuth), single-tenant ones from the environment."""
