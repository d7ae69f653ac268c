"""The sync server: the target folder, its index, and what clients send and fetch."""
