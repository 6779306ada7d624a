"""Running an operation: graphql-core's executor deciding from what it runs, the
planner and its plans, persisted operations."""
