"""sandwich: food ordering and delivery as real microservices."""

__version__ = "0.1.0"
