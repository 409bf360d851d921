"""gateway (API gateway): verifies JWTs, sets the identity headers, routes, rate-limits login."""
