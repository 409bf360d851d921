"""auth (mini_auth): credentials, roles, token signing keys and the JWKS document."""
