"""Built-in controllers: each hears store events, queues work, and writes through `ApiCore` like any client."""
