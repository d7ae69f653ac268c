"""The client side of sync: scan, plan, send, watch."""
