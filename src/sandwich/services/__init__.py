"""The services: one package each, meeting only over HTTP and events."""
