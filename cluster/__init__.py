"""The machine side: topology, placement, Ray connection, worker actors, local clusters."""
