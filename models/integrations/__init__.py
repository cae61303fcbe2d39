"""Per-CRM integration settings and credentials: what a tenants file may say."""
