"""menu (menu-info): menu items, their prices and recipes (ingredients per item)."""
