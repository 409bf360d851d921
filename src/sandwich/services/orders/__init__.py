"""orders (mini_order, order-master): orders, their state machine, the payment step, the outbox."""
