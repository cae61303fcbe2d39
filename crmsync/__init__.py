"""crmsync: the integration service between home-services CRMs and the messaging hub."""
