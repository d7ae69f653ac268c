"""The server side of sync: the target folder and every change applied to it."""
