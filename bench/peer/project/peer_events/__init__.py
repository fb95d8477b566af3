"""The event type the peer benchmark publishes (found by whisperer's autodiscovery)."""
