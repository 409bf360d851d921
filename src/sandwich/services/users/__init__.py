"""users (mini_user, user-info): profiles and contact data."""
