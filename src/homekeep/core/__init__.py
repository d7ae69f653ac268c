"""The shared floor every area stands on: config, storage, errors, auth, logging, web."""
