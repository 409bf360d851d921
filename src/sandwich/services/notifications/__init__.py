"""notifications (mini_notif): letters about orders, stored with their delivery state and sent over SMTP."""
