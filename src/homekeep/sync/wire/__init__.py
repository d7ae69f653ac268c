"""What client and server share: the protocol, chunk lists, deltas, chunking, compression."""
