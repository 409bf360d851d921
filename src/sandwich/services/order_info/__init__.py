"""order_info (order-info): the read model of orders with their history (the CQRS query side)."""
