"""The event bus: one small interface, two adapters (NATS JetStream and Kafka)."""

from sandwich.platform.bus.base import EventBus, Handler, Message, Subscription, dead_letter_topic

__all__ = ["EventBus", "Handler", "Message", "Subscription", "dead_letter_topic"]
