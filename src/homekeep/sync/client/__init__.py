"""The sync client: scan, plan, send and receive."""
